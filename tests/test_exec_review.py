"""``codexbro exec review`` against the loopback fake, compared with what Codex CLI 0.169 sent and
printed for the same review (``fixtures/codex-0.169/exec-review.json``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import run_cli, write_config
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "codex-0.169" / "exec-review.json").read_text())
REVIEW = {"findings": [{"title": "[P1] Division by zero in ratio()",
                        "body": "ratio() divides by b without checking for zero.", "confidence_score": 0.8,
                        "priority": 1, "code_location": {"absolute_file_path": "/tmp/cap/repo/calc.py",
                                                         "line_range": {"start": 2, "end": 2}}}],
          "overall_correctness": "patch is incorrect", "overall_explanation": "One crash on zero input.",
          "overall_confidence_score": 0.7}  # fmt: skip


def repo(path: Path) -> Path:
    path.mkdir()
    (path / "calc.py").write_text("def ratio(a, b):\n    return a\n")
    git = ["git", "-c", "user.name=a", "-c", "user.email=a@a"]
    for args in (["init", "-q", "-b", "master"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run([*git, *args], cwd=path, check=True, capture_output=True)
    (path / "calc.py").write_text("def ratio(a, b):\n    return a / b\n")
    return path


def test_review_request_and_output_as_upstream(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    write_config(home, fake.base_url)
    work = repo(tmp_path / "repo")
    fake.add(Reply(message_turn(json.dumps(REVIEW))), Reply(message_turn(json.dumps(REVIEW))))
    res = run_cli("exec", "--json", "review", "--uncommitted", cwd=work)
    assert res.code == 0, res.stderr
    human = run_cli("exec", "review", "--uncommitted", cwd=work)
    assert human.code == 0, human.stderr
    request = fake.responses_requests()[0]
    assert request.headers["x-openai-subagent"] == FIXTURE["request_headers"]["x-openai-subagent"] == "review"
    body = request.body
    assert not body.get("instructions") and not FIXTURE["instructions"]
    first = body["input"][0]
    guidelines = (Path(__file__).parents[1] / "src" / "codexbro" / "core" / "review_prompt.md").read_text()
    assert first["role"] == "developer" and first["content"][0]["text"] == guidelines
    assert guidelines.startswith("# Review guidelines:")
    assert body["input"][-1]["content"][0]["text"] == FIXTURE["uncommitted_request"]
    ours = [json.loads(line) for line in res.stdout.splitlines()]
    message = next(e for e in ours if e.get("item", {}).get("type") == "agent_message")["item"]["text"]
    upstream = next(e for e in FIXTURE["exec_json"] if e.get("item", {}).get("type") == "agent_message")
    assert message == upstream["item"]["text"]
    assert human.stdout == FIXTURE["exec_stdout"]
    assert "current changes" in human.stderr


def test_review_targets_send_upstreams_requests(
    home: Path, fake: FakeResponsesServer, tmp_path: Path
) -> None:
    write_config(home, fake.base_url)
    work = repo(tmp_path / "repo")
    merge_base = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True
    ).stdout.strip()
    for name in ("base", "commit", "custom"):
        fake.add(Reply(message_turn(json.dumps({**REVIEW, "findings": []}))))
        res = run_cli("exec", "review", *FIXTURE["targets"][name]["args"], cwd=work)
        assert res.code == 0, res.stderr
        assert res.stdout.strip() == "One crash on zero input."  # no findings: the explanation alone
        sent = fake.responses_requests()[-1].body["input"][-1]["content"][0]["text"]
        want = FIXTURE["targets"][name]["request"]
        if name == "base":  # the merge base is this repository's, not the capture's
            upstream_base = want.split("merge base commit for this comparison is ")[1].split(".")[0]
            want = want.replace(upstream_base, merge_base)
        assert sent == want, name
    both = run_cli("exec", "review", "--uncommitted", "--commit", "HEAD", cwd=work)
    assert both.code == 2 and "one of --uncommitted, --base, --commit or a PROMPT" in both.stderr
    bad = run_cli("exec", "review", "--base", "no-such-branch", cwd=work)
    assert bad.code == 1 and "review --base no-such-branch: no merge base" in bad.stderr


def test_review_offers_no_editing_tools_and_survives_malformed_answers(
    home: Path, fake: FakeResponsesServer, tmp_path: Path
) -> None:
    from codexbro.core.review import render_review

    # a model that offers sub-agents elsewhere (outside code mode)
    write_config(home, fake.base_url, model="gpt-5.6-luna", extra="[features]\ncode_mode = false")
    work = repo(tmp_path / "repo")
    odd = json.dumps(
        {"findings": [{"title": "x", "code_location": "calc.py"}, 3], "overall_explanation": "ok"}
    )
    fake.add(Reply(message_turn(odd)))
    res = run_cli("exec", "review", "--uncommitted", cwd=work)
    assert res.code == 0, res.stderr
    names = [t.get("name") or t.get("type") for t in fake.responses_requests()[0].body["tools"]]
    assert not {"apply_patch", "update_plan", "edit_file", "multi_agent_v1"} & set(names), names
    assert res.stdout.strip() == "ok\n\nReview comment:\n\n- x".replace("\\n", "\n")
    for text in (
        '{"findings": 3}',
        '{"findings": [{"code_location": {"line_range": [1]}}]}',
        "[" * 100000,
        "plain",
    ):
        render_review(text)  # never raises
    assert render_review("plain words") == "plain words"
    bad = run_cli("exec", "review", "--base=--all", cwd=work)
    assert bad.code == 1 and "not a branch name" in bad.stderr
