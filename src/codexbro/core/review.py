"""Code review turns (``codexbro exec review``, the TUI's ``/review``), as Codex CLI 0.169 runs them
(fixture ``tests/fixtures/codex-0.169/exec-review.json``): a turn whose requests carry
``x-openai-subagent: review``, with no base instructions and upstream's review guidelines as the
first developer message (``review_prompt.md``, verbatim), the target as the user message, and the
model's JSON answer (findings, overall verdict) rendered as upstream prints it.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from msgspec import Struct

from codexbro.config.types import Config
from codexbro.errors import UserError
from codexbro.records import replace


@cache
def review_prompt() -> str:
    return Path(__file__).with_name("review_prompt.md").read_text(encoding="utf-8")


def review_config(config: Config) -> Config:
    """``config`` set up for a review turn: upstream's review guidelines as the developer message,
    and no tool that edits (0.169's review menu is exec_command, write_stdin, request_user_input,
    view_image: a review reads and runs, it does not patch)."""
    off = dict.fromkeys(("apply_patch", "edit_file", "update_plan", "js_repl", "multi_agent"), False)
    return replace(config, developer_instructions=review_prompt(), tools={**config.tools, **off})


class ReviewTarget(Struct, frozen=True):
    """What to review: ``uncommitted`` changes, the diff against a ``base`` branch, one
    ``commit``, or ``custom`` instructions."""

    kind: str
    value: str = ""

    def request(self, cwd: Path) -> str:
        """The user message 0.169 sends for this target."""
        if self.kind == "uncommitted":
            return "Review the current code changes (staged, unstaged, and untracked files) and provide prioritized findings."
        if self.kind == "commit":
            return f"Review the code changes introduced by commit {self.value}. Provide prioritized, actionable findings."
        if self.kind == "base":
            merge_base = _merge_base(cwd, self.value)
            return (
                f"Review the code changes against the base branch '{self.value}'. The merge base commit for this "
                f"comparison is {merge_base}. Run `git diff {merge_base}` to inspect the changes relative to "
                f"{self.value}. Provide prioritized, actionable findings."
            )
        return self.value

    def label(self) -> str:
        """How the human output names the review (``user`` line)."""
        return {"uncommitted": "current changes", "commit": f"commit {self.value}",
                "base": f"changes against '{self.value}'"}.get(self.kind, self.value)  # fmt: skip


def _merge_base(cwd: Path, branch: str) -> str:
    if branch.startswith("-"):
        raise UserError(f"review --base {branch}: not a branch name")
    try:
        done = subprocess.run(["git", "merge-base", "--end-of-options", "HEAD", branch], cwd=cwd,
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"review --base {branch}: cannot run git: {exc}") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise UserError(
            f"review --base {branch}: no merge base with HEAD ({done.stderr.strip() or 'not a git repository'})"
        )
    return done.stdout.strip()


def render_review(text: str) -> str:
    """The model's review JSON as upstream prints it: the overall explanation, then each finding
    (``- TITLE — PATH:START-END`` and its body). Anything that is not the review JSON — other text,
    malformed or oddly typed fields — is shown as it is, never an error."""
    try:
        doc: Any = json.loads(text)
        return _render(doc) if isinstance(doc, dict) and isinstance(doc.get("findings"), list) else text
    except (ValueError, TypeError, AttributeError, RecursionError):
        return text


def _render(doc: dict[str, Any]) -> str:
    parts = [str(doc.get("overall_explanation") or "").strip()]
    findings = [f for f in doc["findings"] if isinstance(f, dict)]
    if findings:
        # "Review comment:" is 0.169's for one finding; the plural for several is unverified.
        lines = ["Review comment:" if len(findings) == 1 else "Review comments:", ""]
        for finding in findings:
            where = finding.get("code_location")
            place = ""
            if isinstance(where, dict):
                raw = where.get("line_range")
                span: dict[str, Any] = raw if isinstance(raw, dict) else {}
                place = f" — {where.get('absolute_file_path')}:{span.get('start')}-{span.get('end')}"
            lines.append(f"- {finding.get('title', '')}{place}")
            body = str(finding.get("body") or "").strip()
            lines += [f"  {line}" for line in body.splitlines()]
        parts.append("\n".join(lines))
    return "\n\n".join(p for p in parts if p)
