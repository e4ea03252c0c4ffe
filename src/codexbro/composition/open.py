"""``open_session(resolution, options)``: builds a session's collaborators — the model client,
the rollout recorder (writing the session's first lines), the approval rules, the tool resources —
and hands them to ``Session``. ``open_model_client`` is the same client on its own (``models
--refresh``, ``debug request``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from codexbro import __version__
from codexbro.api.model_client import ModelClient, RequestLog
from codexbro.api.responses_client import originator_for
from codexbro.composition.resolve import Resolution, model_lookup
from codexbro.config.types import Config
from codexbro.core.history import History
from codexbro.core.rollout import LoadedRollout, RolloutRecorder, RolloutWriteError, new_thread_id
from codexbro.core.session import Session
from codexbro.errors import ApiError, UserError
from codexbro.sandbox.exec_policy import PrefixRule
from codexbro.tools.resources import ToolResources

if TYPE_CHECKING:
    from codexbro.core.agent_team import Tree
    from codexbro.mcp.manager import McpManager
    from codexbro.sandbox.policy import SandboxSpec
    from codexbro.tools.shell_snapshot import ShellSnapshot


class SessionOptions(Struct, frozen=True):
    """How a front end wants its session: new, resumed or forked; recorded or not; interactive or not."""

    originator: str = "codex_exec"
    source: str = "exec"
    ephemeral: bool = False
    resume: LoadedRollout | None = None
    fork: LoadedRollout | None = None  # a copy of that session under a new id (exec fork)
    ignore_rules: bool = False
    notice: Callable[[str], None] | None = None  # front end's one-line progress notes (e.g. weights)
    interactive: bool = False  # a person answers the model's questions (TUI, app server), not exec
    subagents: bool = True  # the session may spawn sub-agents (multi_agent_v1); never a sub-agent itself


def open_model_client(
    resolution: Resolution, thread_id: str, *, originator: str = "codex_exec", request_log: RequestLog | None = None,
    notice: Callable[[str], None] | None = None, keep_conversation: bool = True,
) -> ModelClient:  # fmt: skip
    """The model client a resolution leads to. The embedded model's weights are assembled here
    (once, with ``notice`` told), so this may write under ``~/.codexbro/models``.
    ``keep_conversation=False`` (ephemeral sessions, ``history_persistence = "none"``): the
    embedded model keeps no KV cache of the conversation on disk (its token ids are the text)."""
    config = resolution.config
    if resolution.embedded:
        from codexbro.embedded.provider import EmbeddedClient, weights_path

        path = weights_path(resolution.model.slug, config, notice)
        return EmbeddedClient(config=config, model=resolution.model, model_path=path, request_log=request_log,
                              keep_conversation=keep_conversation)  # fmt: skip
    from codexbro.api.responses_client import ResponsesModelClient

    return ResponsesModelClient(
        config=config, provider=resolution.provider, auth=resolution.auth, model=resolution.model,
        thread_id=thread_id, base_url=resolution.base_url, originator=originator, request_log=request_log,
    )  # fmt: skip


def open_session(resolution: Resolution, options: SessionOptions | None = None) -> Session:
    """A session for ``resolution``: raises ``UserError`` with a fix when its file or its approval
    rules cannot be set up."""
    options = options or SessionOptions()
    config = resolution.config
    resume = options.resume
    earlier = resume or options.fork  # the session whose history this one starts from
    thread_id = resume.thread_id if resume else new_thread_id()
    rules = _load_rules(resolution) if not options.ignore_rules else ()
    log = RequestLog()
    _boot_spare_server(config, thread_id)
    try:
        persistent = not options.ephemeral and config.history_persistence != "none"
        client = open_model_client(
            resolution, thread_id, originator=options.originator, request_log=log, notice=options.notice,
            keep_conversation=persistent,
        )  # fmt: skip
        recorder = RolloutRecorder(config.codexbro_home, thread_id, path=resume.path if resume else None,
                                   enabled=persistent)  # fmt: skip
        if resume:
            recorder.adopt(resume.meta, resume.last_turn_context)
        else:
            _start_file(recorder, resolution, client, thread_id, options)
        if recorder.enabled:
            from codexbro.core import codex_index

            originator = originator_for(options.originator)
            codex_index.index_after_turns(recorder, config, thread_id, resolution.provider.id, resolution.model.slug,
                                          originator, options.source)  # fmt: skip
        session = Session(
            config=config,
            model=resolution.model,
            client=client,
            request_log=log,
            thread_id=thread_id,
            recorder=recorder,
            history=History(earlier.history if earlier else None),
            resumed=earlier is not None,
            warnings=list(resolution.warnings),
            rules=rules,
            resolution=resolution.event(),
            # exec processes, js_repl, MCP servers and the shell snapshot outlive turns, not the session
            tool_resources=ToolResources(
                thread_id, _mcp_manager(resolution), _shell_snapshot(config, thread_id)
            ),
            first_turn_job=_catalog_refresh(resolution, client) if resolution.refresh_catalog else None,
            can_ask_user=options.interactive,
            model_lookup=None if resolution.embedded else model_lookup(config),
            requirements=resolution.requirements,
        )
    except BaseException:
        _drop_spare_server(thread_id)
        raise
    if options.subagents and not resolution.embedded:
        _attach_subagents(session, resolution, options)
    return session


def _boot_spare_server(config: Config, thread_id: str) -> None:
    """A session that may run commands in the namespace sandbox boots its container's server now, in
    the background: its ~70 ms interpreter start overlaps the agent's own set-up instead of
    delaying the first command (``sandbox/spare.py``; stopped unused when the session closes)."""
    if config.sandbox_mode == "danger-full-access" or config.sandbox_backend not in ("auto", "namespaces"):
        return
    from codexbro.sandbox import spare

    spare.boot_for(thread_id)


def _drop_spare_server(thread_id: str) -> None:
    import sys

    spare = sys.modules.get("codexbro.sandbox.spare")
    if spare is not None:
        spare.drop(thread_id)


def _attach_subagents(
    session: Session,
    resolution: Resolution,
    options: SessionOptions,
    *,
    tree: Tree | None = None,
    path: str = "/root",
) -> None:
    """Give ``session`` its sub-agents: each child is opened here from the same resolution (config,
    sandbox, approval policy, provider, credential; a model override when asked) and tags its
    requests as 0.169 does. A ``multi_agent_v1`` child spawns none of its own (upstream's depth
    limit of 1); a ``multi_agent_v2`` child (``path`` in the root's ``tree``) gets a team of its own
    in the same tree, as 0.169's children do."""
    from codexbro.records import replace

    if TYPE_CHECKING:
        from codexbro.core.agent_team import AgentTeam

    config = resolution.config
    session.tool_resources.agent_path = path

    def open_child(
        model: str | None,
        resume: str | None = None,
        *,
        path: str | None = None,
        tree: Tree | None = None,
        effort: str | None = None,
    ) -> Session:
        from codexbro.api.responses_client import ResponsesModelClient

        res = resolution
        if model is not None and model != resolution.model.slug:
            res = replace(resolution, model=model_lookup(config)(model), config=replace(config, model=model))
        if effort is not None:  # spawn_agent's reasoning_effort: one the child's model supports
            from typing import get_args

            from codexbro.config.values import ReasoningEffort

            levels = res.model.supported_reasoning_levels or get_args(ReasoningEffort)
            if effort not in levels:
                raise ValueError(
                    f"reasoning_effort `{effort}` is not one {res.model.slug} supports ({', '.join(levels)})"
                )
            res = replace(res, config=replace(res.config, model_reasoning_effort=effort))
        earlier = None
        if resume is not None:  # a closed agent reopened from its rollout
            from codexbro.core.rollout import find_rollout, load_rollout

            earlier = load_rollout(find_rollout(config.codexbro_home, resume))
        child = open_session(res, replace(options, subagents=False, resume=earlier, fork=None, source="subagent",
                                          notice=None, interactive=False))  # fmt: skip
        if isinstance(child.client, ResponsesModelClient):
            child.client.subagent = "collab_spawn"
            child.client.parent_thread_id = session.thread_id
        if path is not None and tree is not None:
            from codexbro.tools.menu import code_mode, multi_agent_v2

            if multi_agent_v2(child.model, child.config, code_mode(child.model, child.config)):
                _attach_subagents(child, res, options, tree=tree, path=path)
        return child

    def make() -> AgentTeam:  # when a turn's menu first offers the tools: most sessions never do
        from codexbro.composition.resolve import Readers
        from codexbro.core.agent_team import AgentTeam
        from codexbro.core.subagents import DEFAULT_MAX_THREADS

        agents_cfg = config.raw.get("agents")
        limit = agents_cfg.get("max_threads") if isinstance(agents_cfg, dict) else None
        max_threads = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_THREADS
        agents = AgentTeam(session, open_child, max_threads=max_threads, tree=tree, me=path)
        session.subagents = agents
        catalog = Readers().catalog(config.codexbro_home, config.model_catalog_json)[0]
        session.tool_resources.agent_models = [
            (m.slug, m.description) for m in catalog.models if m.visibility == "list" and m.description
        ][:8]
        return agents

    session.tool_resources.agents_factory = make


def start_session(config: Config, options: SessionOptions | None = None) -> Session:
    """``open_session(resolve(config))`` — the usual way in: a resumed or forked session keeps
    its last model unless the config names one."""
    from codexbro.composition.resolve import resolve

    options = options or SessionOptions()
    return open_session(resolve(config, earlier=options.resume or options.fork), options)


def _shell_snapshot(config: Config, thread_id: str) -> ShellSnapshot:
    """The session's shell snapshot (``[features] shell_snapshot``, on by default as upstream's),
    captured when the first shell command needs it — inside the session's sandbox, read-only,
    unless the session runs with full access."""
    from codexbro.tools.exec_env import user_shell
    from codexbro.tools.shell_snapshot import ShellSnapshot

    enabled = config.features.get("shell_snapshot") is not False
    sandbox: Callable[[], SandboxSpec] | None = None
    if config.sandbox_mode != "danger-full-access":

        def sandbox() -> SandboxSpec:  # built at the capture: a text-only session loads no sandbox module
            from codexbro.sandbox.policy import spec_for

            # its own container (owner SESSION/snapshot): a read-only view beside the session's
            spec = spec_for(
                "read-only",
                config.sandbox_workspace_write,
                config.cwd,
                config.codexbro_home,
                f"{thread_id}/snapshot",
            )
            assert spec is not None  # read-only always has one
            return spec

    return ShellSnapshot(user_shell(), config.codexbro_home, config.shell_environment_policy, enabled=enabled,
                         sandbox=sandbox, backend=config.sandbox_backend)  # fmt: skip


def _mcp_manager(resolution: Resolution) -> McpManager | None:
    """The session's MCP servers — the configured, enabled ones, and for a ChatGPT login the
    connectors gateway (``codex_apps``) — or None when there is none (``mcp`` is then never imported)."""
    import os

    config = resolution.config
    servers = dict(config.mcp_servers)
    if resolution.auth.mode == "chatgpt" and "codex_apps" not in servers:
        from codexbro.mcp.apps import apps_server

        apps = apps_server(
            config, token=resolution.auth.token, account_id=resolution.auth.account_id, env=os.environ
        )
        if apps is not None:
            servers[apps.name] = apps
    if not any(server.enabled for server in servers.values()):
        return None
    from codexbro.mcp.manager import McpManager

    return McpManager(servers, cwd=config.cwd, env=dict(os.environ), home=config.codexbro_home)


def _load_rules(resolution: Resolution) -> tuple[PrefixRule, ...]:
    home = resolution.config.codexbro_home
    if not (home / "rules").is_dir():
        return ()
    from codexbro.sandbox.exec_policy import RulesError, load_rules

    try:
        return tuple(load_rules(home))
    except (RulesError, OSError) as exc:
        raise UserError(f"approval rules: {exc}") from None


def _start_file(
    recorder: RolloutRecorder,
    resolution: Resolution,
    client: ModelClient,
    thread_id: str,
    options: SessionOptions,
) -> None:
    meta: dict[str, Any] = {
        "id": thread_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cwd": str(resolution.config.cwd),
        "originator": originator_for(options.originator),
        "cli_version": __version__,
        "source": options.source,
        "model_provider": resolution.provider.id,
        "base_instructions": {"text": client.base_instructions},
    }
    if options.fork is not None:
        meta["forked_from_id"] = options.fork.thread_id
    try:
        recorder.write("session_meta", meta)
        if options.fork is not None:  # the copy starts with the whole earlier conversation
            for item in options.fork.history:
                recorder.item(item)
            if options.fork.last_turn_context is not None:
                recorder.write("turn_context", options.fork.last_turn_context)
    except RolloutWriteError:
        # No session exists yet: leave nothing behind that `resume --last` would pick up.
        with contextlib.suppress(OSError):
            recorder.path.unlink()
        raise UserError(f"could not create the session file {recorder.path}: {recorder.failed}") from None


def _catalog_refresh(resolution: Resolution, client: ModelClient) -> Callable[[], Awaitable[None]] | None:
    """Upstream refreshes the live catalog only for ChatGPT logins; it lands in the cache for the
    next session and never delays this one."""
    from codexbro.api.responses_client import ResponsesModelClient

    if not isinstance(client, ResponsesModelClient):
        return None

    async def refresh() -> None:
        import logging

        from codexbro.models.manager import refresh

        try:
            await refresh(
                client.http, client.base_url, client.build_headers(), resolution.config.codexbro_home
            )
        except ApiError as exc:
            logging.getLogger(__name__).info("model list refresh failed: %s", exc.message)

    return refresh
