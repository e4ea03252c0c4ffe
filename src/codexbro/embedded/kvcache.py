"""The embedded model's KV prefix, kept between processes and shared between workspaces.

Within a process the server reuses the longest common token prefix of consecutive requests. Across
processes this module keeps llama.cpp slot files (the KV cells of the conversation, no logits: ~28 KB
per token for Qwen2.5-Coder-1.5B) in ``$CODEXBRO_HOME/cache/embedded/``:

- a **base** file per model and *workspace-independent prefix* — the system turn (instructions and
  the tool menu) and the worked examples after it (``examples.py``), which the prompt puts before
  anything that names the workspace (developer messages, AGENTS.md, the request). It is written
  once, the first time a process evaluates that prefix, so a new workspace starts from it and
  evaluates only its own tokens;
- a **workspace** file per model, prefix and workspace, written when the session closes (its first
  ``MAX_TOKENS`` tokens), so the next ``exec`` in that workspace also reuses what it adds before the
  request (AGENTS.md, developer instructions). Restoring it also marks the base as used.

The first request of a process restores the workspace file when there is one, else the base file
(the server then keeps the common prefix with the new prompt). Keys include the model file (name,
size, mtime) and a hash of the prefix tokens, so changed weights, instructions or tools simply miss.

A slot file holds the conversation's token ids — its text, tool output included — so: an ephemeral
session (``--ephemeral``, ``history_persistence = "none"``) keeps no workspace file; files are
0600 in a 0700 directory that must be ours and not a symlink (else no cache is used at all); only
regular files of ours are restored; the engine writes under an unguessable temporary name that is
checked before it is renamed into place. The directory is bounded (``MAX_FILES``, ``MAX_BYTES``;
least recently used go first). A file the engine refuses (another version, damaged) is deleted
and ignored; no cache failure ever fails a request.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codexbro.embedded.llama_server import LlamaServer

log = logging.getLogger(__name__)
MAX_FILES = 8
MAX_BYTES = 512 * 1024 * 1024
MAX_TOKENS = 3072


def cache_dir(home: Path) -> Path:
    return home / "cache" / "embedded"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def private_dir(directory: Path) -> bool:
    """Make ``directory`` (0700, ours, not a symlink) or check that it is; False when it is not
    usable as a private cache (then nothing is read or written there)."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            log.warning("not using %s as the embedded model's KV cache: not a directory of ours", directory)
            return False
        if info.st_mode & 0o077:
            os.chmod(directory, 0o700)
        return True
    except OSError as exc:
        log.warning("no KV cache for the embedded model in %s: %s", directory, exc)
        return False


def _own_file(path: Path) -> bool:
    """A regular file of ours (a symlink or another user's file is never read or kept)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()


class KvStore:
    def __init__(
        self, directory: Path, model_path: Path, workspace: Path, *, keep_conversation: bool = True
    ) -> None:
        try:
            info = model_path.stat()
            self.model_key = f"{model_path.name}:{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            self.model_key = f"{model_path.name}:missing"
        self.stem = model_path.stem
        self.directory = directory
        self.workspace = str(workspace)
        # False for ephemeral sessions: the conversation's KV (its token ids are its text) is not
        # kept; the shared prefix (instructions and tools only) still is.
        self.keep_conversation = keep_conversation
        self.usable = private_dir(directory)
        self._prefix = _digest(self.model_key)

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
        """Load the best saved prefix into the server's empty slot: (tokens restored, which file).
        Never fails the request: a file that cannot be used is skipped (and deleted when the engine
        says it is invalid)."""
        if not self.usable:
            return 0, ""
        from codexbro.embedded.llama_server import EngineError

        candidates = [(self.workspace_name, "workspace")] if self.keep_conversation else []
        for name, kind in [*candidates, (self.base_name, "base")]:
            path = self.directory / name
            if not _own_file(path):
                continue
            try:
                restored = int(server.slot("restore", name).get("n_restored", 0))
            except EngineError as exc:
                log.info("could not restore KV cache %s: %s", path, exc)
                if "listener failed" not in str(exc):  # the file itself was refused: drop it
                    path.unlink(missing_ok=True)
                try:
                    server.slot("erase")
                except EngineError:
                    return 0, ""
                continue
            with contextlib.suppress(OSError):  # pruned by another process meanwhile: restored stands
                os.utime(path)  # least recently used goes first
                if kind == "workspace":  # the base is what every new workspace starts from: kept too
                    os.utime(self.directory / self.base_name)
            return restored, kind
        return 0, ""

    def has_base(self) -> bool:
        return _own_file(self.directory / self.base_name)

    def save_base(self, server: LlamaServer) -> None:
        self._save(server, self.base_name)

    def save_workspace(self, server: LlamaServer) -> None:
        if self.keep_conversation:
            self._save(server, self.workspace_name)

    def _save(self, server: LlamaServer, name: str) -> None:
        """The engine writes the slot under an unguessable temporary name; only a regular file of
        ours found there is made 0600 and renamed into place."""
        if not self.usable:
            return
        from codexbro.embedded.llama_server import EngineError

        tmp = self.directory / f"tmp-{secrets.token_hex(8)}-{name}"
        try:
            server.slot("save", tmp.name)
            if not _own_file(tmp):
                raise OSError(errno.EPERM, "the saved slot file is not a regular file of ours", str(tmp))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.directory / name)
        except (EngineError, OSError) as exc:  # a cache: never fatal
            log.warning("could not save the embedded model's KV cache %s: %s", name, exc)
            try:
                if not tmp.is_symlink():
                    tmp.unlink(missing_ok=True)
            except OSError:
                pass
            return
        self.prune()

    def prune(self) -> None:
        """Keep at most ``MAX_FILES`` files and ``MAX_BYTES`` bytes, newest first; leftovers of a
        process killed while saving go too."""
        entries = []
        try:
            paths = list(self.directory.iterdir())
        except OSError:
            return
        for path in paths:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if path.name.startswith("tmp-"):
                if time.time() - info.st_mtime > 600:  # another process's save takes seconds at most
                    path.unlink(missing_ok=True)
            elif path.suffix == ".kv":
                entries.append((info.st_mtime, info.st_size, path))
        total = 0
        for n, (_mtime, size, path) in enumerate(sorted(entries, reverse=True)):
            total += size
            if n >= MAX_FILES or total > MAX_BYTES:
                path.unlink(missing_ok=True)
