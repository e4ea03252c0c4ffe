"""``[mcp_servers.NAME]``: the user's MCP servers, as upstream Codex 0.169 reads them.

A server is either stdio (``command``, ``args``, ``env``, ``env_vars``, ``cwd``) or streamable HTTP
(``url``, ``bearer_token_env_var``, ``http_headers``, ``env_http_headers``); both take ``enabled``,
``required``, ``startup_timeout_sec`` (legacy ``startup_timeout_ms``), ``tool_timeout_sec``,
``enabled_tools`` / ``disabled_tools``, ``supports_parallel_tool_calls``,
``default_tools_approval_mode`` and ``[mcp_servers.NAME.tools.TOOL] approval_mode``, and the OAuth
keys (``scopes``, ``oauth_resource``, ``[mcp_servers.NAME.oauth]``). Types are checked by the
config walker (``SERVER`` below, errors name the server and the key); the transport rules are
checked here, with upstream's wording where it has one (``url is not supported for stdio``).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from msgspec import Struct, field

from codexbro.config.spec import (
    ANY,
    BOOL,
    STR,
    STR_LIST,
    STR_MAP,
    MapOf,
    Scalar,
    Table,
    enum,
)
from codexbro.errors import ConfigError

ToolApprovalMode = Literal["auto", "prompt", "writes", "approve"]
CredentialsStore = Literal["auto", "file", "keyring"]

# Upstream's defaults (codex-rs/rmcp-client): 10 s to start and list tools, 60 s per tool call.
DEFAULT_STARTUP_TIMEOUT_S = 10.0
DEFAULT_TOOL_TIMEOUT_S = 60.0

_NONNEG_NUMBER = Scalar(
    "a non-negative number of seconds",
    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
)

SERVER = Table(
    {
        # stdio
        "command": STR,
        "args": STR_LIST,
        "env": STR_MAP,
        "env_vars": STR_LIST,
        "cwd": STR,
        # streamable HTTP
        "url": STR,
        "bearer_token_env_var": STR,
        "http_headers": STR_MAP,
        "env_http_headers": STR_MAP,
        # common
        "enabled": BOOL,
        "required": BOOL,
        "supports_parallel_tool_calls": BOOL,
        "startup_timeout_sec": _NONNEG_NUMBER,
        "startup_timeout_ms": _NONNEG_NUMBER,
        "tool_timeout_sec": _NONNEG_NUMBER,
        "enabled_tools": STR_LIST,
        "disabled_tools": STR_LIST,
        "default_tools_approval_mode": enum(*get_args(ToolApprovalMode)),
        "tools": MapOf(Table({"approval_mode": enum(*get_args(ToolApprovalMode))}, open=True)),
        # OAuth
        "scopes": STR_LIST,
        "oauth_resource": STR,
        "oauth": Table({"client_id": STR, "client_secret": STR, "callback_url": STR}, open=True),
        # upstream keys kept, not acted on
        "auth": ANY,
        "omit_tools_from": ANY,
        "http_headers_helper": ANY,
        "transport": ANY,
    }
)


class StdioTransport(Struct, frozen=True):
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    env_vars: tuple[str, ...] = ()  # names of the agent's variables passed through
    cwd: str | None = None
    kind: Literal["stdio"] = "stdio"


class HttpTransport(Struct, frozen=True):
    url: str
    bearer_token_env_var: str | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    env_http_headers: dict[str, str] = field(default_factory=dict)  # header → variable holding its value
    kind: Literal["streamable_http"] = "streamable_http"


class McpServerConfig(Struct, frozen=True):
    """One configured server, checked."""

    name: str
    transport: StdioTransport | HttpTransport
    enabled: bool = True
    required: bool = False
    supports_parallel_tool_calls: bool = False
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    startup_timeout_set: bool = False  # given in the config (`mcp list` prints null otherwise)
    tool_timeout_set: bool = False
    enabled_tools: tuple[str, ...] | None = None
    disabled_tools: tuple[str, ...] = ()
    default_tools_approval_mode: ToolApprovalMode | None = None
    tool_approval_modes: dict[str, ToolApprovalMode] = field(default_factory=dict)
    scopes: tuple[str, ...] = ()
    oauth_resource: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def allows(self, tool: str) -> bool:
        """Upstream's filter: the allow-list (when set) first, then the deny-list."""
        if self.enabled_tools is not None and tool not in self.enabled_tools:
            return False
        return tool not in self.disabled_tools

    def approval_mode(self, tool: str) -> ToolApprovalMode:
        return self.tool_approval_modes.get(tool) or self.default_tools_approval_mode or "auto"


def valid_server_name(name: str) -> bool:
    """Names as upstream's `codex mcp add` accepts them: letters, digits, `-` and `_`."""
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)


def parse_servers(raw: Any) -> dict[str, McpServerConfig]:
    """Every ``[mcp_servers.NAME]`` table (already type-checked), as ``McpServerConfig``s."""
    if not isinstance(raw, dict):
        return {}
    return {name: parse_server(name, table) for name, table in raw.items() if isinstance(table, dict)}


def parse_server(name: str, table: dict[str, Any]) -> McpServerConfig:
    where = f"mcp_servers.{name}"
    if not valid_server_name(name):
        raise ConfigError(
            f"`{where}`: invalid server name (use letters, digits, `-` and `_`; it becomes part of tool names)"
        )
    command, url = table.get("command"), table.get("url")
    transport: StdioTransport | HttpTransport
    if command is not None and url is not None:
        raise ConfigError(
            f"`{where}`: url is not supported for stdio (a server has `command` or `url`, not both)"
        )
    if command is not None:
        for key in ("bearer_token_env_var", "http_headers", "env_http_headers"):
            if key in table:
                raise ConfigError(f"`{where}.{key}`: only streamable HTTP servers (`url`) take it")
        if not command.strip():
            raise ConfigError(f"`{where}.command`: empty")
        transport = StdioTransport(
            command=command, args=tuple(table.get("args", ())), env=dict(table.get("env", {})),
            env_vars=tuple(table.get("env_vars", ())), cwd=table.get("cwd"),
        )  # fmt: skip
    elif url is not None:
        for key in ("args", "env", "env_vars", "cwd"):
            if key in table:
                raise ConfigError(f"`{where}.{key}`: only stdio servers (`command`) take it")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"`{where}.url`: must be an http:// or https:// URL, found {url!r}")
        transport = HttpTransport(
            url=url, bearer_token_env_var=table.get("bearer_token_env_var"),
            http_headers=dict(table.get("http_headers", {})), env_http_headers=dict(table.get("env_http_headers", {})),
        )  # fmt: skip
    else:
        raise ConfigError(
            f"`{where}`: invalid transport: give `command` (a stdio server) or `url` (a streamable HTTP server)"
        )
    startup = table.get("startup_timeout_sec")
    if startup is None and table.get("startup_timeout_ms") is not None:
        startup = table["startup_timeout_ms"] / 1000
    tool_timeout = table.get("tool_timeout_sec")
    oauth = table.get("oauth") or {}
    enabled_tools = table.get("enabled_tools")
    return McpServerConfig(
        name=name,
        transport=transport,
        enabled=table.get("enabled", True),
        required=table.get("required", False),
        supports_parallel_tool_calls=table.get("supports_parallel_tool_calls", False),
        startup_timeout_s=float(startup) if startup is not None else DEFAULT_STARTUP_TIMEOUT_S,
        tool_timeout_s=float(tool_timeout) if tool_timeout is not None else DEFAULT_TOOL_TIMEOUT_S,
        startup_timeout_set=startup is not None,
        tool_timeout_set=tool_timeout is not None,
        enabled_tools=tuple(enabled_tools) if enabled_tools is not None else None,
        disabled_tools=tuple(table.get("disabled_tools", ())),
        default_tools_approval_mode=table.get("default_tools_approval_mode"),
        tool_approval_modes={
            tool: spec["approval_mode"]
            for tool, spec in (table.get("tools") or {}).items()
            if isinstance(spec, dict) and "approval_mode" in spec
        },
        scopes=tuple(table.get("scopes", ())),
        oauth_resource=table.get("oauth_resource"),
        oauth_client_id=oauth.get("client_id"),
        oauth_client_secret=oauth.get("client_secret"),
        raw=dict(table),
    )
