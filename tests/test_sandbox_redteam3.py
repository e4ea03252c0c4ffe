"""Escapes the third red-team review found (git discovery, re-resolved roots, covers that do not
survive a rename, planted programs the agent runs), each reproduced before its fix with its control.
Earlier rounds: test_sandbox_redteam.py; the main corpus: test_sandbox_escapes.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codexbro.config.types import SandboxWorkspaceWrite, ShellEnvironmentPolicy
from codexbro.records import replace
from codexbro.sandbox.policy import spec_for
from codexbro.tools.base import ToolCall, ToolContext
from tests.sandbox_support import FULL, WORKING, ctx_for, end_session, policy_params, router, sh

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")
IDENT = ["-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "protocol.file.allow=always"]


def user_git(cwd: Path, *args: str) -> str:
    """What the user (an IDE, a shell prompt) runs later, outside any sandbox."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def planted_gitdir_script(gitdir: str, worktree: Path, marker: Path) -> str:
    return (
        f"mkdir -p {gitdir}/objects {gitdir}/refs/heads && echo 'ref: refs/heads/main' > {gitdir}/HEAD && "
        f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = {worktree}\\n"
        f'\\tfsmonitor = "touch {marker}; false"\\n\' > {gitdir}/config'
    )


# ---- git: submodules, a bare repository at the top, paths the config names -------------------------


@needs_git
@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
@pytest.mark.parametrize("index_version", ["2", "4"])
async def test_a_submodules_git_file_cannot_be_redirected(
    mode: str, backend: str, index_version: str, tmp_path: Path
) -> None:
    lib, ws, marker = tmp_path / "lib", tmp_path / "ws", tmp_path / "PWNED"
    subprocess.run(["git", "init", "-q", str(lib)], check=True)
    subprocess.run(["git", "-C", str(lib), *IDENT, "commit", "-q", "--allow-empty", "-m", "i"], check=True)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run(["git", "-C", str(ws), *IDENT, "submodule", "add", "-q", str(lib), "vendor/lib"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["git", "-C", str(ws), *IDENT, "commit", "-qm", "s"], check=True)
    subprocess.run(["git", "-C", str(ws), "update-index", "--index-version", index_version], check=True)
    script = planted_gitdir_script("build/g", ws / "vendor" / "lib", marker)
    attacks = [f"echo 'gitdir: {ws}/build/g' > vendor/lib/.git",  # rewrite it
               f"mv vendor v2 && mkdir -p vendor/lib && echo 'gitdir: {ws}/build/g' > vendor/lib/.git"]  # fmt: skip
    for attack in attacks:
        _code, out = await sh(ctx_for(mode, ws, backend), f"{script} && {attack}; echo edit > vendor/lib/x")
        await end_session()
        user_git(ws, "status", "--short")
        if mode == FULL:
            assert marker.exists(), out
            return
        assert not marker.exists(), out
        if mode == "workspace-write":
            assert (ws / "vendor" / "lib" / "x").exists(), out  # the submodule's files stay writable


@needs_git
@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_a_workspace_that_is_no_repository_cannot_become_a_bare_one(
    mode: str, backend: str, tmp_path: Path
) -> None:
    ws, marker = tmp_path / "ws", tmp_path / "PWNED"
    ws.mkdir()
    _code, out = await sh(ctx_for(mode, ws, backend), planted_gitdir_script(".", ws, marker))
    user_git(ws, "status")  # during the session
    await end_session()
    user_git(ws, "status")  # after it
    assert marker.exists() == (mode == FULL), out
    assert not (ws / "HEAD").exists() or mode == FULL  # the placeholder is gone with the session


@needs_git
@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_a_hooks_path_in_the_work_tree_is_read_only(mode: str, backend: str, tmp_path: Path) -> None:
    """husky's `core.hooksPath = .husky/_`: a hook written there runs on the user's next commit."""
    ws, marker = tmp_path / "ws", tmp_path / "PWNED"
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / ".husky" / "_").mkdir(parents=True)
    subprocess.run(["git", "-C", str(ws), "config", "core.hooksPath", ".husky/_"], check=True)
    hook = f"printf '#!/bin/sh\\ntouch {marker}\\n' > .husky/_/pre-commit && chmod +x .husky/_/pre-commit"
    _code, out = await sh(ctx_for(mode, ws, backend), hook)
    await end_session()
    subprocess.run(
        ["git", "-C", str(ws), *IDENT, "commit", "-q", "--allow-empty", "-m", "x"], capture_output=True
    )
    assert marker.exists() == (mode == FULL), out


def test_the_index_reader_finds_gitlinks_as_git_does(tmp_path: Path) -> None:
    if GIT is None:
        pytest.skip("git is not installed")
    from codexbro.sandbox.gitguard import gitlinks

    lib, ws = tmp_path / "lib", tmp_path / "ws"
    subprocess.run(["git", "init", "-q", str(lib)], check=True)
    subprocess.run(["git", "-C", str(lib), *IDENT, "commit", "-q", "--allow-empty", "-m", "i"], check=True)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    for name in ("a.txt", "dir/b.txt", "dir/deeper/c.txt"):
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(name)
    for sub in ("dir/sub-one", "zz/sub-two"):
        subprocess.run(["git", "-C", str(ws), *IDENT, "submodule", "add", "-q", str(lib), sub],
                       check=True, capture_output=True)  # fmt: skip
    subprocess.run(["git", "-C", str(ws), "add", "-A"], check=True)
    for version in ("2", "3", "4"):
        subprocess.run(["git", "-C", str(ws), "update-index", "--index-version", version], check=True)
        assert gitlinks(ws / ".git" / "index") == ["dir/sub-one", "zz/sub-two"], version


# ---- roots that are re-resolved each turn ---------------------------------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_a_configured_root_cannot_be_re_pointed_between_turns(mode: str, backend: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "real").mkdir(parents=True)
    (ws / "direct").mkdir()
    outside.mkdir()
    (ws / "shared").symlink_to(ws / "real")
    monkeypatch.setenv("TMPDIR", str(ws / "tmp"))  # does not exist yet
    sww = SandboxWorkspaceWrite(writable_roots=(str(ws / "shared"), str(ws / "later"), str(ws / "direct")),
                                exclude_slash_tmp=True, exclude_tmpdir_env_var=False)  # fmt: skip

    def turn() -> ToolContext:  # what a session builds at each turn
        return ToolContext(cwd=ws, turn_id="t", sandbox_mode=mode, approval_policy="never",
                           sandbox_workspace_write=sww, env_policy=ShellEnvironmentPolicy(),
                           sandbox=spec_for(mode, sww, ws, None),
                           sandbox_backend=backend if backend != "none" else "auto")  # fmt: skip

    await sh(turn(), f"ln -sfn {outside} shared; ln -s {outside} later; ln -s {outside} tmp; "
                     f"mv direct direct.old; ln -s {outside} direct; true")  # fmt: skip
    await end_session()
    _code, out = await sh(turn(), f"echo pwn > {outside}/owned; echo done")
    assert (outside / "owned").exists() == (mode == FULL), out


# ---- the agent's home: reached through a link, covered as a whole ----------------------------------


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_a_home_reached_through_a_link_in_the_workspace_cannot_be_replaced(
    mode: str, backend: str, tmp_path: Path
) -> None:
    ws, real_home = tmp_path / "ws", tmp_path / "dotfiles" / "codexbro"
    real_home.mkdir(parents=True)
    (ws / "cfg").mkdir(parents=True)
    (ws / "cfg" / "codexbro").symlink_to(real_home)
    home = ws / "cfg" / "codexbro"
    ctx = ctx_for(mode, ws, backend, home=home)
    _code, out = await sh(ctx, "rm cfg/codexbro && mkdir -p cfg/codexbro/rules && "
                               "echo 'prefix_rule(pattern=[\"bash\"], decision=\"allow\")' > cfg/codexbro/rules/x.rules")  # fmt: skip
    assert (ws / "cfg" / "codexbro").is_symlink() == (mode != FULL), out
    if mode == "workspace-write" and backend == "landlock":
        assert "inside a writable root" in out, out  # refused: landlock cannot keep it


@pytest.mark.parametrize(("mode", "backend"), policy_params())
async def test_a_credential_file_replaced_by_rename_stays_hidden(
    mode: str, backend: str, tmp_path: Path
) -> None:
    """The workspace lies inside the home; a token refresh saves auth.json by rename meanwhile."""
    from codexbro.auth import storage

    home = tmp_path / "home"
    ws = home / "work"
    ws.mkdir(parents=True)
    (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": "sk-before-rename"}))
    ctx = ctx_for(mode, ws, backend, home=home)
    _code, first = await sh(ctx, "cat ../auth.json; echo; echo x > mine.txt; cat mine.txt")
    storage.save(home, storage.AuthFile("apikey", "sk-after-rename-0123456789", None, None))
    _code, second = await sh(ctx, "cat ../auth.json")
    if mode == FULL:
        assert "sk-after-rename" in second
    else:
        assert "sk-before" not in first and "sk-after-rename" not in second, (first, second)
        if mode == "workspace-write" and backend != "landlock":
            assert "x" in first.split("Output:", 1)[1]  # the workspace inside the home stays usable


# ---- programs the agent runs: bwrap, python -m, an approved escalation -----------------------------


async def test_a_bwrap_planted_on_the_path_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "bubblewrap" not in WORKING:
        pytest.skip("the bubblewrap backend is unavailable here")
    from codexbro.sandbox import linux

    ws, marker = tmp_path / "ws", tmp_path / "PWNED"
    (ws / ".venv" / "bin").mkdir(parents=True)
    fake = ws / ".venv" / "bin" / "bwrap"
    fake.write_text(f'#!/bin/sh\ntouch {marker}\nexec /usr/bin/bwrap "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{ws / '.venv' / 'bin'}:{os.environ['PATH']}")
    assert shutil.which("bwrap") == str(fake)  # the control: a PATH lookup finds the planted one
    code, out = await sh(ctx_for("workspace-write", ws, "bubblewrap"), "echo ok")
    assert code == 0 and not marker.exists() and linux.bwrap_path() != str(fake), out


def test_python_m_codexbro_never_imports_from_the_working_directory(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    (tmp_path / "argparse.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n")
    control = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, ''); import argparse"],
                             cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert control.returncode == 9 and marker.exists()
    marker.unlink()
    done = subprocess.run([sys.executable, "-m", "codexbro", "--version"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONSAFEPATH": ""})  # fmt: skip
    assert done.returncode == 0 and not marker.exists(), done.stderr


@pytest.mark.parametrize(("mode", "backend"), policy_params(require="writes"))
async def test_an_escalation_names_a_program_that_lies_in_a_writable_root(
    mode: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `git` planted first on PATH, then an escalated `git status`: the question names the file,
    and an earlier "for the session" approval of `git status` does not run it without asking."""
    from codexbro.sandbox.exec_policy import ApprovalStore

    ws = tmp_path / "ws"
    (ws / ".venv" / "bin").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{ws / '.venv' / 'bin'}:{os.environ['PATH']}")
    (ws / ".venv" / "bin" / "git").write_text('#!/bin/sh\nexec /usr/bin/git "$@"\n')
    (ws / ".venv" / "bin" / "git").chmod(0o755)
    asked: list[str] = []

    async def approve(request: object) -> str:
        asked.append(str(getattr(request, "reason", "")))
        return "approved"

    store = ApprovalStore()
    store.add(["git", "status"], ws)
    ctx = replace(ctx_for(mode, ws, backend, approval="on-request"), request_approval=approve,
                              approvals=store)  # fmt: skip
    call = ToolCall("g", "shell", "function", arguments=json.dumps(
        {"command": ["git", "status"], "sandbox_permissions": "require_escalated", "justification": "state"}))  # fmt: skip
    await router().dispatch(call, ctx)
    if mode == FULL:
        assert asked == []  # no sandbox, nothing to escalate from
    else:
        assert len(asked) == 1 and f"is {ws / '.venv' / 'bin' / 'git'}, inside a writable root" in asked[0], (
            asked
        )


# ---- landlock: the user's terminals ----------------------------------------------------------------


async def test_landlock_commands_cannot_read_the_users_terminal(tmp_path: Path) -> None:
    if "landlock" not in WORKING:
        pytest.skip("the landlock backend is unavailable here")
    import pty

    ws = tmp_path / "ws"
    ws.mkdir()
    master, slave = pty.openpty()
    try:
        name = os.ttyname(slave)
        for mode in (FULL, "read-only", "workspace-write"):
            os.write(master, b"hunter2\n")
            _code, out = await sh(ctx_for(mode, ws, "landlock" if mode != FULL else "none"),
                                  f"timeout 2 head -c 7 {name}; echo")  # fmt: skip
            assert ("hunter2" in out) == (mode == FULL), (mode, out)
            if mode == FULL:
                continue
            os.set_blocking(slave, False)  # what the sandboxed read left unread
            with contextlib.suppress(BlockingIOError):
                os.read(slave, 100)
            os.set_blocking(slave, True)
    finally:
        os.close(master)
        os.close(slave)


# ---- the agent's own credentials in the tools' environment, old kernels' mount table ---------------


def test_every_providers_credential_variable_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codexbro.config.loader import Overrides, load_config
    from codexbro.tools.exec_env import build_env

    home = Path(os.environ["CODEXBRO_HOME"])
    (home / "config.toml").write_text(
        '[model_providers.gw]\nname = "gw"\nbase_url = "http://127.0.0.1:9/v1"\nenv_key = "LLM_GATEWAY_AUTH"\n'
        'env_http_headers = { "x-org" = "GW_ORG_HANDLE" }\n[shell_environment_policy]\nignore_default_excludes = true\n'
    )
    monkeypatch.setenv("LLM_GATEWAY_AUTH", "gw-secret")
    monkeypatch.setenv("GW_ORG_HANDLE", "org-secret")
    monkeypatch.setenv("HARMLESS", "kept")
    env = build_env(load_config(Overrides(cwd=tmp_path)).shell_environment_policy)
    assert "LLM_GATEWAY_AUTH" not in env and "GW_ORG_HANDLE" not in env and env["HARMLESS"] == "kept"


def test_mount_points_with_non_ascii_and_escaped_names_are_read_exactly() -> None:
    from codexbro.sandbox.namespaces import _unescape

    assert _unescape(b"/tmp/a\\040b\\011c/j\xc3\xb6rg\\134x") == "/tmp/a b\tc/jörg\\x"
