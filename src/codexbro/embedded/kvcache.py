"""The embedded model's KV prefix, kept between processes.

Within a process llama.cpp already reuses the longest common token prefix of consecutive requests.
Across processes this module saves the KV cells of sequence 0 (``llama_state_seq_save_file`` — KV
only, no logits: ~28 KB per token for Qwen2.5-Coder-1.5B) when the session closes, one file per
model and workspace in ``$CODEXBRO_HOME/cache/embedded/``; the next process in that workspace loads it
before its first request, so only the tokens after the common prefix (the new user message) are
evaluated. A process killed before it closes simply leaves the previous file.

Only the first ``MAX_TOKENS`` tokens are kept (the stable prefix — instructions, tools, environment —
is what the next ``exec`` reuses), so a file stays under ~60 MB; at most ``KEEP`` files are kept
(least recently used go first), so the cache stays under ~250 MB. Files are written through a
temporary name and renamed, mode 0600 in a 0700 directory (the cache holds conversation content). A
file that llama.cpp refuses (another version, another model) is deleted and ignored.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
KEEP = 4
MAX_TOKENS = 2048


def cache_dir(home: Path) -> Path:
    return home / "cache" / "embedded"


class KvStore:
    def __init__(self, directory: Path, model_path: Path, workspace: Path) -> None:
        stat = model_path.stat() if model_path.exists() else None
        model_key = f"{model_path.name}:{stat.st_size if stat else 0}"
        key = hashlib.sha256(f"{model_key}\0{workspace}".encode()).hexdigest()[:20]
        self.directory = directory
        self.path = directory / f"{model_path.stem}-{key}.kv"

    def restore(self, llm: Any) -> int:
        """Load the saved prefix into a fresh context; the number of tokens restored (0 if none)."""
        import llama_cpp

        if llm.n_tokens or not self.path.is_file():
            return 0
        capacity = llm.n_ctx()
        tokens = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(
            llm._ctx.ctx, str(self.path).encode(), 0, tokens, capacity, ctypes.byref(count)
        )
        if not read or count.value == 0:
            log.info("discarding unusable KV cache %s", self.path)
            llm._ctx.kv_cache_clear()
            self.path.unlink(missing_ok=True)
            return 0
        n = int(count.value)
        llm.input_ids[:n] = tokens[:n]
        llm.n_tokens = n
        llm._requires_eval = True  # the logits were not restored: generate() replays one token
        os.utime(self.path)  # least recently used goes first
        return n

    def save(self, llm: Any) -> None:
        import llama_cpp

        n = int(llm.n_tokens)
        if n == 0:
            return
        if n > MAX_TOKENS:  # called at close: dropping the tail is harmless
            llm._ctx.kv_cache_seq_rm(0, MAX_TOKENS, -1)
            n = llm.n_tokens = MAX_TOKENS
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tokens = (llama_cpp.llama_token * n)(*llm.input_ids[:n].tolist())
        old_umask = os.umask(0o077)
        try:
            written = llama_cpp.llama_state_seq_save_file(llm._ctx.ctx, str(tmp).encode(), 0, tokens, n)
        finally:
            os.umask(old_umask)
        if not written:
            tmp.unlink(missing_ok=True)
            log.warning("could not save the embedded model's KV cache to %s", self.path)
            return
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._prune()

    def _prune(self) -> None:
        files = sorted(self.directory.glob("*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP:]:
            old.unlink(missing_ok=True)
