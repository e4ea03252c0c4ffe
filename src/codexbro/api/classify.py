"""Turn HTTP statuses, ``response.failed`` payloads and transport failures into typed errors.

Follows upstream's table: which codes are fatal, which are retried and
with what delay. Messages are upstream's where users know them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from codexbro.errors import ApiError, ContextWindowExceeded, FatalApiError, RetryableApiError

CONTEXT_WINDOW_MESSAGE = (
    "Codex ran out of room in the model's context window. Start a new thread or clear earlier "
    "history before retrying."
)
_TRY_AGAIN = re.compile(r"(?i)try again in\s*(\d+(?:\.\d+)?)\s*(s|ms|seconds?)")


def try_again_delay(message: str) -> float | None:
    """Parse "try again in 1.5s" / "in 20ms" / "in 3 seconds" into seconds."""
    match = _TRY_AGAIN.search(message or "")
    if not match:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower() == "ms" else value


def retry_after_header(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_failed(error: dict[str, Any] | None, route: str) -> ApiError:
    """Map ``response.failed``'s ``response.error`` to an error."""
    error = error or {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or "")
    if code == "context_length_exceeded":
        return ContextWindowExceeded(CONTEXT_WINDOW_MESSAGE, route=route)
    if code == "insufficient_quota":
        return FatalApiError(
            "Quota exceeded. Check your plan and billing details.", kind="usage_limit_exceeded", route=route
        )
    if code == "usage_not_included":
        return FatalApiError(
            "To use Codex with your ChatGPT plan, upgrade to Plus: https://openai.com/chatgpt/pricing.",
            kind="usage_limit_exceeded",
            route=route,
        )
    if code == "cyber_policy":
        return FatalApiError(
            message or "This request has been flagged for possible cybersecurity risk.",
            kind="bad_request",
            route=route,
        )
    if code == "invalid_prompt":
        return FatalApiError(message or "Invalid request.", kind="bad_request", route=route)
    if code in ("server_is_overloaded", "slow_down"):
        return FatalApiError(
            "Selected model is at capacity. Please try a different model.",
            kind="server_overloaded",
            route=route,
        )
    if code == "rate_limit_exceeded":
        return RetryableApiError(
            message or "Rate limit reached.",
            kind="rate_limited",
            route=route,
            retry_after=try_again_delay(message),
        )
    return RetryableApiError(
        message or "response.failed event received", kind="response_stream_disconnected", route=route
    )


def classify_status(status: int, body: bytes, headers: dict[str, str], url: str, route: str) -> ApiError:
    """Map a non-2xx answer to the initial request."""
    payload = _json_or_none(body)
    err = payload.get("error") if isinstance(payload, dict) else None
    err = err if isinstance(err, dict) else {}
    err_type = str(err.get("type") or "")
    err_code = str(err.get("code") or "")
    message = str(err.get("message") or "") or _snippet(body)
    retry_after = retry_after_header(headers.get("retry-after"))

    if status == 401:
        return FatalApiError(
            f"unauthorized (401) from {url}: {message or 'check your API key or run `codexbro login`'}",
            kind="unauthorized",
            status=status,
            route=route,
        )
    if status == 400:
        if err_code == "context_length_exceeded":
            return ContextWindowExceeded(CONTEXT_WINDOW_MESSAGE, status=status, route=route)
        return FatalApiError(message or "Invalid request.", kind="bad_request", status=status, route=route)
    if status == 429:
        if err_type == "usage_limit_reached":
            resets = err.get("resets_at")
            when = f" Try again at {local_time(resets)}." if isinstance(resets, int) else ""
            return FatalApiError(
                f"You've hit your usage limit.{when}", kind="usage_limit_exceeded", status=status, route=route
            )
        if err_type == "usage_not_included" or err_code == "insufficient_quota":
            return classify_failed({"code": err_code or err_type}, route)
        return RetryableApiError(
            f"rate limited (429): {message or 'Too Many Requests'}",
            kind="rate_limited",
            status=status,
            route=route,
            retry_after=retry_after if retry_after is not None else try_again_delay(message),
        )
    if status == 503 and err_code in ("server_is_overloaded", "slow_down"):
        return classify_failed({"code": err_code}, route)
    if status >= 500:
        return RetryableApiError(
            f"server error {status} from {url}: {message or 'no details'}",
            kind="internal_server_error",
            status=status,
            route=route,
            retry_after=retry_after,
        )
    details = f"unexpected status {status}: {message}, url: {url}"
    for header, label in (
        ("x-request-id", "request id"),
        ("x-oai-request-id", "request id"),
        ("cf-ray", "cf-ray"),
    ):
        if headers.get(header):
            details += f", {label}: {headers[header]}"
    return RetryableApiError(details, kind="other", status=status, route=route, retry_after=retry_after)


def local_time(epoch: float) -> str:
    """``YYYY-MM-DD HH:MM`` local time of a server-sent timestamp; one out of range says so."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"(an impossible time: {epoch!r})"


def _json_or_none(body: bytes) -> Any:
    from codexbro import textsafe

    try:
        return textsafe.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _snippet(body: bytes) -> str:
    text = body[:1000].decode("utf-8", "replace").strip()
    if text.lstrip().startswith("<"):
        return "the server answered with an HTML page instead of JSON"
    return text
