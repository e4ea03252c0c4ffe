"""Context management: AGENTS.md, prefix stability, token accounting, compaction (three strategies,
the task kept word for word, never larger, never twice in a row, overflow recovery), and resume."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from codexbro import protocol as p
from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from codexbro.core.compact import COMPACT_PROMPT, SUMMARY_PREFIX, TRIMMED, constraint_sentences
from codexbro.core.project_doc import discover
from codexbro.core.rollout import load_rollout
from codexbro.core.session import Session
from tests.conftest import write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_failed,
    ev_message,
    ev_shell_command,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Recorded, Reply

TASK = (
    "Refactor the parser in src/parse.py. You must keep the public API unchanged. "
    "Do not add new dependencies. Tests live in tests/ and must pass."
)


def make(
    home: Path, fake: FakeResponsesServer, ws: Path, *, extra: str = "", ephemeral: bool = True
) -> Session:
    write_config(home, fake.base_url, extra=extra)
    cfg = load_config(
        Overrides(cwd=ws, flags={"approval_policy": "never", "sandbox_mode": "danger-full-access"})
    )
    return start_session(cfg, SessionOptions(ephemeral=ephemeral))


async def turn(sess: Session, text: str) -> list[p.EventMsg]:
    sess.submit(p.UserTurn((p.UserInput("text", text=text),)))
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(30):
        while True:
            msg = (await sess.next_event()).msg
            seen.append(msg)
            if isinstance(msg, p.TaskComplete | p.TurnAborted):
                return seen


def texts(body: dict[str, Any]) -> list[str]:
    return [c.get("text", "") for i in body["input"] if i.get("type") == "message" for c in i["content"]]


def big_output_turn(call_id: str, size: int = 40_000) -> Reply:
    return Reply([ev_created(), ev_shell_command(call_id, f"head -c {size} /dev/zero | tr '\\0' x", login=False),
                  ev_completed()])  # fmt: skip


# ---- instructions and AGENTS.md ---------------------------------------------------------------


def test_agents_md_discovery(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    sub = root / "pkg" / "sub"
    sub.mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "AGENTS.md").write_text("root rules")
    (root / "pkg" / "AGENTS.md").write_text("pkg rules")
    (root / "pkg" / "AGENTS.override.md").write_text("pkg override wins")
    (sub / "NOTES.md").write_text("fallback doc")
    home = tmp_path / "globalhome"
    home.mkdir()
    (home / "AGENTS.md").write_text("global rules")
    docs = discover(sub, home=home, fallback_names=("NOTES.md",))
    assert docs is not None
    assert (
        docs.text == "global rules\n\n--- project-doc ---\n\nroot rules\n\npkg override wins\n\nfallback doc"
    )
    capped = discover(sub, home=tmp_path / "nohome", max_bytes=12)
    assert capped is not None and capped.text == "root rules\n\n" and capped.truncated
    assert discover(sub, home=home, max_bytes=0) is None


async def test_agents_md_and_context_in_the_first_request(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    (workspace / "AGENTS.md").write_text("Always run `make check` before finishing.")
    fake.add(Reply(message_turn("ok")))
    sess = make(home, fake, workspace, extra='developer_instructions = "Prefer small diffs."')
    await turn(sess, "hello")
    await sess.close()
    body = fake.bodies()[0]
    roles = [(i["role"], i["content"][0]["text"].split("\n")[0]) for i in body["input"]]
    assert roles == [
        ("developer", "Prefer small diffs."),
        ("user", f"# AGENTS.md instructions for {workspace.resolve()}"),
        ("user", "<environment_context>"),
        ("user", "hello"),
    ]
    assert "<INSTRUCTIONS>\nAlways run `make check` before finishing.\n</INSTRUCTIONS>" in texts(body)[1]
    assert body["instructions"].startswith("You are codexbro")


async def test_prefix_is_byte_stable_across_requests_and_turns(home: Path, fake: FakeResponsesServer,
                                                               workspace: Path) -> None:  # fmt: skip
    fake.add(Reply([ev_created(), ev_shell_command("c1", "echo a", login=False), ev_completed()]),
             Reply(message_turn("one")), Reply(message_turn("two")))  # fmt: skip
    sess = make(home, fake, workspace)
    await turn(sess, "first")
    await turn(sess, "second")
    await sess.close()
    bodies = fake.bodies()
    for prev, nxt in itertools.pairwise(bodies):
        assert json.dumps(nxt["input"][: len(prev["input"])]) == json.dumps(prev["input"])
        for key in ("instructions", "tools", "model", "prompt_cache_key", "reasoning"):
            assert json.dumps(nxt[key]) == json.dumps(prev[key])


async def test_token_accounting_and_context_estimates(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_shell_command("c1", "echo a", login=False), ev_completed(input_tokens=100, output_tokens=10)]),
             Reply([ev_created(), ev_message("done"), ev_completed(input_tokens=150, output_tokens=20)]))  # fmt: skip
    sess = make(home, fake, workspace)
    events = await turn(sess, "go")
    await sess.close()
    usage = [e for e in events if isinstance(e, p.ContextUsage)]
    assert len(usage) == 2 and usage[0].estimated_tokens < usage[1].estimated_tokens
    assert usage[0].context_window == 272_000 * 95 // 100 and usage[0].auto_compact_limit == int(
        272_000 * 0.9
    )
    counts = [e for e in events if isinstance(e, p.TokenCount)]
    assert counts[-1].info is not None and counts[-1].info["total_token_usage"]["input_tokens"] == 250
    assert counts[-1].info["last_token_usage"]["output_tokens"] == 20


# ---- compaction -------------------------------------------------------------------------------


def test_constraints_are_found_verbatim() -> None:
    found = constraint_sentences([TASK, "Also, never touch the vendored code.\nUse tabs."])
    assert "You must keep the public API unchanged." in found
    assert "Do not add new dependencies." in found and "Also, never touch the vendored code." in found
    assert "Use tabs." not in found


async def test_local_auto_compaction_keeps_the_task(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        big_output_turn("c1"),
        Reply(
            [ev_created(), ev_message("Parser half refactored; next: tokenizer."), ev_completed()]
        ),  # summary
        Reply(message_turn("finished")),
    )
    sess = make(home, fake, workspace, extra="model_auto_compact_token_limit = 6000", ephemeral=False)
    events = await turn(sess, TASK)
    await sess.close()
    compacted = [e for e in events if isinstance(e, p.ContextCompacted)]
    assert len(compacted) == 1 and compacted[0].strategy == "local" and compacted[0].reason == "auto"
    assert compacted[0].tokens_after < compacted[0].tokens_before
    summary_req, after = fake.bodies()[1], fake.bodies()[2]
    assert fake.responses_requests()[1].headers["x-openai-subagent"] == "compact"
    assert "x-openai-subagent" not in fake.responses_requests()[2].headers
    assert summary_req["tools"] == [] and texts(summary_req)[-1] == COMPACT_PROMPT
    kept = texts(after)
    assert TASK in kept  # the task, word for word
    assert any(t.startswith(SUMMARY_PREFIX) and "next: tokenizer" in t for t in kept)
    assert not any(i["type"] == "function_call_output" for i in after["input"])
    assert len(json.dumps(after["input"])) < len(json.dumps(summary_req["input"]))
    # The rollout records it, and a resumed session continues from the compacted history.
    rollout = next((home / "sessions").glob("*/*/*/rollout-*.jsonl"))
    assert any(json.loads(line)["type"] == "compacted" for line in rollout.read_text().splitlines())
    loaded = load_rollout(rollout)
    assert any(TASK in json.dumps(i) for i in loaded.history)
    assert not any(i.get("type") == "function_call_output" for i in loaded.history)


async def test_constraints_survive_even_when_old_messages_are_dropped(home: Path, fake: FakeResponsesServer,
                                                                     workspace: Path) -> None:  # fmt: skip
    fake.add(Reply(message_turn("ok")), Reply(message_turn("ok")), Reply(message_turn("summary")),
             Reply(message_turn("done")))  # fmt: skip
    sess = make(home, fake, workspace)
    await turn(sess, TASK)
    await turn(sess, "Padding message. " * 6000 + "Never commit to main.")
    sess.submit(p.Compact())
    async with asyncio.timeout(30):
        while not isinstance((await sess.next_event()).msg, p.TaskComplete):
            pass
    await turn(sess, "continue")
    await sess.close()
    final = texts(fake.bodies()[-1])
    assert TASK in final
    constraints = next(t for t in final if t.startswith("<user_constraints>"))
    assert "Never commit to main." in constraints


async def test_remote_compaction(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    calls: list[Recorded] = []

    def compact(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls.append(rec)
        out = {"output": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": TASK}]},
                          {"type": "compaction", "id": "cmp_1", "encrypted_content": "opaque"}]}  # fmt: skip
        return 200, {"content-type": "application/json"}, json.dumps(out).encode()

    fake.route("POST", "/v1/responses/compact", compact)
    fake.add(big_output_turn("c1"), Reply(message_turn("done")))
    sess = make(
        home, fake, workspace, extra='model_auto_compact_token_limit = 6000\ncompaction_strategy = "remote"'
    )
    await turn(sess, TASK)
    await sess.close()
    (req,) = calls
    assert req.headers["authorization"].startswith("Bearer ") and req.body["model"] == "gpt-5.1-codex"
    assert any(i.get("type") == "function_call_output" for i in req.body["input"])
    after = fake.bodies()[-1]
    assert after["input"][-1] == {"type": "compaction", "id": "cmp_1", "encrypted_content": "opaque"}
    assert TASK in texts(after)
    check_invariants(after)


async def test_inline_compaction(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    compaction = {
        "type": "response.output_item.done",
        "item": {"type": "compaction", "id": "cmp_2", "encrypted_content": "z"},
    }
    fake.add(
        big_output_turn("c1"), Reply([ev_created(), compaction, ev_completed()]), Reply(message_turn("done"))
    )
    sess = make(
        home, fake, workspace, extra='model_auto_compact_token_limit = 6000\ncompaction_strategy = "inline"'
    )
    await turn(sess, TASK)
    await sess.close()
    trigger = fake.bodies()[1]
    assert trigger["input"][-1] == {"type": "compaction_trigger"} and trigger["tools"]
    assert fake.bodies()[2]["input"][-1]["type"] == "compaction"


async def test_overflow_triggers_compaction_and_one_retry(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "echo work", login=False), ev_completed()]),
        Reply([ev_created(), ev_failed("context_length_exceeded", "too long")]),
        Reply(message_turn("summary of the work")),
        Reply(message_turn("recovered")),
    )
    sess = make(home, fake, workspace)
    events = await turn(sess, TASK)
    await sess.close()
    assert isinstance(events[-1], p.TaskComplete) and events[-1].last_agent_message == "recovered"
    assert [e.reason for e in events if isinstance(e, p.ContextCompacted)] == ["overflow"]
    assert len(fake.requests) == 4


async def test_failed_compaction_falls_back_to_trimming(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        big_output_turn("c1"),
        Reply([ev_created(), ev_failed("context_length_exceeded", "even the summary does not fit")]),
        Reply(message_turn("still alive")),
    )
    sess = make(home, fake, workspace, extra="model_auto_compact_token_limit = 6000")
    events = await turn(sess, TASK)
    await sess.close()
    assert isinstance(events[-1], p.TaskComplete) and events[-1].last_agent_message == "still alive"
    trims = [e for e in events if isinstance(e, p.ContextCompacted)]
    assert [t.strategy for t in trims] == ["trim"] and trims[0].trimmed_outputs == 1
    last = fake.bodies()[-1]
    assert next(i for i in last["input"] if i["type"] == "function_call_output")["output"] == TRIMMED
    assert TASK in texts(last)
    check_invariants(last)


async def test_never_twice_in_a_row_and_never_larger(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    huge_summary = "x" * 200_000
    fake.add(big_output_turn("c1"), Reply(message_turn(huge_summary)), Reply(message_turn("done")))
    sess = make(home, fake, workspace, extra="model_auto_compact_token_limit = 6000")
    events = await turn(sess, TASK)
    await sess.close()
    warnings = [e.message for e in events if isinstance(e, p.WarningEvent)]
    assert any("compaction discarded: it would not shrink the context" in w for w in warnings)
    assert [e.strategy for e in events if isinstance(e, p.ContextCompacted)] == ["trim"]
    assert len(fake.requests) == 3  # one summary attempt, then trimming — no second compaction request
