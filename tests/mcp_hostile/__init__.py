"""Hostile MCP servers and inputs (a red-team round on issue 17): each test was a failing
reproducer of a real problem before its fix — a server or the model knocking out a healthy server,
bad images poisoning a session, config.toml corrupted by `mcp add`, raw escape sequences from the
SDK's logs or the OAuth callback, unbounded outputs, invalid schemas, slow shutdowns, tool_search
with hostile arguments, elicitation floods, secrets in `mcp list --json`."""
