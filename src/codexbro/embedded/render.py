"""Responses items as a small local model reads them: chat messages for the GGUF's template, the
tool menu in the template's own ``tools`` shape, and the ``answer`` pseudo-tool every reply of the
native profile goes through.

The first message (the system turn: instructions and, through the template, the tools) and the
worked examples after it (native profile, ``examples.py``) never name the workspace: developer
messages, AGENTS.md and the request come after them, so their KV cache can be shared by every
workspace (``kvcache.py``). The working directory and the date are not shown at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from msgspec import Struct

from codexbro.api.model_client import Prompt
from codexbro.protocol.items import message_text


def tool_guide(tools: list[dict[str, Any]]) -> str:
    lines = ["You can call these tools. To call one, answer with only a JSON object "
             '{"name": <tool name>, "arguments": {...}}. Otherwise answer in plain text.']  # fmt: skip
    for tool in tools:
        if tool.get("type") == "function":
            params = tool.get("parameters", {}).get("required", [])
            lines.append(
                f"- {tool['name']}: {tool.get('description', '')} Arguments: {', '.join(params) or 'none'}"
            )
    return "\n".join(lines)


class _Entry(Struct, frozen=True):
    """One Responses input item, reduced to what a chat template needs."""

    kind: str  # system | user | assistant | call | output
    text: str = ""  # for user: the request as typed (``shown`` adds the attachments)
    shown: str = ""
    name: str = ""
    arguments: dict[str, Any] | None = None
    call_id: str = ""


def _entries(prompt: Prompt, attachments: Mapping[str, str] | None) -> Iterator[_Entry]:
    for item in prompt.input:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            text = message_text(item)
            if role == "developer":
                yield _Entry("system", text)
            elif role == "user":
                yield _Entry("user", text, text + (attachments or {}).get(text, ""))
            elif role == "assistant":
                yield _Entry("assistant", text)
        elif kind in ("function_call", "custom_tool_call"):
            yield _Entry("call", name=str(item.get("name")), arguments=call_arguments(item),
                         call_id=str(item.get("call_id")))  # fmt: skip
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            yield _Entry("output", text, call_id=str(item.get("call_id")))


def to_messages(
    prompt: Prompt, instructions: str, attachments: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """Responses items → chat messages a small model's template understands (no tool role needed).
    ``attachments`` maps a user message's text to what is shown after it (``attach.py``)."""
    system = [instructions] if instructions else []
    if prompt.tools:
        system.append(tool_guide(prompt.tools))
    messages: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for e in _entries(prompt, attachments):
        if e.kind == "system":
            system.append(e.text)
        elif e.kind in ("user", "assistant"):
            messages.append({"role": e.kind, "content": e.shown or e.text})
        elif e.kind == "call":
            names[e.call_id] = e.name
            messages.append(
                {"role": "assistant", "content": json.dumps({"name": e.name, "arguments": e.arguments})}
            )
        else:
            messages.append(
                {"role": "user", "content": f"Result of {names.get(e.call_id, 'tool')}:\n{e.text}"}
            )
    return [{"role": "system", "content": "\n\n".join(system)}, *messages]


ANSWER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "answer",
    "description": "Reply to the user in plain text: the final answer, or when no other tool is needed.",
    # x-prose: the grammar keeps the text from starting like a call (`<`, `{`, a fence).
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string", "x-prose": True}},
        "required": ["text"],
    },
}


def answer_tool(output_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The ``answer`` pseudo-tool; with ``exec --output-schema`` its argument is a value of that
    schema, so the grammar makes the final answer schema-valid JSON."""
    if output_schema is None:
        return ANSWER_TOOL
    return {
        "type": "function", "name": "answer",
        "description": "Reply to the user with the final answer, as JSON that fits the required schema.",
        "parameters": {"type": "object", "properties": {"text": output_schema}, "required": ["text"]},
    }  # fmt: skip


def _required_only(schema: dict[str, Any]) -> dict[str, Any]:
    required = list(schema.get("required") or [])
    props = {
        k: {key: val for key, val in v.items() if not key.startswith("x-")}
        for k, v in (schema.get("properties") or {}).items()
        if k in required
    }
    return {"type": "object", "properties": props, "required": required}


def native_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the chat template's own ``tools`` shape (required arguments only)."""
    return [
        {"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": _required_only(t.get("parameters") or {}),
        }}
        for t in tools
    ]  # fmt: skip


def to_native_messages(
    prompt: Prompt, instructions: str, attachments: Mapping[str, str] | None = None, *, examples: bool = False
) -> list[dict[str, Any]]:
    """Responses items → the template's own roles: assistant ``tool_calls`` and ``tool`` results.
    Earlier plain answers are shown as ``answer`` calls, the one way the model is allowed to reply.

    Each tool result ends with a reminder of the request it serves (``REMINDER``): a 1.5B model
    otherwise forgets the question after a long output and goes on calling tools. It is the same
    text for every result of a turn, so the rendered prefix — and the KV cache — stays stable.
    (Measured and dropped, 2026-12-03: the reminder as a user turn of its own after the result,
    and a note that a command printed nothing — both lowered the task score: the model re-ran
    silent commands such as ``mkdir``.)

    The system turn holds only ``instructions`` and the settings part of the first environment
    context (the template adds the tools); what names the workspace — its path, developer messages,
    AGENTS.md — follows it, so the system turn's KV cache serves every workspace.

    ``examples``: the worked examples (``examples.py``) follow the system turn; they too are the same
    in every workspace (``shared_count`` says how many leading messages are). The working directory
    and the date are left out of the environment context: commands run there already, and a model
    that sees an absolute path writes it into commands and answers (every token after the shared
    prefix is evaluated afresh in a new workspace)."""
    menu = {str(t.get("name")) for t in prompt.tools if t.get("type") == "function"}
    messages: list[dict[str, Any]] = list(example_messages(menu)) if examples else []
    request = ""
    system, split = instructions, False
    for n, e in enumerate(_entries(prompt, attachments)):
        if e.kind == "system":
            messages.append({"role": "system", "content": e.text})
        elif e.kind == "user" and e.text.startswith(ENV_OPEN) and not split:
            split = True
            settings, local = split_environment(e.text)
            system = f"{instructions}\n\n{settings}" if settings else instructions
            if local := _without(local, UNSHOWN):
                messages.append({"role": "user", "content": local})
        elif e.kind == "user":
            if not e.text.startswith(ENV_OPEN):
                request = e.text
            messages.append({"role": "user", "content": e.shown})
        elif e.kind == "assistant":
            messages.append(_call_message(f"answer_{n}", "answer", {"text": e.text}))
        elif e.kind == "call":
            messages.append(_call_message(e.call_id, e.name, e.arguments or {}))
        else:
            text = e.text + (REMINDER.format(request=request[:300]) if request else "")
            messages.append({"role": "tool", "tool_call_id": e.call_id, "content": text})
    return [{"role": "system", "content": system}, *messages]


def shared_count(messages: list[dict[str, Any]]) -> int:
    """How many leading messages of ``to_native_messages`` never depend on the workspace: the
    system turn and the worked examples."""
    return 1 + sum(1 for m in messages[1:] if m.get("example"))


def example_messages(tools: set[str]) -> Iterator[dict[str, Any]]:
    """The worked examples that use only ``tools``, as template messages (marked ``example``: the
    engine takes the mark off before rendering)."""
    from codexbro.embedded.examples import examples_for

    for n, example in enumerate(examples_for(tools)):
        yield {"role": "user", "content": example.shown, "example": True}
        reminder = REMINDER.format(request=example.request[:300])
        for k, step in enumerate(example.steps):
            call_id = f"example_{n}_{k}"
            yield {**_call_message(call_id, step.tool, step.arguments), "example": True}
            yield {
                "role": "tool",
                "tool_call_id": call_id,
                "content": step.result + reminder,
                "example": True,
            }
        yield {**_call_message(f"example_{n}_answer", "answer", {"text": example.answer}), "example": True}


ENV_OPEN, ENV_CLOSE = "<environment_context>", "</environment_context>"
# The fields of the environment context that do not depend on the workspace or the day.
SETTINGS = ("approval_policy", "sandbox_mode", "network_access", "shell", "timezone")
_FIELD = re.compile(r"^\s*<(\w+)>(.*)</\1>\s*$")
# Fields the native profile does not show (see ``to_native_messages``).
UNSHOWN = ("cwd", "current_date")


def _without(context: str, fields: tuple[str, ...]) -> str:
    """An environment context without ``fields``; empty when nothing else is left."""
    lines = context.strip().splitlines()
    if len(lines) < 2 or lines[0].strip() != ENV_OPEN or lines[-1].strip() != ENV_CLOSE:
        return context
    kept = [line for line in lines[1:-1] if not ((f := _FIELD.match(line)) and f.group(1) in fields)]
    return _wrap(kept)


def split_environment(text: str) -> tuple[str, str]:
    """An environment context as (settings, local): the settings fields (the same in every
    workspace: they go with the instructions into the shared prefix) and the rest — the working
    directory, the writable roots other than it, the date, anything unknown — as a shorter
    environment context of its own. Both keep the ``<environment_context>`` form."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != ENV_OPEN or lines[-1].strip() != ENV_CLOSE:
        return "", text
    settings: list[str] = []
    local: list[str] = []
    cwd = ""
    body = lines[1:-1]
    i = 0
    while i < len(body):
        line = body[i]
        field = _FIELD.match(line)
        if line.strip() == "<writable_roots>":
            end = next(
                (j for j in range(i, len(body)) if body[j].strip() == "</writable_roots>"), len(body) - 1
            )
            roots = [r for r in body[i + 1 : end] if r.strip() != f"<root>{cwd}</root>"]
            if roots:
                local += [line, *roots, body[end]]
            i = end + 1
            continue
        if field and field.group(1) == "cwd":
            cwd = field.group(2)
        (settings if field and field.group(1) in SETTINGS else local).append(line)
        i += 1
    return _wrap(settings), _wrap(local) or text


def _wrap(lines: list[str]) -> str:
    return "\n".join([ENV_OPEN, *lines, ENV_CLOSE]) if lines else ""


# The start of the reminder: an answer that copies it out (the prompt's own scaffolding, not
# anything the user or a tool wrote) is cut there (``guards.echoes_scaffold``).
REMINDER_HEAD = "The user asked:"
REMINDER = (
    "\n\n(" + REMINDER_HEAD + " {request}\nIf this result answers it or completes it, reply with answer now, "
    "quoting the lines the user asked to see; otherwise make the next call.)"
)


def _call_message(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """An assistant turn with one call, in the chat-completions shape the engine's template reads
    (arguments as a JSON string; the template writes them back as an object)."""
    call = {"type": "function", "id": call_id, "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def call_arguments(item: dict[str, Any]) -> dict[str, Any]:
    """A call item's arguments as an object; ``{}`` when they are not one (the model wrote them)."""
    if item.get("type") == "custom_tool_call":
        return {"input": item.get("input", "")}
    try:
        args = json.loads(str(item.get("arguments") or "{}"))
    except ValueError:
        return {}
    return args if isinstance(args, dict) else {}
