"""How a config value is checked: the value kinds (``Scalar``, ``Table``, ``MapOf``) and the walk
that validates a layer against the tree ``keys.KEYS`` declares.

A wrong type is an error naming the source (file or ``-c``), the dotted key and what was expected.
An unknown key is a warning, reported once per process, so a config written for a newer upstream
Codex still loads. Keys upstream knows but codexbro does not act on yet are listed as ``ANY`` so they
load silently and are kept in ``Config.raw`` for later layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from msgspec import Struct

from codexbro.errors import ConfigError


class Scalar(Struct, frozen=True):
    """A leaf value; ``check`` accepts or rejects it, ``expected`` describes it for errors."""

    expected: str
    check: Callable[[Any], bool]


class Table(Struct, frozen=True):
    """A table with known keys."""

    fields: dict[str, Spec]
    open: bool = False  # open tables accept any extra key without a warning


class MapOf(Struct, frozen=True):
    """A table whose keys are names chosen by the user (providers, profiles, …)."""

    value: Spec


Spec = Scalar | Table | MapOf


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


STR = Scalar("a string", lambda v: isinstance(v, str))
INT = Scalar("an integer", _is_int)
NONNEG_INT = Scalar("a non-negative integer", lambda v: _is_int(v) and v >= 0)
POS_INT = Scalar("a positive integer", lambda v: _is_int(v) and v > 0)
BOOL = Scalar("true or false", lambda v: isinstance(v, bool))
NUMBER = Scalar("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool))
STR_LIST = Scalar("an array of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
STR_MAP = Scalar(
    "a table of strings",
    lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
)
ANY = Scalar("any value", lambda v: True)


def enum(*values: str) -> Scalar:
    listed = ", ".join(f'"{v}"' for v in values)
    return Scalar(f"one of {listed}", lambda v: isinstance(v, str) and v in values)


PROVIDER = Table(
    {
        "name": STR,
        "base_url": STR,
        "env_key": STR,
        "env_key_instructions": STR,
        "experimental_bearer_token": STR,
        # Checked by the loader so `chat` gets upstream's explanation instead of a bare enum error.
        "wire_api": STR,
        "query_params": STR_MAP,
        "http_headers": STR_MAP,
        "env_http_headers": STR_MAP,
        "request_max_retries": NONNEG_INT,
        "stream_max_retries": NONNEG_INT,
        "stream_idle_timeout_ms": NONNEG_INT,
        "websocket_connect_timeout_ms": NONNEG_INT,
        "requires_openai_auth": BOOL,
        "supports_websockets": BOOL,
        # codexbro only: with `wire_api = "chat"`, talk to /chat/completions (api/chat_bridge.py).
        "chat_completions_bridge": BOOL,
        "auth": ANY,
        "aws": ANY,
    }
)

# Keys a profile may set (upstream's [profiles.NAME] tables): the model/policy subset.
_ROOT: list[Table] = []


def validate(doc: dict[str, Any], source: str, *, root: Table | None = None) -> list[str]:
    """Check ``doc`` against the spec (by default the tree ``keys.KEYS`` declares). Raises
    ConfigError on a wrong type; returns the unknown keys as messages (the loader warns once per
    process, or fails under ``--strict-config``)."""
    if root is None:
        if not _ROOT:
            from codexbro.config.keys import root_spec

            _ROOT.append(root_spec())
        root = _ROOT[0]
    unknown: list[str] = []
    _walk(doc, root, [], source, unknown)
    return unknown


def _walk(value: Any, spec: Spec, path: list[str], source: str, warnings: list[str]) -> None:
    if isinstance(spec, Scalar):
        if not spec.check(value):
            raise ConfigError(f"{source}: `{dotted(path)}` must be {spec.expected}, found {_describe(value)}")
        return
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: `{dotted(path)}` must be a table, found {_describe(value)}")
    if isinstance(spec, MapOf):
        for key, sub in value.items():
            _walk(sub, spec.value, [*path, key], source, warnings)
        return
    for key, sub in value.items():
        child = spec.fields.get(key)
        if child is None:
            if not spec.open:
                warnings.append(f"{source}: unknown config key `{dotted([*path, key])}`")
            continue
        _walk(sub, child, [*path, key], source, warnings)


def dotted(path: Iterable[str]) -> str:
    parts = []
    for p in path:
        parts.append(p if p.replace("_", "").replace("-", "").isalnum() else f'"{p}"')
    return ".".join(parts) or "<root>"


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{kind} ({shown})"


# The [features] codexbro acts on (--enable/--disable accept only these; a config file may hold more).
FEATURES = {
    "unified_exec": "exec_command + write_stdin instead of the model's shell tool",
    "shell_tool": "offer a shell tool at all (false: none)",
    "js_repl": "the js_repl tool (a persistent Node kernel)",
    "collaboration_modes": "the request_user_input tool",
    "apply_patch_freeform": "apply_patch as a freeform tool for models without a patch type",
}
