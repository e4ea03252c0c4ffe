"""The embedded model's KV prefix, kept between processes and shared between workspaces.

Within a process the server reuses the longest common token prefix of consecutive requests. Across
processes this module keeps llama.cpp slot files (the KV cells of the conversation, no logits: ~28 KB
per token for Qwen2.5-Coder-1.5B) in ``$CODEXBRO_HOME/cache/embedded/``:

- a **base** file per model and *workspace-independent prefix* — the system turn: instructions and
  the tool menu, which the prompt puts before anything that names the workspace (environment, AGENTS.md,
  the request). It is written once, the first time a process evaluates that prefix, so a new workspace
  starts from it and evaluates only its own tokens;
- a **workspace** file per model, prefix and workspace, written when the session closes (its first
  ``MAX_TOKENS`` tokens), so the next ``exec`` in that workspace also reuses its environment context.

The first request of a process restores the workspace file when there is one, else the base file
(the server then keeps the common prefix with the new prompt). Keys include the model file (name and
size) and a hash of the prefix tokens, so changed instructions or tools simply miss. Files are
written under a temporary name and renamed, 0600 in a 0700 directory (they hold conversation
content); the directory is bounded (``MAX_FILES``, ``MAX_BYTES``; least recently used go first).
A file the engine refuses (another version, damaged) is deleted and ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codexbro.embedded.llama_server import LlamaServer

log = logging.getLogger(__name__)
MAX_FILES = 8
MAX_BYTES = 512 * 1024 * 1024
MAX_TOKENS = 2048


def cache_dir(home: Path) -> Path:
    return home / "cache" / "embedded"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


class KvStore:
    def __init__(self, directory: Path, model_path: Path, workspace: Path) -> None:
        stat = model_path.stat() if model_path.exists() else None
        self.model_key = f"{model_path.name}:{stat.st_size if stat else 0}"
        self.stem = model_path.stem
        self.directory = directory
        self.workspace = str(workspace)
        self._prefix = ""

    def use_prefix(self, prefix: list[int]) -> None:
        """The workspace-independent prefix of this session's prompts (names both files)."""
        self._prefix = _digest(self.model_key, ",".join(map(str, prefix)))

    @property
    def base_name(self) -> str:
        return f"{self.stem}-base-{self._prefix}.kv"

    @property
    def workspace_name(self) -> str:
        return f"{self.stem}-ws-{_digest(self._prefix, self.workspace)}.kv"

    def restore(self, server: LlamaServer) -> tuple[int, str]:
        """Load the best saved prefix into the server's empty slot: (tokens restored, which file)."""
        for name, kind in ((self.workspace_name, "workspace"), (self.base_name, "base")):
            path = self.directory / name
            if not path.is_file():
                continue
            try:
                restored = int(server.slot("restore", name).get("n_restored", 0))
            except Exception as exc:  # a damaged or foreign file: drop it, never fatal
                log.info("discarding unusable KV cache %s: %s", path, exc)
                path.unlink(missing_ok=True)
                server.slot("erase")
                continue
            os.utime(path)  # least recently used goes first
            return restored, kind
        return 0, ""

    def has_base(self) -> bool:
        return (self.directory / self.base_name).is_file()

    def save_base(self, server: LlamaServer) -> None:
        self._save(server, self.base_name)

    def save_workspace(self, server: LlamaServer) -> None:
        self._save(server, self.workspace_name)

    def _save(self, server: LlamaServer, name: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        tmp = f"tmp-{os.getpid()}-{name}"
        try:
            server.slot("save", tmp)
            os.chmod(self.directory / tmp, 0o600)
            os.replace(self.directory / tmp, self.directory / name)
        except Exception as exc:  # a cache: never fatal
            log.warning("could not save the embedded model's KV cache %s: %s", name, exc)
            (self.directory / tmp).unlink(missing_ok=True)
            return
        self.prune()

    def prune(self) -> None:
        """Keep at most ``MAX_FILES`` files and ``MAX_BYTES`` bytes, newest first; leftovers of a
        process killed while saving go too."""
        entries = []
        for path in self.directory.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.name.startswith("tmp-"):
                if time.time() - stat.st_mtime > 600:  # another process's save takes seconds at most
                    path.unlink(missing_ok=True)
            elif path.suffix == ".kv":
                entries.append((stat.st_mtime, stat.st_size, path))
        total = 0
        for n, (_mtime, size, path) in enumerate(sorted(entries, reverse=True)):
            total += size
            if n >= MAX_FILES or total > MAX_BYTES:
                path.unlink(missing_ok=True)
