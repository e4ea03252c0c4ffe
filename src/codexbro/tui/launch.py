"""``codexbro [PROMPT]``: builds the config from the interactive flags, opens the session through the
composition root (``interactive=True``: the model may ask questions) and runs the app. Without a
terminal it says so and points to ``exec``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from codexbro.errors import UserError


def _flags(ns: argparse.Namespace, cwd: Path) -> dict[str, Any]:
    """Upstream's interactive defaults: in a git workspace workspace-write + on-request; elsewhere
    read-only + on-request (until a trust prompt lets the user mark the directory trusted)."""
    trusted = any((d / ".git").exists() for d in (cwd, *cwd.parents))
    flags: dict[str, Any] = {"model": ns.model, "approval_policy": ns.ask_for_approval}
    if trusted and ns.sandbox is None:
        flags["sandbox_mode"] = "workspace-write"
    if ns.full_auto:
        flags["sandbox_mode"] = "workspace-write"
        flags["approval_policy"] = flags["approval_policy"] or "on-request"
    if ns.sandbox:
        flags["sandbox_mode"] = ns.sandbox
    if ns.yolo:
        flags["sandbox_mode"], flags["approval_policy"] = "danger-full-access", "never"
    if ns.oss:
        from codexbro.exec.run import OSS_DEFAULT_MODELS

        provider = ns.local_provider or "ollama"
        flags["model_provider"] = provider
        flags["model"] = ns.model or OSS_DEFAULT_MODELS.get(provider)
    if ns.search:
        flags["web_search"] = "live"
    return flags


def run(ns: argparse.Namespace, *, kind: str | None = None) -> int:
    """The interactive agent; ``kind`` is ``resume`` or ``fork`` (``ns.session_id`` / ``ns.last``
    name the session, else a picker asks)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(
            "Error: the interactive agent needs a terminal (stdin and stdout are not both one); "
            'for scripts and pipes use `codexbro exec "your task"`',
            file=sys.stderr,
        )
        return 1
    from codexbro.composition import SessionOptions, open_session, resolve
    from codexbro.config.loader import Overrides, load_config
    from codexbro.logs import setup_file_logging

    cwd = Path(ns.cd).expanduser() if ns.cd else Path.cwd()
    if not cwd.is_dir():
        raise UserError(f"-C {cwd}: not a directory")
    flags = _flags(ns, cwd.resolve())
    config = load_config(Overrides(ns.config_overrides, ns.profile, flags, cwd, tuple(ns.add_dirs)))
    setup_file_logging(config.codexbro_home)
    prompt = ns.prompt

    async def main() -> int:
        from codexbro.tui.app import CodexbroApp

        earlier = await _earlier(kind, ns, config.codexbro_home, config.cwd) if kind else None
        if kind and earlier is None:
            return 0  # the picker was left
        resume, fork = (earlier, None) if kind == "resume" else (None, earlier)
        options = SessionOptions(
            originator="codex_cli_rs", source="cli", interactive=True, resume=resume, fork=fork
        )
        session = open_session(resolve(config, earlier=earlier), options)
        app = CodexbroApp(session, prompt)
        try:
            code = await app.run_async(inline=ns.no_alt_screen)
        finally:
            await session.close()
        if session.recorder.enabled:
            print(f'session {session.thread_id}: codexbro exec resume {session.thread_id} "…" continues it')
        return code or 0

    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    return asyncio.run(main())


async def _earlier(kind: str, ns: argparse.Namespace, home: Path, cwd: Path) -> Any:
    from codexbro.core.rollout import find_rollout, latest_rollout, list_sessions, load_rollout

    if ns.session_id:
        return load_rollout(find_rollout(home, ns.session_id))
    if ns.last:
        return load_rollout(latest_rollout(home, cwd))
    sessions = list_sessions(home, cwd)
    if not sessions:
        raise UserError(f"no earlier session started in {cwd} (codexbro {kind} ID picks any by its id)")
    from codexbro.tui.picker import SessionPicker

    path = await SessionPicker(sessions, kind).run_async()
    return load_rollout(path) if path is not None else None
