"""What ``codexbro mcp …`` does: list and show the configured servers (upstream 0.169's table and
JSON shapes; the values of ``env`` and ``http_headers`` masked in both, unlike upstream's JSON), add and remove ``[mcp_servers.NAME]`` tables in config.toml (edited
with tomlkit, so the user's comments and layout stay; written atomically), and OAuth login/logout."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from codexbro.config.loader import Overrides, codexbro_home, load_config
from codexbro.config.mcp_servers import McpServerConfig, StdioTransport, valid_server_name
from codexbro.errors import UserError


def run(ns: argparse.Namespace) -> int:
    action = ns.mcp_action or "list"
    if action == "add":
        return _add(ns)
    if action == "remove":
        return _remove(ns.name)
    config = load_config(Overrides(cli_overrides=ns.config_overrides, profile=ns.profile))
    servers = config.mcp_servers
    if action == "list":
        _list(servers, config.codexbro_home, getattr(ns, "json", False))
        return 0
    server = servers.get(ns.name)
    if server is None:
        raise UserError(f"No MCP server named '{ns.name}' found.")
    if action == "get":
        _get(server, config.codexbro_home, getattr(ns, "json", False))
        return 0
    from codexbro.mcp import oauth

    if action == "login":
        scopes = [s.strip() for s in ns.scopes.split(",") if s.strip()] if ns.scopes else None
        return oauth.login_command(config, server, scopes, open_browser=not ns.no_browser)
    return oauth.logout_command(config, server)


# ---- list / get ----------------------------------------------------------------------------------


def auth_status(server: McpServerConfig, home: Path) -> str:
    """Upstream's ``auth_status``: unsupported (stdio), bearer_token, o_auth (logged in), not_logged_in."""
    transport = server.transport
    if isinstance(transport, StdioTransport):
        return "unsupported"
    if transport.bearer_token_env_var:
        return "bearer_token"
    from codexbro.mcp.oauth_store import load_tokens

    return "o_auth" if load_tokens(home, server.name, transport.url) is not None else "not_logged_in"


def server_json(server: McpServerConfig, home: Path | None, *, filters: bool = False) -> dict[str, Any]:
    t = server.transport
    transport: dict[str, Any]
    if isinstance(t, StdioTransport):
        transport = {"type": "stdio", "command": t.command, "args": list(t.args), "env": _masked(t.env),
                     "env_vars": list(t.env_vars), "cwd": t.cwd}  # fmt: skip
    else:
        transport = {"type": "streamable_http", "url": t.url, "bearer_token_env_var": t.bearer_token_env_var,
                     "http_headers": _masked(t.http_headers), "env_http_headers": t.env_http_headers or None,
                     "http_headers_helper": None}  # fmt: skip
    out: dict[str, Any] = {"name": server.name, "enabled": server.enabled, "disabled_reason": None,
                           "transport": transport}  # fmt: skip
    if filters:
        out["enabled_tools"] = list(server.enabled_tools) if server.enabled_tools is not None else None
        out["disabled_tools"] = list(server.disabled_tools) or None
    out["startup_timeout_sec"] = server.startup_timeout_s if server.startup_timeout_set else None
    out["tool_timeout_sec"] = server.tool_timeout_s if server.tool_timeout_set else None
    if home is not None:
        out["auth_status"] = auth_status(server, home)
    return out


def _masked(values: dict[str, str]) -> dict[str, str] | None:
    """Values of ``env`` and ``http_headers`` are secrets more often than not: the JSON shows the
    keys, as the tables do (upstream's JSON prints the values; codexbro does not)."""
    return {key: "*****" for key in values} or None


_AUTH_LABEL = {"unsupported": "Unsupported", "bearer_token": "Bearer token", "o_auth": "OAuth",
               "not_logged_in": "Not logged in"}  # fmt: skip


def _masked_env(env: dict[str, str]) -> str:
    return ", ".join(f"{k}=*****" for k in sorted(env)) or "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _list(servers: dict[str, McpServerConfig], home: Path, as_json: bool) -> None:
    ordered = [servers[k] for k in sorted(servers)]
    if as_json:
        print(json.dumps([server_json(s, home) for s in ordered], indent=2))
        return
    if not ordered:
        print("No MCP servers configured yet. Try `codexbro mcp add my-tool -- my-command`.")
        return
    stdio = [["Name", "Command", "Args", "Env", "Cwd", "Status", "Auth"]]
    http = [["Name", "Url", "Bearer Token Env Var", "Status", "Auth"]]
    for s in ordered:
        status = "enabled" if s.enabled else "disabled"
        auth = _AUTH_LABEL[auth_status(s, home)]
        if isinstance(s.transport, StdioTransport):
            t = s.transport
            stdio.append(
                [s.name, t.command, " ".join(t.args) or "-", _masked_env(t.env), t.cwd or "-", status, auth]
            )
        else:
            h = s.transport
            http.append([s.name, h.url, h.bearer_token_env_var or "-", status, auth])
    print("\n\n".join(_table(rows) for rows in (stdio, http) if len(rows) > 1))


def _get(server: McpServerConfig, home: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps(server_json(server, None, filters=True), indent=2))
        return
    lines = [server.name, f"  enabled: {str(server.enabled).lower()}"]
    t = server.transport
    if isinstance(t, StdioTransport):
        lines += ["  transport: stdio", f"  command: {t.command}", f"  args: {' '.join(t.args) or '-'}",
                  f"  cwd: {t.cwd or '-'}", f"  env: {_masked_env(t.env)}"]  # fmt: skip
        if t.env_vars:
            lines.append(f"  env_vars: {', '.join(t.env_vars)}")
    else:
        lines += ["  transport: streamable_http", f"  url: {t.url}",
                  f"  bearer_token_env_var: {t.bearer_token_env_var or '-'}"]  # fmt: skip
        if t.http_headers:
            lines.append("  http_headers: " + ", ".join(f"{k}=*****" for k in sorted(t.http_headers)))
        if t.env_http_headers:
            lines.append(
                "  env_http_headers: " + ", ".join(f"{k}={v}" for k, v in sorted(t.env_http_headers.items()))
            )
    if server.enabled_tools is not None:
        lines.append(f"  enabled_tools: {', '.join(server.enabled_tools) or '(none)'}")
    if server.disabled_tools:
        lines.append(f"  disabled_tools: {', '.join(server.disabled_tools)}")
    if server.startup_timeout_set:
        lines.append(f"  startup_timeout_sec: {server.startup_timeout_s:g}")
    if server.tool_timeout_set:
        lines.append(f"  tool_timeout_sec: {server.tool_timeout_s:g}")
    lines.append(f"  auth: {_AUTH_LABEL[auth_status(server, home)]}")
    lines.append(f"  remove: codexbro mcp remove {server.name}")
    print("\n".join(lines))


# ---- add / remove --------------------------------------------------------------------------------


def _config_path() -> Path:
    return codexbro_home() / "config.toml"


def _read_doc(path: Path) -> tuple[Any, str]:
    """The file as a tomlkit document (comments kept) and its text."""
    import tomlkit

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document(), ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    try:
        return tomlkit.parse(text), text
    except Exception as exc:  # tomlkit's ParseError and friends
        raise UserError(f"{path}: invalid TOML: {exc}") from None


def _servers_table(doc: Any, path: Path) -> Any:
    servers = doc.get("mcp_servers")
    if servers is not None and not isinstance(servers, dict):
        raise UserError(f"`mcp_servers` in {path} is not a table; fix it by hand first")
    return servers


def _write_checked(path: Path, text: str, expected: dict[str, Any]) -> None:
    """Write ``text`` only if it reads back as exactly ``expected`` (the old settings plus or minus
    one server): an edit that would move other keys or break the file is refused, the file untouched.
    A symlinked config.toml is written through (its target is replaced, the link stays)."""
    import tomllib

    try:
        ok = tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise UserError(
            f"cannot edit {path} safely (its `mcp_servers` is written in a form codexbro cannot change "
            "without moving other settings); edit the file by hand"
        )
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    if target.exists():
        os.chmod(tmp, target.stat().st_mode & 0o777)
    os.replace(tmp, target)


def _add(ns: argparse.Namespace) -> int:
    import tomlkit

    name: str = ns.name
    if not valid_server_name(name):
        raise UserError(f"invalid server name '{name}': use letters, digits, '-' and '_'")
    command: list[str] = ns.server_command
    if bool(command) == bool(ns.url):
        raise UserError(
            "give either a command after `--` (a stdio server) or --url URL (a streamable HTTP server)"
        )
    table = tomlkit.table()
    if command:
        for opt in ("bearer_token_env_var", "oauth_client_id", "oauth_client_secret", "oauth_resource"):
            if getattr(ns, opt):
                raise UserError(
                    f"--{opt.replace('_', '-')} is only valid with --url (streamable HTTP servers)"
                )
        table["command"] = command[0]
        table["args"] = command[1:]
        env = {}
        for pair in ns.env:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UserError(f"--env {pair!r}: expected KEY=VALUE")
            env[key] = value
        if env:
            table["env"] = env
    else:
        if ns.env:
            raise UserError("--env is only valid with stdio servers (a command after `--`)")
        if not ns.url.startswith(("http://", "https://")):
            raise UserError(f"--url must be an http:// or https:// URL, got {ns.url!r}")
        table["url"] = ns.url
        if ns.bearer_token_env_var:
            table["bearer_token_env_var"] = ns.bearer_token_env_var
        if ns.oauth_resource:
            table["oauth_resource"] = ns.oauth_resource
        if ns.oauth_client_id or ns.oauth_client_secret:
            oauth = tomlkit.table()
            if ns.oauth_client_id:
                oauth["client_id"] = ns.oauth_client_id
            if ns.oauth_client_secret:
                oauth["client_secret"] = ns.oauth_client_secret
            table["oauth"] = oauth
    entry = table.unwrap()
    path = _config_path()
    doc, original = _read_doc(path)
    servers = _servers_table(doc, path)
    expected = doc.unwrap()
    expected.setdefault("mcp_servers", {})[name] = entry
    replaced = servers is not None and name in servers
    if servers is None:
        doc["mcp_servers"] = tomlkit.table(is_super_table=True)
        servers = doc["mcp_servers"]
    if isinstance(servers, tomlkit.items.InlineTable):
        inline = tomlkit.inline_table()
        inline.update(entry)
        servers[name] = inline
    else:
        servers[name] = table
    text = tomlkit.dumps(doc)
    if not replaced and _reads_as(text) != expected:  # e.g. dotted keys: append a table of its own
        section, wrapper = tomlkit.document(), tomlkit.table(is_super_table=True)
        wrapper[name] = table
        section["mcp_servers"] = wrapper
        text = (original.rstrip("\n") + "\n\n" if original.strip() else "") + tomlkit.dumps(section)
    _write_checked(path, text, expected)
    print(f"{'Updated' if replaced else 'Added'} global MCP server '{name}'.")
    return 0


def _reads_as(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def _remove(name: str) -> int:
    path = _config_path()
    doc, _original = _read_doc(path)
    servers = _servers_table(doc, path)
    if servers is None or name not in servers:
        print(f"No MCP server named '{name}' found.", file=sys.stderr)
        return 0  # as upstream: removing what is not there is not an error
    expected = doc.unwrap()
    del expected["mcp_servers"][name]
    if not expected["mcp_servers"]:
        del expected["mcp_servers"]
    del servers[name]
    if not servers:
        del doc["mcp_servers"]
    import tomlkit

    _write_checked(path, tomlkit.dumps(doc), expected)
    print(f"Removed global MCP server '{name}'.")
    return 0
