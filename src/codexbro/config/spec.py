"""What a config.toml may contain: one table of keys and their types, used to validate every layer.

A wrong type is an error naming the source (file or ``-c``), the dotted key and what was expected.
An unknown key is a warning, reported once per process, so a config written for a newer upstream
Codex still loads. Keys upstream knows but codexbro does not act on yet are listed as ``ANY`` so they
load silently and are kept in ``Config.raw`` for later layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from codexbro.errors import ConfigError


@dataclass(frozen=True)
class Scalar:
    """A leaf value; ``check`` accepts or rejects it, ``expected`` describes it for errors."""

    expected: str
    check: Callable[[Any], bool]


@dataclass(frozen=True)
class Table:
    """A table with known keys."""

    fields: dict[str, Spec]
    open: bool = False  # open tables accept any extra key without a warning


@dataclass(frozen=True)
class MapOf:
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


EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra")
APPROVAL_POLICIES = ("untrusted", "on-failure", "on-request", "never")
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")

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
        "auth": ANY,
        "aws": ANY,
    }
)

# Keys a profile may set (upstream's [profiles.NAME] tables): the model/policy subset.
_PROFILE_KEYS = (
    "model",
    "model_provider",
    "approval_policy",
    "sandbox_mode",
    "model_reasoning_effort",
    "model_reasoning_summary",
    "model_verbosity",
    "model_catalog_json",
    "developer_instructions",
    "model_instructions_file",
    "service_tier",
    "oss_provider",
    "tools",
    "features",
    "sandbox_workspace_write",
    "shell_environment_policy",
    "model_context_window",
    "model_auto_compact_token_limit",
)

_TOP: dict[str, Spec] = {
    "model": STR,
    "review_model": STR,
    "model_provider": STR,
    "model_providers": MapOf(PROVIDER),
    "profile": STR,
    "openai_base_url": STR,
    "chatgpt_base_url": STR,
    "oss_provider": STR,
    "embedded_model": STR,
    "offline_fallback": BOOL,
    "model_context_window": NONNEG_INT,
    "model_auto_compact_token_limit": INT,
    "model_reasoning_effort": enum(*EFFORTS),
    "plan_mode_reasoning_effort": enum(*EFFORTS),
    "model_reasoning_summary": enum("auto", "concise", "detailed", "none"),
    "model_verbosity": enum("low", "medium", "high"),
    "model_supports_reasoning_summaries": BOOL,
    "service_tier": STR,
    "model_catalog_json": STR,
    "model_instructions_file": STR,
    "experimental_instructions_file": STR,
    "developer_instructions": STR,
    "instructions": STR,
    "compact_prompt": STR,
    "compaction_strategy": enum("auto", "remote", "inline", "local"),
    "experimental_compact_prompt_file": STR,
    "tool_output_token_limit": NONNEG_INT,
    "retry_wait_max_ms": POS_INT,  # codexbro: the longest single wait before a retry
    "hide_agent_reasoning": BOOL,
    "show_raw_agent_reasoning": BOOL,
    "approval_policy": Scalar(
        "one of " + ", ".join(f'"{v}"' for v in APPROVAL_POLICIES) + " or a granular table",
        lambda v: (isinstance(v, str) and v in APPROVAL_POLICIES) or isinstance(v, dict),
    ),
    "sandbox_mode": enum(*SANDBOX_MODES),
    "sandbox_backend": enum("auto", "namespaces", "bubblewrap", "landlock"),
    "sandbox_workspace_write": Table(
        {
            "writable_roots": STR_LIST,
            "network_access": BOOL,
            "exclude_tmpdir_env_var": BOOL,
            "exclude_slash_tmp": BOOL,
        }
    ),
    "shell_environment_policy": Table(
        {
            "inherit": enum("all", "core", "none"),
            "ignore_default_excludes": BOOL,
            "exclude": STR_LIST,
            "set": STR_MAP,
            "include_only": STR_LIST,
            "experimental_use_profile": BOOL,
        }
    ),
    "project_doc_max_bytes": NONNEG_INT,
    "project_doc_fallback_filenames": STR_LIST,
    "project_root_markers": STR_LIST,
    "history": Table({"persistence": enum("save-all", "none"), "max_bytes": NONNEG_INT}),
    "notify": STR_LIST,
    "features": Table({}, open=True),  # any name is kept (upstream's); FEATURES are the ones acted on
    "tools": Table({}, open=True),
    "projects": MapOf(Table({"trust_level": enum("trusted", "untrusted")})),
    "mcp_servers": MapOf(Table({}, open=True)),
    "file_opener": STR,
    "background_terminal_max_timeout": NONNEG_INT,
    "log_dir": STR,
    "cli_auth_credentials_store": enum("file", "keyring", "auto", "ephemeral"),
    "forced_login_method": enum("chatgpt", "api"),
    "forced_chatgpt_workspace_id": STR,
    "allow_login_shell": BOOL,
    # Known upstream keys codexbro accepts but does not act on yet.
    **{
        k: ANY
        for k in (
            "tui",
            "otel",
            "analytics",
            "agents",
            "realtime",
            "audio",
            "skills",
            "check_for_update_on_startup",
            "suppress_unstable_features_warning",
            "disable_response_storage",
            "include_permissions_instructions",
            "include_apps_instructions",
            "include_environment_context",
            "include_environment_context_time",
            "include_collaboration_mode_instructions",
            "mcp_oauth_credentials_store",
            "mcp_oauth_callback_port",
            "mcp_oauth_callback_url",
            "responses_api_metadata",
            "windows_wsl_setup_acknowledged",
            "sqlite_home",
            "personality",
            "web_search",
            "experimental_realtime_ws_base_url",
            "experimental_realtime_ws_model",
            "model_auto_compact_token_limit_scope",
            "model_post_turn_compact_threshold_percent",
            "approvals_reviewer",
            "default_permissions",
            "permissions",
            "notice",
        )
    },
}
_TOP["profiles"] = MapOf(Table({k: _TOP[k] for k in _PROFILE_KEYS}))

ROOT = Table(_TOP)


def validate(doc: dict[str, Any], source: str, *, root: Table = ROOT) -> list[str]:
    """Check ``doc`` against the spec. Raises ConfigError on a wrong type; returns the unknown keys
    as messages (the loader warns once per process, or fails under ``--strict-config``)."""
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
