"""``codexbro realtime --input FILE.wav`` against a loopback Realtime fake: the session is configured
with the tool menu, the recording goes as PCM16 24 kHz frames, the model's function call runs through
the real tool router (a real shell command), its output goes back, and the transcripts are printed
and the answer audio saved as a WAV file."""

from __future__ import annotations

import array
import base64
import json
import math
import wave
from pathlib import Path

from tests.conftest import run_cli, write_config
from tests.fakes.realtime_server import FakeRealtimeServer


def tone(path: Path, rate: int = 16000, seconds: float = 0.5, channels: int = 2) -> Path:
    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(rate * seconds))
                                for _ in range(channels)))  # fmt: skip
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def test_voice_exchange_with_a_tool_call(home: Path, workspace: Path, tmp_path: Path) -> None:
    (workspace / "notes.txt").write_text("hi\n")
    answer_pcm = array.array("h", [1000, -1000] * 2400).tobytes()  # 0.2 s at 24 kHz
    with FakeRealtimeServer() as rt:
        write_config(
            home, "http://127.0.0.1:9/v1", extra=f'experimental_realtime_ws_base_url = "{rt.base_url}"'
        )
        rt.add(
            [{"type": "conversation.item.input_audio_transcription.completed", "transcript": "what files are here?"},
             {"type": "response.output_item.done", "item": {"type": "function_call", "call_id": "rt_1",
                                                             "name": "shell_command", "arguments": json.dumps({"command": "ls"})}},
             {"type": "response.done", "response": {"status": "completed"}}],
            [{"type": "response.output_audio.delta", "delta": base64.b64encode(answer_pcm[:4800]).decode()},
             {"type": "response.audio.delta", "delta": base64.b64encode(answer_pcm[4800:]).decode()},  # the beta name
             {"type": "response.output_audio_transcript.delta", "delta": "There is one file, "},
             {"type": "response.output_audio_transcript.delta", "delta": "notes.txt."},
             {"type": "response.done", "response": {"status": "completed"}}],
        )  # fmt: skip
        out = tmp_path / "answer.wav"
        res = run_cli(
            "realtime", "--input", str(tone(tmp_path / "question.wav")), "--output", str(out), cwd=workspace
        )
    assert res.code == 0, res.stderr
    assert res.stdout == "you: what files are here?\ncodexbro: There is one file, notes.txt.\n"
    assert "tool: shell_command" in res.stderr and "answer audio:" in res.stderr
    (hs,) = rt.handshakes
    assert hs["path"] == "/v1/realtime?model=gpt-realtime-1.5" and hs["authorization"].startswith("Bearer ")
    kinds = [e["type"] for e in rt.received]
    assert kinds[0] == "session.update" and kinds[-3:] == [
        "response.create",
        "conversation.item.create",
        "response.create",
    ]
    session = rt.received[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert "shell_command" in [t["name"] for t in session["tools"]]
    audio = b"".join(
        base64.b64decode(e["audio"]) for e in rt.received if e["type"] == "input_audio_buffer.append"
    )
    assert len(audio) == 24000 * 2 // 2  # 0.5 s of stereo 16 kHz → 0.5 s of mono 24 kHz PCM16
    assert (
        max(
            len(base64.b64decode(e["audio"])) for e in rt.received if e["type"] == "input_audio_buffer.append"
        )
        <= 4800
    )
    assert kinds.count("input_audio_buffer.commit") == 1
    output = next(e for e in rt.received if e["type"] == "conversation.item.create")["item"]
    assert (
        output["type"] == "function_call_output"
        and output["call_id"] == "rt_1"
        and "notes.txt" in output["output"]
    )
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.readframes(wav.getnframes()) == answer_pcm


def test_bad_recordings_and_server_errors(home: Path, workspace: Path, tmp_path: Path) -> None:
    with FakeRealtimeServer() as rt:
        write_config(
            home, "http://127.0.0.1:9/v1", extra=f'experimental_realtime_ws_base_url = "{rt.base_url}"'
        )
        (tmp_path / "x.wav").write_bytes(b"not a wav")
        res = run_cli("realtime", "--input", str(tmp_path / "x.wav"), cwd=workspace)
        assert res.code == 1 and "cannot read" in res.stderr and rt.handshakes == []
        rt.add(
            [{"type": "error", "error": {"type": "invalid_request_error", "message": "voice not allowed"}}]
        )
        res = run_cli("realtime", "--input", str(tone(tmp_path / "q.wav")), "--json", cwd=workspace)
        assert res.code == 1 and "realtime error: voice not allowed" in res.stderr


def test_hostile_events_and_recordings_end_cleanly(home: Path, workspace: Path, tmp_path: Path) -> None:
    """Red-team findings: non-JSON events are skipped (no traceback); a WAV at an absurd sample rate
    is refused before any work; a recording that is not a regular file is refused by transcribe."""
    with FakeRealtimeServer() as rt:
        write_config(
            home, "http://127.0.0.1:9/v1", extra=f'experimental_realtime_ws_base_url = "{rt.base_url}"'
        )
        rt.add([{"type": "response.output_audio_transcript.delta", "delta": "fine"},
                {"type": "response.done", "response": {"status": "completed"}}])  # fmt: skip
        res = run_cli("realtime", "--input", str(tone(tmp_path / "q.wav")), "--json", cwd=workspace)
        assert res.code == 0 and json.loads(res.stdout)["transcript"] == "fine", res.stderr
        slow = tone(tmp_path / "slow.wav", rate=1, seconds=40, channels=1)
        res = run_cli("realtime", "--input", str(slow), cwd=workspace)
        assert res.code == 1 and "sample rate of 1 Hz" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    res = run_cli("transcribe", str(tmp_path / "zero.wav"), env={"CODEXBRO_API_KEY": "sk-x"})
    assert res.code == 1 and "not a regular file" in res.stderr


def test_realtime_is_held_to_a_workspaces_requirements(home: Path, workspace: Path, tmp_path: Path) -> None:
    """A ChatGPT workspace requiring `untrusted` approvals: a command the realtime model calls that
    is not known-safe is refused (nobody can approve it), not run under the config's default."""
    import time

    from tests.test_managed_requirements import login

    login(home, "enterprise")
    kept = {"version": 1, "account_id": "acct_9", "fetched_at": time.time(), "url": "http://127.0.0.1:9/bundle",
            "fragments": [{"id": "req_1", "name": "Org policy",
                           "contents": 'allowed_approval_policies = ["untrusted"]\n'}]}  # fmt: skip
    (home / "managed_requirements.json").write_text(json.dumps(kept))
    (home / "managed_requirements.json").chmod(0o600)
    call = {"command": "python3 -c 'print(6*7)'"}
    with FakeRealtimeServer() as rt:
        write_config(
            home, "http://127.0.0.1:9/v1", extra=f'experimental_realtime_ws_base_url = "{rt.base_url}"'
        )
        rt.add(
            [{"type": "response.output_item.done", "item": {"type": "function_call", "call_id": "rt_1",
                                                             "name": "shell_command", "arguments": json.dumps(call)}},
             {"type": "response.done", "response": {"status": "completed"}}],
            [{"type": "response.done", "response": {"status": "completed"}}],
        )  # fmt: skip
        res = run_cli("realtime", "--input", str(tone(tmp_path / "q.wav")), cwd=workspace)
    assert res.code == 0, res.stderr
    output = next(e for e in rt.received if e["type"] == "conversation.item.create")["item"]["output"]
    assert "42" not in output and "approv" in output
