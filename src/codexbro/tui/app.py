"""``CodexbroApp``: the transcript, the composer and the status line around one ``Session``.

The app reads the session's events in a worker and turns each into a cell (or a dialog); what the
user does becomes an ``Op``. Nothing else connects them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static, TextArea

from codexbro import protocol as p
from codexbro.core.session import Session
from codexbro.tui import cells
from codexbro.tui.dialogs import QuestionScreen, command_approval, patch_approval

REPLAY = 400  # messages of a resumed conversation shown
MARKDOWN_TAIL = 30  # of those, the last ones rendered as Markdown

SLASH_COMMANDS = {
    "/status": "model, provider, sandbox, tokens, session id and file",
    "/compact": "summarise the conversation to free context",
    "/diff": "the workspace's git diff",
    "/quit": "leave (the session can be resumed)",
    "/help": "this list",
}


class Composer(TextArea):
    """Multi-line input: Enter sends, Ctrl+J adds a line; Up/Down on the first/last line walk the
    history of what was sent."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, **kwargs)
        self.sent: list[str] = []
        self._browse = 0

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text.strip()
            if text:
                self.sent.append(self.text)
                self._browse = len(self.sent)
                self.clear()
                self.post_message(self.Submitted(text))
            return
        if event.key == "ctrl+j":
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key in ("up", "down") and self.sent:
            row = self.cursor_location[0]
            if (event.key == "up" and row == 0) or (
                event.key == "down" and row == self.document.line_count - 1
            ):
                event.stop()
                event.prevent_default()
                step = -1 if event.key == "up" else 1
                self._browse = max(0, min(len(self.sent), self._browse + step))
                self.text = self.sent[self._browse] if self._browse < len(self.sent) else ""
                return
        await super()._on_key(event)


class CodexbroApp(App[int]):
    """The interactive agent: one session, its transcript, a composer and a status line."""

    TITLE = "codexbro"
    CSS = """
    Screen { layout: vertical; }
    #transcript { height: 1fr; padding: 0 1; }
    #composer { height: auto; max-height: 10; min-height: 3; border: round $accent; }
    #status { height: 1; color: $text-muted; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "interrupt_or_quit", "interrupt / quit", priority=True)
    ]

    def __init__(self, session: Session, prompt: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.first_prompt = prompt
        self.running = False
        self.tokens = 0
        self.context_left: str = ""
        self._agent: cells.AgentCell | None = None
        self._tools: dict[str, cells.ToolCell] = {}
        self._quit_armed = False
        self._recalled: cells.UserCell | None = None  # Esc pressed once: the message recalled
        self.info: dict[str, Any] = {}

    def compose(self) -> Any:
        yield VerticalScroll(id="transcript")
        yield Composer(id="composer")
        yield Static(id="status")

    async def on_mount(self) -> None:
        for event in self.session.drain_events():
            await self.show(event.msg)
        if self.session.resumed:
            await self.replay()
        self.pump()
        self.query_one(Composer).focus()
        self._status()
        if self.first_prompt:
            await self.send(self.first_prompt)

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
        while True:
            event = await self.session.next_event()
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
            self.info.update(model=msg.model, provider=msg.model_provider_id, sandbox=msg.sandbox_policy,
                             approval=msg.approval_policy, session_id=msg.session_id, rollout=msg.rollout_path)  # fmt: skip
        elif isinstance(msg, p.ModelResolved):
            self.info.update(base_url=msg.base_url, bucket=msg.bucket, auth=msg.auth)
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
        elif isinstance(msg, p.PatchApplyEnd):
            title = "edited" if msg.success else "patch failed"
            await self.add(cells.PatchCell(msg.changes, title))
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
            if isinstance(msg, p.TurnAborted):
                await self.add(cells.NoteCell("interrupted", "warning"))
        elif isinstance(msg, p.TokenCount):
            total = (msg.info or {}).get("total_token_usage") or {}
            self.tokens = int(total.get("total_tokens") or 0)
        elif isinstance(msg, p.ContextUsage) and msg.context_window:
            left = max(0, 100 - 100 * msg.estimated_tokens // msg.context_window)
            self.context_left = f"{left}% context left"
        self._status()

    def _ask(self, screen: Any, op: Any) -> None:
        def decided(decision: Any) -> None:
            self.session.submit(op(decision or "denied"))

        self.push_screen(screen, decided)

    def _status(self) -> None:
        state = "working… (ctrl+c to interrupt)" if self.running else "ready"
        parts = [str(self.info.get("model", "")), self.context_left, f"{self.tokens} tokens", state]
        self.query_one("#status", Static).update(Text(" · ".join(x for x in parts if x)))

    # ---- the user → ops -----------------------------------------------------------------------

    async def on_composer_submitted(self, message: Composer.Submitted) -> None:
        await self.send(message.text)

    async def send(self, text: str) -> None:
        self._quit_armed = False
        self._recalled = None
        if text.startswith("/") and text.split()[0] in SLASH_COMMANDS:
            await self.slash(text.split()[0])
            return
        # Typed during a turn: queued, sent as the next turn.
        self.session.submit(p.UserTurn((p.UserInput("text", text=text),), when="queue"))

    async def slash(self, command: str) -> None:
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
                f"tokens     {self.tokens}  {self.context_left}",
                f"session    {info.get('session_id')}",
                f"file       {info.get('rollout') or '(not recorded)'}",
            ]  # fmt: skip
            await self.add(cells.NoteCell("\n".join(lines), "info"))
        elif command == "/diff":
            await self.add(cells.PatchCell(await _git_diff(self.session.config.cwd), "diff"))
        else:
            await self.add(
                cells.NoteCell("\n".join(f"{k:<9} {v}" for k, v in SLASH_COMMANDS.items()), "info")
            )

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

    def action_interrupt_or_quit(self) -> None:
        if self.running:
            self.session.submit(p.Interrupt())
            return
        if self._quit_armed:
            self.session.submit(p.Shutdown())
            return
        self._quit_armed = True
        self.notify("press ctrl+c again to quit", timeout=3)


async def _git_diff(cwd: Any) -> dict[str, dict[str, Any]]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        "git",
        "diff",
        "--no-color",
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    text = out.decode("utf-8", "replace")
    if not text.strip():
        return {"(no changes)": {"type": "update", "unified_diff": ""}}
    files: dict[str, dict[str, Any]] = {}
    current = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git "):
            current = line.split(" b/", 1)[-1].strip()
            files[current] = {"type": "update", "unified_diff": ""}
        elif current:
            files[current]["unified_diff"] += line
    return files
