"""``CodexbroApp``: the transcript, the composer and the status line around one ``Session``.

The app reads the session's events in a worker and turns each into a cell (or a dialog); what the
user does becomes an ``Op``. Nothing else connects them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from codexbro import protocol as p
from codexbro.core.session import Session
from codexbro.tui import cells
from codexbro.tui.composer import Composer, Transcript
from codexbro.tui.dialogs import (
    ApprovalScreen,
    ElicitationScreen,
    QuestionScreen,
    command_approval,
    patch_approval,
)
from codexbro.tui.helpers import (
    git_diff,
    image_paths,
    light_background,
    limits_text,
    mcp_status_text,
    memory_trace,
)

REPLAY = 400  # messages of a resumed conversation shown
MARKDOWN_TAIL = 30  # of those, the last ones rendered as Markdown

SLASH_COMMANDS = {
    "/status": "model, provider, sandbox, tokens, session id and file",
    "/model": "choose the model and its reasoning effort for the next turns",
    "/approvals": "choose the sandbox and when to ask",
    "/compact": "summarise the conversation to free context",
    "/diff": "the workspace's git diff",
    "/review": "/review [INSTRUCTIONS]: review the uncommitted changes (or as instructed), as a sub-turn",
    "/trace": "this session's trace: every request, decision and tool call, and why",
    "/mcp": "the MCP servers: their state and tools",
    "/init": "ask the agent to write an AGENTS.md for this project",
    "/mention": "mention a file: starts an @ search in the composer",
    "/transcribe": "/transcribe FILE: a recording's words into the composer (wav, mp3, m4a, …)",
    "/cloud": "/cloud [TASK_ID]: your Codex cloud tasks, or one task with its diff (ChatGPT login)",
    "/new": "start a new conversation (this one stays resumable)",
    "/resume": "continue an earlier conversation of this workspace",
    "/logout": "remove the stored credentials",
    "/quit": "leave (the session can be resumed)",
    "/help": "this list",
}
INIT_PROMPT = (
    "Write an AGENTS.md at the root of this project for coding agents working here: how to set it up, "
    "build and test it, the layout of the code, its conventions, and anything surprising. Read the "
    "project first; keep it short and concrete. If an AGENTS.md exists, improve it instead."
)


class CodexbroApp(App[int]):
    """The interactive agent: one session, its transcript, a composer and a status line."""

    TITLE = "codexbro"
    CSS = """
    Screen { layout: vertical; }
    #transcript { height: 1fr; padding: 0 1; }
    #composer { height: auto; max-height: 10; min-height: 3; border: round $accent; }
    #status { height: 1; color: $text-muted; padding: 0 1; }
    #mentions { height: auto; max-height: 10; display: none; color: $text-muted; padding: 0 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "interrupt_or_quit", "interrupt / quit", priority=True)
    ]

    def __init__(
        self, session: Session, prompt: str | None = None, *, images: tuple[str, ...] = (),
        new_session: Callable[[], Session] | None = None, resume_session: Callable[[Any], Session] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.session = session
        self.first_prompt = prompt
        self.first_images = images
        self.new_session = new_session  # /new opens one through the composition root
        self.resume_session = resume_session  # /resume: a session file → its session
        self.trace = memory_trace()
        self.running = False
        self.tokens = 0
        self.context_left: str = ""
        self._agent: cells.AgentCell | None = None
        self._tools: dict[str, cells.ToolCell] = {}
        self._quit_armed = False
        self._recalled: cells.UserCell | None = None  # Esc pressed once: the message recalled
        self._files: list[str] | None = None  # the workspace's files, listed at the first @
        self.info: dict[str, Any] = {}

    def compose(self) -> Any:
        yield Transcript(id="transcript")
        yield Static(id="mentions")
        yield Composer(id="composer")
        yield Static(id="status")

    async def on_composer_mention(self, message: Composer.Mention) -> None:
        from codexbro.tui.mentions import best, workspace_files

        composer, box = self.query_one(Composer), self.query_one("#mentions", Static)
        if message.query is None:
            composer.suggestions = []
            box.display = False
            return
        if self._files is None:
            self._files = workspace_files(self.session.config.cwd)
        composer.suggestions = best(message.query, self._files) if message.query else self._files[:8]
        box.update(Text("\n".join(composer.suggestions) + "\n(tab: insert the first)" if composer.suggestions
                        else "no matching file"))  # fmt: skip
        box.display = True

    async def on_mount(self) -> None:
        if light_background():
            self.theme = "textual-light"
        for event in self.session.drain_events():
            self.trace.process(event)
            await self.show(event.msg)
        if self.session.resumed:
            await self.replay()
        self.pump()
        self.query_one(Composer).focus()
        self._status()
        if self.first_prompt:
            await self.send(self.first_prompt, self.first_images)

    # ---- events → cells ---------------------------------------------------------------------

    async def replay(self) -> None:
        """A resumed or forked conversation, as cells: the last ``REPLAY`` messages, the older
        answers as plain text (thousands of live Markdown widgets would make the app crawl)."""
        from codexbro.core.history import is_user_turn
        from codexbro.protocol.items import message_text

        shown = [i for i in self.session.history.items
                 if is_user_turn(i) or (i.get("type") == "message" and i.get("role") == "assistant")]  # fmt: skip
        hidden = max(0, len(shown) - REPLAY)
        transcript = self.query_one("#transcript", VerticalScroll)
        widgets: list[Any] = []
        if hidden:
            widgets.append(cells.NoteCell(f"… {hidden} earlier messages (the model still has them)", "info"))
        for n, item in enumerate(shown[hidden:]):
            text = message_text(item)
            if item.get("role") == "user":
                widgets.append(cells.UserCell(text))
            elif n >= len(shown) - hidden - MARKDOWN_TAIL:
                widgets.append(cells.AgentCell(text))
            else:
                widgets.append(cells.PlainAnswerCell(text))
        await transcript.mount_all(widgets)
        transcript.scroll_end(animate=False)

    @work(exclusive=True, group="events")
    async def pump(self) -> None:
        session = self.session
        while True:
            event = await session.next_event()
            self.trace.process(event)
            await self.show(event.msg)
            if isinstance(event.msg, p.ShutdownComplete):
                self.exit(0)
                return

    async def add(self, cell: Any) -> None:
        transcript = self.query_one("#transcript", VerticalScroll)
        await transcript.mount(cell)
        transcript.scroll_end(animate=False)

    async def show(self, msg: p.EventMsg) -> None:
        if isinstance(msg, p.SessionConfigured):
            if self.info.get("session_id") == msg.session_id:  # settings changed (/model, /approvals)
                full = msg.sandbox_policy == "danger-full-access"
                await self.add(cells.NoteCell(
                    f"next turns: model {msg.model} (effort {msg.reasoning_effort or 'default'}), sandbox "
                    f"{msg.sandbox_policy}, approvals {msg.approval_policy}"
                    + (" — FULL ACCESS: no sandbox" if full else ""), "warning" if full else "info"))  # fmt: skip
            self.info.update(effort=msg.reasoning_effort,model=msg.model, provider=msg.model_provider_id, sandbox=msg.sandbox_policy,
                             approval=msg.approval_policy, session_id=msg.session_id, rollout=msg.rollout_path)  # fmt: skip
        elif isinstance(msg, p.ModelResolved):
            self.info.update(
                base_url=msg.base_url, bucket=msg.bucket, auth=msg.auth, requirements=msg.requirements
            )
        elif isinstance(msg, p.UserMessage):
            await self.add(cells.UserCell(msg.message))
        elif isinstance(msg, p.AgentMessageDelta):
            if self._agent is None:
                self._agent = cells.AgentCell()
                await self.add(self._agent)
            self._agent.add(msg.delta)
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)
        elif isinstance(msg, p.AgentMessage):
            if self._agent is None:
                await self.add(cells.AgentCell(msg.message))
            elif self._agent.text != msg.message:
                self._agent.replace(msg.message)
            self._agent = None
        elif isinstance(msg, p.AgentReasoning):
            await self.add(cells.ReasoningCell(msg.text))
        elif isinstance(msg, p.ExecCommandBegin):
            self._agent = None
            cell = cells.ToolCell(msg.call_id, msg.command)
            self._tools[msg.call_id] = cell
            await self.add(cell)
        elif isinstance(msg, p.ExecCommandEnd):
            found = self._tools.pop(msg.call_id, None)
            cell = found if found is not None else cells.ToolCell(msg.call_id, msg.command)
            if found is None:
                await self.add(cell)
            cell.finish(msg.exit_code, msg.duration_ms, msg.aggregated_output, msg.status)
        elif isinstance(msg, p.McpToolCallBegin):
            self._agent = None
            mcp_cell = cells.McpCell(msg.call_id, msg.invocation)
            self._tools[msg.call_id] = mcp_cell
            await self.add(mcp_cell)
        elif isinstance(msg, p.McpToolCallEnd):
            known = self._tools.pop(msg.call_id, None)
            mcp_cell = (
                known if isinstance(known, cells.McpCell) else cells.McpCell(msg.call_id, msg.invocation)
            )
            if known is None:
                await self.add(mcp_cell)
            mcp_cell.finish_mcp(msg.result, msg.duration)
        elif isinstance(msg, p.CollabToolCallEnd):
            from codexbro.protocol.display import collab_summary

            line = collab_summary(msg.tool, msg.receiver_thread_ids, msg.agents_states, msg.prompt)
            await self.add(cells.NoteCell(line, "info" if msg.success else "error"))
        elif isinstance(msg, p.AgentTeamEvent):
            from codexbro.protocol.display import team_summary

            await self.add(
                cells.NoteCell(team_summary(msg.kind, msg.author, msg.recipient, msg.text), "info")
            )
        elif isinstance(msg, p.McpStartupComplete) and msg.ready:
            await self.add(
                cells.NoteCell(f"MCP servers ready: {', '.join(msg.ready)} (/mcp lists their tools)", "info")
            )
        elif isinstance(msg, p.McpListToolsResponse):
            await self.add(cells.NoteCell(mcp_status_text(msg.servers), "info"))
        elif isinstance(msg, p.ElicitationRequest):
            server, request_id = msg.server_name, msg.id

            def answered(answer: tuple[str, dict[str, Any] | None] | None) -> None:
                decision, content = answer or ("cancel", None)
                self.session.submit(p.ResolveElicitation(server, request_id, decision, content))  # type: ignore[arg-type]

            self.push_screen(ElicitationScreen(msg.server_name, msg.message, msg.requested_schema), answered)
        elif isinstance(msg, p.PatchApplyEnd):
            title = "edited" if msg.success else "patch failed"
            await self.add(cells.PatchCell(msg.changes, title))
        elif isinstance(msg, p.ContextCompacted):
            await self.add(
                cells.NoteCell(
                    f"context compacted ({msg.strategy}): ~{msg.tokens_before} → ~{msg.tokens_after} tokens",
                    "info",
                )
            )
        elif isinstance(msg, p.PlanUpdate):
            await self.add(cells.PlanCell(msg.plan, msg.explanation))
        elif isinstance(msg, p.ExecApprovalRequest):
            self._ask(
                command_approval(msg.command, msg.cwd, msg.reason),
                lambda d, c=msg.call_id: p.ExecApproval(c, d),
            )
        elif isinstance(msg, p.ApplyPatchApprovalRequest):
            self._ask(patch_approval(msg.changes, msg.reason), lambda d, c=msg.call_id: p.PatchApproval(c, d))
        elif isinstance(msg, p.RequestUserInput):
            call_id = msg.call_id

            def answer(answers: dict[str, str] | None) -> None:
                self.session.submit(p.UserInputAnswer(call_id, answers or {}))

            self.push_screen(QuestionScreen(msg.questions), answer)
        elif isinstance(msg, p.ErrorEvent):
            await self.add(cells.NoteCell(msg.message, "error"))
        elif isinstance(msg, p.StreamError | p.WarningEvent):
            await self.add(cells.NoteCell(msg.message, "warning"))
        elif isinstance(msg, p.TaskStarted):
            self.running = True
        elif isinstance(msg, p.TaskComplete | p.TurnAborted):
            self.running = False
            self._agent = None
            while len(self.screen_stack) > 1 and isinstance(
                self.screen, ApprovalScreen | QuestionScreen | ElicitationScreen
            ):
                self.pop_screen()  # the turn that asked is over: nothing to answer any more
            for cell in self._tools.values():
                cell.finish(-1, 0, "", "interrupted")
            self._tools.clear()
            if isinstance(msg, p.TurnAborted):
                await self.add(cells.NoteCell("interrupted", "warning"))
        elif isinstance(msg, p.TokenCount):
            total = (msg.info or {}).get("total_token_usage") or {}
            self.tokens = int(total.get("total_tokens") or 0)
            if msg.rate_limits:
                self.info["limits"] = msg.rate_limits
        elif isinstance(msg, p.ContextUsage) and msg.context_window:
            left = max(0, 100 - 100 * msg.estimated_tokens // msg.context_window)
            self.context_left = f"{left}% context left"
        self._status()

    def _ask(self, screen: Any, op: Any) -> None:
        def decided(decision: Any) -> None:
            if decision == "abort:feedback":  # the user's next message says what to do instead
                self.session.submit(op("abort"))
                self.query_one(Composer).focus()
                self.notify("type what the agent should do instead, then Enter", timeout=5)
                return
            self.session.submit(op(decision or "denied"))

        self.push_screen(screen, decided)

    def _status(self) -> None:
        state = "working… (ctrl+c to interrupt)" if self.running else "ready"
        parts = [str(self.info.get("model", "")), self.context_left, f"{self.tokens} tokens", state]
        self.query_one("#status", Static).update(Text(" · ".join(x for x in parts if x)))

    # ---- the user → ops -----------------------------------------------------------------------

    async def on_composer_submitted(self, message: Composer.Submitted) -> None:
        await self.send(message.text)

    async def send(self, text: str, images: tuple[str, ...] = ()) -> None:
        self._quit_armed = False
        self._recalled = None
        word = text.split()[0]
        if word.startswith("/") and word in SLASH_COMMANDS:
            await self.slash(word, text[len(word) :].strip())
            return
        if word.startswith("/") and word[1:].isalpha():  # a typo, not a path like /etc/hosts
            await self.add(cells.NoteCell(f"unknown command {word} (/help lists them)", "warning"))
            return
        if self.running:
            await self.add(cells.NoteCell(f"queued: {text.splitlines()[0][:80]}", "info"))
        images = (*images, *image_paths(text, self.session.config.cwd))
        inputs = (p.UserInput("text", text=text), *(p.UserInput("local_image", path=i) for i in images))
        # Typed during a turn: queued, sent as the next turn.
        self.session.submit(p.UserTurn(inputs, when="queue"))

    async def slash(self, command: str, argument: str = "") -> None:
        if command == "/quit":
            self.session.submit(p.Shutdown())
        elif command == "/compact":
            self.session.submit(p.Compact())
        elif command == "/status":
            info = self.info
            lines = [
                f"model      {info.get('model')}  (provider {info.get('provider')}, {info.get('base_url')}, bucket {info.get('bucket')})",
                f"auth       {info.get('auth')}",
                f"sandbox    {info.get('sandbox')}  approvals {info.get('approval')}",
                *[f"{'managed' if i == 0 else '':<11}{line}" for i, line in enumerate(info.get("requirements") or ())],
                f"tokens     {self.tokens}  {self.context_left}",
                f"limits     {limits_text(info.get('limits'))}",
                f"session    {info.get('session_id')}",
                f"file       {info.get('rollout') or '(not recorded)'}",
            ]  # fmt: skip
            await self.add(cells.NoteCell("\n".join(lines), "info"))
        elif command == "/diff":
            await self.add(cells.PatchCell(await git_diff(self.session.config.cwd), "diff"))
        elif command == "/trace":
            from codexbro.inspection.trace_view import render_text

            lines = render_text(self.trace.records()).splitlines()
            await self.add(cells.NoteCell("\n".join(lines[-80:]) or "(nothing yet)", "info"))
        elif command == "/mcp":
            self.session.submit(p.ListMcpTools())
        elif command == "/model":
            self.pick_model()
        elif command == "/approvals":
            from codexbro.tui.choose import APPROVAL_PRESETS, ChoiceScreen

            current = next((name for name, box, ask, _ in APPROVAL_PRESETS
                            if box == self.session.config.sandbox_mode and ask == self.session.config.approval_policy), None)  # fmt: skip
            options = [(name, f"{name:<12} {why}") for name, _box, _ask, why in APPROVAL_PRESETS]

            def chosen(name: str | None) -> None:
                for preset, box, ask, _why in APPROVAL_PRESETS:
                    if preset == name:
                        self.session.submit(p.OverrideTurnContext(sandbox_mode=box, approval_policy=ask))

            self.push_screen(ChoiceScreen("Sandbox and approvals", options, current), chosen)
        elif command == "/mention":
            composer = self.query_one(Composer)
            composer.insert("@")
            composer.focus()
        elif command == "/init":
            self.session.submit(p.UserTurn((p.UserInput("text", text=INIT_PROMPT),), when="queue"))
        elif command == "/new" and self.new_session is not None:
            await self.switch(self.new_session())
            await self.add(cells.NoteCell("new conversation", "info"))
        elif command == "/resume" and self.resume_session is not None:
            self.pick_session()
        elif command == "/transcribe":
            await self.transcribe(argument)
        elif command == "/cloud":
            await self.cloud(argument)
        elif command == "/review":
            await self.review(argument)
        elif command == "/logout":
            from codexbro.api.responses_client import originator_for, user_agent
            from codexbro.auth.revoke import logout

            origin = originator_for("codex_cli_rs")
            result = await logout(self.session.config.codexbro_home,
                                  headers={"originator": origin, "user-agent": user_agent(origin)})  # fmt: skip
            if result.revoked is False:
                await self.add(cells.NoteCell(f"could not revoke the ChatGPT token ({result.problem}); the "
                                              "local credential was removed", "warning"))  # fmt: skip
            await self.add(cells.NoteCell("logged out" if result.removed else "not logged in", "info"))
        else:
            await self.add(
                cells.NoteCell("\n".join(f"{k:<9} {v}" for k, v in SLASH_COMMANDS.items()), "info")
            )

    async def cloud(self, argument: str) -> None:
        """``/cloud [TASK_ID]``: the tasks view (the list, or one task and its diff)."""
        from codexbro.cloud.view import tasks_view
        from codexbro.composition.chatgpt import chatgpt_backend
        from codexbro.errors import CodexbroError

        config = self.session.config
        try:
            async with chatgpt_backend(config) as backend:
                text, diff = await tasks_view(backend, config.chatgpt_base_url, argument or None)
        except CodexbroError as exc:
            await self.add(cells.NoteCell(f"cloud tasks: {exc.message}", "error"))
            return
        await self.add(cells.NoteCell(text, "info"))
        if diff is not None:
            await self.add(cells.DiffTextCell(diff))

    async def review(self, argument: str) -> None:
        """``/review [INSTRUCTIONS]``: a review sub-turn (its own ephemeral session, upstream's review
        set-up) of the uncommitted changes, or as instructed; the findings as a cell."""
        from codexbro.composition.review import run_review
        from codexbro.core.review import ReviewTarget
        from codexbro.errors import CodexbroError

        target = ReviewTarget("custom", argument) if argument else ReviewTarget("uncommitted")
        await self.add(cells.NoteCell(f"reviewing {target.label()}…", "info"))
        try:
            text = await run_review(self.session.config, target)
        except CodexbroError as err:
            text = f"review failed: {err.message}"
        await self.add(cells.NoteCell(text, "info"))

    async def transcribe(self, argument: str) -> None:
        """``/transcribe FILE``: the recording's words appended to the composer, to edit and send."""
        import shlex

        from codexbro.composition.transcribe import transcribe_path
        from codexbro.errors import CodexbroError

        try:
            words = shlex.split(argument)
        except ValueError:
            words = []
        if len(words) != 1:
            await self.add(cells.NoteCell("usage: /transcribe FILE (a recording: wav, mp3, m4a, ogg, webm, flac)",
                                          "warning"))  # fmt: skip
            return
        path = _in_workspace(words[0], self.session.config.cwd)
        await self.add(cells.NoteCell(f"transcribing {path.name}…", "info"))
        try:
            text, _route, _url = await transcribe_path(path, None, config=self.session.config)
        except CodexbroError as err:
            await self.add(cells.NoteCell(f"transcription failed: {err.message}", "warning"))
            return
        composer = self.query_one(Composer)
        composer.insert(text.strip())
        composer.focus()

    async def on_key(self, event: events.Key) -> None:
        """Esc (composer empty, no turn running): the last message back into the composer; Esc
        again: the thread rolled back to before it (the model forgets it and its answer)."""
        if event.key != "escape" or self.running or self.screen is not self.screen_stack[0]:
            return
        composer = self.query_one(Composer)
        users = list(self.query(cells.UserCell))
        if not users:
            return
        if self._recalled is None and not composer.text.strip():
            self._recalled = users[-1]
            composer.text = users[-1].text
            self.notify("esc again to roll the conversation back to before this message", timeout=3)
        elif self._recalled is not None and self._recalled is users[-1]:
            cut = self._recalled
            self._recalled = None
            self.session.submit(p.ThreadRollback(1))
            transcript = self.query_one("#transcript", VerticalScroll)
            doomed = transcript.children[transcript.children.index(cut) :]
            await transcript.remove_children(list(doomed))
        event.stop()

    async def switch(self, session: Session) -> None:
        """Another conversation in place of this one (which stays resumable)."""
        await self.session.close()
        self.session = session
        self.trace = memory_trace()
        await self.query_one("#transcript", VerticalScroll).remove_children()
        self._agent, self._tools, self.running, self._recalled = None, {}, False, None
        self.tokens, self.context_left = 0, ""
        for event in session.drain_events():
            self.trace.process(event)
            await self.show(event.msg)
        if session.resumed:
            await self.replay()
        self.pump()  # exclusive: the old session's reader stops

    @work(group="pickers")
    async def pick_session(self) -> None:
        import time

        from codexbro.core.rollout import list_sessions
        from codexbro.tui.choose import ChoiceScreen
        from codexbro.tui.picker import session_line

        config = self.session.config
        earlier = [
            s
            for s in list_sessions(config.codexbro_home, config.cwd)
            if s.thread_id != self.session.thread_id
        ]
        if not earlier:
            await self.add(cells.NoteCell("no earlier conversation in this workspace", "info"))
            return
        now = time.time()
        options = [(str(i), session_line(s, now)) for i, s in enumerate(earlier)]
        chosen = await self.push_screen_wait(ChoiceScreen("Continue which conversation?", options))
        if chosen is not None and self.resume_session is not None:
            await self.switch(self.resume_session(earlier[int(chosen)].path))

    @work(group="pickers")
    async def pick_model(self) -> None:
        from codexbro.models.manager import cached_catalog
        from codexbro.tui.choose import ChoiceScreen

        config = self.session.config
        catalog = cached_catalog(config.codexbro_home, config.model_catalog_json)[0]
        keep = {self.session.model.slug, config.model or ""}
        listed = [m for m in catalog.models if m.visibility == "list" or m.slug in keep]
        slug = await self.push_screen_wait(ChoiceScreen(
            "Model for the next turns", [(m.slug, f"{m.slug:<24} {m.description or ''}"[:90]) for m in listed],
            self.session.model.slug))  # fmt: skip
        if slug is None:
            return
        levels = catalog.resolve(slug).info.supported_reasoning_levels
        effort = None
        if levels:
            effort = await self.push_screen_wait(ChoiceScreen(f"Reasoning effort for {slug}", [(x, x) for x in levels],
                                                              config.model_reasoning_effort))  # fmt: skip
        self.session.submit(p.OverrideTurnContext(model=slug, effort=effort))

    def action_interrupt_or_quit(self) -> None:
        if self.running:
            self.session.submit(p.Interrupt())
            return
        if self._quit_armed:
            self.session.submit(p.Shutdown())
            return
        self._quit_armed = True
        self.notify("press ctrl+c again to quit", timeout=3)


def _in_workspace(name: str, cwd: Path) -> Path:
    """A path the user typed: ``~`` expanded, relative to the workspace."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else cwd / path
