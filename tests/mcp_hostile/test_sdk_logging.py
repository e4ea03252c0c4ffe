"""Finding: the MCP SDK's log records reach the user's terminal raw. codexbro attaches its file
handler to the `codexbro` logger only (logs.py); the SDK logs under `mcp.*` (and asyncio under
`asyncio`) with no handler, so Python's last-resort handler prints every WARNING+ record to stderr
— in `exec` (human and --json), `mcp login`, `connectors active`:
- a hostile streamable-HTTP server names an SSE event "\\x1b]0;…\\x07\\x1b[2J": the SDK logs
  f"Unknown SSE event: {sse.event}" and the escape sequences go to the terminal as they are,
  past all of codexbro's `for_terminal` care (the same happens with the SDK's "OAuth flow error"
  traceback in `mcp login`, which carries the callback's text);
- a stdio server writing non-JSON lines: a full pydantic traceback on stderr per line.

Expected: route `mcp` (and `httpx`/`asyncio` records raised from MCP tasks) to codexbro's log file
(or a NullHandler) and set `propagate = False` — e.g. in `logs.setup_file_logging` add the handler
to `logging.getLogger("mcp")` too, or in `mcp/connection.py` at import; anything shown to the user
goes through events (and so through `for_terminal`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, server_process
from tests.mcp_hostile.common import calls_then, hostile, run_exec

HOSTILE_HTTP = Path(__file__).parent / "hostile_http.py"


@pytest.fixture
def hostile_http(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with server_process([sys.executable, str(HOSTILE_HTTP), str(port)], port, tmp_path / "hostile-http.log"):
        yield f"http://127.0.0.1:{port}/mcp"


def test_http_server_cannot_write_escape_sequences_to_the_terminal(
    home: Path, workspace: Path, hostile_http: str
) -> None:
    servers = f'[mcp_servers.web]\nurl = "{hostile_http}"\n'
    result, bodies = run_exec(home, workspace, servers, calls_then(("c1", "mcp__web__echo", {})), human=True)
    assert result.code == 0, result.stderr
    assert "called" in str(bodies[1]["input"])  # the server worked
    # now: "Unknown SSE event: \x1b]0;PWNED-TITLE\x07\x1b[2J" three times on stderr
    assert "\x1b]0;" not in result.stderr and "\x1b[2J" not in result.stderr, repr(result.stderr[-300:])


def test_garbage_on_a_servers_stdout_prints_no_traceback(home: Path, workspace: Path) -> None:
    result, _bodies = run_exec(home, workspace, hostile("garbage"), calls_then(("c1", "mcp__h__echo", {})))
    assert result.code == 0
    assert "Traceback" not in result.stderr, result.stderr[:500]
