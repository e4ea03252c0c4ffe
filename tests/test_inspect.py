"""Inspection: the route map, debug request, traces (with planted secrets), and the route-table rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

from codexbro.api.routes import ROUTES
from tests.conftest import FAKE_KEY, run_cli, write_config
from tests.fakes.events import ev_completed, ev_created, ev_shell_command, message_turn
from tests.fakes.responses_server import FakeResponsesServer, Reply

PLANTED = "planted-db-password-9876"


def test_routes_map(home: Path, fake: FakeResponsesServer) -> None:
    write_config(home, fake.base_url)
    res = run_cli("routes", "--json")
    assert res.code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} == {r.name for r in ROUTES}
    assert {r["bucket"] for r in rows} == {
        "public_api",
        "codex_backend",
        "third_party",
        "chatgpt_ecosystem",
        "auth",
    }
    used = [r for r in rows if r["status"] == "used"]
    assert used == [next(r for r in rows if r["bucket"] == "third_party" and r["name"] == "responses.create")]
    assert used[0]["url"] == f"{fake.base_url}/responses"
    wham = next(r for r in rows if r["name"] == "wham.tasks.sibling_turns")
    assert wham["url"] == "https://chatgpt.com/backend-api/wham/tasks/{task_id}/turns/{turn_id}/sibling_turns"
    text = run_cli("routes").stdout
    assert "ChatGPT Codex backend" in text and "https://chatgpt.com/backend-api/codex/responses" in text


def test_debug_request_matches_what_exec_sends(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    res = run_cli("debug", "request", "--json", "-C", str(workspace), "explain main.py")
    assert res.code == 0, res.stderr
    info = json.loads(res.stdout)
    assert fake.requests == []  # nothing was sent
    assert info["model"]["slug"] == "gpt-5.1-codex" and str(home / "config.toml") in info["model"]["why"]
    assert info["provider"]["id"] == "fake" and info["route"]["bucket"] == "third_party"
    assert info["base_url"]["why"] == "model_providers.fake.base_url"
    assert info["headers"]["authorization"] == "Bearer <redacted>" and FAKE_KEY not in res.stdout
    assert [t["name"] for t in info["tools"]] == ["shell_command", "update_plan", "apply_patch", "view_image"]
    assert info["body_bytes"] == len(json.dumps(info["body"], ensure_ascii=False).encode())
    fake.add(Reply(message_turn("ok")))
    assert run_cli("exec", "--json", "explain main.py", cwd=workspace).code == 0
    sent = fake.bodies()[0]
    for body in (sent, info["body"]):
        body.pop("prompt_cache_key")
    assert sent == info["body"]
    human = run_cli("debug", "request", "-C", str(workspace)).stdout
    assert "nothing is sent" in human and "bucket third_party" in human and "<redacted>" in human


def test_debug_request_without_credentials_still_explains(home: Path) -> None:
    res = run_cli("debug", "request", "-c", "offline_fallback=false", "hi", env={"FAKE_API_KEY": ""})
    assert res.code == 0, res.stderr
    assert "auth         missing — No credentials for the OpenAI provider" in res.stdout
    assert "https://api.openai.com/v1/responses  [responses.create, bucket public_api]" in res.stdout


def test_traced_exec_records_and_planted_secrets(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    write_config(home, fake.base_url)
    fake.add(
        Reply(status=503, body=b'{"error":{"message":"busy"}}'),
        Reply(
            [ev_created(), ev_shell_command("c1", f"echo {FAKE_KEY} {PLANTED}", login=False), ev_completed()]
        ),
        Reply(message_turn("done")),
    )
    trace = workspace / "t.jsonl"
    res = run_cli("exec", "--json", "--trace", str(trace), "go", cwd=workspace, env={"DB_PASSWORD": PLANTED})
    assert res.code == 0, res.stderr
    text = trace.read_text()
    assert FAKE_KEY not in text and PLANTED not in text and "<redacted>" in text
    assert oct(trace.stat().st_mode & 0o777) == "0o600"
    records = [json.loads(line) for line in text.splitlines()]
    # Tools start as soon as their item arrives, so `usage` (at response.completed) may come before or
    # after the tool records: check it apart from the ordered sequence.
    kinds = [r["kind"] for r in records if r["kind"] != "usage"]
    assert kinds == [
        "session", "model_resolution", "turn_started",
        "context", "request", "request", "tool_decision", "command", "tool",
        "context", "request", "turn_completed",
    ]  # fmt: skip
    assert sum(r["kind"] == "usage" for r in records) == 2
    records = [r for r in records if r["kind"] not in ("context", "usage")]
    first, retried = records[3], records[4]
    assert (first["route"], first["bucket"], first["status"], first["attempt"]) == (
        "responses.create", "third_party", 503, 1,
    )  # fmt: skip
    assert (retried["status"], retried["attempt"]) == (200, 2)
    decision = records[5]
    assert decision["verdict"] == "run" and decision["sandbox"] in (
        "namespaces",
        "landlock",
        "bubblewrap",
        "unavailable",
    )
    assert records[6]["exit_code"] == 0 and records[6]["command"][-1] == "echo <redacted> <redacted>"
    resolution = records[1]
    assert (
        resolution["model"] == "gpt-5.1-codex" and resolution["auth"] == "environment variable FAKE_API_KEY"
    )
    shown = run_cli("trace", "show", str(trace))
    assert shown.code == 0 and "POST responses.create [third_party] → 503" in shown.stdout
    assert "(attempt 2)" in shown.stdout and "turn_completed" in shown.stdout
    page = workspace / "t.html"
    assert run_cli("trace", "show", str(trace), "--html", str(page)).code == 0
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "responses.create" in html and PLANTED not in html


def test_trace_show_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text("not json\n")
    res = run_cli("trace", "show", str(bad))
    assert res.code == 1 and "x.jsonl:1: not a JSON line" in res.stderr


def test_every_request_path_is_in_the_route_table(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """Run turns that exercise retries and tools; every path the server saw must be a known route."""
    write_config(home, fake.base_url)
    fake.add(
        Reply(status=500, body=b"{}"),
        Reply([ev_created(), ev_shell_command("c", "true", login=False), ev_completed()], close_after=1),
        Reply([ev_created(), ev_shell_command("c2", "true", login=False), ev_completed()]),
        Reply(message_turn("x")),
    )
    assert run_cli("exec", "--json", "go", cwd=workspace).code == 0
    patterns = [re.compile("^/v1/" + re.sub(r"\{\w+\}", "[^/]+", r.path) + r"(\?.*)?$") for r in ROUTES]
    assert fake.requests
    for req in fake.requests:
        assert any(p.match(req.path) for p in patterns), f"{req.method} {req.path} is not in the route table"


def test_route_map_marks_every_route_the_code_uses_as_implemented() -> None:
    """The map is honest both ways: a route the package names (outside the table itself) is marked
    `implemented`, and a route marked implemented is named somewhere."""
    from codexbro.api.routes import ROUTES

    package = Path(__file__).resolve().parent.parent / "src" / "codexbro"
    source = "\n".join(p.read_text(encoding="utf-8") for p in package.rglob("*.py") if p.name != "routes.py")
    used = {r.name for r in ROUTES if f'"{r.name}"' in source or f"'{r.name}'" in source}
    assert {r.name for r in ROUTES if r.name in used and not r.implemented} == set()
    assert {r.name for r in ROUTES if r.implemented} <= used


def test_embedded_model_traffic_is_its_own_bucket(home: Path) -> None:
    """The embedded model's requests never leave the process: routes, debug request and traces say
    `in_process`, not `third_party`."""
    res = run_cli("routes", "--json", "-c", 'model_provider="embedded"')
    assert res.code == 0, res.stderr
    rows = [r for r in json.loads(res.stdout) if r["bucket"] == "in_process"]
    assert rows == [{
        "bucket": "in_process", "name": "responses.create", "method": "POST",
        "url": "embedded://local/responses", "purpose": "stream one model response (SSE)",
        "auth": "none (in-process)", "status": "used",
    }]  # fmt: skip
    assert "[in_process]" in run_cli("routes", "-c", 'model_provider="embedded"').stdout


def test_every_layer_says_how_the_model_slug_resolved(
    home: Path, fake: FakeResponsesServer, workspace: Path
) -> None:
    """Exact, prefix and fallback: `debug request`, the trace and exec's one-line note say which."""
    write_config(home, fake.base_url, model="gpt-5.5-2027-01-01")
    res = run_cli("debug", "request", "--json", "-C", str(workspace), "hi")
    model = json.loads(res.stdout)["model"]
    assert (model["match"], model["catalog_entry"]) == ("prefix", "gpt-5.5"), model
    human = run_cli("debug", "request", "-C", str(workspace), "hi").stdout
    assert "matched by prefix: the metadata of `gpt-5.5`" in human
    fake.add(Reply(message_turn("ok")))
    trace = workspace.parent / "trace.jsonl"
    res = run_cli("exec", "--trace", str(trace), "hi", cwd=workspace)
    assert res.code == 0, res.stderr
    note = "note: model `gpt-5.5-2027-01-01` has no catalog entry of its own; using the metadata of `gpt-5.5`"
    assert note in res.stderr
    (record,) = [json.loads(x) for x in trace.read_text().splitlines() if '"model_resolution"' in x]
    assert record["match"] == "prefix" and record["catalog_entry"] == "gpt-5.5"

    write_config(home, fake.base_url, model="gpt-5.5")
    fake.add(Reply(message_turn("ok")))
    res = run_cli("exec", "hi", cwd=workspace)
    assert res.code == 0 and "note: model" not in res.stderr, res.stderr
    assert "matched exactly" in run_cli("debug", "request", "-C", str(workspace), "hi").stdout
