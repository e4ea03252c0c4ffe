"""Shaping tool output for the model, as upstream does (reference tool-side §1.2, §1.3, §1.21).

Budgets are bytes or tokens (4 bytes per token). Truncation keeps the head and the tail with a
marker in between, on UTF-8 boundaries; it never drops the start or the end of an output.
"""

from __future__ import annotations

import json
import math


def approx_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4)


def budget_bytes(mode: str, limit: int) -> int:
    return limit * 4 if mode == "tokens" else limit


def truncate_text(text: str, mode: str, limit: int) -> str:
    """Keep the first and last halves of the budget; ``…N tokens truncated…`` (or chars) between."""
    raw = text.encode("utf-8")
    budget = budget_bytes(mode, limit)
    if len(raw) <= budget:
        return text
    head_n = budget // 2
    tail_n = budget - head_n
    head = raw[:head_n].decode("utf-8", "ignore")
    tail = raw[len(raw) - tail_n :].decode("utf-8", "ignore") if tail_n else ""
    omitted = raw[len(head.encode()) : len(raw) - len(tail.encode())]
    if mode == "tokens":
        marker = f"…{approx_tokens(omitted.decode('utf-8', 'ignore'))} tokens truncated…"
    else:
        marker = f"…{len(omitted.decode('utf-8', 'ignore'))} chars truncated…"
    return head + marker + tail


def formatted_truncate_text(text: str, mode: str, limit: int) -> str:
    """``truncate_text`` plus upstream's warning header when something was cut."""
    cut = truncate_text(text, mode, limit)
    if cut == text:
        return text
    return (
        f"Warning: truncated output (original token count: {approx_tokens(text)})\n"
        f"Total output lines: {_line_count(text)}\n\n{cut}"
    )


def _line_count(text: str) -> int:
    return len(text.splitlines()) or (1 if text else 0)


def wall_time(seconds: float) -> str:
    """One decimal, without a trailing ``.0`` (upstream prints f32 ``0.0`` as ``0``)."""
    text = f"{round(seconds, 1):.1f}"
    return text[:-2] if text.endswith(".0") else text


def exec_output_structured(output: str, exit_code: int, seconds: float, mode: str, limit: int) -> str:
    """The ``shell`` / ``local_shell`` answer: a JSON string with output and metadata."""
    return json.dumps(
        {
            "output": formatted_truncate_text(output, mode, limit),
            "metadata": {"exit_code": exit_code, "duration_seconds": round(seconds, 1)},
        },
        ensure_ascii=False,
    )


def exec_output_freeform(output: str, exit_code: int, seconds: float, mode: str, limit: int) -> str:
    """The ``shell_command`` answer: ``Exit code`` / ``Wall time`` / ``Output`` sections."""
    body = truncate_text(output, mode, limit)
    sections = [f"Exit code: {exit_code}", f"Wall time: {wall_time(seconds)} seconds"]
    if body != output:
        sections.append(f"Total output lines: {_line_count(output)}")
    sections.append("Output:")
    sections.append(body)
    return "\n".join(sections)
