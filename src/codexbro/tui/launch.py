"""``codexbro [PROMPT]``: builds the config from the interactive flags, opens the session through the
composition root (``interactive=True``: the model may ask questions) and runs the app. Without a
terminal it says so and points to ``exec``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from codexbro.errors import UserError


def _in_git(cwd: Path) -> bool:
    return any((d / ".git").exists() for d in (cwd, *cwd.parents))


def _flags(ns: argparse.Namespace, trusted: bool) -> dict[str, Any]:
    """Upstream's interactive defaults: in a trusted workspace (a git one, or one the user trusted)
    workspace-write + on-request; elsewhere read-only + on-request."""
    flags: dict[str, Any] = {"model": ns.model, "approval_policy": ns.ask_for_approval}
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
    from codexbro.logs import setup_file_logging

    cwd = Path(ns.cd).expanduser() if ns.cd else Path.cwd()
    if not cwd.is_dir():
        raise UserError(f"-C {cwd}: not a directory")
    for image in ns.images:
        if not Path(image).is_file():
            raise UserError(f"-i {image}: no such file")
    ns.images = [str(Path(i).resolve()) for i in ns.images]
    config = _config(ns, cwd)
    setup_file_logging(config.codexbro_home)
    prompt = ns.prompt

    async def main() -> int:
        from codexbro.tui.app import CodexbroApp

        earlier = await _earlier(kind, ns, config.codexbro_home, config.cwd) if kind else None
        if kind and earlier is None:
            return 0  # the picker was left

        def opened(resume: Any = None, fork: Any = None) -> Any:
            """A session of this TUI: new, resumed or forked (the app's /new and /resume too)."""
            options = SessionOptions(
                originator="codex_cli_rs", source="cli", interactive=True, resume=resume, fork=fork
            )
            return open_session(resolve(config, earlier=resume or fork), options)

        session = opened(earlier, None) if kind == "resume" else opened(None, earlier)

        def fresh() -> Any:
            return opened()

        def resumed(path: Path) -> Any:
            from codexbro.core.rollout import load_rollout

            return opened(load_rollout(path))

        app = CodexbroApp(session, prompt, images=tuple(ns.images), new_session=fresh, resume_session=resumed)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT):
            # The app leaves the way it does on /quit: the terminal is restored, the session closed.
            loop.add_signal_handler(sig, app.exit, 128 + sig)
        try:
            code = await app.run_async(inline=ns.no_alt_screen)
        finally:
            await app.session.close()  # the one in use: /new and /resume replace it
        last = app.session
        if last.recorder.enabled:
            print(f"session {last.thread_id}: `codexbro resume {last.thread_id}` continues it")
        return code or 0

    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    return asyncio.run(main())


def _config(ns: argparse.Namespace, cwd: Path) -> Any:
    """The config, with the workspace's trust decided: a git workspace is trusted; elsewhere the
    user is asked once (unless a sandbox was chosen on the command line) and the answer kept."""
    from codexbro.config.loader import Overrides, load_config

    def load(trusted: bool) -> Any:
        # a trusted workspace's workspace-write is the command's default, not the user's choice (a
        # workspace's managed requirements may replace it; a chosen value they forbid is refused)
        defaults = {"sandbox_mode": "workspace-write"} if trusted and ns.sandbox is None else {}
        return load_config(
            Overrides(
                ns.config_overrides,
                ns.profile,
                _flags(ns, trusted),
                cwd,
                tuple(ns.add_dirs),
                command_defaults=defaults,
            )
        )

    where = cwd.resolve()
    config = load(False)
    level = ((config.raw.get("projects") or {}).get(str(where)) or {}).get("trust_level")
    chosen = ns.sandbox or ns.full_auto or ns.yolo
    if level is None and not chosen and not _in_git(where):
        from codexbro.tui.trust import TrustPrompt, remember

        level = "trusted" if asyncio.run(TrustPrompt(where).run_async()) else "untrusted"
        remember(config.codexbro_home / "config.toml", where, level)
    trusted = level == "trusted" or (level is None and _in_git(where))
    return load(trusted) if trusted else config


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
