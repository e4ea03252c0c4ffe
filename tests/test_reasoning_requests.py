"""The ``reasoning``/``include``/``text`` fields and the lite header as the real 0.169 sends them
for its catalog's models (``fixtures/codex-0.169/reasoning-requests.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.fakes.events import message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

CAPTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "codex-0.169" / "reasoning-requests.json").read_text()
)
CASES = [r for r in CAPTURE["requests"] if r["model"] in ("gpt-5.5", "gpt-6-sol")]  # in 0.169's catalog


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model']} {' '.join(c['args'])}".strip())
def test_reasoning_as_0_169(case: dict, home: Path, fake: FakeResponsesServer, workspace: Path) -> None:
    if case["model"] == "gpt-6-sol":
        pytest.importorskip("py_mini_racer", reason="code mode needs mini-racer (a dependency of codexbro)")
    fake.add(Reply(message_turn("ok")))
    write_config(home, fake.base_url, model=case["model"])
    res = run_cli("exec", "--skip-git-repo-check", *case["args"], "hi", cwd=workspace)
    assert res.code == 0, res.stderr[-2000:]
    body = fake.bodies()[0]
    headers = {k.lower(): v for k, v in fake.requests[0].headers.items() if k.lower().startswith("x-openai")}
    assert body["reasoning"] == case["reasoning"]
    assert body["include"] == case["include"]
    assert body.get("text") == case["text"]
    assert body["parallel_tool_calls"] == case["parallel_tool_calls"]
    assert headers == case["headers"]


def test_unknown_models_get_reasoning_only_when_asked(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """codexbro sends no reasoning to a model no catalog knows (third-party servers may refuse it;
    0.169 sends ``{"summary": "auto"}``); upstream's ``model_supports_reasoning_summaries`` asks for it."""
    theirs = next(r for r in CAPTURE["requests"] if r["model"] == "my-own-model")
    fake.add(Reply(message_turn("ok")), Reply(message_turn("ok")))
    write_config(home, fake.base_url, model="my-own-model")
    assert run_cli("exec", "--skip-git-repo-check", "hi", cwd=workspace).code == 0
    assert fake.bodies()[0]["reasoning"] is None
    res = run_cli(
        "exec", "--skip-git-repo-check", "-c", "model_supports_reasoning_summaries=true", "hi", cwd=workspace
    )
    assert res.code == 0, res.stderr
    assert (
        fake.bodies()[1]["reasoning"] == theirs["reasoning"]
        and fake.bodies()[1]["include"] == theirs["include"]
    )
