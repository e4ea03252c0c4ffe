"""The embedded model sees small files its request names (embedded/attach.py): real files in a temp dir."""

from __future__ import annotations

from pathlib import Path

from codexbro.embedded.attach import MAX_FILE_BYTES, attachment, named_files


def test_named_small_text_files_inside_the_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (ws / "src" / "app.py").write_text("value = 1\n")
    (ws / "big.txt").write_text("x" * (MAX_FILE_BYTES + 1))
    (ws / "blob.bin").write_bytes(b"\x00\x01\xff")
    (ws / "link.txt").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "secret.txt").write_text("outside\n")
    request = (
        "Fix calc.py, then src/app.py. Also calc.py again, big.txt, blob.bin, link.txt, ../secret.txt, "
        f"{tmp_path}/secret.txt, https://example.com/readme.md and missing.py."
    )
    assert named_files(request, ws) == [
        ("calc.py", "def add(a, b):\n    return a - b\n"),
        ("src/app.py", "value = 1\n"),
    ]
    text = attachment(named_files("look at calc.py", ws))
    assert text == "\n\nContents of calc.py:\n```\ndef add(a, b):\n    return a - b\n```"
    assert attachment(named_files("list the files", ws)) == ""


def test_at_most_two_files_and_a_total_budget(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(name * 10)
    assert [n for n, _ in named_files("a.txt b.txt c.txt", tmp_path)] == ["a.txt", "b.txt"]
    (tmp_path / "d.txt").write_text("d" * 1400)
    (tmp_path / "e.txt").write_text("e" * 1400)
    assert [n for n, _ in named_files("d.txt e.txt a.txt", tmp_path)] == ["d.txt", "a.txt"]
