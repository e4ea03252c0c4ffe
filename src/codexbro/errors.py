"""The exception tree shared by every layer.

::

    CodexbroError                      anything codexbro raises on purpose
    ├── UserError                      bad input from the person: fix it and run again (exit 1)
    │   ├── ConfigError                config.toml, -c overrides, profiles, providers
    │   └── AuthError                  missing / unusable credentials (message names the fix)
    └── ApiError                       the model-facing service said no, or could not be reached
        ├── RetryableApiError          worth another attempt (stream drop, idle timeout, 5xx, 429, …)
        │   ├── (retry_after: seconds the server asked for, or None)
        │   └── TransportError         no HTTP answer: refused, reset, TLS, timeout (mapped once, in
        │                              ``api/http.py``; nothing above it sees a transport failure)
        └── FatalApiError              retrying cannot help (quota, context overflow, bad request, …)
            └── ContextWindowExceeded  the conversation no longer fits the model's window
    (RolloutWriteError, core/rollout.py: the session file could not be written)

Every error carries a ``kind`` (upstream's ``CodexErrorInfo`` names where one exists) so front ends
and traces can classify it without string matching. Messages never contain credentials.

Signals that never leave their layer (each is turned into one of the above, or into what the model
reads, where it is caught): ``PatchError`` (apply_patch: a patch that does not parse or apply →
the tool's output), ``NotExplicit`` (apply_patch: a command that is not a patch), ``RespondToModel``
(tools: bad arguments → the tool's output), ``ReadRefused`` (tools: a read the policy refuses),
``RulesError`` (sandbox: an approval-rules file → ``UserError``), ``SandboxUnavailable``,
``LandlockError`` and ``ContainerError`` (sandbox: a backend that cannot run here → the next
backend or a clear refusal).
"""

from __future__ import annotations


class CodexbroError(Exception):
    """Base of every error codexbro raises on purpose."""

    kind: str = "other"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind


class UserError(CodexbroError):
    """Bad input from the person running codexbro."""


class ConfigError(UserError):
    """config.toml, a profile, a -c override or a provider definition is wrong."""

    kind = "config"


class AuthError(UserError):
    """Credentials are missing or unusable; the message says how to fix it."""

    kind = "unauthorized"


class ApiError(CodexbroError):
    """The model-facing service failed the request."""

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        route: str | None = None,
    ) -> None:
        super().__init__(message, kind=kind)
        self.status = status
        self.route = route


class RetryableApiError(ApiError):
    """A failure worth retrying; ``retry_after`` is the delay the server asked for, if any."""

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        route: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, kind=kind, status=status, route=route)
        self.retry_after = retry_after


class FatalApiError(ApiError):
    """A failure that another attempt cannot fix."""


class ContextWindowExceeded(FatalApiError):
    """The conversation no longer fits in the model's context window."""

    kind = "context_window_exceeded"


class TransportError(RetryableApiError):
    """The request got no HTTP answer, or its body stopped arriving: ``detail`` names the cause
    (``ConnectError: …``, ``ReadTimeout: …``)."""

    kind = "http_connection_failed"

    def __init__(self, detail: str, *, route: str | None = None) -> None:
        super().__init__(detail, route=route)
        self.detail = detail
