"""Finding (low): `codexbro mcp list --json` and `mcp get NAME --json` print the values of
`http_headers` (API keys, `Authorization`) and of stdio `env` in clear
(src/codexbro/cli/mcp_admin.py `server_json`), while the table and `get` text mask them as
`KEY=*****` and the module says "secrets masked". JSON output is what people paste into issues and
CI logs. Expected: mask the values in JSON too (keep the keys; `env_http_headers` and
`bearer_token_env_var` name variables, not secrets, and may stay) — or, if byte-parity with
upstream's JSON is the goal, say so in docs/mcp.md and drop the "secrets masked" claim."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

CONFIG = """
[mcp_servers.web]
url = "https://example.invalid/mcp"
http_headers = { "X-Api-Key" = "SECRET-HEADER-VALUE" }

[mcp_servers.loc]
command = "server"
env = { GITHUB_TOKEN = "SECRET-ENV-VALUE" }
"""


def test_json_listing_masks_header_and_env_values(home: Path) -> None:
    (home / "config.toml").write_text(CONFIG)
    for argv in (("list", "--json"), ("get", "web", "--json"), ("get", "loc", "--json")):
        result = run_cli("mcp", *argv)
        assert result.code == 0, result.stderr
        assert "SECRET-" not in result.stdout, (argv, result.stdout)
