"""Which tools a turn offers, from the model's catalog entry and the config.

- Shell family by ``shell_type``: ``default`` → ``shell``; ``shell_command``; ``local`` →
  ``local_shell``; ``unified_exec`` → ``exec_command`` + ``write_stdin``; ``disabled`` → none.
  ``[features] unified_exec = true`` gives every model the unified pair; ``shell_tool = false``
  removes the shell family.
- ``apply_patch`` by ``apply_patch_tool_type`` (``freeform`` | ``function``); models without one get it
  with ``[features] apply_patch_freeform = true``.
- ``edit_file`` (codexbro's own: replace one exact piece of text) when a profile's ``tool_menu``
  names it (the embedded models) or ``[tools] edit_file = true``.
- ``read_file``, ``list_dir``, ``grep_files`` when the catalog entry lists them in
  ``experimental_supported_tools`` (upstream's gate) or ``[tools] NAME = true``.
- ``update_plan`` and ``view_image`` (image-capable models) on by default; ``request_user_input``,
  ``web_search`` and ``js_repl`` (``[features] js_repl = true``; only where ``node`` is installed) opt-in. Any tool can be switched with ``[tools] NAME = true|false`` or
  ``{ enabled = … }``.

Order follows upstream: shell tools, MCP resource tools (when servers are configured), update_plan, js_repl (+ poll, reset), request_user_input, apply_patch, grep_files,
read_file, list_dir, web_search, view_image, then the MCP servers' tools (`mcp__SERVER__TOOL`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from codexbro.config.types import Config
from codexbro.models.catalog import ModelInfo
from codexbro.tools.base import ToolCall, ToolContext, ToolHandler, ToolOutput
from codexbro.tools.resources import ToolResources
from codexbro.tools.router import ToolRouter

if TYPE_CHECKING:
    from codexbro.mcp.manager import McpManager

# Handler modules are imported only when their tool is on the menu: start-up cost stays with the
# tools a session actually offers.


def tool_setting(config: Config, name: str) -> bool | None:
    """``[tools] NAME = bool`` or ``{ enabled = bool }``; None when unset."""
    value: Any = config.tools.get(name)
    if isinstance(value, dict):
        value = value.get("enabled")
    return value if isinstance(value, bool) else None


class HostedWebSearch:
    """``web_search`` runs on the server; the client only advertises it and records its items."""

    name = "web_search"
    supports_parallel = True

    def __init__(self, live: bool) -> None:
        self.live = live

    def spec(self) -> dict[str, Any]:
        return {"type": "web_search", "external_web_access": self.live}

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        return ToolOutput("web_search runs on the server, not locally", success=False)


def build_router(model: ModelInfo, config: Config, resources: ToolResources | None = None) -> ToolRouter:
    def on(name: str, default: bool) -> bool:
        setting = tool_setting(config, name)
        return default if setting is None else setting

    resources = resources or ToolResources()
    handlers: list[ToolHandler] = []
    code = code_mode(model, config)
    shell_type = model.shell_type
    if config.features.get("unified_exec") is True or code:  # 0.169 nests exec_command in code mode
        shell_type = "unified_exec"
    if config.features.get("shell_tool") is False:
        shell_type = "disabled"
    if shell_type in ("default", "local", "shell_command"):
        from codexbro.tools.handlers import shell

        handler_cls = {"default": shell.ShellHandler, "local": shell.LocalShellHandler}.get(
            shell_type, shell.ShellCommandHandler
        )
        handlers.append(handler_cls(resources.shell_snapshot))
    elif shell_type == "unified_exec":
        from codexbro.tools.handlers.unified_exec import ExecCommandHandler, WriteStdinHandler

        handlers += [
            ExecCommandHandler(resources.exec_sessions, resources.shell_snapshot),
            WriteStdinHandler(resources.exec_sessions),
        ]
    mcp = resources.mcp if resources.mcp is not None and resources.mcp.has_servers else None
    if (
        mcp is not None
    ):  # upstream: the resource tools right after the shell tools, when any server is configured
        from codexbro.mcp.tools import ListMcpResources, ListMcpResourceTemplates, ReadMcpResource

        handlers += [ListMcpResources(mcp), ListMcpResourceTemplates(mcp), ReadMcpResource(mcp)]

    if on("update_plan", True):
        from codexbro.tools.handlers.misc import UpdatePlanHandler

        handlers.append(UpdatePlanHandler())
    if on("js_repl", bool(config.features.get("js_repl"))):
        from codexbro.tools.handlers import js_repl

        if js_repl.node_path() is not None:
            repl = resources.js_repl
            handlers += [
                js_repl.JsReplHandler(repl),
                js_repl.JsReplPollHandler(repl),
                js_repl.JsReplResetHandler(repl),
            ]
    if on("request_user_input", bool(config.features.get("collaboration_modes"))):
        from codexbro.tools.handlers.misc import RequestUserInputHandler

        handlers.append(RequestUserInputHandler())

    patch_type = model.apply_patch_tool_type
    if patch_type is None and config.features.get("apply_patch_freeform"):
        patch_type = "freeform"
    if patch_type in ("freeform", "function") and on("apply_patch", True):
        from codexbro.tools.handlers.apply_patch import ApplyPatchHandler

        handlers.append(ApplyPatchHandler(patch_type))
    # codexbro's exact-text replacement tool: on the embedded profile's menu, opt-in elsewhere.
    profile_menu = model.raw.get("tool_menu")
    if on("edit_file", isinstance(profile_menu, list) and "edit_file" in profile_menu):
        from codexbro.tools.handlers.edit_file import EditFileHandler

        handlers.append(EditFileHandler())

    experimental = set(model.experimental_supported_tools)
    if on("grep_files", "grep_files" in experimental):
        from codexbro.tools.handlers.grep import GrepFilesHandler, find_rg

        if find_rg() is not None:
            handlers.append(GrepFilesHandler())
    if on("read_file", "read_file" in experimental):
        from codexbro.tools.handlers.files import ReadFileHandler

        handlers.append(ReadFileHandler())
    if on("list_dir", "list_dir" in experimental):
        from codexbro.tools.handlers.files import ListDirHandler

        handlers.append(ListDirHandler())

    web = config.raw.get("web_search")
    if on("web_search", web in ("cached", "live")):
        handlers.append(HostedWebSearch(live=web == "live"))
    if on("view_image", "image" in model.input_modalities):
        from codexbro.tools.handlers.misc import ViewImageHandler

        handlers.append(ViewImageHandler())
    # 0.169: the collaboration tools for models whose catalog entry says multi_agent_version v1 (and
    # unknown models, which get fallback metadata), when the session can run sub-agents (a child
    # session has no AgentControl: sub-agents do not spawn their own, upstream's depth limit of 1;
    # multi_agent_v2 children do, as 0.169's: core/agent_team.py).
    version = "v1" if model.is_fallback else model.raw.get("multi_agent_version")
    wanted = version == "v1" and config.features.get("multi_agent") is not False  # [features] as upstream
    wanted = wanted and not code  # 0.169 offers no v1 collaboration tools in code mode
    root = resources.agent_path == "/root"  # a v2 child has a team, but never the v1 tools
    if on("multi_agent", wanted) and root and resources.agents is not None:  # made now, the first time
        from codexbro.tools.handlers.agents import agent_handlers

        handlers.extend(agent_handlers(resources.agents, resources.agent_models))
    if on("clock", "clock" in experimental):  # 0.169: clock.sleep
        from codexbro.tools.handlers.clock import clock_handlers

        handlers.extend(clock_handlers())
    if multi_agent_v2(model, config, code) and resources.agents is not None:  # the collaboration namespace
        from codexbro.tools.handlers.agents_v2 import TeamControl, team_handlers

        handlers.extend(team_handlers(cast(TeamControl, resources.agents), resources.agent_models))
    # 0.169 puts tool_search after view_image (its newer web_search placement is not followed here).
    search = mcp is not None and model.raw.get("supports_search_tool") is True
    if (
        search and mcp is not None
    ):  # 0.169: MCP tools deferred behind tool_search for models whose catalog entry asks for it
        from codexbro.mcp.search import ToolSearchHandler

        handlers.append(ToolSearchHandler(mcp))
    # A model profile may cut the menu (codexbro catalog key `tool_menu`, used by the embedded models:
    # each description costs prompt tokens); a tool the user turned on explicitly stays.
    menu = model.raw.get("tool_menu")
    if isinstance(menu, list) and menu:
        handlers = [h for h in handlers if h.name in menu or tool_setting(config, h.name) is True]
    images = "image" in model.input_modalities
    dynamic = _mcp_tools(mcp, images=images, deferred=search) if mcp else None
    if code:
        from codexbro.tools.codemode.router import CodeModeRouter

        return CodeModeRouter(handlers, resources.code_mode, dynamic)
    return ToolRouter(handlers, dynamic)


def multi_agent_v2(model: ModelInfo, config: Config, code: bool) -> bool:
    """0.169 offers its v2 collaboration namespace to code-mode models whose catalog entry says
    ``multi_agent_version = "v2"`` (``[features] multi_agent = false`` or ``[tools] multi_agent =
    false`` turn it off)."""
    setting = tool_setting(config, "multi_agent")
    return (
        code and model.raw.get("multi_agent_version") == "v2" and config.features.get("multi_agent") is not False
        and setting is not False
    )  # fmt: skip


def code_mode(model: ModelInfo, config: Config) -> bool:
    """Code mode (0.169): for models whose catalog entry says ``tool_mode = "code_mode_only"``, or
    any model with ``[features] code_mode = true``; ``code_mode = false`` turns it off (the model then
    gets the usual tools). Needs the V8 binding (``mini-racer``, a dependency); without it, the usual
    tools."""
    setting = config.features.get("code_mode")
    wanted = setting if isinstance(setting, bool) else model.raw.get("tool_mode") == "code_mode_only"
    if not wanted:
        return False
    from codexbro.tools.codemode.runtime import available

    return available()


def _mcp_tools(mcp: McpManager, *, images: bool, deferred: bool) -> Callable[[], list[ToolHandler]]:
    """The MCP servers' tools, last on the menu as upstream orders them (or deferred: callable by
    namespace, found with tool_search); asked again per request (a server that finished starting
    joins, one that died leaves)."""
    from codexbro.mcp.tools import McpToolHandler

    return lambda: [McpToolHandler(mcp, info, images=images, deferred=deferred) for info in mcp.tools()]
