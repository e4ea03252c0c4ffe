"""Shaping tool output for the model, as upstream does.

Budgets are bytes or tokens (4 bytes per token). Truncation keeps the head and the tail with a
marker in between, on UTF-8 boundaries; it never drops the start or the end of an output.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codexbro.tools.capture import Captured


def approx_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4)


def budget_bytes(mode: str, limit: int) -> int:
    return limit * 4 if mode == "tokens" else limit


def truncate_text(text: str | Captured, mode: str, limit: int) -> str:
    """Keep the first and last halves of the budget; ``…N tokens truncated…`` (or chars) between.
    For a capture that already left its middle out, the cut is at that seam and N counts both."""
    if not isinstance(text, str):
        return _cut_captured(text, mode, limit)
    raw = text.encode("utf-8")
    budget = budget_bytes(mode, limit)
    if len(raw) <= budget:
        return text
    head_n = budget // 2
    tail_n = budget - head_n
    head = raw[:head_n].decode("utf-8", "ignore")
    tail = raw[len(raw) - tail_n :].decode("utf-8", "ignore") if tail_n else ""
    omitted = raw[len(head.encode()) : len(raw) - len(tail.encode())]
    return head + _marker(omitted, mode, 0, 0) + tail


def _marker(omitted: bytes, mode: str, extra_bytes: int, extra_chars: int) -> str:
    if mode == "tokens":
        return f"…{math.ceil((len(omitted) + extra_bytes) / 4)} tokens truncated…"
    return f"…{len(omitted.decode('utf-8', 'ignore')) + extra_chars} chars truncated…"


def _cut_captured(captured: Captured, mode: str, limit: int) -> str:
    if captured.whole:
        return truncate_text(captured.text, mode, limit)
    raw = captured.text.encode("utf-8")
    seam = len(captured.text[: captured.seam].encode("utf-8"))
    budget = budget_bytes(mode, limit)
    head_end = min(budget // 2, seam)
    tail_start = max(len(raw) - (budget - head_end), seam)
    head_end = min(seam, max(head_end, budget - (len(raw) - tail_start)))  # a short tail lends its room
    head = raw[:head_end].decode("utf-8", "ignore")
    tail = raw[tail_start:].decode("utf-8", "ignore")
    omitted = raw[len(head.encode()) : len(raw) - len(tail.encode())]
    return head + _marker(omitted, mode, captured.omitted_bytes, captured.omitted_chars) + tail


def formatted_truncate_text(text: str | Captured, mode: str, limit: int) -> str:
    """``truncate_text`` plus upstream's warning header when something was cut."""
    plain = text if isinstance(text, str) else text.text
    cut = truncate_text(text, mode, limit)
    if cut == plain:
        return plain
    return (
        f"Warning: truncated output (original token count: {total_tokens(text)})\n"
        f"Total output lines: {_line_count(text)}\n\n{cut}"
    )


def total_tokens(text: str | Captured) -> int:
    """The whole output's token estimate (a capture's includes what it left out)."""
    if isinstance(text, str) or text.whole:
        return approx_tokens(text if isinstance(text, str) else text.text)
    return math.ceil(text.total_bytes / 4)


def _line_count(text: str | Captured) -> int:
    if not isinstance(text, str):
        return text.total_lines
    return len(text.splitlines()) or (1 if text else 0)


def wall_time(seconds: float) -> str:
    """One decimal, without a trailing ``.0`` (upstream prints f32 ``0.0`` as ``0``)."""
    text = f"{round(seconds, 1):.1f}"
    return text[:-2] if text.endswith(".0") else text


def exec_output_structured(
    output: str | Captured, exit_code: int, seconds: float, mode: str, limit: int
) -> str:
    """The ``shell`` / ``local_shell`` answer: a JSON string with output and metadata."""
    return json.dumps(
        {
            "output": formatted_truncate_text(output, mode, limit),
            "metadata": {"exit_code": exit_code, "duration_seconds": round(seconds, 1)},
        },
        ensure_ascii=False,
    )


def exec_output_freeform(
    output: str | Captured, exit_code: int, seconds: float, mode: str, limit: int
) -> str:
    """The ``shell_command`` answer: ``Exit code`` / ``Wall time`` / ``Output`` sections."""
    body = truncate_text(output, mode, limit)
    sections = [f"Exit code: {exit_code}", f"Wall time: {wall_time(seconds)} seconds"]
    if body != (output if isinstance(output, str) else output.text):
        sections.append(f"Total output lines: {_line_count(output)}")
    sections.append("Output:")
    sections.append(body)
    return "\n".join(sections)
