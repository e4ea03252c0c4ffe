"""``codexbro mcp login|logout NAME``: OAuth for streamable HTTP MCP servers (filled in below)."""

from __future__ import annotations

from codexbro.config.mcp_servers import McpServerConfig
from codexbro.config.types import Config
from codexbro.errors import UserError


def login_command(
    config: Config, server: McpServerConfig, scopes: list[str] | None, *, open_browser: bool
) -> int:
    raise UserError("not yet")


def logout_command(config: Config, server: McpServerConfig) -> int:
    raise UserError("not yet")
