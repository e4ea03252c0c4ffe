"""MCP OAuth tokens on disk: ``$CODEXBRO_HOME/.credentials/mcp-oauth.json``, one entry per server
(keyed by name and URL, so a server re-pointed elsewhere does not get the old server's token),
written atomically with mode 0600 in a 0700 directory. Tokens are never logged."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def store_path(home: Path) -> Path:
    return home / ".credentials" / "mcp-oauth.json"


def _key(name: str, url: str) -> str:
    return f"{name}|{url}"


def _read(home: Path) -> dict[str, Any]:
    try:
        doc = json.loads(store_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(home: Path, doc: dict[str, Any]) -> None:
    path = store_path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    os.replace(tmp, path)


def load_tokens(home: Path, name: str, url: str) -> dict[str, Any] | None:
    """The stored entry: ``tokens`` (access_token, refresh_token, expires_at …) and ``client``
    (the registered client's id/secret)."""
    entry = _read(home).get(_key(name, url))
    return entry if isinstance(entry, dict) and entry.get("tokens") else None


def load_client(home: Path, name: str, url: str) -> dict[str, Any] | None:
    entry = _read(home).get(_key(name, url))
    client = entry.get("client") if isinstance(entry, dict) else None
    return client if isinstance(client, dict) else None


def save(home: Path, name: str, url: str, *, tokens: dict[str, Any] | None = None,
         client: dict[str, Any] | None = None) -> None:  # fmt: skip
    doc = _read(home)
    entry = doc.get(_key(name, url))
    entry = entry if isinstance(entry, dict) else {}
    if tokens is not None:
        entry["tokens"] = tokens
    if client is not None:
        entry["client"] = client
    doc[_key(name, url)] = entry
    _write(home, doc)


def delete(home: Path, name: str, url: str) -> bool:
    doc = _read(home)
    if doc.pop(_key(name, url), None) is None:
        return False
    _write(home, doc)
    return True
