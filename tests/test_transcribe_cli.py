"""``codexbro transcribe FILE`` in both of the seed's modes, against the loopback fake: an API key
→ ``/v1/audio/transcriptions`` (multipart, model), a ChatGPT login → ``/backend-api/transcribe``
(the login's token and account, refreshed first when expired); bad files refused before sending."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from tests.conftest import run_cli
from tests.fakes.responses_server import FakeResponsesServer, Recorded
from tests.test_auth import jwt, write_chatgpt_auth


def wav(path: Path, seconds: float = 0.1) -> Path:
    """A real (silent) 16 kHz mono PCM WAV file."""
    frames = int(16000 * seconds)
    data = b"\0\0" * frames
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    )
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)
    return path


def _answer(calls: list[Recorded], status: int = 200, body: bytes = b'{"text": "hello world"}'):  # type: ignore[no-untyped-def]
    def handler(rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        calls.append(rec)
        return status, {"content-type": "application/json"}, body

    return handler


def test_api_key_mode(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    (home / "config.toml").write_text(f'openai_base_url = "{fake.base_url}"\n')
    calls: list[Recorded] = []
    fake.route("POST", "/v1/audio/transcriptions", _answer(calls))
    audio = wav(tmp_path / "note.wav")
    res = run_cli("transcribe", str(audio), "--json", env={"CODEXBRO_API_KEY": "sk-transcribe-1"})
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout) == {"text": "hello world", "route": "audio.transcriptions",
                                      "url": f"{fake.base_url}/audio/transcriptions"}  # fmt: skip
    (call,) = calls
    assert call.headers["authorization"] == "Bearer sk-transcribe-1"
    assert call.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = call.body if isinstance(call.body, str) else ""
    assert 'name="model"' in body and "gpt-4o-transcribe" in body
    assert 'name="file"; filename="note.wav"' in body and "Content-Type: audio/wav" in body
    plain = run_cli(
        "transcribe", str(audio), "--model", "whisper-1", env={"CODEXBRO_API_KEY": "sk-transcribe-1"}
    )
    assert plain.stdout == "hello world\n" and "whisper-1" in str(calls[1].body)


def test_chatgpt_mode_refreshes_first(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{fake.port}/backend-api"
    (home / "config.toml").write_text(f'chatgpt_base_url = "{base}"\n')
    write_chatgpt_auth(home, jwt({"exp": int(time.time()) - 10}))
    fresh = jwt({"exp": int(time.time()) + 3600})
    tokens: list[Recorded] = []
    fake.route("POST", "/oauth/token", _answer(tokens, body=json.dumps({"access_token": fresh}).encode()))
    calls: list[Recorded] = []
    fake.route("POST", "/backend-api/transcribe", _answer(calls))
    res = run_cli("transcribe", str(wav(tmp_path / "memo.wav")),
                  env={"CODEXBRO_REFRESH_TOKEN_URL_OVERRIDE": f"http://127.0.0.1:{fake.port}/oauth/token"})  # fmt: skip
    assert res.code == 0, res.stderr
    assert res.stdout == "hello world\n"
    (call,) = calls
    assert (
        call.headers["authorization"] == f"Bearer {fresh}" and call.headers["chatgpt-account-id"] == "acct_42"
    )
    assert 'name="model"' not in str(call.body)  # the backend route takes only the file
    assert len(tokens) == 1


def test_bad_files_and_server_errors(home: Path, fake: FakeResponsesServer, tmp_path: Path) -> None:
    (home / "config.toml").write_text(f'openai_base_url = "{fake.base_url}"\n')
    env = {"CODEXBRO_API_KEY": "sk-transcribe-1"}
    (tmp_path / "notes.txt").write_text("not audio")
    assert (
        "not a supported audio format" in run_cli("transcribe", str(tmp_path / "notes.txt"), env=env).stderr
    )
    assert "cannot read" in run_cli("transcribe", str(tmp_path / "missing.wav"), env=env).stderr
    (tmp_path / "empty.wav").write_bytes(b"")
    assert "is empty" in run_cli("transcribe", str(tmp_path / "empty.wav"), env=env).stderr
    assert fake.requests == []  # nothing was sent for any of them
    calls: list[Recorded] = []
    fake.route("POST", "/v1/audio/transcriptions", _answer(calls, 401, b'{"error": {"message": "bad key"}}'))
    res = run_cli("transcribe", str(wav(tmp_path / "a.wav")), env=env)
    assert (
        res.code == 1
        and "transcription failed: HTTP 401" in res.stderr
        and "sk-transcribe-1" not in res.stderr
    )
    res = run_cli("transcribe", str(wav(tmp_path / "b.wav")), env={})
    assert res.code == 1 and "No credentials" in res.stderr
