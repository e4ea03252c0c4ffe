"""The interactive TUI (issue 16), driven by Textual's pilot against the loopback fake server:
streaming, tool calls with an approval approved and one denied, interrupt, a slash command; and the
real binary refusing to start without a terminal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual", reason="textual (a base dependency) is not installed")

from codexbro.composition import SessionOptions, start_session
from codexbro.config.loader import Overrides, load_config
from codexbro.tui import cells
from codexbro.tui.app import CodexbroApp
from codexbro.tui.dialogs import ApprovalScreen
from tests.conftest import run_cli, write_config
from tests.fakes.events import (
    ev_completed,
    ev_created,
    ev_message,
    ev_shell_command,
    ev_text_delta,
    message_turn,
)
from tests.fakes.responses_server import FakeResponsesServer, Reply


def make_app(home: Path, fake: FakeResponsesServer, cwd: Path, **flags: Any) -> CodexbroApp:
    write_config(home, fake.base_url)
    config = load_config(Overrides(cwd=cwd, flags={"sandbox_mode": "workspace-write", **flags}))
    return CodexbroApp(start_session(config, SessionOptions(interactive=True)))


async def until(pilot: Any, check: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await pilot.pause(0.05)


def texts(app: CodexbroApp, kind: type) -> list[Any]:
    return list(app.query(kind))


async def test_a_streamed_answer_is_shown_as_markdown(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_text_delta("Here is **the"), ev_text_delta(" plan**:\n\n- one"),
                    ev_message("Here is **the plan**:\n\n- one"), ev_completed()]))  # fmt: skip
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"say hi", "enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
        (user,) = texts(app, cells.UserCell)
        (agent,) = texts(app, cells.AgentCell)
        assert user.text == "say hi" and agent.text == "Here is **the plan**:\n\n- one"
        assert "ready" in str(app.query_one("#status").render())
    await app.session.close()
    assert fake.bodies()[0]["input"][-1]["content"][0]["text"] == "say hi"


@pytest.mark.parametrize(("key", "ran"), [("y", True), ("n", False)])
async def test_a_command_waits_for_approval(
    key: str, ran: bool, home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "touch made-by-agent.txt", login=False), ev_completed()]),
        Reply(message_turn("done")),
    )
    app = make_app(home, fake, workspace, approval_policy="untrusted")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"make a file", "enter")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press(key)
        await until(pilot, lambda: not app.running and texts(app, cells.AgentCell))
        if ran:
            (tool,) = texts(app, cells.ToolCell)
            assert tool.exit_code == 0
    await app.session.close()
    assert (workspace / "made-by-agent.txt").exists() is ran
    output = next(i for i in fake.bodies()[1]["input"] if i["type"] == "function_call_output")["output"]
    assert ran or "reject" in output.lower() or "denied" in output.lower() or "declined" in output.lower(), (
        output
    )


async def test_ctrl_c_interrupts_a_running_turn(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_shell_command("c1", "sleep 30", login=False), ev_completed()]),
             Reply(message_turn("after")))  # fmt: skip
    app = make_app(home, fake, workspace, approval_policy="never", sandbox_mode="danger-full-access")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"wait", "enter")
        await until(pilot, lambda: texts(app, cells.ToolCell))
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.running)
        notes = [str(n.render()) for n in texts(app, cells.NoteCell)]
        assert any("interrupted" in n for n in notes), notes
        await pilot.press(*"again", "enter")
        await until(pilot, lambda: any(a.text == "after" for a in texts(app, cells.AgentCell)))
    await app.session.close()


async def test_slash_status_shows_the_session(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    limits = {"x-codex-primary-used-percent": "42", "x-codex-primary-window-minutes": "300"}
    fake.add(Reply(message_turn("hi"), headers=limits))
    app = make_app(home, fake, workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"/status", "enter")
        await until(pilot, lambda: texts(app, cells.NoteCell))
        shown = str(texts(app, cells.NoteCell)[-1].render())
        assert app.session.thread_id in shown and "gpt-5.1-codex" in shown and "third_party" in shown
        assert "(none reported yet)" in shown
        assert fake.bodies() == []  # a slash command is not sent to the model
        await pilot.press(*"hello", "enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
        await pilot.press(*"/status", "enter")
        await until(pilot, lambda: "primary 42% used (5 h)" in str(texts(app, cells.NoteCell)[-1].render()))
        await pilot.resize_terminal(80, 24)  # resizes live
        await pilot.pause(0.1)
        assert app.size.width == 80 and app.query_one("#status").size.width <= 80
    await app.session.close()


def test_no_color_is_respected(
    home: Path, fake: FakeResponsesServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(home, fake, workspace)
    assert app.no_color


async def test_quit_ends_the_app(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    app = make_app(home, fake, workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"/quit", "enter")
        await until(pilot, lambda: app.return_value is not None)
    assert app.return_value == 0
    await app.session.close()


async def test_a_resumed_conversation_is_shown_and_goes_on(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    from codexbro.core.rollout import list_sessions, load_rollout

    fake.add(Reply(message_turn("first answer")), Reply(message_turn("second answer")))
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"first question", "enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
    await app.session.close()
    (summary,) = list_sessions(home, workspace)
    assert summary.first_message == "first question" and summary.thread_id == app.session.thread_id
    config = load_config(Overrides(cwd=workspace, flags={"approval_policy": "on-request"}))
    again = CodexbroApp(
        start_session(config, SessionOptions(interactive=True, resume=load_rollout(summary.path)))
    )
    async with again.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: texts(again, cells.AgentCell))
        assert [u.text for u in texts(again, cells.UserCell)] == ["first question"]
        assert [a.text for a in texts(again, cells.AgentCell)] == ["first answer"]
        await pilot.press(*"second question", "enter")
        await until(pilot, lambda: len(texts(again, cells.AgentCell)) == 2 and not again.running)
    await again.session.close()
    sent = [c["text"] for i in fake.bodies()[-1]["input"] if i.get("role") == "user" for c in i["content"]]
    assert "first question" in sent and sent[-1] == "second question"


async def test_esc_recalls_the_last_message_and_esc_again_rolls_it_back(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(
        Reply(message_turn("answer one")), Reply(message_turn("answer two")), Reply(message_turn("answer 2b"))
    )
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        for text in ("one", "two"):
            await pilot.press(*text, "enter")
            await until(
                pilot, lambda n=text: any(u.text == n for u in texts(app, cells.UserCell)) and not app.running
            )
        await until(pilot, lambda: len(texts(app, cells.AgentCell)) == 2)
        await pilot.press("escape")
        assert app.query_one("#composer").text == "two"
        await pilot.press("escape")
        await until(pilot, lambda: [u.text for u in texts(app, cells.UserCell)] == ["one"])
        assert [a.text for a in texts(app, cells.AgentCell)] == ["answer one"]
        app.query_one("#composer").text = ""
        await pilot.press(*"two again", "enter")
        await until(pilot, lambda: len(texts(app, cells.AgentCell)) == 2 and not app.running)
    await app.session.close()
    sent = [c["text"] for i in fake.bodies()[-1]["input"] if i.get("role") == "user" for c in i["content"]]
    assert "one" in sent and "two" not in sent and sent[-1] == "two again"


async def test_trace_new_and_an_image_on_the_first_message(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    import base64

    png = workspace / "dot.png"
    png.write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))  # fmt: skip
    fake.add(Reply(message_turn("a dot")))
    write_config(home, fake.base_url)
    config = load_config(Overrides(cwd=workspace, flags={"approval_policy": "on-request"}))

    def fresh() -> Any:
        return start_session(config, SessionOptions(interactive=True))

    app = CodexbroApp(fresh(), "what is this?", images=(str(png),), new_session=fresh)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
        await pilot.press(*"/trace", "enter")
        await until(
            pilot, lambda: any("responses.create" in str(n.render()) for n in texts(app, cells.NoteCell))
        )
        first = app.session.thread_id
        await pilot.press(*"/new", "enter")
        await until(pilot, lambda: app.session.thread_id != first and texts(app, cells.NoteCell))
        assert not texts(app, cells.AgentCell)  # a fresh transcript
    await app.session.close()
    content = fake.bodies()[0]["input"][-1]["content"]
    assert content[0]["text"] == "what is this?" and content[1]["image_url"].startswith(
        "data:image/png;base64,"
    )


async def test_the_trust_answer_is_remembered_in_config(home: Path, tmp_path: Path) -> None:
    from codexbro.tui.trust import TrustPrompt, remember

    folder = tmp_path / 'not "git"'
    folder.mkdir()
    (home / "config.toml").write_text('model = "gpt-5.1-codex"\n')
    prompt = TrustPrompt(folder)
    async with prompt.run_test() as pilot:
        await pilot.press("y")
    assert prompt.return_value is True
    remember(home / "config.toml", folder, "trusted")
    remember(home / "config.toml", folder, "untrusted")  # an entry already there is left alone
    config = load_config(Overrides(cwd=folder))
    assert config.raw["projects"][str(folder)]["trust_level"] == "trusted" and config.model == "gpt-5.1-codex"


def test_fuzzy_file_matching_prefers_names() -> None:
    from codexbro.tui.mentions import best, score

    files = ["src/codexbro/tui/app.py", "docs/tui.md", "tests/test_tui.py", "src/codexbro/core/session.py"]
    assert best("tuiap", files)[0] == "src/codexbro/tui/app.py"
    assert best("session", files) == ["src/codexbro/core/session.py"]
    assert score("zzz", "src/app.py") is None


async def test_an_at_mention_inserts_a_workspace_file(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    (workspace / "src").mkdir()
    (workspace / "src" / "parser.py").write_text("x = 1\n")
    (workspace / "ignored.log").write_text("noise\n")
    (workspace / ".gitignore").write_text("*.log\n")
    fake.add(Reply(message_turn("read it")))
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"look at @pars")
        await until(pilot, lambda: "src/parser.py" in str(app.query_one("#mentions").render()))
        await pilot.press("tab")
        assert app.query_one("#composer").text == "look at src/parser.py "
        await pilot.press(*"@ignored")
        await until(pilot, lambda: "no matching file" in str(app.query_one("#mentions").render()))
    await app.session.close()


async def test_model_and_approvals_change_the_next_turns(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    from codexbro.tui.choose import ChoiceScreen

    fake.add(Reply(message_turn("on the new model")))
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press(*"/approvals", "enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        presets = app.screen.query_one("OptionList")
        assert presets.highlighted == 1  # type: ignore[attr-defined]  # the preset in use (auto) is highlighted
        presets.highlighted = 0  # type: ignore[attr-defined]  # read-only
        await pilot.press("enter")
        await until(pilot, lambda: app.session.config.sandbox_mode == "read-only")
        await pilot.press(*"/model", "enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        screen = app.screen
        assert isinstance(screen, ChoiceScreen)
        target = next(i for i, (slug, _label) in enumerate(screen.options) if slug == "gpt-5.4")
        screen.query_one("OptionList").highlighted = target  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen) and app.screen is not screen)
        efforts = app.screen.options  # type: ignore[attr-defined]
        app.screen.query_one("OptionList").highlighted = [e for e, _ in efforts].index("high")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: app.session.model.slug == "gpt-5.4")
        notes = [str(n.render()) for n in texts(app, cells.NoteCell)]
        assert any("next turns: model gpt-5.4 (effort high)" in n for n in notes), notes
        await pilot.press(*"go", "enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
    await app.session.close()
    body = fake.bodies()[0]
    assert body["model"] == "gpt-5.4" and body["reasoning"]["effort"] == "high"
    assert "read-only" in json.dumps(body["input"])  # the environment context says so


async def test_resume_inside_the_app_and_feedback_instead_of_approval(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    from codexbro.core.rollout import load_rollout
    from codexbro.tui.choose import ChoiceScreen

    fake.add(
        Reply(message_turn("earlier answer")),
        Reply([ev_created(), ev_shell_command("c1", "touch nope.txt", login=False), ev_completed()]),
        Reply(message_turn("understood")),
    )
    write_config(home, fake.base_url)
    config = load_config(Overrides(cwd=workspace, flags={"approval_policy": "untrusted"}))

    def fresh() -> Any:
        return start_session(config, SessionOptions(interactive=True))

    def resumed(path: Path) -> Any:
        return start_session(config, SessionOptions(interactive=True, resume=load_rollout(path)))

    app = CodexbroApp(fresh(), new_session=fresh, resume_session=resumed)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"an earlier topic", "enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
        earlier_id = app.session.thread_id
        await pilot.press(*"/new", "enter")
        await until(pilot, lambda: app.session.thread_id != earlier_id)
        await pilot.press(*"/resume", "enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("enter")
        await until(pilot, lambda: app.session.thread_id == earlier_id and texts(app, cells.AgentCell))
        assert [u.text for u in texts(app, cells.UserCell)] == ["an earlier topic"]
        await pilot.press(*"make a file", "enter")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("d")  # no: tell the agent what to do instead
        await until(pilot, lambda: not app.running)
        await pilot.press(*"just explain it", "enter")
        await until(pilot, lambda: any(a.text == "understood" for a in texts(app, cells.AgentCell)))
    await app.session.close()
    assert not (workspace / "nope.txt").exists()
    sent = [
        c.get("text") for i in fake.bodies()[-1]["input"] if i.get("role") == "user" for c in i["content"]
    ]
    assert sent[-1] == "just explain it" and "an earlier topic" in sent


async def test_a_typed_image_path_is_attached_and_shift_enter_is_a_new_line(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    import base64

    (workspace / "shot.png").write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))  # fmt: skip
    fake.add(Reply(message_turn("seen")))
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"look", "shift+enter", *"at shot.png", "enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
    await app.session.close()
    content = fake.bodies()[0]["input"][-1]["content"]
    assert content[0]["text"] == "look\nat shot.png" and content[1]["type"] == "input_image"


async def test_a_large_paste_lands_whole_in_the_composer(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    from textual import events

    pasted = "\n".join(f"line {n}: some pasted log output" for n in range(2000))
    fake.add(Reply(message_turn("read it all")))
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        composer = app.query_one("#composer")
        app.post_message(events.Paste(pasted))  # as the driver delivers it: to the app, then the focus
        await until(pilot, lambda: composer.text == pasted)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: texts(app, cells.AgentCell) and not app.running)
    await app.session.close()
    assert fake.bodies()[0]["input"][-1]["content"][0]["text"] == pasted


async def test_composer_history_keeps_the_draft_and_typing_anywhere_lands_in_it(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply(message_turn("a")), Reply(message_turn("b")))
    app = make_app(home, fake, workspace, approval_policy="on-request")
    async with app.run_test(size=(100, 30)) as pilot:
        composer = app.query_one("#composer")
        for text in ("first", "second"):
            await pilot.press(*text, "enter")
            await until(
                pilot, lambda n=text: any(u.text == n for u in texts(app, cells.UserCell)) and not app.running
            )
        await pilot.press(*"my draft", "down")
        assert composer.text == "my draft"  # type: ignore[attr-defined]  # Down at the newest keeps it
        await pilot.press("up", "up")
        assert composer.text == "first"  # type: ignore[attr-defined]
        await pilot.press("down", "down")
        assert composer.text == "my draft"  # type: ignore[attr-defined]  # the draft comes back
        await pilot.press("up", *" again")
        assert composer.text == "second again"  # type: ignore[attr-defined]  # the cursor was at the end
        app.query_one("#transcript").focus()
        await pilot.press(*"!?")
        assert composer.text == "second again!?" and app.focused is composer  # type: ignore[attr-defined]
        composer.text = ""  # type: ignore[attr-defined]
        await pilot.press(*"/stauts", "enter")
        await until(
            pilot,
            lambda: any("unknown command /stauts" in str(n.render()) for n in texts(app, cells.NoteCell)),
        )
    await app.session.close()
    assert len(fake.bodies()) == 2  # the typo never reached the model


async def test_an_interrupt_closes_the_dialog_and_the_command_cell(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    fake.add(Reply([ev_created(), ev_shell_command("c1", "touch never.txt", login=False), ev_completed()]))
    app = make_app(home, fake, workspace, approval_policy="untrusted")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"do it", "enter")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.running and not isinstance(app.screen, ApprovalScreen))
    await app.session.close()
    assert not (workspace / "never.txt").exists()


async def test_diff_shows_changed_and_new_files(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=workspace, check=True,
                       capture_output=True)  # fmt: skip

    import shutil

    shutil.rmtree(workspace / ".git")
    git("init", "-q")
    (workspace / "kept.txt").write_text("one\n")
    git("add", "kept.txt")
    git("commit", "-qm", "start")
    (workspace / "kept.txt").write_text("two\n")
    (workspace / "fresh.txt").write_text("brand new\n")
    app = make_app(home, fake, workspace)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press(*"/diff", "enter")
        await until(pilot, lambda: texts(app, cells.PatchCell))
        changes = texts(app, cells.PatchCell)[-1].changes
    await app.session.close()
    assert changes["kept.txt"]["type"] == "update" and "+two" in changes["kept.txt"]["unified_diff"]
    assert changes["fresh.txt"] == {"type": "add", "content": "brand new\n"}


def test_without_a_terminal_it_points_to_exec(home: Path, workspace: Path) -> None:
    res = run_cli("fix the bug", cwd=workspace)
    assert res.code == 1 and "needs a terminal" in res.stderr and "codexbro exec" in res.stderr, res.stderr


TMUX = __import__("shutil").which("tmux")
SNAPSHOTS = Path(__file__).parent / "snapshots"


def matches_snapshot(name: str, shown: str, workspace: Path) -> None:
    """The screen as a user sees it (tmux's pane text), against tests/snapshots/tui-NAME.txt; what
    changes from run to run (paths, durations, ids) is masked. UPDATE_SNAPSHOTS=1 rewrites them."""
    import os
    import re

    text = shown.replace(str(workspace), "<ws>")
    text = re.sub(r"\d+\.\d s", "N.N s", text)
    text = re.sub(r"\d+ tokens", "N tokens", text)  # usage may arrive just before or after the dialog
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)
    lines = [
        ("  <a line naming the workspace>" if "<ws>" in line else line.rstrip())
        for line in text.rstrip().splitlines()
    ]
    text = "\n".join(lines) + "\n"
    path = SNAPSHOTS / f"tui-{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"the {name} screen changed:\n{text}"


@pytest.mark.skipif(TMUX is None, reason="needs tmux")
def test_the_real_binary_in_a_terminal(home: Path, fake: FakeResponsesServer) -> None:
    """End to end, as a user sees it: the binary in a tmux pane, a prompt, an approval with `y`,
    the answer on screen and the file on disk. The workspace has a fixed path, so the screens can
    be compared with their snapshots line for line."""
    import os
    import shutil
    import subprocess
    import sys
    import time

    assert TMUX is not None
    workspace = Path("/tmp/codexbro-tui-snapshot/ws")
    shutil.rmtree(workspace.parent, ignore_errors=True)
    (workspace / ".git").mkdir(parents=True)
    (workspace / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    write_config(home, fake.base_url)
    fake.add(
        Reply([ev_created(), ev_shell_command("c1", "touch from-the-tui.txt", login=False), ev_completed()]),
        Reply(message_turn("All done, the file is there.")),
    )
    sock = f"cbtest{os.getpid()}"
    env = [f"-e{k}={v}" for k, v in os.environ.items() if k.startswith(("CODEXBRO", "FAKE_", "HOME", "PATH"))]
    # The pane's own size, whatever COLUMNS/LINES the test process has.
    cmd = f"env -u COLUMNS -u LINES {sys.executable} -m codexbro -a untrusted 'make the file'; sleep 5"
    subprocess.run([TMUX, "-L", sock, "new-session", "-d", "-x", "110", "-y", "32", *env, "-c", str(workspace), cmd],
                   check=True)  # fmt: skip

    def screen() -> str:
        return subprocess.run(
            [TMUX, "-L", sock, "capture-pane", "-p", "-J"], capture_output=True, text=True
        ).stdout

    def wait_for(text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"never saw {text!r}:\n{screen()}")

    def steady() -> str:
        """The screen once it stopped changing (two captures 0.3 s apart agree)."""
        last = screen()
        for _ in range(50):
            time.sleep(0.3)
            now = screen()
            if now == last:
                return now
            last = now
        return last

    try:
        wait_for("Run this command?")
        matches_snapshot("approval", steady(), workspace)
        subprocess.run([TMUX, "-L", sock, "send-keys", "y"], check=True)
        wait_for("All done, the file is there.")
        shown = steady()
        matches_snapshot("answered", shown, workspace)
        assert "touch from-the-tui.txt" in shown
        assert (workspace / "from-the-tui.txt").exists()
        subprocess.run([TMUX, "-L", sock, "send-keys", "C-c"], check=True)
        subprocess.run([TMUX, "-L", sock, "send-keys", "C-c"], check=True)
        wait_for("continues it")  # the app left; the terminal is back to normal text
    finally:
        subprocess.run([TMUX, "-L", sock, "kill-server"], capture_output=True)


@pytest.mark.skipif(TMUX is None, reason="needs tmux")
@pytest.mark.parametrize("signame", ["TERM", "HUP", "QUIT"])
def test_a_signal_leaves_the_terminal_usable(
    signame: str, home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    import os
    import subprocess
    import sys
    import time

    assert TMUX is not None
    write_config(home, fake.base_url)
    sock = f"cbsig{os.getpid()}{signame}"
    env = [f"-e{k}={v}" for k, v in os.environ.items() if k.startswith(("CODEXBRO", "FAKE_", "HOME", "PATH"))]
    pidfile = workspace / "pid"
    cmd = f"sh -c 'echo $$ > {pidfile}; exec env -u COLUMNS -u LINES {sys.executable} -m codexbro'; stty -a | head -1; echo SHELL-IS-BACK; sleep 5"
    subprocess.run([TMUX, "-L", sock, "new-session", "-d", "-x", "100", "-y", "30", *env, "-c", str(workspace), cmd],
                   check=True)  # fmt: skip

    def screen() -> str:
        return subprocess.run([TMUX, "-L", sock, "capture-pane", "-p"], capture_output=True, text=True).stdout

    try:
        deadline = time.monotonic() + 30
        while "tokens" not in screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(int(pidfile.read_text()), getattr(__import__("signal"), f"SIG{signame}"))
        while "SHELL-IS-BACK" not in screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        shown = screen()
        assert "SHELL-IS-BACK" in shown, shown
        assert "-icanon" not in shown and "-echo " not in shown, shown  # the terminal is cooked again
    finally:
        subprocess.run([TMUX, "-L", sock, "kill-server"], capture_output=True)


def test_version_and_exec_never_import_textual(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(Reply(message_turn("fine")))
    for args in (("--version",), ("exec", "hi")):
        res = run_cli(*args, cwd=workspace, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert res.code == 0, res.stderr[-2000:]
        imported = [
            line.rsplit("|", 1)[-1].strip()
            for line in res.stderr.splitlines()
            if line.startswith("import time:")
        ]
        assert imported and not [m for m in imported if m.split(".")[0] in ("textual", "rich")], args


async def test_transcribe_puts_a_recordings_words_in_the_composer(
    home: Path, fake: FakeResponsesServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codexbro.tui.composer import Composer
    from tests.fakes.responses_server import Recorded
    from tests.test_transcribe_cli import wav

    calls: list[Recorded] = []

    def answer(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls.append(rec)
        return 200, {"content-type": "application/json"}, b'{"text": "add a test for the parser"}'

    fake.route("POST", "/v1/audio/transcriptions", answer)
    monkeypatch.setenv("CODEXBRO_API_KEY", "sk-tui")
    wav(workspace / "memo.wav")
    app = make_app(home, fake, workspace, openai_base_url=fake.base_url)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"/transcribe memo.wav", "enter")
        composer = app.query_one(Composer)
        await until(pilot, lambda: composer.text == "add a test for the parser")
        assert not fake.responses_requests()  # in the composer to edit, not sent
        composer.text = ""
        await pilot.press(*"/transcribe missing.wav", "enter")
        await until(
            pilot,
            lambda: any(
                "transcription failed: cannot read" in str(c.render()) for c in texts(app, cells.NoteCell)
            ),
        )
    assert len(calls) == 1 and calls[0].headers["authorization"] == "Bearer sk-tui"


async def test_review_runs_a_review_sub_turn(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    """``/review``: its own request (upstream's review set-up, tagged ``review``), the findings as
    a cell; the conversation itself is not touched."""
    from tests.test_exec_review import REVIEW

    fake.add(Reply(message_turn(json.dumps(REVIEW))))
    app = make_app(home, fake, workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"/review", "enter")
        await until(
            pilot, lambda: any("Review comment:" in str(c.render()) for c in texts(app, cells.NoteCell))
        )
        shown = "\n".join(str(c.render()) for c in texts(app, cells.NoteCell))
        assert "reviewing current changes" in shown and "[P1] Division by zero in ratio()" in shown
    (request,) = fake.responses_requests()
    assert request.headers["x-openai-subagent"] == "review"
    assert request.body["input"][0]["content"][0]["text"].startswith("# Review guidelines:")
