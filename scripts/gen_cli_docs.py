"""Regenerate docs/cli.md from the argparse definitions (tests/test_docs.py checks it is current).

python scripts/gen_cli_docs.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from codexbro.cli.commands.exec_cmd import build_resume_parser  # noqa: E402


def _walk(title: str, parser: argparse.ArgumentParser, sections: list[tuple[str, str]]) -> None:
    """``parser``'s help, then each of its subcommands' (aliases once), depth first."""
    sections.append((title, parser.format_help()))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:
                    seen.add(id(child))
                    _walk(f"{title} {name}", child, sections)
                    if (
                        title == "codexbro" and name == "exec"
                    ):  # exec's own subcommands, found before argparse
                        for kind in ("resume", "fork"):
                            sections.append(
                                (f"codexbro exec {kind}", build_resume_parser(kind).format_help())
                            )


def render() -> str:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: pin it for a stable file
    try:
        return _render()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def _render() -> str:
    from codexbro.cli.commands import tui
    from codexbro.cli.main import build_parser

    sections: list[tuple[str, str]] = [
        ("codexbro [PROMPT] (the interactive agent)", tui.build_parser().format_help())
    ]
    sections += [(f"codexbro {kind}", tui.build_parser(kind).format_help()) for kind in ("resume", "fork")]
    _walk("codexbro", build_parser(), sections)
    out = [
        "# CLI reference",
        "",
        "Generated from the code by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
    ]
    for title, text in sections:
        out += [f"## `{title}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render(), encoding="utf-8")
