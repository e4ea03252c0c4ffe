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
