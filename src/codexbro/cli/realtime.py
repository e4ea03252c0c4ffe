"""``codexbro realtime --input FILE.wav``: a realtime voice exchange, tools included.

The recording (any 16-bit PCM WAV; converted to mono 24 kHz) goes to ``{base}/realtime`` over a
WebSocket (``api/realtime.py``); the model's function calls run through the same tool router, sandbox
and approval policy as an ``exec`` turn's (nobody can approve here: what needs approval is
refused, as in ``exec``); the transcripts are printed and the spoken answer is saved as a WAV file.

Where it goes: ``experimental_realtime_ws_base_url`` when set, otherwise the session's resolved base
URL (``https://api.openai.com/v1`` with an API key, the ChatGPT Codex backend with a login), with
the same credential. Microphone capture is not here (this tool reads files).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from codexbro.errors import CodexbroError, UserError


async def realtime_exchange(ns: argparse.Namespace) -> dict[str, Any]:
    from codexbro.api.realtime import (
        DEFAULT_MODEL,
        RealtimeSession,
        read_wav_pcm16,
        realtime_url,
        session_update,
    )
    from codexbro.api.responses_client import originator_for, user_agent
    from codexbro.composition.resolve import resolve
    from codexbro.config.loader import Overrides, load_config
    from codexbro.core.rollout import new_thread_id
    from codexbro.sandbox.policy import spec_for
    from codexbro.tools.base import ToolCall, ToolContext
    from codexbro.tools.menu import build_router
    from codexbro.tools.resources import ToolResources

    source = Path(ns.input)
    try:
        pcm = await asyncio.to_thread(read_wav_pcm16, str(source))
    except (OSError, EOFError, ValueError) as exc:  # wave.Error is an Exception subclass: caught below
        raise UserError(f"cannot read {source} as a WAV recording: {exc}") from None
    except Exception as exc:
        raise UserError(f"cannot read {source} as a WAV recording: {exc}") from None
    if not pcm:
        raise UserError(f"{source} holds no audio")
    config = load_config(Overrides(cli_overrides=ns.config_overrides, profile=ns.profile))
    resolution = resolve(config)
    config = resolution.config  # as resolved: held to a workspace's managed requirements
    if resolution.embedded:
        raise UserError(
            "realtime voice needs an OpenAI account (API key or ChatGPT login); the embedded model has none"
        )
    raw = config.raw
    base = str(raw.get("experimental_realtime_ws_base_url") or resolution.base_url)
    model = ns.model or str(raw.get("experimental_realtime_ws_model") or DEFAULT_MODEL)
    origin = originator_for("codex_cli_rs")
    headers = {"originator": origin, "user-agent": user_agent(origin)}
    if resolution.auth.token:
        headers["authorization"] = f"Bearer {resolution.auth.token}"
    if resolution.auth.mode == "chatgpt" and resolution.auth.account_id:
        headers["chatgpt-account-id"] = resolution.auth.account_id
    thread_id = new_thread_id()
    resources = ToolResources(thread_id)
    router = build_router(resolution.model, config, resources)
    spec = spec_for(
        config.sandbox_mode, config.sandbox_workspace_write, config.cwd, config.codexbro_home, thread_id
    )
    ctx = ToolContext(cwd=config.cwd, turn_id=thread_id, sandbox_mode=config.sandbox_mode,
                      approval_policy=config.approval_policy, sandbox_workspace_write=config.sandbox_workspace_write,
                      env_policy=config.shell_environment_policy, sandbox=spec, sandbox_backend=config.sandbox_backend,
                      home=config.codexbro_home, rules=())  # fmt: skip

    async def run_tool(call_id: str, name: str, arguments: str) -> str:
        result = await router.dispatch(ToolCall(call_id, name, "function", arguments=arguments), ctx)
        content = result.output.content
        return content if isinstance(content, str) else json.dumps(content)

    url = realtime_url(base, model)
    instructions = config.base_instructions_override or resolution.model.base_instructions or ""
    try:
        async with RealtimeSession(url, headers) as rt:
            await rt.configure(
                session_update(model, instructions, router.specs(), ns.voice, "gpt-4o-mini-transcribe")
            )
            await rt.send_audio(pcm)
            result = await rt.converse(run_tool)
    finally:
        await resources.aclose()
    output = Path(ns.output) if ns.output else Path.cwd() / f"{source.stem}-answer.wav"
    if result.audio:
        from codexbro.api.realtime import write_wav_pcm16

        await asyncio.to_thread(write_wav_pcm16, str(output), bytes(result.audio))
    return {
        "input_transcript": result.input_transcript, "transcript": result.transcript,
        "audio": str(output) if result.audio else None, "audio_seconds": round(len(result.audio) / 48_000, 2),
        "tool_calls": result.tool_calls, "model": model, "url": url,
    }  # fmt: skip


def run_realtime(ns: argparse.Namespace) -> int:
    from codexbro.textsafe import for_terminal

    try:
        result = asyncio.run(realtime_exchange(ns))
    except CodexbroError as err:
        print(f"Error: {for_terminal(err.message)}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(result))
        return 0
    if result["input_transcript"]:
        print(f"you: {for_terminal(result['input_transcript'])}")
    for call in result["tool_calls"]:
        print(f"tool: {for_terminal(call['name'])} {for_terminal(call['arguments'])}", file=sys.stderr)
    print(f"codexbro: {for_terminal(result['transcript'])}")
    if result["audio"]:
        print(f"answer audio: {result['audio']} ({result['audio_seconds']} s)", file=sys.stderr)
    return 0
