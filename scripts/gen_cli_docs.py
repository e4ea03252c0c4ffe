"""Regenerate docs/cli.md from the argparse definitions (tests/test_docs.py checks it is current).

python scripts/gen_cli_docs.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: pin it for a stable file
    from codexbro.cli.main import build_parser, build_resume_parser

    parser = build_parser()
    sections = [("codexbro", parser.format_help())]
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    seen = set()
    for name, child in sub.choices.items():  # type: ignore[union-attr]
        if id(child) in seen:
            continue
        seen.add(id(child))
        sections.append((f"codexbro {name}", child.format_help()))
    sections.append(("codexbro exec resume", build_resume_parser().format_help()))
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
