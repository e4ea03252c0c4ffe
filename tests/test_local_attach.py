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


def test_the_system_turn_never_names_the_workspace() -> None:
    """The embedded prompt's first message (instructions + the settings part of the environment)
    is the same in every workspace — the KV prefix shared across workspaces depends on it — and
    what does name the workspace (extra writable roots, developer messages) follows it."""
    from pathlib import Path

    from codexbro.api.model_client import Prompt
    from codexbro.core.instructions import environment_context
    from codexbro.embedded.render import split_environment, to_native_messages

    def first_turns(cwd: str, extra_root: str | None = None) -> list[dict[str, object]]:
        env = environment_context(cwd=Path(cwd), approval_policy="never", sandbox_mode="workspace-write",
                                  network_access=False, writable_roots=[cwd, *([extra_root] if extra_root else [])])  # fmt: skip
        items = [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": f"dev notes for {cwd}"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": env}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
        ]  # fmt: skip
        return to_native_messages(Prompt(input=items, tools=[]), "You are an agent.")  # type: ignore[arg-type]

    one, two = first_turns("/work/alpha"), first_turns("/srv/beta & co", "/tmp/extra")
    assert one[0] == two[0] and one[0]["role"] == "system"
    assert "<sandbox_mode>workspace-write</sandbox_mode>" in str(one[0]["content"])
    assert "alpha" not in str(one[0]["content"]) and "<cwd>" not in str(one[0]["content"])
    assert one[1] == {"role": "system", "content": "dev notes for /work/alpha"}  # after the shared turn
    # The working directory and the date are not shown (commands run there; every token after the
    # shared prefix costs time in a new workspace): the environment message is left out when nothing
    # else of it remains, and keeps what does (a writable root other than the working directory).
    assert [m["content"] for m in one[1:]] == ["dev notes for /work/alpha", "list the files"]
    local = str(two[2]["content"])
    assert "<root>/tmp/extra</root>" in local and "<cwd>" not in local and "beta" not in local
    assert "<current_date>" not in local and "sandbox_mode" not in local
    # Anything that is not an environment context in the expected shape is left whole.
    assert split_environment("<environment_context>\n  <cwd>/x</cwd>") == (
        "",
        "<environment_context>\n  <cwd>/x</cwd>",
    )
