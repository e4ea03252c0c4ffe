"""Opening a WebSocket for the model routes (Responses, realtime): the ``websockets`` library's
client, loaded on first use, that **never follows a redirect** — the library would carry the
provider's extra headers (``http_headers``, ``chatgpt-account-id``, API keys under other names) and
the prompt to wherever a 3xx points; a redirect is a failed handshake instead, as the HTTP routes
treat one (``follow_redirects=False``)."""

from __future__ import annotations

from typing import Any

MAX_FRAME = 64 * 1024 * 1024  # one frame, decompressed: more is a broken or hostile server


async def open_ws(url: str, headers: dict[str, str], *, open_timeout: float, max_size: int = MAX_FRAME,
                  compression: str | None = "deflate") -> Any:  # fmt: skip
    from websockets.asyncio.client import connect

    class NoRedirects(connect):
        def process_redirect(self, exc: Exception) -> Exception | str:
            return exc

    return await NoRedirects(url, additional_headers=headers, open_timeout=open_timeout, max_size=max_size,
                             ping_interval=None, compression=compression, user_agent_header=None)  # fmt: skip
