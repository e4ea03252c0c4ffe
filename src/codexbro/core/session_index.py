"""What ``resume --last`` and the session pickers need to know of each rollout, cached.

A rollout's first line (its ``session_meta``: id, cwd, source) never changes once written, and
its first user message never changes once there. ``$CODEXBRO_HOME/codexbro_session_index.jsonl``
(not Codex's ``session_index.jsonl``, which holds thread names in a shared home) keeps
those facts per file, so finding the newest session of a directory among thousands opens no
rollout at all: the ``sessions/YYYY/MM/DD`` directories are listed newest first and each file's
facts come from the index. A file the index does not know (a new session, one written by Codex in
a shared home, a home from before the index) is read once and added. The index is codexbro's own
(upstream keeps its sessions in ``state_5.sqlite``; ``core/codex_index.py`` writes there for homes
shared with Codex): a plain append-only file, 0600, compacted when it holds many stale lines. It
is only a cache — the directory listing decides which sessions exist, a missing, damaged or
foreign line is ignored, and losing the file costs one re-read of each rollout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec

from codexbro.homefiles import read_own_file

INDEX_FILE = "codexbro_session_index.jsonl"  # not Codex's session_index.jsonl (thread names)
MAX_FIRST_MESSAGE = 400  # characters of the first user message kept for the pickers
MAX_INDEX_BYTES = 64 << 20  # an index larger than this is not read (the rollouts are, once)
log = logging.getLogger(__name__)


class Facts(msgspec.Struct, frozen=True, omit_defaults=True):
    """One rollout, as the index keeps it: its path under ``sessions/`` and its first line's facts.
    ``first`` is the first user message, None while there is none (the file is read again then)."""

    file: str
    id: str | None = None
    cwd: str | None = None
    source: str | None = None
    first: str | None = None


_decoder = msgspec.json.Decoder(Facts)
_encoder = msgspec.json.Encoder()


def rollouts_newest_first(root: Path) -> Iterator[Path]:
    """``root/YYYY/MM/DD/rollout-*.jsonl``, newest first, one directory listed at a time (a caller
    that stops early never lists the older days)."""

    def entries(directory: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as it:
                return sorted(it, key=lambda e: e.name, reverse=True)
        except OSError:
            return []

    for year in entries(root):  # linked directories are followed, as the glob it replaces did
        if not year.is_dir():
            continue
        for month in entries(Path(year.path)):
            if not month.is_dir():
                continue
            for day in entries(Path(month.path)):
                if not day.is_dir():
                    continue
                for file in entries(Path(day.path)):
                    if file.name.startswith("rollout-") and file.name.endswith(".jsonl"):
                        yield Path(file.path)


class SessionIndex:
    """The index of one home, loaded once; ``facts`` reads a file the index lacks; ``save``
    appends what was learnt."""

    def __init__(self, home: Path) -> None:
        self.root = home / "sessions"
        self.path = home / INDEX_FILE
        self.known: dict[str, Facts] = {}
        self.lines = 0
        self.learnt: list[Facts] = []
        self.torn = False
        self._load()

    def _load(self) -> None:
        # our own regular file only: a symlink planted in its place is neither read nor written
        # through, a FIFO is never waited on
        data = read_own_file(self.path, MAX_INDEX_BYTES)
        if data is None:
            return
        self.torn = bool(data) and not data.endswith(b"\n")  # a torn last line: ours start afresh
        for line in data.splitlines():
            if not line.strip():
                continue
            self.lines += 1
            try:
                facts = _decoder.decode(line)
            except (msgspec.DecodeError, RecursionError, ValueError):  # torn or foreign: read the rollout
                continue
            self.known[facts.file] = facts

    def key(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def facts(self, path: Path, *, first_message: bool = False) -> Facts | None:
        """The facts of rollout ``path`` (None: not a rollout, or not readable now); with
        ``first_message``, a file whose first message is not known yet is read again for it. A
        name that is not valid UTF-8 is never indexed (read each time instead)."""
        key = self.key(path)
        if not _utf8(key):
            return read_facts(path, key)
        cached = self.known.get(key)
        if cached is not None and (cached.first is not None or not first_message):
            return cached
        facts = read_facts(path, key)
        if facts is None:
            return cached
        if facts != cached:
            self.known[key] = facts
            self.learnt.append(facts)
        return facts

    def save(self) -> None:
        """Append what was learnt (one write); rewrite the file when most of it is stale lines.
        A failure is logged: the index is a cache, the next run reads those files again."""
        if not self.learnt:
            return
        try:
            if self.lines + len(self.learnt) > 2 * len(self.known) + 1000:
                self._rewrite()
            else:
                data = b"\n" * self.torn + b"".join(_encoder.encode(f) + b"\n" for f in self.learnt)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
                fd = os.open(self.path, flags, 0o600)
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        raise OSError(f"{self.path} is not a regular file")
                    os.write(fd, data)
                finally:
                    os.close(fd)
                self.lines += len(self.learnt)
                self.torn = False
        except OSError as exc:
            log.warning("session index not saved: %s", exc)
        self.learnt = []

    def _rewrite(self) -> None:
        """Only the entries of rollouts that still exist, in a new file renamed over the old."""
        self.known = {k: f for k, f in self.known.items() if (self.root / k).is_file()}
        tmp = self.path.with_name(f".{INDEX_FILE}.{secrets.token_hex(6)}.tmp")
        data = b"".join(_encoder.encode(f) + b"\n" for f in self.known.values())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.close(fd)
        os.replace(tmp, self.path)
        self.lines = len(self.known)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_facts(path: Path, key: str) -> Facts | None:
    """A rollout's facts from its own lines: its ``session_meta`` and its first user message,
    within the first 400 lines. None when there is no session_meta (not a rollout)."""
    from codexbro.core.rollout import read_lines

    meta: dict[str, object] | None = None
    first: str | None = None
    try:
        for n, doc in enumerate(read_lines(path)):
            if doc is None or n > 400:
                break
            payload = doc.get("payload")
            if not isinstance(payload, dict):
                continue
            if doc.get("type") == "session_meta" and meta is None:
                meta = payload
            elif doc.get("type") == "event_msg" and payload.get("type") == "user_message":
                first = str(payload.get("message") or "")[:MAX_FIRST_MESSAGE]
                break
    except OSError:
        return None
    if meta is None or not isinstance(meta.get("id"), str):
        return None

    def text(value: object) -> str | None:
        return value if isinstance(value, str) else None

    return Facts(key, text(meta.get("id")), text(meta.get("cwd")), text(meta.get("source")), first)
