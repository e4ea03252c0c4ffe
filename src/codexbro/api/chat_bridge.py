"""The chat-completions bridge (beyond upstream): a provider that only has ``/chat/completions``.

Upstream 0.169 speaks the Responses API only and refuses ``wire_api = "chat"``. Many self-hosted and
third-party servers (vLLM, llama.cpp's server, LM Studio, most OpenAI-compatible gateways) have
``/chat/completions`` and nothing else. With ``wire_api = "chat"`` *and* ``chat_completions_bridge =
true`` in ``[model_providers.ID]``, this module stands in for ``ResponsesClient``: the core still
builds a Responses request and still receives Responses events; only the wire differs.

Request (``to_chat_request``): ``instructions`` → a ``system`` message; ``developer`` messages →
``system``; user/assistant messages → the same roles (``input_image`` → ``image_url`` parts);
consecutive ``function_call`` items → one assistant message's ``tool_calls``; outputs → ``tool``
messages; a freeform tool (``apply_patch``'s ``custom`` form) → a function with one ``input``
string argument, and back; namespaced tools (code mode's ``additional_tools`` item, the
collaboration and clock namespaces) → functions named ``NAMESPACE__NAME`` (code mode's ``functions``
namespace keeps plain names: ``exec``, ``wait``), and back to calls naming their namespace;
``agent_message`` items (multi_agent_v2's tasks and answers) → ``user`` messages with their header
and payload; reasoning items are dropped (chat has no place for them); tools other
than functions (``web_search``, ``local_shell``) are left out; ``--output-schema`` →
``response_format: {type: json_schema}``; reasoning effort → ``reasoning_effort``; always
``stream: true`` with ``stream_options.include_usage``.

Stream (``ChatStream``): ``choices[0].delta.content`` → one assistant ``message`` (added, text
deltas, done); ``delta.reasoning_content`` (vLLM, DeepSeek, llama.cpp) → reasoning text deltas and a
``reasoning`` item; ``delta.tool_calls`` fragments, gathered by ``index`` → one ``function_call``
item each once the stream ends; the final ``usage`` chunk → ``Completed`` usage (``prompt_tokens``,
``completion_tokens``, ``prompt_tokens_details.cached_tokens``). ``data: [DONE]`` or a
``finish_reason`` ends it; a stream that stops before either is a disconnect, retried as a Responses
stream is. HTTP errors are classified as for the Responses route (same ``{"error": …}`` shape).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

from msgspec import Struct, field

from codexbro import textsafe
from codexbro.api import events as ev
from codexbro.api.responses import ResponsesClient
from codexbro.api.routes import route
from codexbro.errors import FatalApiError, RetryableApiError, TransportError

log = logging.getLogger(__name__)
CHAT = route("chat.completions")
Sleep = Callable[[float], Any]


# ---- request ---------------------------------------------------------------------------------------


def _text_parts(content: Any) -> tuple[str, list[dict[str, Any]]]:
    """(all text joined, chat content parts) of a Responses message's content."""
    if isinstance(content, str):
        return content, [{"type": "text", "text": content}]
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text") or ""))
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
    return "".join(texts), parts


def _tool(tool: dict[str, Any]) -> dict[str, Any] | None:
    if tool.get("type") == "function":
        fn = {"name": tool["name"], "description": tool.get("description", ""),
              "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}  # fmt: skip
        return {"type": "function", "function": fn}
    if tool.get("type") == "custom":  # freeform (apply_patch): one string argument
        params = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
        desc = str(tool.get("description") or "") + " Pass the whole text as the `input` argument."
        return {
            "type": "function",
            "function": {"name": tool["name"], "description": desc.strip(), "parameters": params},
        }
    return None


class Menu(Struct):
    """The request's tools as chat functions: namespaced ones (an ``additional_tools`` item's or a
    top-level ``namespace`` tool's) flattened to ``NAMESPACE__NAME`` — the ``functions`` namespace
    of code mode keeps plain names — and how each chat name maps back."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    custom: set[str] = field(default_factory=set)  # chat names of freeform tools (one `input` string)
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # chat name → (namespace, name)

    def add(self, tool: dict[str, Any], namespace: str | None = None) -> None:
        if tool.get("type") == "namespace":
            for inner in tool.get("tools") or []:
                if isinstance(inner, dict):
                    self.add(inner, str(tool.get("name") or ""))
            return
        converted = _tool(tool)
        if converted is None:
            return
        name = str(tool.get("name"))
        flat = chat_name(namespace, name)
        if any(t["function"]["name"] == flat for t in self.tools):  # two tools, one chat name: keep the first
            log.warning("chat bridge: tool `%s` left out, its name is taken", flat)
            return
        if namespace and namespace != "functions":
            converted["function"]["name"] = flat
            self.namespaced[flat] = (namespace, name)
        if tool.get("type") == "custom":
            self.custom.add(converted["function"]["name"])
        self.tools.append(converted)


def chat_name(namespace: str | None, name: str) -> str:
    return f"{namespace}__{name}" if namespace and namespace != "functions" else name


def menu_of(body: dict[str, Any]) -> Menu:
    menu = Menu()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            menu.add(tool)
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type") == "additional_tools":  # code mode's menu
            for tool in item.get("tools") or []:
                if isinstance(tool, dict):
                    menu.add(tool)
    return menu


def _agent_message_text(item: dict[str, Any]) -> str:
    """A multi_agent_v2 ``agent_message`` as plain text: its header, then its payload (sealed or not)."""
    parts = []
    for part in item.get("content") or []:
        if isinstance(part, dict):
            parts.append(str(part.get("text") or part.get("encrypted_content") or ""))
    return "".join(parts)


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request body → a ``/chat/completions`` request body."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    pending_calls: list[dict[str, Any]] = []

    def flush() -> None:
        if pending_calls:
            messages.append({"role": "assistant", "content": None, "tool_calls": list(pending_calls)})
            pending_calls.clear()

    for item in body.get("input") or []:
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call"):
            arguments = (
                item.get("arguments")
                if kind == "function_call"
                else json.dumps({"input": item.get("input", "")})
            )
            name = chat_name(item.get("namespace"), str(item.get("name")))
            pending_calls.append({"id": str(item.get("call_id")), "type": "function",
                                  "function": {"name": name, "arguments": arguments or "{}"}})  # fmt: skip
            continue
        flush()
        if kind == "message":
            role = item.get("role")
            text, parts = _text_parts(item.get("content"))
            if role in ("developer", "system"):
                messages.append({"role": "system", "content": text})
            elif role == "assistant":
                messages.append({"role": "assistant", "content": text})
            elif role == "user":
                simple = all(p["type"] == "text" for p in parts)
                messages.append({"role": "user", "content": text if simple else parts})
        elif kind == "agent_message":  # a task, message or answer between agents (multi_agent_v2)
            messages.append({"role": "user", "content": _agent_message_text(item)})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if not isinstance(output, str):
                output = _text_parts(output)[0] if isinstance(output, list) else json.dumps(output)
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": output})
    flush()
    request: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": True,
                               "stream_options": {"include_usage": True}}  # fmt: skip
    tools = menu_of(body).tools
    if tools:
        request["tools"] = tools
        request["tool_choice"] = "auto"
        request["parallel_tool_calls"] = bool(body.get("parallel_tool_calls"))
    fmt = (body.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        request["response_format"] = {"type": "json_schema", "json_schema": {
            "name": fmt.get("name") or "output", "schema": fmt.get("schema"), "strict": bool(fmt.get("strict")),
        }}  # fmt: skip
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        request["reasoning_effort"] = effort
    return request


# ---- stream ----------------------------------------------------------------------------------------


MAX_CALLS = 64  # tool calls in one response; more is a broken or hostile server
MAX_TEXT = 16 * 1024 * 1024  # characters of text, reasoning or arguments in one response


class _Call(Struct):
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _TooBig(Exception):
    pass


class ChatStream(Struct):
    """Chat-completion chunks in, Responses events out (one response). Whatever the server sends,
    only ``FatalApiError`` comes out of it: fields of the wrong type are ignored, and a response
    past ``MAX_CALLS`` calls or ``MAX_TEXT`` characters is refused."""

    custom_tools: frozenset[str] = frozenset()
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # chat name → (namespace, name)
    response_id: str | None = None
    text: list[str] = field(default_factory=list)  # pieces, joined once (appending to a str is quadratic)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int | str, _Call] = field(default_factory=dict)
    usage: ev.TokenUsage = field(default_factory=ev.TokenUsage)
    finished: bool = False
    size: int = 0
    _msg_id: str = field(default_factory=lambda: f"msg_{secrets.token_hex(8)}")
    _started_text: bool = False

    def feed(self, chunk: dict[str, Any]) -> list[ev.ResponseEvent]:
        try:
            return self._feed(chunk)
        except _TooBig as exc:
            raise FatalApiError(str(exc), kind="other", route=CHAT.name) from None

    def _grow(self, n: int) -> None:
        self.size += n
        if self.size > MAX_TEXT:
            raise _TooBig(f"the server's response is over {MAX_TEXT // 2**20} MiB of text; stopped")

    def _feed(self, chunk: dict[str, Any]) -> list[ev.ResponseEvent]:
        out: list[ev.ResponseEvent] = []
        if self.response_id is None:
            self.response_id = _str(chunk.get("id")) or f"chatcmpl_{secrets.token_hex(6)}"
            out.append(ev.Created(self.response_id))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage)
        for choice in _list(chunk.get("choices")):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _obj(choice.get("delta"))
            reasoning = _str(delta.get("reasoning_content")) or _str(delta.get("reasoning"))
            if reasoning:
                self._grow(len(reasoning))
                self.reasoning.append(reasoning)
                out.append(ev.ReasoningContentDelta(reasoning))
            content = _str(delta.get("content"))
            if content:
                self._grow(len(content))
                if not self._started_text:
                    self._started_text = True
                    out.append(ev.OutputItemAdded({"type": "message", "role": "assistant", "id": self._msg_id,
                                                   "content": []}))  # fmt: skip
                self.text.append(content)
                out.append(ev.OutputTextDelta(content, item_id=self._msg_id))
            for frag in _list(delta.get("tool_calls")):
                if isinstance(frag, dict):
                    self._fragment(frag)
            if choice.get("finish_reason"):
                self.finished = True
        return out

    def _fragment(self, frag: dict[str, Any]) -> None:
        """One piece of a tool call: gathered by ``index`` (or by ``id`` when a server sends none)."""
        index = frag.get("index")
        key: int | str = (
            index if isinstance(index, int) and not isinstance(index, bool) else _str(frag.get("id"))
        )
        if key not in self.calls and len(self.calls) >= MAX_CALLS:
            raise _TooBig(f"the server sent more than {MAX_CALLS} tool calls in one response; stopped")
        call = self.calls.setdefault(key, _Call())
        call.id = call.id or _str(frag.get("id"))
        fn = _obj(frag.get("function"))
        call.name = call.name or _str(fn.get("name"))
        piece = _str(fn.get("arguments"))
        if piece:
            self._grow(len(piece))
            call.arguments.append(piece)

    def finish(self) -> list[ev.ResponseEvent]:
        """The finished items, in order (reasoning, message, calls), then ``Completed``."""
        out: list[ev.ResponseEvent] = []
        if self.reasoning:
            out.append(ev.OutputItemDone({"type": "reasoning", "id": f"rs_{secrets.token_hex(8)}", "summary": [],
                                          "content": [{"type": "reasoning_text", "text": "".join(self.reasoning)}]}))  # fmt: skip
        if self._started_text:
            out.append(ev.OutputItemDone({"type": "message", "role": "assistant", "id": self._msg_id,
                                          "content": [{"type": "output_text", "text": "".join(self.text)}]}))  # fmt: skip
        ordered = sorted(self.calls.items(), key=lambda kv: (isinstance(kv[0], str), kv[0]))
        for _key, call in ordered:
            if not call.name:
                continue  # fragments of a call whose name never came: nothing to run
            call_id = call.id or f"call_{secrets.token_hex(8)}"
            arguments = "".join(call.arguments)
            namespace, name = self.namespaced.get(call.name, (None, call.name))
            where = {"namespace": namespace} if namespace else {}
            if call.name in self.custom_tools:
                value: Any = arguments
                with suppress(ValueError, RecursionError):
                    value = _obj(json.loads(arguments or "{}")).get("input", arguments)
                out.append(ev.OutputItemDone({"type": "custom_tool_call", "id": f"ctc_{secrets.token_hex(8)}",
                                              "call_id": call_id, "name": name, **where,
                                              "input": value if isinstance(value, str) else json.dumps(value)}))  # fmt: skip
            else:
                out.append(ev.OutputItemDone({"type": "function_call", "id": f"fc_{secrets.token_hex(8)}",
                                              "call_id": call_id, "name": name, **where,
                                              "arguments": arguments or "{}"}))  # fmt: skip
        out.append(ev.Completed(self.response_id, self.usage))
        return out


def _usage(usage: dict[str, Any]) -> ev.TokenUsage:
    def num(v: Any) -> int:
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    details = usage.get("prompt_tokens_details") or {}
    out_details = usage.get("completion_tokens_details") or {}
    prompt, completion = num(usage.get("prompt_tokens")), num(usage.get("completion_tokens"))
    return ev.TokenUsage(
        input_tokens=prompt, cached_input_tokens=num(details.get("cached_tokens") if isinstance(details, dict) else 0),
        output_tokens=completion,
        reasoning_output_tokens=num(out_details.get("reasoning_tokens") if isinstance(out_details, dict) else 0),
        total_tokens=num(usage.get("total_tokens")) or prompt + completion,
    )  # fmt: skip


class ChatCompletionsClient(ResponsesClient):
    """``ResponsesClient`` over ``/chat/completions``: the same attempts, retries and error
    classification; a Responses body in, Responses events out. Holds no conversation state."""

    route = CHAT

    def request_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return to_chat_request(body)

    async def _events(self, response: Any, body: dict[str, Any]) -> AsyncIterator[ev.ResponseEvent]:
        menu = menu_of(body)
        async for event in self._chat_events(response, ChatStream(frozenset(menu.custom), menu.namespaced)):
            yield event

    async def _chat_events(self, response: Any, state: ChatStream) -> AsyncIterator[ev.ResponseEvent]:
        from codexbro.api.sse import SseError, response_events

        source = response_events(response)
        done = False
        while not done:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    sse = await anext(source)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RetryableApiError("idle timeout waiting for SSE", kind="response_stream_disconnected",
                                        route=CHAT.name) from None  # fmt: skip
            except (TransportError, SseError) as exc:
                raise RetryableApiError(f"stream disconnected before completion: {exc}",
                                        kind="response_stream_disconnected", route=CHAT.name) from None  # fmt: skip
            if sse.data.strip() == "[DONE]":
                done = True
                continue
            try:
                chunk = textsafe.loads(sse.data)
            except (ValueError, RecursionError):
                log.debug("skipping unparseable chat chunk (%d bytes)", len(sse.data))
                continue
            if not isinstance(chunk, dict):
                continue
            error = chunk.get("error")
            if error:  # an error sent inside the stream (an object, or just a string)
                message = _str(_obj(error).get("message")) or (error if isinstance(error, str) else "")
                raise FatalApiError(message or "the server reported an error", kind="other", route=CHAT.name)
            for event in state.feed(chunk):
                yield event
        if not (done or state.finished):
            raise RetryableApiError("stream closed before the completion finished",
                                    kind="response_stream_disconnected", route=CHAT.name)  # fmt: skip
        if state.response_id is None:  # `[DONE]` and nothing else: no answer at all
            raise RetryableApiError("the stream ended without a single chunk",
                                    kind="response_stream_disconnected", route=CHAT.name)  # fmt: skip
        for event in state.finish():
            yield event
