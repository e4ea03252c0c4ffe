"""`codexbro cloud` end to end: the CLI in a subprocess, the loopback ChatGPT-backend fake (shapes
as 0.169 reads them), real git work trees for `apply`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.chatgpt_backend import FakeChatGPTBackend, diff_for
from tests.fakes.responses_server import FakeResponsesServer, Recorded
from tests.test_auth import jwt, write_chatgpt_auth


@pytest.fixture
def backend(home: Path, fake: FakeResponsesServer) -> FakeChatGPTBackend:
    (home / "config.toml").write_text(f'chatgpt_base_url = "http://127.0.0.1:{fake.port}/backend-api/"\n')
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) + 3600}))
    return FakeChatGPTBackend(fake)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    git(repo, "remote", "add", "origin", "https://github.com/acme/widgets.git")
    (repo / "hello.txt").write_text("hello world\n")
    (repo / "other.txt").write_text("one\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    return repo


def test_list_as_upstream_prints_it(backend: FakeChatGPTBackend) -> None:
    backend.add_task("task_e_1", "Change world to codex", diff_for("hello.txt", "hello world", "hello codex"))
    backend.add_task("task_e_2", "Pending work", None, "in_progress")
    backend.cursor = "cur_next_1"
    res = run_cli("cloud", "list")
    assert res.code == 0, res.stderr
    blocks = res.stdout.strip().split("\n\n")
    assert blocks[0].splitlines() == [
        f"http://127.0.0.1:{backend.fake.port}/codex/tasks/task_e_1",
        "  [READY] Change world to codex",
        "  acme/widgets  •  10m ago",
        "  +1/-1 • 1 file",
    ]
    assert blocks[1].splitlines()[1] == "  [PENDING] Pending work"
    assert blocks[-1] == "To fetch the next page, run codexbro cloud list --cursor=cur_next_1"
    listed = backend.seen[-1].path
    assert listed.endswith("/wham/tasks/list?limit=20&task_filter=current")
    doc = json.loads(run_cli("cloud", "list", "--json", "--limit", "5", "--cursor", "cur next/1").stdout)
    assert doc["cursor"] == "cur_next_1" and doc["tasks"][0]["status"] == "ready"
    assert doc["tasks"][0]["summary"] == {"files_changed": 1, "lines_added": 1, "lines_removed": 1}
    assert backend.seen[-1].path.endswith("?limit=5&task_filter=current&cursor=cur%20next%2F1")
    bad = run_cli("cloud", "list", "--limit", "21")
    assert bad.code == 2 and "limit must be between 1 and 20" in bad.stderr


def test_list_filters_by_environment_label_and_empty_lists(backend: FakeChatGPTBackend) -> None:
    res = run_cli("cloud", "list", "--env", "ACME/Gadgets")
    assert res.code == 0 and res.stdout.strip() == "No tasks found."
    assert backend.seen[-1].path.endswith("task_filter=current&environment_id=env_def")
    assert json.loads(run_cli("cloud", "list", "--json").stdout) == {"tasks": [], "cursor": None}
    unknown = run_cli("cloud", "list", "--env", "nope")
    assert unknown.code == 1 and "environment 'nope' not found" in unknown.stderr
    backend.environments.clear()
    empty = run_cli("cloud", "exec", "--env", "x", "do it")
    assert empty.code == 1 and "no cloud environments are available" in empty.stderr


def test_status_exits_1_unless_ready(backend: FakeChatGPTBackend) -> None:
    backend.add_task("task_e_1", "Done", diff_for("hello.txt", "a", "b"))
    backend.add_task("task_e_2", "Broken", None, "failed",
                     error={"code": "ENV_SETUP_FAILED", "message": "setup script exited 1"})  # fmt: skip
    ok = run_cli("cloud", "status", "https://chatgpt.com/codex/tasks/task_e_1?x=1#frag")
    assert ok.code == 0, ok.stderr
    assert ok.stdout.splitlines() == ["[READY] Done", "acme/widgets  •  10m ago", "+1/-1 • 1 file"]
    failed = run_cli("cloud", "status", "task_e_2")
    assert failed.code == 1 and failed.stdout.startswith("[ERROR] Broken")
    assert "Task failed: ENV_SETUP_FAILED: setup script exited 1" in failed.stdout
    doc = json.loads(run_cli("cloud", "status", "--json", "task_e_1").stdout)
    assert doc["prompt"] == "please: Done" and doc["messages"] == ["Did: Done"]


def test_diff_and_its_attempts(backend: FakeChatGPTBackend) -> None:
    main, second = (
        diff_for("hello.txt", "hello world", "hello codex"),
        diff_for("hello.txt", "hello world", "hi"),
    )
    backend.add_task("task_e_1", "Best of three", main, siblings=[(2, None), (1, second)])
    res = run_cli("cloud", "diff", "task_e_1")
    assert res.code == 0 and res.stdout == main  # piped: byte for byte, ready for `git apply`
    assert run_cli("cloud", "diff", "task_e_1", "--attempt", "2").stdout == second
    beyond = run_cli("cloud", "diff", "task_e_1", "--attempt", "3")
    assert beyond.code == 1 and "attempt 3 is not available; only 2 attempt(s) found" in beyond.stderr
    assert run_cli("cloud", "diff", "task_e_1", "--attempt", "5").code == 2
    paths = [p.split("?")[0] for p in backend.paths()]
    assert paths[-2:] == [
        "/backend-api/wham/tasks/task_e_1",
        "/backend-api/wham/tasks/task_e_1/turns/turn_main/sibling_turns",
    ]
    backend.add_task("task_e_2", "Still running", None, "in_progress")
    none = run_cli("cloud", "diff", "task_e_2")
    assert none.code == 1 and "no diff available for task task_e_2; it may still be running" in none.stderr


def test_apply_all_or_nothing_onto_a_real_work_tree(backend: FakeChatGPTBackend, repo: Path) -> None:
    backend.add_task("task_e_1", "Clean", diff_for("hello.txt", "hello world", "hello codex"))
    res = run_cli("cloud", "apply", "task_e_1", cwd=repo)
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines() == ["Applied task task_e_1 locally (1 file)", "  hello.txt"]
    assert (repo / "hello.txt").read_text() == "hello codex\n"
    assert git(repo, "status", "--porcelain") == " M hello.txt\n"  # changed, nothing staged
    # A diff that only partly fits changes nothing and names the file that does not fit.
    git(repo, "checkout", "-q", "--", ".")
    (repo / "other.txt").write_text("changed locally\n")
    two = diff_for("hello.txt", "hello world", "hello codex") + diff_for("other.txt", "one", "two")
    backend.add_task("task_e_2", "Conflicting", two)
    refused = run_cli("cloud", "apply", "task_e_2", cwd=repo)
    assert refused.code == 1
    assert "does not apply here; nothing was changed" in refused.stdout
    assert "other.txt: its lines have changed here" in refused.stdout and "--3way" in refused.stdout
    assert (repo / "hello.txt").read_text() == "hello world\n"  # not even the file that would fit
    assert (repo / "other.txt").read_text() == "changed locally\n"
    check = run_cli("cloud", "apply", "task_e_1", "--check", cwd=repo)
    assert check.code == 0 and "Preflight passed" in check.stdout
    assert (repo / "hello.txt").read_text() == "hello world\n"


def test_apply_3way_leaves_listed_conflicts_and_the_index_alone(
    backend: FakeChatGPTBackend, repo: Path
) -> None:
    blobs = (
        git(repo, "rev-parse", "HEAD:other.txt").strip() + ".." + git(repo, "hash-object", "--stdin").strip()
    )
    two = diff_for("hello.txt", "hello world", "hello codex") + diff_for("other.txt", "one", "two", blobs)
    backend.add_task("task_e_2", "Conflicting", two)
    (repo / "other.txt").write_text("changed locally\n")
    git(repo, "commit", "-qam", "local change")  # the diff's preimage blob still exists: a real 3-way merge
    res = run_cli("cloud", "apply", "task_e_2", "--3way", cwd=repo)
    assert res.code == 1, res.stdout + res.stderr
    assert "with conflicts (applied=1, conflicts=1)" in res.stdout and "conflict  other.txt" in res.stdout
    assert (repo / "hello.txt").read_text() == "hello codex\n"
    assert "<<<<<<<" in (repo / "other.txt").read_text()
    assert git(repo, "diff", "--cached", "--name-only") == ""  # the user's staging area untouched


def test_apply_outside_a_repo_and_a_non_diff(backend: FakeChatGPTBackend, tmp_path: Path) -> None:
    backend.add_task("task_e_1", "Clean", diff_for("hello.txt", "a", "b"))
    res = run_cli("cloud", "apply", "task_e_1", cwd=tmp_path)
    assert res.code == 1 and "is not inside a git work tree" in res.stderr
    backend.add_task("task_e_3", "Codex patch", "*** Begin Patch\n*** End Patch\n")
    odd = run_cli("cloud", "apply", "task_e_3", cwd=tmp_path)
    assert odd.code == 1 and "not a unified git diff" in odd.stderr


def test_exec_picks_the_environment_from_the_remote(backend: FakeChatGPTBackend, repo: Path) -> None:
    backend.add_repo("acme/widgets", [backend.environments[0]])
    res = run_cli("cloud", "exec", "Fix the bug", cwd=repo)
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == f"http://127.0.0.1:{backend.fake.port}/codex/tasks/task_e_new1"
    post = next(r for r in backend.seen if r.method == "POST")
    assert post.body == {"new_task": {"environment_id": "env_abc", "branch": "main", "run_environment_in_qa_mode": False},
                         "input_items": [{"type": "message", "role": "user",
                                          "content": [{"content_type": "text", "text": "Fix the bug"}]}]}  # fmt: skip
    assert any(p.endswith("/wham/environments/by-repo/github/acme/widgets") for p in backend.paths())
    best = run_cli("cloud", "exec", "--env", "acme/gadgets", "--attempts", "3", "--branch", "dev", "-",
                   cwd=repo, input="from stdin\n")  # fmt: skip
    assert best.code == 0, best.stderr
    post = [r for r in backend.seen if r.method == "POST"][-1]
    assert post.body["metadata"] == {"best_of_n": 3} and post.body["new_task"]["environment_id"] == "env_def"
    assert (
        post.body["new_task"]["branch"] == "dev"
        and post.body["input_items"][0]["content"][0]["text"] == "from stdin\n"
    )
    empty = run_cli("cloud", "exec", cwd=repo, input="")
    assert empty.code == 1 and "no query provided via stdin" in empty.stderr


def test_envs_say_why_they_match(backend: FakeChatGPTBackend, repo: Path) -> None:
    backend.add_repo("acme/widgets", [backend.environments[0]])
    res = run_cli("cloud", "envs", cwd=repo)
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1].startswith("env_abc") and "(pinned)" in lines[1]
    assert "matches this repository's remote github.com/acme/widgets" in lines[1]
    assert "in your workspace's list" in lines[2]
    doc = json.loads(run_cli("cloud", "envs", "--json", cwd=repo).stdout)
    assert [e["id"] for e in doc["environments"]] == ["env_abc", "env_def"]


def test_backend_errors_expired_login_403_and_html(backend: FakeChatGPTBackend, home: Path) -> None:
    fresh = jwt({"exp": int(time.time()) + 7200, "n": 7})
    calls = {"n": 0}

    def tasks(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        if rec.headers["authorization"] != f"Bearer {fresh}":
            return 401, {"content-type": "application/json"}, b'{"detail": "token expired"}'
        return 200, {"content-type": "application/json"}, b'{"items": [], "cursor": null}'

    backend.fake.route("GET", "/backend-api/wham/tasks/list", tasks)
    backend.fake.route("POST", "/oauth/token", lambda rec: (200, {"content-type": "application/json"},
                                                            json.dumps({"access_token": fresh}).encode()))  # fmt: skip
    env = {"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": f"http://127.0.0.1:{backend.fake.port}/oauth/token"}
    res = run_cli("cloud", "list", env=env)
    assert res.code == 0 and res.stdout.strip() == "No tasks found." and calls["n"] == 2, res.stderr
    assert json.loads((home / "auth.json").read_text())["tokens"]["access_token"] == fresh
    backend.fail["/wham/environments"] = (403, {"content-type": "application/json"},
                                          b'{"detail": "Your workspace does not have access to Codex cloud"}')  # fmt: skip
    denied = run_cli("cloud", "envs")
    assert denied.code == 1 and "HTTP 403" in denied.stderr and "does not have access" in denied.stderr
    backend.add_task("task_e_1", "x", None)
    backend.fail["/wham/tasks/task_e_1"] = (200, {"content-type": "text/html"}, b"<html>Sign in</html>")
    html = run_cli("cloud", "status", "task_e_1")
    assert html.code == 1 and "an HTML page instead of JSON" in html.stderr
    assert run_cli("cloud", "status", "../../etc").code == 1


async def test_the_tui_tasks_view(home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    """`/cloud` in the TUI: the task list, then one task with its diff (a ChatGPT login)."""
    pytest.importorskip("textual", reason="textual (a base dependency) is not installed")
    import asyncio

    from codexbro.composition import SessionOptions, start_session
    from codexbro.config.loader import Overrides, load_config
    from codexbro.tui import cells
    from codexbro.tui.app import CodexbroApp
    from tests.conftest import write_config

    write_config(
        home, fake.base_url, extra=f'chatgpt_base_url = "http://127.0.0.1:{fake.port}/backend-api/"\n'
    )
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) + 3600}))
    backend = FakeChatGPTBackend(fake)
    backend.add_task("task_e_1", "Change world to codex", diff_for("hello.txt", "hello world", "hello codex"))
    config = load_config(Overrides(cwd=workspace, flags={"sandbox_mode": "read-only"}))
    app = CodexbroApp(start_session(config, SessionOptions(interactive=True)))

    async def until(pilot: object, check: object) -> None:
        async with asyncio.timeout(20):
            while not check():  # type: ignore[operator]
                await pilot.pause(0.05)  # type: ignore[attr-defined]

    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"/cloud", "enter")
        await until(
            pilot, lambda: any("[READY] Change world" in str(c.render()) for c in app.query(cells.NoteCell))
        )
        await pilot.press(*"/cloud task_e_1", "enter")
        await until(pilot, lambda: list(app.query(cells.DiffTextCell)))
        (shown,) = app.query(cells.DiffTextCell)
        assert "+hello codex" in shown.diff
        assert fake.bodies() == []  # nothing went to the model
    await app.session.close()


def test_plugin_list_shows_what_each_provides(backend: FakeChatGPTBackend) -> None:
    linear = {"id": "plugins~Plugin_linear", "name": "linear", "scope": "GLOBAL", "installation_policy": "AVAILABLE",
              "authentication_policy": "ON_USE", "enabled": True,
              "release": {"version": "1.2.0", "display_name": "Linear", "description": "Track work in Linear",
                          "app_ids": ["asdk_app_linear"], "interface": {"capabilities": ["Interactive"]},
                          "skills": [{"name": "linear-triage", "description": "triage issues"}]}}  # fmt: skip
    github = {**linear, "id": "plugins~Plugin_github", "name": "github",
              "release": {"version": "2.0.0", "display_name": "GitHub", "description": "Repos and PRs"}}  # fmt: skip
    empty = run_cli("plugin", "list")
    assert empty.code == 0 and empty.stdout.strip() == "No marketplace plugins found."
    backend.installed = [linear]
    backend.plugins = [linear, github]
    res = run_cli("plugin", "list", "--available")
    assert res.code == 0, res.stderr
    rows = res.stdout.splitlines()
    assert rows[0] == "Marketplace `openai-curated-remote`"
    linear_row = next(r for r in rows if r.startswith("linear@"))
    assert "installed, enabled" in linear_row and "1.2.0" in linear_row
    assert "skills: linear-triage; apps: asdk_app_linear; capabilities: Interactive" in linear_row
    assert (
        "not installed" in next(r for r in rows if r.startswith("github@")) and "Repos and PRs" in res.stdout
    )
    listed = [r for r in backend.seen if "/ps/plugins/" in r.path]
    assert all(r.headers.get("oai-product-sku") == "codex" for r in listed)
    assert any(r.path.endswith("/ps/plugins/installed?scope=GLOBAL&limit=200") for r in listed)
    doc = json.loads(run_cli("plugin", "list", "--json").stdout)
    assert [e["pluginId"] for e in doc["installed"]] == ["linear@openai-curated-remote"] and doc[
        "available"
    ] == []
    backend.fail["/ps/plugins/installed"] = (
        403,
        {"content-type": "application/json"},
        b'{"detail": "no access"}',
    )
    denied = run_cli("plugin", "list")
    assert denied.code == 1 and "HTTP 403" in denied.stderr


def test_routes_show_the_ecosystem_as_used_under_a_chatgpt_login(backend: FakeChatGPTBackend) -> None:
    shown = {r["name"]: r["status"] for r in json.loads(run_cli("routes", "--json").stdout)}
    for name in ("wham.tasks.list", "wham.tasks.get", "wham.tasks.sibling_turns", "wham.tasks.create",
                 "wham.environments", "wham.environments.by_repo", "wham.config.bundle",
                 "wham.config.requirements", "plugins.list", "plugins.installed"):  # fmt: skip
        assert shown[name] == "used", (name, shown[name])
