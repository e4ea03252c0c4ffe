"""Shell tools with real processes: output formats, truncation, timeouts, env policy, bytes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
from codexbro.protocol import EventMsg, ExecCommandEnd
from codexbro.tools.base import ToolCall, ToolContext
from codexbro.tools.exec_env import build_env
from codexbro.tools.handlers.shell import ShellCommandHandler, ShellHandler
from codexbro.tools.output import exec_output_freeform, truncate_text, wall_time
from codexbro.tools.router import ToolRouter


def ctx(cwd: Path, events: list[EventMsg] | None = None, policy: ShellEnvironmentPolicy | None = None,
        limit: int = 10_000) -> ToolContext:  # fmt: skip
    sink = events if events is not None else []
    return ToolContext(cwd=cwd, turn_id="t", sandbox_mode="danger-full-access", approval_policy="never",
                       sandbox_workspace_write=SandboxWorkspaceWrite(),
                       env_policy=policy or ShellEnvironmentPolicy(), truncation_limit=limit,
                       emit=sink.append)  # fmt: skip


def call(name: str, args: dict[str, object]) -> ToolCall:
    return ToolCall("c1", name, "function", arguments=json.dumps(args))


async def test_shell_command_freeform_output(tmp_path: Path) -> None:
    events: list[EventMsg] = []
    out = await ShellCommandHandler().handle(call("shell_command", {"command": "echo hi; echo err >&2; exit 2"}),
                                             ctx(tmp_path, events))  # fmt: skip
    text = out.content
    assert isinstance(text, str)
    lines = text.split("\n")
    assert lines[0] == "Exit code: 2" and lines[1].startswith("Wall time: ") and lines[2] == "Output:"
    assert "hi" in text and "err" in text and not out.success
    end = [e for e in events if isinstance(e, ExecCommandEnd)][0]
    assert end.exit_code == 2 and end.status == "failed" and "hi\n" in end.aggregated_output


async def test_shell_array_structured_output_and_workdir(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    out = await ShellHandler().handle(call("shell", {"command": ["pwd"], "workdir": "sub"}), ctx(tmp_path))
    doc = json.loads(str(out.content))
    assert doc["output"] == f"{sub}\n" and doc["metadata"]["exit_code"] == 0
    assert isinstance(doc["metadata"]["duration_seconds"], float)


async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    started = time.monotonic()
    script = f"(sleep 30; touch {tmp_path}/survived) & sleep 30"
    out = await ShellCommandHandler().handle(call("shell_command", {"command": script, "timeout_ms": 300}),
                                             ctx(tmp_path))  # fmt: skip
    assert time.monotonic() - started < 5
    assert str(out.content).startswith("Exit code: 124")
    assert "command timed out after 300 milliseconds" in str(out.content)
    time.sleep(0.2)
    assert not (tmp_path / "survived").exists()


async def test_non_utf8_and_huge_output(tmp_path: Path) -> None:
    out = await ShellCommandHandler().handle(
        call("shell_command", {"command": "printf 'ok\\xff\\xfe\\n'"}), ctx(tmp_path)
    )
    assert "ok\ufffd\ufffd" in str(out.content)
    big = await ShellCommandHandler().handle(
        call("shell_command", {"command": "seq 1 100000"}), ctx(tmp_path, limit=1000)
    )
    text = str(big.content)
    assert "Total output lines: 100000" in text and "chars truncated…" in text
    assert "\n1\n2\n3\n" in text and text.endswith("99999\n100000\n")
    assert len(text) < 1200


async def test_spawn_failure_is_reported(tmp_path: Path) -> None:
    router = ToolRouter([ShellHandler()])
    res = await router.dispatch(call("shell", {"command": ["/no/such/binary"]}), ctx(tmp_path))
    assert "failed to start '/no/such/binary'" in str(res.output.content) and not res.output.success


def test_env_policy(monkeypatch: object) -> None:
    parent = {"PATH": "/bin", "HOME": "/h", "MY_TOKEN": "t", "API_KEY": "k", "OTHER": "o", "FOO_BAR": "f"}
    assert build_env(ShellEnvironmentPolicy(), parent) == {
        "PATH": "/bin",
        "HOME": "/h",
        "OTHER": "o",
        "FOO_BAR": "f",
    }
    assert "MY_TOKEN" in build_env(ShellEnvironmentPolicy(ignore_default_excludes=True), parent)
    assert build_env(ShellEnvironmentPolicy(inherit="core"), parent) == {"PATH": "/bin", "HOME": "/h"}
    assert build_env(ShellEnvironmentPolicy(inherit="none", set={"A": "1"}), parent) == {"A": "1"}
    assert "OTHER" not in build_env(ShellEnvironmentPolicy(exclude=("oth*",)), parent)
    assert build_env(ShellEnvironmentPolicy(include_only=("PATH", "foo_*")), parent) == {
        "PATH": "/bin",
        "FOO_BAR": "f",
    }


async def test_env_policy_applies_to_spawned_process(tmp_path: Path, monkeypatch: object) -> None:
    import os

    os.environ["SECRET_THING_FOR_TEST"] = "hidden"
    try:
        out = await ShellCommandHandler().handle(
            call("shell_command", {"command": "echo [$SECRET_THING_FOR_TEST][$ADDED]", "login": False}),
            ctx(tmp_path, policy=ShellEnvironmentPolicy(set={"ADDED": "yes"})),
        )
    finally:
        del os.environ["SECRET_THING_FOR_TEST"]
    assert "[][yes]" in str(out.content)


def test_truncation_shapes() -> None:
    assert truncate_text("short", "bytes", 100) == "short"
    cut = truncate_text("a" * 50 + "b" * 50, "bytes", 20)
    assert cut.startswith("a" * 10) and cut.endswith("b" * 10) and "…80 chars truncated…" in cut
    tok = truncate_text("x" * 400, "tokens", 10)
    assert "tokens truncated…" in tok and tok.startswith("x" * 20)
    assert truncate_text("é" * 100, "bytes", 11).count("é") == 5  # never splits a character
    assert wall_time(0.0) == "0" and wall_time(1.26) == "1.3" and wall_time(2.0) == "2"
    assert exec_output_freeform("", 0, 0.0, "bytes", 10) == "Exit code: 0\nWall time: 0 seconds\nOutput:\n"


# ---- apply_patch as a command in every shell tool (issue 14.4) ---------------------------------

APPLY_FORMS = {
    "heredoc in a longer script": "echo start; apply_patch <<'EOF'\n{patch}EOF\necho done",
    "argument": "apply_patch \"$(cat <<'EOF'\n{patch}EOF\n)\" && echo done",
    "applypatch alias": "echo start && applypatch <<'EOF'\n{patch}EOF\n",
}


@pytest.mark.parametrize("form", list(APPLY_FORMS))
@pytest.mark.parametrize("tool_name", ["shell_command", "exec_command", "shell"])
async def test_apply_patch_works_as_a_command(tool_name: str, form: str, tmp_path: Path) -> None:
    """Not intercepted (more than one statement): the command runs, with codexbro's helper on PATH,
    even after a login shell's profile resets PATH (as Debian's /etc/profile does)."""
    import json as _json

    from tests.sandbox_support import ctx_for, tool

    name = f"{tool_name}-{form.split()[0]}.txt"
    patch = f"*** Begin Patch\n*** Add File: {name}\n+made\n*** End Patch\n"
    script = APPLY_FORMS[form].format(patch=patch)
    (Path(os.environ["HOME"]) / ".profile").write_text("PATH=/usr/bin:/bin; export PATH\n")  # resets PATH
    ctx = ctx_for("danger-full-access", tmp_path, "none")
    if tool_name == "shell_command":
        out = await tool(ctx, "shell_command", {"command": script})
    elif tool_name == "exec_command":
        out = await tool(ctx, "exec_command", {"cmd": script, "yield_time_ms": 5000})
    else:
        out = await tool(ctx, "shell", {"command": ["bash", "-lc", script]})
    assert (tmp_path / name).read_text() == "made\n", out
    assert "command not found" not in _json.dumps(out)
    assert shutil.which("apply_patch") is None or not shutil.which("apply_patch").startswith(sys.prefix)
