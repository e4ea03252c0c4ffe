"""Approval flows through the Op/Event protocol, with the real sandbox and the fake model server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from codexbro import protocol as p
from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from codexbro.core.session import Session
from tests.conftest import write_config
from tests.fakes.events import ev_completed, ev_created, ev_custom_tool_call, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply
from tests.sandbox_support import WORKING

pytestmark = pytest.mark.skipif(not WORKING, reason="no Linux sandbox backend works on this machine")


def session(
    home: Path, fake: FakeResponsesServer, ws: Path, approval: str, sandbox: str = "workspace-write"
) -> Session:
    write_config(home, fake.base_url)
    cfg = load_config(Overrides(cwd=ws, flags={"approval_policy": approval, "sandbox_mode": sandbox},
                                cli_overrides=["sandbox_workspace_write.exclude_slash_tmp=true",
                                               "sandbox_workspace_write.exclude_tmpdir_env_var=true"]))  # fmt: skip
    return start_session(cfg, SessionOptions(ephemeral=True))


Answer = Callable[[p.EventMsg], str | None]


async def turn(sess: Session, answer: Answer, prompt: str = "go") -> list[p.EventMsg]:
    sess.submit(p.UserTurn((p.UserInput("text", text=prompt),)))
    seen: list[p.EventMsg] = []
    async with asyncio.timeout(30):
        while True:
            msg = (await sess.next_event()).msg
            seen.append(msg)
            if isinstance(msg, p.ExecApprovalRequest | p.ApplyPatchApprovalRequest):
                decision = answer(msg)
                if decision is not None:
                    op = p.ExecApproval if isinstance(msg, p.ExecApprovalRequest) else p.PatchApproval
                    sess.submit(op(msg.call_id, decision))
            if isinstance(msg, p.TaskComplete | p.TurnAborted):
                return seen


def outputs(fake: FakeResponsesServer) -> dict[str, str]:
    return {i["call_id"]: i["output"] for i in fake.bodies()[-1]["input"] if i["type"].endswith("_output")}


@pytest.fixture
def outside() -> Path:
    path = Path(os.environ["HOME"]) / "outside"
    path.mkdir()
    return path


def escalated(call_id: str, script: str, **extra: object) -> dict[str, object]:
    return ev_shell_command(call_id, script, login=False, sandbox_permissions="require_escalated",
                            justification="Write the report outside the workspace?", **extra)  # fmt: skip


async def test_escalation_approved_runs_unsandboxed(home: Path, fake: FakeResponsesServer, workspace: Path,
                                                    outside: Path) -> None:  # fmt: skip
    fake.add(Reply([ev_created(), escalated("c1", f"echo hi > {outside}/report.txt"), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "on-request")
    asked: list[p.ExecApprovalRequest] = []
    events = await turn(sess, lambda m: asked.append(m) or "approved")  # type: ignore[func-returns-value]
    await sess.close()
    assert (outside / "report.txt").read_text() == "hi\n"
    (req,) = asked
    assert req.reason == "Write the report outside the workspace?" and req.proposed_prefix == ["echo", "hi"]
    assert any(isinstance(e, p.TaskComplete) for e in events)


async def test_escalation_denied_and_abort(home: Path, fake: FakeResponsesServer, workspace: Path,
                                           outside: Path) -> None:  # fmt: skip
    fake.add(
        Reply([ev_created(), escalated("c1", f"touch {outside}/x"), ev_completed()]),
        Reply(message_turn("ok")),
    )
    sess = session(home, fake, workspace, "on-request")
    await turn(sess, lambda m: "denied")
    assert outputs(fake)["c1"] == "exec command rejected by user" and not (outside / "x").exists()
    fake.add(Reply([ev_created(), escalated("c2", f"touch {outside}/y"), ev_completed()]))
    events = await turn(sess, lambda m: "abort")
    await sess.close()
    assert isinstance(events[-1], p.TurnAborted) and not (outside / "y").exists()


async def test_session_approval_is_remembered_for_the_prefix(home: Path, fake: FakeResponsesServer,
                                                             workspace: Path, outside: Path) -> None:  # fmt: skip
    fake.add(
        Reply([ev_created(), escalated("c1", f"touch {outside}/a", prefix_rule=["touch"]), ev_completed()]),
        Reply([ev_created(), escalated("c2", f"touch {outside}/b", prefix_rule=["touch"]), ev_completed()]),
        Reply(message_turn("done")),
    )
    sess = session(home, fake, workspace, "on-request")
    asked: list[p.EventMsg] = []
    await turn(sess, lambda m: asked.append(m) or "approved_for_session")  # type: ignore[func-returns-value]
    await sess.close()
    assert len(asked) == 1 and (outside / "a").exists() and (outside / "b").exists()


async def test_workspace_approval_persists_a_scoped_rule(home: Path, fake: FakeResponsesServer, workspace: Path,
                                                         outside: Path) -> None:  # fmt: skip
    fake.add(Reply([ev_created(), escalated("c1", f"touch {outside}/a", prefix_rule=["touch"]), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "on-request")
    await turn(sess, lambda m: "approved_for_workspace")
    await sess.close()
    rules = (home / "rules" / "default.rules").read_text()
    assert rules == (
        f"prefix_rule(pattern=['touch'], decision=\"allow\", workspace='{workspace.resolve()}', "
        "justification='approved by the user')\n"
    )
    # A later session in the same workspace runs `touch` without asking (still sandboxed: no escalation).
    fake.add(Reply([ev_created(), ev_shell_command("c2", "touch inside.txt", login=False), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "untrusted")
    asked: list[p.EventMsg] = []
    await turn(sess, lambda m: asked.append(m) or "denied")  # type: ignore[func-returns-value]
    await sess.close()
    assert asked == [] and (workspace / "inside.txt").exists()


async def test_on_failure_offers_unsandboxed_retry(home: Path, fake: FakeResponsesServer, workspace: Path,
                                                   outside: Path) -> None:  # fmt: skip
    fake.add(Reply([ev_created(), ev_shell_command("c1", f"echo x > {outside}/f", login=False), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "on-failure")
    asked: list[p.ExecApprovalRequest] = []
    events = await turn(sess, lambda m: asked.append(m) or "approved")  # type: ignore[func-returns-value, arg-type]
    await sess.close()
    assert [a.reason for a in asked] == ["command failed; retry without sandbox?"]
    assert (outside / "f").read_text() == "x\n"
    assert outputs(fake)["c1"].startswith("Exit code: 0")
    end = next(e for e in events if isinstance(e, p.ExecCommandEnd))
    assert end.exit_code == 0 and not end.sandbox_denied


async def test_untrusted_asks_except_known_safe(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_shell_command("s", "ls", login=False),
                    ev_shell_command("u", "touch made.txt", login=False), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "untrusted")
    asked: list[p.ExecApprovalRequest] = []
    await turn(sess, lambda m: asked.append(m) or "denied")  # type: ignore[func-returns-value, arg-type]
    await sess.close()
    assert [a.command[-1] for a in asked] == ["touch made.txt"]
    assert (
        outputs(fake)["s"].startswith("Exit code: 0")
        and outputs(fake)["u"] == "exec command rejected by user"
    )


async def test_forbidden_rule_and_never_policy(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    (home / "rules").mkdir()
    (home / "rules" / "team.rules").write_text(
        'prefix_rule(pattern=["git", ["push", "reset"]], decision="forbidden", justification="not from the agent")\n'
    )
    fake.add(Reply([ev_created(), ev_shell_command("g", "git push origin main", login=False),
                    ev_shell_command("r", "rm -rf build", login=False), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "never")
    await turn(sess, lambda m: pytest.fail("never must not ask"))  # type: ignore[arg-type, return-value]
    await sess.close()
    out = outputs(fake)
    assert out["g"] == "`/bin/bash -c 'git push origin main'` rejected: not from the agent"
    assert out["r"] == "`/bin/bash -c 'rm -rf build'` looks destructive and approval policy is never"


async def test_patch_outside_roots_needs_approval(home: Path, fake: FakeResponsesServer, workspace: Path,
                                                  outside: Path) -> None:  # fmt: skip
    patch = f"*** Begin Patch\n*** Add File: {outside}/notes.md\n+hello\n*** End Patch"
    fake.add(Reply([ev_created(), ev_custom_tool_call("p1", "apply_patch", patch), ev_completed()]),
             Reply(message_turn("done")))  # fmt: skip
    sess = session(home, fake, workspace, "on-request")
    asked: list[p.EventMsg] = []
    await turn(sess, lambda m: asked.append(m) or "approved")  # type: ignore[func-returns-value]
    await sess.close()
    (req,) = asked
    assert isinstance(req, p.ApplyPatchApprovalRequest) and str(outside / "notes.md") in req.changes
    assert (outside / "notes.md").read_text() == "hello\n"


def test_bad_rules_file_is_a_clear_error(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    from tests.conftest import run_cli

    write_config(home, fake.base_url)
    (home / "rules").mkdir()
    (home / "rules" / "x.rules").write_text("import os\n")
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 1 and "x.rules:1: only prefix_rule(...) calls are allowed" in res.stderr
    res_ignored = run_cli("exec", "--ignore-rules", "--json", "hi", cwd=workspace)
    assert "rules" not in res_ignored.stderr
