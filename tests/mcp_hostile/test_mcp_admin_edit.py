"""`codexbro mcp add|remove` on config.toml files as people write them
(src/codexbro/cli/mcp_admin.py `_add`, `_remove`, `_write_doc`).

Findings:
- `mcp_servers = { a = {...} }` (an inline table): `add` writes a *standard* tomlkit table into the
  inline table and the file becomes invalid TOML; every codexbro command then fails on the config,
  and `mcp remove` cannot repair it (it refuses to read the file).
- `mcp_servers.a.command = "x"` (dotted keys) followed by top-level keys: `add` appends the new
  `[mcp_servers.b]` header *before* those keys, so they silently move into the new server's table
  (`model = "o3"` becomes `mcp_servers.b.model`) — the user's setting is lost without a word.
- `mcp_servers = 5` / `[[mcp_servers]]`: a Python traceback (TypeError) instead of a message.
- a symlinked config.toml (dotfiles): `os.replace(tmp, path)` replaces the *link* with a regular
  file; the link's target never gets the server and the link is gone.

Expected: refuse with a clear message when `mcp_servers` is not a (non-inline) table, or add an
inline entry to an inline table; after editing, re-parse the text with tomllib and check that the
document equals the old one plus (minus) exactly that server — refuse and leave the file untouched
otherwise; write through a symlink (edit `path.resolve()`, the temp file beside the target)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from tests.conftest import run_cli


def _add(home: Path, text: str) -> tuple[object, str]:
    (home / "config.toml").write_text(text)
    result = run_cli("mcp", "add", "b", "--", "cmd", "arg")
    return result, (home / "config.toml").read_text()


def test_add_to_an_inline_mcp_servers_table_keeps_the_file_valid(home: Path) -> None:
    _result, text = _add(home, 'model = "o3"\nmcp_servers = { a = { command = "x" } }\n')
    doc = tomllib.loads(text)  # now: TOMLDecodeError — the config is broken for every command
    assert doc["mcp_servers"]["b"]["command"] == "cmd" and doc["mcp_servers"]["a"] == {"command": "x"}


def test_add_after_dotted_keys_does_not_move_top_level_keys(home: Path) -> None:
    _result, text = _add(home, 'mcp_servers.a.command = "x"\nmodel = "o3"\n')
    doc = tomllib.loads(text)
    # now: {'mcp_servers': {'a': …, 'b': {'command': 'cmd', 'args': ['arg'], 'model': 'o3'}}}
    assert doc.get("model") == "o3", text
    assert "model" not in doc["mcp_servers"]["b"]


def test_mcp_servers_not_a_table_is_a_message_not_a_traceback(home: Path) -> None:
    for text in ("mcp_servers = 5\n", '[[mcp_servers]]\ncommand = "x"\n'):
        for argv in (("add", "b", "--", "cmd"), ("remove", "b")):
            (home / "config.toml").write_text(text)
            result = run_cli("mcp", *argv)
            assert "Traceback" not in result.stderr, (text, argv, result.stderr[-300:])
            assert (home / "config.toml").read_text() == text


def test_add_writes_through_a_symlinked_config(home: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "config.toml"
    target.write_text('model = "o3"\n')
    os.symlink(target, home / "config.toml")
    result = run_cli("mcp", "add", "b", "--", "cmd")
    assert result.code == 0, result.stderr
    assert (home / "config.toml").is_symlink(), "the symlink was replaced by a regular file"
    assert "mcp_servers" in tomllib.loads(target.read_text())
