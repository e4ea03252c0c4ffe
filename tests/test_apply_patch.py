"""apply_patch: upstream's 23 conformance scenarios (run as upstream's harness does), plus our own
cases for the matching fallbacks, moves, end-of-file anchors, CRLF files and heredoc detection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codexbro.apply_patch.apply import apply_hunks, commit, new_contents, seek_sequence, verify
from codexbro.apply_patch.invocation import NotExplicit, maybe_shell_patch
from codexbro.apply_patch.parser import (
    AddFile,
    InvalidHunk,
    InvalidPatch,
    PatchError,
    UpdateFile,
    parse_patch,
)

CONFORMANCE = Path(__file__).parent / "conformance" / "apply_patch"
SCENARIOS = sorted(p for p in (CONFORMANCE / "scenarios").iterdir() if p.is_dir())
OBSERVED = json.loads((CONFORMANCE / "observed_0.169.json").read_text())["results"]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """{relative path: bytes for files, None for directories}; directories count, as upstream."""
    if not root.exists():
        return {}
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = None if path.is_dir() else path.read_bytes()
    return out


def apply_patch_exe() -> list[str]:
    """The `apply_patch` command the tools' processes get (the helper script in the package)."""
    from codexbro.tools.helpers import helper_dir

    directory = helper_dir()
    assert directory is not None
    return [f"{directory}/apply_patch"]


def test_there_are_23_scenarios() -> None:
    assert len(SCENARIOS) == 23


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_conformance_scenario(scenario: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    if (scenario / "input").exists():
        shutil.copytree(scenario / "input", work)
    else:
        work.mkdir()
    patch = (scenario / "patch.txt").read_text(encoding="utf-8")
    proc = subprocess.run([*apply_patch_exe(), patch], cwd=work, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "CODEXBRO_PYTHON": sys.executable})  # fmt: skip
    assert snapshot(work) == snapshot(scenario / "expected")
    observed = OBSERVED[scenario.name]
    assert proc.returncode == observed["exit_code"]
    assert proc.stdout == observed["stdout"]
    assert proc.stderr == observed["stderr"].replace("<CWD>", str(work))


def test_patch_from_stdin_and_subcommand(tmp_path: Path) -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch\n"
    proc = subprocess.run([sys.executable, "-m", "codexbro", "apply-patch"], cwd=tmp_path, input=patch,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "Success. Updated the following files:\nA a.txt\n"
    assert (tmp_path / "a.txt").read_text() == "hello\n"


CAPTURED = Path(__file__).parent / "fixtures" / "codex-0.169"
ENDS = [
    *json.loads((CAPTURED / "apply-patch-trailing-blank-lines.json").read_text())["cases"],
    *json.loads((CAPTURED / "apply-patch-line-endings.json").read_text())["cases"],
]


@pytest.mark.parametrize("case", ENDS, ids=lambda c: repr(c["before"]))
def test_file_ends_and_line_endings_as_0_169(case: dict[str, object], tmp_path: Path) -> None:
    """Blank lines at the end of a file survive an update and an added line goes after them; in a
    file with mixed line endings untouched lines keep theirs and written lines end as the first
    line does (the real 0.169's outputs, captured). The apply-patch command runs as a subprocess."""
    (tmp_path / "f.txt").write_bytes(str(case["before"]).encode())
    proc = subprocess.run([sys.executable, "-m", "codexbro", "apply-patch", str(case["patch"])], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == case["exit_code"], proc.stderr
    assert (tmp_path / "f.txt").read_bytes().decode() == case["after"]


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def test_seek_sequence_fallbacks() -> None:
    lines = ["def f():  ", "    return 1", "x = “quoted” — dash", "\u00a0indented"]
    assert seek_sequence(lines, ["def f():"], 0, False) == 0  # trailing whitespace
    assert seek_sequence(lines, ["return 1"], 0, False) == 1  # trimmed
    assert seek_sequence(lines, ['x = "quoted" - dash'], 0, False) == 2  # unicode punctuation
    assert seek_sequence(lines, ["indented"], 0, False) == 3  # NBSP
    assert seek_sequence(lines, ["nope"], 0, False) is None
    assert seek_sequence(lines, [], 2, False) == 2
    assert seek_sequence(["a", "b", "a"], ["a"], 0, True) == 2  # eof: only the tail window
    assert seek_sequence(["a"], ["a", "b"], 0, False) is None


def test_update_with_context_eof_and_fallback(tmp_path: Path) -> None:
    f = tmp_path / "code.py"
    f.write_text(
        "class A:\n    def run(self):\n        return 1\n\nclass B:\n    def run(self):\n        return 1\n"
    )
    patch = ("*** Begin Patch\n*** Update File: code.py\n@@ class B:\n     def run(self):\n-        return 1\n"
             "+        return 2\n*** End Patch")  # fmt: skip
    apply_hunks(parse_patch(patch), tmp_path)
    assert f.read_text().endswith("class B:\n    def run(self):\n        return 2\n")
    assert "class A:\n    def run(self):\n        return 1\n" in f.read_text()
    # End-of-file anchor picks the last occurrence.
    g = tmp_path / "g.txt"
    g.write_text("x\ny\nx\n")
    apply_hunks(
        parse_patch("*** Begin Patch\n*** Update File: g.txt\n@@\n-x\n+z\n*** End of File\n*** End Patch"),
        tmp_path,
    )
    assert g.read_text() == "x\ny\nz\n"


def test_crlf_file_keeps_crlf(tmp_path: Path) -> None:
    f = tmp_path / "win.txt"
    f.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    apply_hunks(
        parse_patch("*** Begin Patch\n*** Update File: win.txt\n one\n-two\n+TWO\n*** End Patch"), tmp_path
    )
    assert f.read_bytes() == b"one\r\nTWO\r\nthree\r\n"
    # A CRLF patch against an LF file also applies (the parser drops \r).
    h = tmp_path / "unix.txt"
    h.write_text("a\nb\n")
    apply_hunks(
        parse_patch("*** Begin Patch\r\n*** Update File: unix.txt\r\n-a\r\n+A\r\n b\r\n*** End Patch\r\n"),
        tmp_path,
    )
    assert h.read_bytes() == b"A\nb\n"


def test_move_preserves_mode_and_removes_source(tmp_path: Path) -> None:
    src = tmp_path / "run.sh"
    src.write_text("#!/bin/sh\necho a\n")
    src.chmod(0o755)
    patch = "*** Begin Patch\n*** Update File: run.sh\n*** Move to: bin/run.sh\n@@\n-echo a\n+echo b\n*** End Patch"
    affected = apply_hunks(parse_patch(patch), tmp_path)
    dest = tmp_path / "bin" / "run.sh"
    assert affected.modified == ["bin/run.sh"] and not src.exists()
    assert dest.read_text() == "#!/bin/sh\necho b\n"


def test_update_keeps_file_mode(tmp_path: Path) -> None:
    f = tmp_path / "tool"
    f.write_text("v1\n")
    f.chmod(0o750)
    apply_hunks(parse_patch("*** Begin Patch\n*** Update File: tool\n-v1\n+v2\n*** End Patch"), tmp_path)
    assert f.read_text() == "v2\n" and (f.stat().st_mode & 0o777) == 0o750


def test_verify_writes_nothing_on_failure(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("same\n")
    patch = ("*** Begin Patch\n*** Add File: new.txt\n+n\n*** Update File: keep.txt\n-absent\n+x\n"
             "*** End Patch")  # fmt: skip
    with pytest.raises(PatchError, match="Failed to find expected lines"):
        verify(parse_patch(patch), tmp_path)
    assert not (tmp_path / "new.txt").exists()
    plan = verify(parse_patch(patch.replace("-absent", "-same")), tmp_path)
    commit(plan, tmp_path)
    assert (tmp_path / "new.txt").read_text() == "n\n" and (tmp_path / "keep.txt").read_text() == "x\n"


def test_parse_errors() -> None:
    with pytest.raises(InvalidPatch, match="first line of the patch must be"):
        parse_patch("hello\n*** End Patch")
    with pytest.raises(InvalidPatch, match="last line of the patch must be"):
        parse_patch("*** Begin Patch\n*** Add File: a\n+x")
    with pytest.raises(InvalidHunk, match="Expected update hunk to start with a @@ context marker"):
        parse_patch("*** Begin Patch\n*** Update File: a\n@@\n-x\n+y\nstray line\n*** End Patch")
    with pytest.raises(InvalidHunk, match="Update hunk does not contain any lines"):
        parse_patch("*** Begin Patch\n*** Update File: a\n@@\n*** End Patch")
    # Heredoc-as-argument leniency.
    hunks = parse_patch("<<'EOF'\n*** Begin Patch\n*** Add File: a\n+x\n*** End Patch\nEOF")
    assert hunks == [AddFile("a", "x\n")]
    (upd,) = parse_patch("*** Begin Patch\n*** Update File: a\n@@ ctx\n+new\n*** End Patch")
    assert isinstance(upd, UpdateFile) and upd.chunks[0].change_context == "ctx"


def test_new_contents_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(
        PatchError,
        match=r"Failed to read file to update .*nope.txt: No such file or directory \(os error 2\)",
    ):
        new_contents(tmp_path / "nope.txt", ())


def test_shell_invocation_detection() -> None:
    body = "*** Begin Patch\n*** Add File: a\n+x\n*** End Patch"
    assert maybe_shell_patch(["apply_patch", body]).patch == body  # type: ignore[union-attr]
    got = maybe_shell_patch(["bash", "-lc", f"apply_patch <<'EOF'\n{body}\nEOF\n"])
    assert got is not None and got.patch == body + "\n" and got.cd is None
    got = maybe_shell_patch(["/bin/zsh", "-c", f'cd "sub dir" && apply_patch <<EOF\n{body}\nEOF'])
    assert got is not None and got.cd == "sub dir"
    assert maybe_shell_patch(["bash", "-lc", f"apply_patch <<'EOF'\n{body}\nEOF\necho extra"]) is None
    assert maybe_shell_patch(["bash", "-lc", f"ls; apply_patch <<'EOF'\n{body}\nEOF"]) is None
    assert maybe_shell_patch(["bash", "-lc", "ls -la"]) is None
    with pytest.raises(NotExplicit):
        maybe_shell_patch([body])
    with pytest.raises(NotExplicit):
        maybe_shell_patch(["bash", "-lc", body])


def test_apply_patch_is_not_installed_on_the_users_path() -> None:
    """The helper is for the commands codexbro runs; installing codexbro adds only `codexbro`."""
    bindir = Path(sys.executable).parent
    assert not (bindir / "apply_patch").exists() and not (bindir / "applypatch").exists()


# ---- lines the patch does not change keep their bytes (issue 14.1) ------------------------------

LOOSE_CONTEXT = [
    # (file line, how the patch quotes it as context)
    ("say \u201chi\u201d", 'say "hi"'),  # curly quotes matched by straight ones
    ("one  ", "one"),  # trailing spaces
    ("\tindented", "indented"),  # leading whitespace
    ("a \u2014 b", "a - b"),  # em dash
    ("x\u00a0y", "x y"),  # no-break space
]


@pytest.mark.parametrize(("original", "quoted"), LOOSE_CONTEXT)
def test_context_lines_keep_their_original_bytes(original: str, quoted: str, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text(f"{original}\nmiddle\n{original}\nlast\n")
    patch = (
        "*** Begin Patch\n*** Update File: f.txt\n@@\n"
        f" {quoted}\n-middle\n+MIDDLE\n {quoted}\n*** End Patch\n"
    )
    apply_hunks(parse_patch(patch), tmp_path)
    assert (tmp_path / "f.txt").read_text() == f"{original}\nMIDDLE\n{original}\nlast\n"


def test_only_minus_and_plus_lines_change_through_the_tool_path(tmp_path: Path) -> None:
    text = "def f():\n    return \u201cx\u201d  \n\n# end \u2013 here\n"
    (tmp_path / "m.py").write_text(text)
    patch = (
        "*** Begin Patch\n*** Update File: m.py\n@@ def f():\n"
        '-    return "x"\n+    return "y"\n \n # end - here\n*** End Patch\n'
    )
    plan = verify(parse_patch(patch), tmp_path)
    commit(plan, tmp_path)
    assert (tmp_path / "m.py").read_text() == 'def f():\n    return "y"\n\n# end \u2013 here\n'


def test_added_files_get_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        apply_hunks(parse_patch("*** Begin Patch\n*** Add File: new.sh\n+echo hi\n*** End Patch\n"), tmp_path)
        os.umask(0o027)
        apply_hunks(parse_patch("*** Begin Patch\n*** Add File: other.txt\n+x\n*** End Patch\n"), tmp_path)
    finally:
        os.umask(old)
    assert (tmp_path / "new.sh").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "other.txt").stat().st_mode & 0o777 == 0o640
