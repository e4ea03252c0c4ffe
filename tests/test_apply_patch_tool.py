"""The apply_patch tool inside real exec turns: freeform and JSON variants, heredoc interception,
sandbox-policy rejection, and the file_change JSONL items."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli, write_config
from tests.fakes.events import (
    check_invariants,
    ev_completed,
    ev_created,
    ev_custom_tool_call,
    ev_function_call,
    ev_shell_command,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply

PATCH = (
    "*** Begin Patch\n*** Add File: hello.txt\n+hi there\n*** Update File: old.txt\n-one\n+ONE\n*** End Patch"
)


def outputs(body: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {i["call_id"]: i["output"] for i in body["input"] if i["type"].endswith("_output")}


def test_freeform_patch_in_workspace_write(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    (workspace / "old.txt").write_text("one\ntwo\n")
    fake.add(Reply([ev_created(), ev_custom_tool_call("p1", "apply_patch", PATCH), ev_completed()]),
             Reply(message_turn("patched")))  # fmt: skip
    res = run_cli("exec", "--json", "-s", "workspace-write", "edit", cwd=workspace)
    assert res.code == 0, res.stderr
    assert (workspace / "hello.txt").read_text() == "hi there\n"
    assert (workspace / "old.txt").read_text() == "ONE\ntwo\n"
    body = fake.bodies()[1]
    check_invariants(body)
    out = next(i for i in body["input"] if i["type"] == "custom_tool_call_output")
    assert out["name"] == "apply_patch"
    assert out["output"].startswith("Exit code: 0\nWall time: ")
    assert out["output"].endswith("Output:\nSuccess. Updated the following files:\nA hello.txt\nM old.txt\n")
    items = [e for e in res.events() if e["type"].startswith("item.") and e["item"]["type"] == "file_change"]
    assert [e["type"] for e in items] == ["item.started", "item.completed"]
    assert items[1]["item"]["status"] == "completed"
    assert sorted(items[1]["item"]["changes"], key=lambda c: c["path"]) == [
        {"path": str(workspace / "hello.txt"), "kind": "add"},
        {"path": str(workspace / "old.txt"), "kind": "update"},
    ]


def test_read_only_sandbox_rejects_patch(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    (workspace / "old.txt").write_text("one\n")
    fake.add(Reply([ev_created(), ev_custom_tool_call("p1", "apply_patch", PATCH), ev_completed()]),
             Reply(message_turn("could not")))  # fmt: skip
    res = run_cli("exec", "--json", "edit", cwd=workspace)
    assert res.code == 0
    assert outputs(fake.bodies()[1])["p1"] == (
        "patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings"
    )
    assert not (workspace / "hello.txt").exists() and (workspace / "old.txt").read_text() == "one\n"


def test_patch_into_git_dir_rejected_in_workspace_write(home: Path, fake: FakeResponsesServer,
                                                        workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    patch = "*** Begin Patch\n*** Add File: .git/hooks/post-commit\n+evil\n*** End Patch"
    fake.add(Reply([ev_created(), ev_custom_tool_call("p1", "apply_patch", patch), ev_completed()]),
             Reply(message_turn("no")))  # fmt: skip
    assert run_cli("exec", "--json", "-s", "workspace-write", "x", cwd=workspace).code == 0
    assert "is a protected path; rejected by user approval settings" in outputs(fake.bodies()[1])["p1"]
    assert not (workspace / ".git" / "hooks").exists()


def test_verification_failure_writes_nothing(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url)
    (workspace / "old.txt").write_text("different\n")
    fake.add(Reply([ev_created(), ev_custom_tool_call("p1", "apply_patch", PATCH), ev_completed()]),
             Reply(message_turn("retry")))  # fmt: skip
    assert run_cli("exec", "--json", "--full-auto", "x", cwd=workspace).code == 0
    out = outputs(fake.bodies()[1])["p1"]
    assert out.startswith(
        f"apply_patch verification failed: Failed to find expected lines in {workspace}/old.txt"
    )
    assert not (workspace / "hello.txt").exists()


def test_heredoc_through_shell_command_is_intercepted(home: Path, fake: FakeResponsesServer,
                                                      workspace: Path) -> None:  # fmt: skip
    write_config(home, fake.base_url)
    (workspace / "sub").mkdir()
    script = "cd sub && apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: made.txt\n+x\n*** End Patch\nEOF"
    fake.add(Reply([ev_created(), ev_shell_command("s1", script), ev_completed()]), Reply(message_turn("ok")))
    res = run_cli("exec", "--json", "-s", "workspace-write", "x", cwd=workspace)
    assert res.code == 0, res.stderr
    assert (workspace / "sub" / "made.txt").read_text() == "x\n"
    assert outputs(fake.bodies()[1])["s1"].endswith("Success. Updated the following files:\nA made.txt\n")
    assert not any(e["item"]["type"] == "command_execution" for e in res.events() if "item" in e)


def test_function_variant_for_gpt_oss(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    write_config(home, fake.base_url, model="gpt-oss-20b")
    fake.add(Reply([ev_created(), ev_function_call("f1", "apply_patch", {"input": PATCH.replace(
        "*** Update File: old.txt\n-one\n+ONE\n", "")}), ev_completed()]), Reply(message_turn("ok")))  # fmt: skip
    res = run_cli("exec", "--json", "--yolo", "x", cwd=workspace)
    assert res.code == 0, res.stderr
    first = fake.bodies()[0]
    spec = next(t for t in first["tools"] if t["name"] == "apply_patch")
    assert spec["type"] == "function" and spec["parameters"]["required"] == ["input"]
    assert first["parallel_tool_calls"] is False
    assert (workspace / "hello.txt").read_text() == "hi there\n"
    assert outputs(fake.bodies()[1])["f1"].endswith("A hello.txt\n")
