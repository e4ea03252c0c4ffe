"""``exec`` without ``--json``: progress for people on stderr, the final message alone on stdout
(so ``codexbro exec … > out.txt`` captures just the answer), as upstream's human mode.

Beyond upstream, what others wrote — the model's text, commands and their output, server messages
— is printed with its terminal control characters made visible and harmless
(``textsafe.for_terminal``): no screen clearing, title or clipboard writes, or text hidden behind a
carriage return. The final message on stdout is written byte for byte when stdout is not a
terminal (``> out.txt`` keeps the answer exactly)."""

from __future__ import annotations

from collections.abc import Callable

from codexbro import __version__
from codexbro import protocol as p
from codexbro.protocol.display import display_command
from codexbro.textsafe import for_terminal as safe

MAX_SHOWN_OUTPUT_LINES = 20


class HumanProcessor:
    """Shows events for people: progress on stderr, the final message on stdout."""

    def __init__(
        self,
        err: Callable[[str], None],
        out: Callable[[str], None],
        *,
        color: bool,
        prompt: str,
        sandbox_note: str = "",
        out_is_terminal: bool = True,
    ) -> None:
        self._err = err
        self._out = out
        self._color = color
        self._prompt = prompt
        self._sandbox_note = sandbox_note
        self._out_is_terminal = out_is_terminal
        self._tokens = 0
        self._context: p.ContextUsage | None = None
        self.turn_error: str | None = None
        self.last_message: str | None = None

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self._color else text

    def process(self, event: p.Event) -> None:
        msg = event.msg
        if isinstance(msg, p.SessionConfigured):
            lines = [
                f"codexbro v{__version__}",
                "--------",
                f"workdir: {safe(msg.cwd)}",
                f"model: {safe(msg.model)}",
                f"provider: {msg.model_provider_id}",
                f"approval: {msg.approval_policy}",
                f"sandbox: {msg.sandbox_policy}{self._sandbox_note}",
                f"reasoning effort: {msg.reasoning_effort or 'none'}",
                f"session id: {msg.session_id}",
                "--------",
            ]
            self._err("\n".join(lines))
        elif isinstance(msg, p.ModelResolved) and msg.match in ("prefix", "namespace"):
            how = "longest prefix" if msg.match == "prefix" else "prefix after the namespace"
            self._err(self._style(f"note: model `{safe(msg.model)}` has no catalog entry of its own; "
                                  f"using the metadata of `{msg.catalog_entry}` ({how})", "33"))  # fmt: skip
        elif isinstance(msg, p.TaskStarted):
            # After the header and any start-up warnings (e.g. the offline-model banner).
            self._err(self._style("user", "36") + "\n" + safe(self._prompt))
        elif isinstance(msg, p.AgentReasoning):
            self._err(self._style("thinking", "35;3") + "\n" + safe(msg.text))
        elif isinstance(msg, p.ExecCommandBegin):
            self._err(
                self._style("exec", "35") + f"\n{safe(display_command(msg.command))} in {safe(msg.cwd)}"
            )
        elif isinstance(msg, p.ExecCommandEnd):
            ok = msg.exit_code == 0
            verdict = (
                f" succeeded in {msg.duration_ms}ms:"
                if ok
                else f" exited {msg.exit_code} in {msg.duration_ms}ms:"
            )
            lines = safe(msg.aggregated_output).rstrip("\n").split("\n")
            lines = [] if lines == [""] else lines
            if len(lines) > MAX_SHOWN_OUTPUT_LINES:
                hidden = len(lines) - MAX_SHOWN_OUTPUT_LINES
                lines = [
                    *lines[: MAX_SHOWN_OUTPUT_LINES // 2],
                    f"… +{hidden} lines",
                    *lines[-MAX_SHOWN_OUTPUT_LINES // 2 :],
                ]
            self._err(self._style(verdict, "32" if ok else "31") + ("\n" + "\n".join(lines) if lines else ""))
        elif isinstance(msg, p.CollabToolCallEnd):
            from codexbro.protocol.display import collab_summary

            line = collab_summary(msg.tool, msg.receiver_thread_ids, msg.agents_states, msg.prompt)
            self._err(self._style(safe(line), "35" if msg.success else "31"))
        elif isinstance(msg, p.AgentTeamEvent):
            from codexbro.protocol.display import team_summary

            self._err(self._style(safe(team_summary(msg.kind, msg.author, msg.recipient, msg.text)), "35"))
        elif isinstance(msg, p.McpToolCallBegin):
            inv = msg.invocation
            self._err(
                self._style("mcp:", "35")
                + f" {safe(str(inv.get('server')))}/{safe(str(inv.get('tool')))} started"
            )
        elif isinstance(msg, p.McpToolCallEnd):
            inv, ok = msg.invocation, msg.ok
            ms = msg.duration["secs"] * 1000 + msg.duration["nanos"] // 1_000_000
            verdict = self._style("completed" if ok else "failed", "32" if ok else "31")
            detail = "" if ok or "Err" not in msg.result else f":\n{safe(str(msg.result['Err']))}"
            self._err(self._style("mcp:", "35") + f" {safe(str(inv.get('server')))}/{safe(str(inv.get('tool')))} "
                      f"({verdict} in {ms}ms){detail}")  # fmt: skip
        elif isinstance(msg, p.McpStartupUpdate) and msg.status.get("state") == "ready":
            self._err(self._style(f"mcp: {safe(msg.server)} ready", "2"))
        elif isinstance(msg, p.AgentMessage):
            self.last_message = msg.message
            self._err(self._style("codex", "35;1") + "\n" + safe(msg.message))
        elif isinstance(msg, p.TokenCount) and msg.info:
            self._tokens = int((msg.info.get("total_token_usage") or {}).get("total_tokens", 0))
        elif isinstance(msg, p.ContextUsage):
            self._context = msg
        elif isinstance(msg, p.ContextCompacted):
            extra = f", {msg.trimmed_outputs} tool outputs emptied" if msg.trimmed_outputs else ""
            self._err(self._style(
                f"context compacted ({msg.strategy}, {msg.reason}): ~{msg.tokens_before} → ~{msg.tokens_after} tokens{extra}",
                "33",
            ))  # fmt: skip
        elif isinstance(msg, p.StreamError):
            detail = f" ({msg.additional_details})" if msg.additional_details else ""
            self._err(self._style(safe(msg.message + detail), "33"))
        elif isinstance(msg, p.WarningEvent):
            self._err(self._style(f"warning: {safe(msg.message)}", "33"))
        elif isinstance(msg, p.ErrorEvent):
            self.turn_error = msg.message
            self._err(self._style(f"ERROR: {safe(msg.message)}", "31"))
        elif isinstance(msg, p.TurnAborted):
            self.turn_error = "turn interrupted by the user"
            self._err(self._style("turn interrupted", "31"))
        elif isinstance(msg, p.TaskComplete):
            fill = ""
            ctx = self._context
            if ctx is not None and ctx.context_window:
                fill = f" (last request ~{ctx.estimated_tokens} tokens, {100 * ctx.estimated_tokens // ctx.context_window}% of the window)"
            self._err(self._style("tokens used", "35;3") + f"\n{self._tokens}{fill}")
            if msg.last_agent_message is not None and self.turn_error is None:
                text = msg.last_agent_message
                self._out(safe(text) if self._out_is_terminal else text)
