"""Speech to text for every front end (``codexbro transcribe``, the TUI's ``/transcribe``): the two
modes of the seed's transcription, chosen by the account.

- a ChatGPT login → ``POST {chatgpt_base_url}/transcribe`` (route ``transcribe``) with the login's
  token and account, refreshed as needed;
- an API key (``CODEXBRO_API_KEY``, ``CODEX_API_KEY``, ``auth.json``, ``OPENAI_API_KEY``, in
  ``resolve_auth``'s order) → ``POST {openai base}/audio/transcriptions`` (route
  ``audio.transcriptions``), model ``gpt-4o-transcribe`` unless another is given.

Multipart, the audio as ``file``. Files over 25 MB are refused before anything is sent (the API's
limit), as are unknown formats.
"""

from __future__ import annotations

import stat
from pathlib import Path

from codexbro.config.types import Config
from codexbro.errors import UserError

MAX_BYTES = 25 * 1024 * 1024
MIME = {
    ".wav": "audio/wav", ".mp3": "audio/mpeg", ".mpga": "audio/mpeg", ".mpeg": "audio/mpeg",
    ".m4a": "audio/mp4", ".mp4": "audio/mp4", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".webm": "audio/webm", ".flac": "audio/flac",
}  # fmt: skip


def read_audio(path: Path) -> tuple[bytes, str]:
    """The recording's bytes and MIME type, or a ``UserError`` saying what is wrong with it."""
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise UserError(f"{path}: not a supported audio format (use one of {', '.join(sorted(MIME))})")
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path} is not a regular file")
        if st.st_size > MAX_BYTES:
            raise UserError(
                f"{path}: {st.st_size / 2**20:.1f} MB is over the 25 MB the transcription API accepts"
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # the size may have changed since stat
        if len(data) > MAX_BYTES:
            raise UserError(f"{path} is over the 25 MB the transcription API accepts")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise UserError(f"{path} is empty")
    return data, mime


async def transcribe_path(path: Path, model: str | None, overrides: list[str] | tuple[str, ...] = (),
                          profile: str | None = None, config: Config | None = None) -> tuple[str, str, str]:  # fmt: skip
    """(text, route name, URL) for the recording at ``path``, through the configured account."""
    from codexbro.api.http import RouteHttp
    from codexbro.api.responses_client import originator_for, user_agent
    from codexbro.api.routes import route
    from codexbro.api.transcribe import DEFAULT_MODEL, transcribe
    from codexbro.auth.resolve import resolve_auth
    from codexbro.config.loader import Overrides, load_config

    audio, mime = read_audio(path)
    if config is None:
        config = load_config(Overrides(cli_overrides=list(overrides), profile=profile))
    provider = config.model_providers["openai"]
    auth = resolve_auth(provider, config.codexbro_home)
    origin = originator_for("codex_cli_rs")
    headers = {"originator": origin, "user-agent": user_agent(origin)}
    http = RouteHttp(timeout_s=120.0)
    try:
        if auth.mode == "chatgpt":
            from codexbro.auth.manager import AuthManager

            manager = AuthManager(config.codexbro_home, http)
            await manager.ensure_fresh()
            headers["authorization"] = f"Bearer {manager.access_token}"
            if manager.account_id:
                headers["chatgpt-account-id"] = manager.account_id
            base, chatgpt = config.chatgpt_base_url, True
        else:
            headers["authorization"] = f"Bearer {auth.token}"
            base, chatgpt = config.openai_base_url or provider.base_url or "https://api.openai.com/v1", False
        text = await transcribe(http, chatgpt=chatgpt, base_url=base, headers=headers, audio=audio,
                                filename=path.name, mime=mime, model=model or DEFAULT_MODEL)  # fmt: skip
        r = route("transcribe" if chatgpt else "audio.transcriptions")
        return text, r.name, r.url(base)
    finally:
        await http.aclose()
