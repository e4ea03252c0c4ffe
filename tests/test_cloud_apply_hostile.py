"""`cloud apply` against hostile diffs (the server's text): each class of attack refused, with a
control showing the same diff does damage when applied with plain `git apply`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codexbro.cloud.apply import apply_diff
from codexbro.errors import UserError


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def make_repo(path: Path, *extra: str) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main", *extra)
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    (path / "hello.txt").write_text("hello world\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    return path


def plain_git_apply(repo: Path, diff: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, capture_output=True, text=True)


HELLO = "diff --git a/hello.txt b/hello.txt\n--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello world\n+hello codex\n"


def copy_from(source: str, dest: str) -> str:
    return f"diff --git a/{source} b/{dest}\nsimilarity index 100%\ncopy from {source}\ncopy to {dest}\n"


@pytest.mark.parametrize("kind", ["relative", "absolute", "gitdir"])
def test_a_copy_never_reads_outside_the_tree(tmp_path: Path, kind: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the private key\n")
    source = {"relative": "../secret.txt", "absolute": str(secret).lstrip("/"), "gitdir": ".git/config"}[kind]
    if kind == "absolute":  # git would read "/…" as the copy's source
        diff = (
            HELLO
            + f"diff --git a/{source} b/leak.txt\nsimilarity index 100%\ncopy from /{source}\ncopy to leak.txt\n"
        )
    else:
        diff = HELLO + copy_from(source, "leak.txt")
    control = make_repo(tmp_path / "control")
    assert plain_git_apply(control, diff).returncode == 0 and (control / "leak.txt").exists()  # git copies it
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UserError, match="nothing was applied"):
        apply_diff(diff, repo)
    assert not (repo / "leak.txt").exists() and (repo / "hello.txt").read_text() == "hello world\n"


def test_a_git_dir_under_another_name_is_not_written(tmp_path: Path) -> None:
    diff = ("diff --git a/.repo/hooks/post-checkout b/.repo/hooks/post-checkout\nnew file mode 100755\n"
            "--- /dev/null\n+++ b/.repo/hooks/post-checkout\n@@ -0,0 +1 @@\n+touch /tmp/pwned\n")  # fmt: skip
    control = make_repo(tmp_path / "c" / "tree", f"--separate-git-dir={tmp_path / 'c' / 'tree' / '.repo'}")
    assert plain_git_apply(control, diff).returncode == 0  # git writes into the git directory
    assert (tmp_path / "c" / "tree" / ".repo" / "hooks" / "post-checkout").exists()
    repo = make_repo(tmp_path / "r" / "tree", f"--separate-git-dir={tmp_path / 'r' / 'tree' / '.repo'}")
    with pytest.raises(UserError, match="inside git's own directory"):
        apply_diff(diff, repo)
    assert not (repo / ".repo" / "hooks" / "post-checkout").exists()


def test_a_failure_half_way_puts_everything_back(tmp_path: Path) -> None:
    """`x` and `x/y` both created: the check passes, the write fails after hello.txt and x."""
    diff = HELLO + (
        "diff --git a/x b/x\nnew file mode 100644\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+file\n"
        "diff --git a/x/y b/x/y\nnew file mode 100644\n--- /dev/null\n+++ b/x/y\n@@ -0,0 +1 @@\n+nested\n"
    )
    control = make_repo(tmp_path / "control")
    assert plain_git_apply(control, diff).returncode != 0
    assert (control / "hello.txt").read_text() == "hello codex\n"  # git left a half-applied tree
    repo = make_repo(tmp_path / "repo")
    result = apply_diff(diff, repo)
    assert result.status == "refused" and not result.ok
    assert (repo / "hello.txt").read_text() == "hello world\n" and not (repo / "x").exists()
    assert git(repo, "status", "--porcelain").stdout == ""


def test_symbolic_links_are_not_created(tmp_path: Path) -> None:
    diff = "diff --git a/passwd b/passwd\nnew file mode 120000\n--- /dev/null\n+++ b/passwd\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n"
    control = make_repo(tmp_path / "control")
    assert plain_git_apply(control, diff).returncode == 0 and (control / "passwd").is_symlink()
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UserError, match="symbolic link"):
        apply_diff(diff, repo)
    assert not (repo / "passwd").is_symlink()


def test_a_source_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key").write_text("secret\n")
    repo = make_repo(tmp_path / "repo")
    (repo / "link").symlink_to(outside)
    git(repo, "add", "link")
    git(repo, "commit", "-qm", "link")
    diff = copy_from("link/key", "leak.txt")
    with pytest.raises(UserError, match="symbolic link"):
        apply_diff(diff, repo)
    assert not (repo / "leak.txt").exists()


def test_the_report_is_gits_own_account(tmp_path: Path) -> None:
    """Renames, mode changes and quoted names are reported as git applies them, not as the
    `diff --git` line claims."""
    repo = make_repo(tmp_path / "repo")
    (repo / "other.txt").write_text("one\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "other")
    diff = (
        "diff --git a/hello.txt b/hello.txt\nsimilarity index 100%\nrename from other.txt\nrename to evil.sh\n"
        'diff --git "a/run\\033[2K.sh" "b/run\\033[2K.sh"\nnew file mode 100755\n--- /dev/null\n'
        '+++ "b/run\\033[2K.sh"\n@@ -0,0 +1 @@\n+echo hi\n'
    )
    result = apply_diff(diff, repo)
    assert result.status == "applied", result
    assert "evil.sh" in result.applied and "run\x1b[2K.sh" in result.applied
    assert any("rename other.txt => evil.sh" in line for line in result.summary)
    assert any("create mode 100755" in line for line in result.summary)


@pytest.mark.parametrize("bad", ["..", ".", "https://chatgpt.com/codex/tasks/..", ".hidden", "", "a b"])
def test_task_ids_cannot_walk_the_route(bad: str) -> None:
    from codexbro.cloud.tasks import task_id_of

    with pytest.raises(UserError):
        task_id_of(bad)


def test_the_tui_diff_cell_shows_escapes_not_runs_them() -> None:
    pytest.importorskip("textual", reason="textual (a base dependency) is not installed")
    from rich.console import Console

    from codexbro.tui.cells import DiffTextCell

    cell = DiffTextCell("+ok\n+\x1b]52;c;cHduZWQ=\x07\n+\x1b]0;title\x07\n")
    console = Console(record=True, width=80, color_system=None)
    console.print(cell.syntax)
    shown = console.export_text()
    assert "\x1b" not in shown and "\x07" not in shown and "52;c;" in shown
