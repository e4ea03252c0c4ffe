"""Speech to text: ``POST /backend-api/transcribe`` with a ChatGPT login, or
``POST /v1/audio/transcriptions`` (model ``gpt-4o-transcribe``) with an API key; multipart with the
audio as ``file``; the answer is ``{"text": …}``."""

from __future__ import annotations

import json

from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import ApiError, FatalApiError, TransportError

DEFAULT_MODEL = "gpt-4o-transcribe"
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # read no further: a larger answer is not a transcription


async def transcribe(
    http: RouteHttp, *, chatgpt: bool, base_url: str, headers: dict[str, str], audio: bytes,
    filename: str = "audio.wav", mime: str = "audio/wav", model: str = DEFAULT_MODEL,
) -> str:  # fmt: skip
    r = route("transcribe" if chatgpt else "audio.transcriptions")
    url = r.url(base_url)
    data = {} if chatgpt else {"model": model}
    try:
        resp = await http.request(r, url, headers=headers, data=data, files={"file": (filename, audio, mime)},
                                  max_bytes=MAX_ANSWER_BYTES)  # fmt: skip
    except TransportError as exc:
        raise ApiError(f"could not reach {url}: {exc.detail}", kind="http_connection_failed",
                       route=r.name) from None  # fmt: skip
    if resp.status_code != 200:
        raise FatalApiError(f"transcription failed: HTTP {resp.status_code} from {url}", kind="other",
                            status=resp.status_code, route=r.name)  # fmt: skip
    try:
        doc = json.loads(resp.content)
    except (ValueError, RecursionError):
        raise FatalApiError(
            f"{url} answered with something other than JSON", kind="other", route=r.name
        ) from None
    text = doc.get("text") if isinstance(doc, dict) else None
    if not isinstance(text, str):
        raise FatalApiError(f'{url} answered without a "text" field', kind="other", route=r.name)
    return text
