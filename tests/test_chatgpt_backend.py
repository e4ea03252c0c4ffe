"""The ChatGPT backend ecosystem clients and CLI against fake backend routes on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import run_cli
from tests.fakes.responses_server import FakeResponsesServer, Recorded
from tests.test_auth import jwt, write_chatgpt_auth

USAGE = {"plan_type": "plus", "rate_limit": {"primary_window": {"used_percent": 12, "limit_window_seconds": 18000,
         "reset_at": 1900000000}, "secondary_window": {"used_percent": 40, "limit_window_seconds": 604800,
         "reset_at": 1900500000}}, "credits": None}  # fmt: skip
TASKS = {"items": [{"id": "task_e_1", "title": "Add dark mode", "updated_at": time.time() - 7200,
                    "task_status_display": {"latest_turn_status_display": {"turn_status": "completed",
                                            "diff_stats": {"files_modified": 2}}}}]}  # fmt: skip


def setup(home: Path, fake: FakeResponsesServer, token: str | None = None) -> list[Recorded]:
    (home / "config.toml").write_text(f'chatgpt_base_url = "http://127.0.0.1:{fake.port}/backend-api/"\n')
    write_chatgpt_auth(home, token or jwt({"exp": int(time.time()) + 3600}))
    seen: list[Recorded] = []

    def answer(doc: object, status: int = 200, ctype: str = "application/json"):  # type: ignore[no-untyped-def]
        def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
            seen.append(rec)
            body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            return status, {"content-type": ctype}, body

        return handler

    fake.route("GET", "/backend-api/wham/usage", answer(USAGE))
    fake.route("GET", "/backend-api/wham/tasks/list", answer(TASKS))
    fake.route(
        "GET", "/backend-api/wham/tasks/task_e_1", answer({"id": "task_e_1", "title": "Add dark mode"})
    )
    fake.route("POST", "/backend-api/wham/tasks", answer({"task": {"id": "task_e_new"}}))
    fake.route("GET", "/backend-api/connectors/directory/list", answer({"items": [{"id": "gh", "name": "GitHub",
                                                                                    "description": "repos"}]}))  # fmt: skip
    fake.route("GET", "/backend-api/ps/plugins/list", answer(b"<html>login</html>", 200, "text/html"))
    return seen


def test_usage_and_cloud_tasks(home: Path, fake: FakeResponsesServer) -> None:
    seen = setup(home, fake)
    res = run_cli("usage")
    assert res.code == 0, res.stderr
    assert "plan: plus" in res.stdout and "primary" in res.stdout and "12.0% used  (5h window" in res.stdout
    assert json.loads(run_cli("usage", "--json").stdout)["plan_type"] == "plus"
    listing = run_cli("cloud", "list")
    assert (
        "task_e_1" in listing.stdout
        and "[READY] Add dark mode" in listing.stdout
        and "2h ago" in listing.stdout
    )
    assert json.loads(run_cli("cloud", "show", "task_e_1").stdout)["title"] == "Add dark mode"
    created = run_cli("cloud", "create", "env_123", "fix", "the", "bug")
    assert json.loads(created.stdout) == {"task": {"id": "task_e_new"}}
    post = next(r for r in seen if r.method == "POST")
    assert post.body["new_task"]["environment_id"] == "env_123"
    assert post.body["input_items"][0]["content"][0]["text"] == "fix the bug"
    assert all(r.headers["chatgpt-account-id"] == "acct_42" for r in seen)
    assert "GitHub" in run_cli("connectors", "list").stdout


def test_backend_errors_are_clear(home: Path, fake: FakeResponsesServer) -> None:
    setup(home, fake)
    fake.route(
        "GET",
        "/backend-api/wham/usage",
        lambda rec: (503, {"content-type": "text/html"}, b"<html>down</html>"),
    )
    res = run_cli("usage")
    assert res.code == 1 and "failed with HTTP 503: an HTML page" in res.stderr
    # A 200 that is an HTML page (a login wall, a captive portal) is named as such, not a JSON traceback.
    import asyncio

    from codexbro.api.chatgpt.backend import ChatGPTBackend
    from codexbro.api.http import RouteHttp
    from codexbro.errors import FatalApiError

    async def plugins() -> str:
        http = RouteHttp(tls=False)

        async def headers() -> dict[str, str]:
            return {}

        try:
            await ChatGPTBackend(http, f"http://127.0.0.1:{fake.port}/backend-api/", headers).plugins()
        except FatalApiError as exc:
            return exc.message
        finally:
            await http.aclose()
        return ""

    assert "answered with an HTML page instead of JSON" in asyncio.run(plugins())
    (home / "auth.json").unlink()
    res = run_cli("cloud", "list")
    assert res.code == 1 and "needs a ChatGPT login" in res.stderr


def test_backend_refreshes_after_401(home: Path, fake: FakeResponsesServer) -> None:
    setup(home, fake)
    new = jwt({"exp": int(time.time()) + 7200, "n": 9})
    calls = {"usage": 0}

    def usage(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls["usage"] += 1
        if rec.headers["authorization"] != f"Bearer {new}":
            return 401, {"content-type": "application/json"}, b'{"error":{"message":"expired"}}'
        return 200, {"content-type": "application/json"}, json.dumps(USAGE).encode()

    fake.route("GET", "/backend-api/wham/usage", usage)
    fake.route("POST", "/oauth/token", lambda rec: (200, {"content-type": "application/json"},
                                                    json.dumps({"access_token": new}).encode()))  # fmt: skip
    res = run_cli(
        "usage", env={"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": f"http://127.0.0.1:{fake.port}/oauth/token"}
    )
    assert res.code == 0, res.stderr
    assert (
        calls["usage"] == 2 and json.loads((home / "auth.json").read_text())["tokens"]["access_token"] == new
    )


async def test_transcription_both_modes(fake: FakeResponsesServer) -> None:
    from codexbro.api.http import RouteHttp
    from codexbro.api.transcribe import transcribe

    seen: list[Recorded] = []

    def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        seen.append(rec)
        return 200, {"content-type": "application/json"}, b'{"text": "hello world"}'

    fake.route("POST", "/backend-api/transcribe", handler)
    fake.route("POST", "/v1/audio/transcriptions", handler)
    http = RouteHttp(tls=False)
    try:
        wav = b"RIFF\x00\x00\x00\x00WAVEfmt "
        text = await transcribe(http, chatgpt=True, base_url=f"http://127.0.0.1:{fake.port}/backend-api/",
                                headers={"authorization": "Bearer t"}, audio=wav)  # fmt: skip
        assert text == "hello world"
        await transcribe(
            http, chatgpt=False, base_url=fake.base_url, headers={"authorization": "Bearer k"}, audio=wav
        )
    finally:
        await http.aclose()
    chat, api = seen
    assert chat.headers["content-type"].startswith("multipart/form-data") and 'name="model"' not in str(
        chat.body
    )
    assert (
        'name="model"' in str(api.body)
        and "gpt-4o-transcribe" in str(api.body)
        and 'filename="audio.wav"' in str(api.body)
    )


async def test_every_backend_route_success_and_error(fake: FakeResponsesServer) -> None:
    """Each ChatGPT-ecosystem client method: the right route and path, JSON back, and a clear error."""
    from codexbro.api.chatgpt.backend import ChatGPTBackend
    from codexbro.api.http import RouteHttp
    from codexbro.errors import FatalApiError

    base = f"http://127.0.0.1:{fake.port}/backend-api/"
    ok = lambda doc: lambda rec: (200, {"content-type": "application/json"}, json.dumps(doc).encode())  # noqa: E731
    routes = {
        ("GET", "/backend-api/wham/config/requirements"): {"requirements": {"sandbox": "workspace-write"}},
        ("GET", "/backend-api/wham/environments"): [{"id": "env_1", "label": "main"}],
        ("GET", "/backend-api/wham/environments/by-repo/github/acme/app"): [{"id": "env_2"}],
        ("GET", "/backend-api/wham/tasks/t1/turns/tr1/sibling_turns"): {"sibling_turns": [{"id": "tr2"}]},
        ("GET", "/backend-api/ps/plugins/list"): {
            "plugins": [{"id": "p", "enabled": True}],
            "pagination": {"next_page_token": None},
        },
        ("POST", "/backend-api/wham/apps"): {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
        ("GET", "/backend-api/connectors/directory/list_workspace"): {
            "items": [{"id": "w1", "name": "Drive"}]
        },
    }
    for (method, path), doc in routes.items():
        fake.route(method, path, ok(doc))
    http = RouteHttp(tls=False)

    async def headers() -> dict[str, str]:
        return {"authorization": "Bearer t", "chatgpt-account-id": "a"}

    backend = ChatGPTBackend(http, base, headers)
    records: list[str] = []
    http.observers.append(lambda r: records.append(f"{r.route}:{r.bucket}"))
    try:
        assert (await backend.requirements())["requirements"]["sandbox"] == "workspace-write"
        assert (await backend.environments())[0]["id"] == "env_1"
        assert (await backend.environments_by_repo("github", "acme", "app"))[0]["id"] == "env_2"
        assert (await backend.sibling_turns("t1", "tr1")) == [{"id": "tr2"}]
        assert (await backend.plugins())[0]["enabled"] is True
        assert (await backend.apps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))["result"] == {
            "tools": []
        }
        assert (await backend.connectors(workspace=True))[0]["name"] == "Drive"
        for (method, path), _doc in routes.items():
            fake.route(method, path, lambda rec: (500, {"content-type": "application/json"},
                                                  b'{"error":{"message":"backend broke"}}'))  # fmt: skip
        for call in (backend.requirements(), backend.environments(), backend.plugins(),
                     backend.environments_by_repo("github", "acme", "app"), backend.sibling_turns("t1", "tr1")):  # fmt: skip
            try:
                await call
                raise AssertionError("a 500 must raise")
            except FatalApiError as exc:
                assert "failed with HTTP 500: backend broke" in exc.message
    finally:
        await http.aclose()
    assert all(r.endswith(":chatgpt_ecosystem") for r in records)
    assert {r.split(":")[0] for r in records} >= {"wham.config.requirements", "wham.environments",
                                                 "wham.environments.by_repo", "wham.tasks.sibling_turns",
                                                 "plugins.list", "wham.apps", "connectors.directory.list_workspace"}  # fmt: skip
