"""Load the effective configuration.

Layers, lowest to highest precedence::

    built-in defaults < $CODEXBRO_HOME/config.toml < [profiles.NAME] < -c key=value < CLI flags

Each layer is validated on its own (so an error names the file or the ``-c`` that caused it), then
merged table by table. ``Config.origins`` records which layer set each top-level key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from msgspec import Struct, field

from codexbro import __version__
from codexbro.config.spec import validate
from codexbro.config.types import (
    MAX_RETRIES_CAP,
    Config,
    ModelProviderInfo,
    SandboxWorkspaceWrite,
    ShellEnvironmentPolicy,
)
from codexbro.config.values import ApprovalPolicy
from codexbro.errors import ConfigError

OPENAI_API_BASE = "https://api.openai.com/v1"
CHATGPT_CODEX_BASE = "https://chatgpt.com/backend-api/codex"


def codexbro_home(env: Mapping[str, str] | None = None) -> Path:
    """``$CODEXBRO_HOME`` or ``~/.codexbro``. Upstream's layout, so it may point at a ``~/.codex``."""
    env = os.environ if env is None else env
    raw = env.get("CODEXBRO_HOME", "").strip()
    if raw:
        return Path(raw).expanduser()
    return Path.home() / ".codexbro"


class Overrides(Struct):
    """What the command line contributes on top of the files."""

    cli_overrides: Sequence[str] = ()  # raw `-c key=value` strings, in order
    profile: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)  # top-level keys set by dedicated flags
    cwd: Path | None = None
    add_dirs: Sequence[str] = ()  # --add-dir: extra writable roots
    strict: bool = False  # --strict-config: unknown keys are errors
    ignore_user_config: bool = False  # --ignore-user-config: skip $CODEXBRO_HOME/config.toml
    # top-level keys a command fixes on top of everything, though nobody chose them (exec's
    # approval_policy = "never": no one is there to approve); their origin is "command default"
    command_defaults: dict[str, Any] = field(default_factory=dict)


_warned: set[str] = set()  # unknown keys already reported in this process


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``-c key=value``: dotted key, value as TOML, else the raw string (as upstream)."""
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f'-c expects key=value (for example -c model="o3"), got `{text}`')
    path = split_dotted(key, source=f"-c {text}")
    raw_value = raw_value.strip()
    try:
        value: Any = tomllib.loads(f"v = {raw_value}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value
    return path, value


def split_dotted(key: str, *, source: str) -> list[str]:
    """Split ``a.b."c.d"`` into ``["a", "b", "c.d"]`` using TOML's own key grammar."""
    try:
        doc = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: `{key}` is not a valid dotted key ({exc})") from None
    path: list[str] = []
    node: Any = doc
    while isinstance(node, dict):
        (name, node), *_ = node.items()
        path.append(name)
    return path


def nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_config(overrides: Overrides | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and merge every layer into a ``Config``."""
    overrides = overrides or Overrides()
    env = os.environ if env is None else env
    home = codexbro_home(env)
    config_path = home / "config.toml"
    warnings: list[str] = []
    origins: dict[str, str] = {}

    file_doc = {} if overrides.ignore_user_config else read_toml(config_path)
    unknown = validate(file_doc, str(config_path))

    cli_doc: dict[str, Any] = {}
    for text in overrides.cli_overrides:
        path, value = parse_override(text)
        layer = nest(path, value)
        unknown += validate(layer, f"-c {text}")
        cli_doc = deep_merge(cli_doc, layer)
    if unknown and overrides.strict:
        raise ConfigError("--strict-config: " + "; ".join(unknown))
    for message in unknown:
        if message not in _warned:
            _warned.add(message)
            warnings.append(message + " (ignored)")

    profile_name = overrides.profile or cli_doc.get("profile") or file_doc.get("profile")
    profile_doc: dict[str, Any] = {}
    if profile_name:
        profiles = file_doc.get("profiles", {})
        if profile_name not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(
                f"profile `{profile_name}` not found in {config_path} (available: {known}); "
                f"define it as [profiles.{profile_name}]"
            )
        profile_doc = profiles[profile_name]

    flags = {k: v for k, v in overrides.flags.items() if v is not None}
    merged: dict[str, Any] = {}
    for name, layer in (
        (str(config_path), file_doc),
        (f"profile {profile_name}", profile_doc),
        ("-c", cli_doc),
        ("command default", {k: v for k, v in overrides.command_defaults.items() if k not in flags}),
        ("flag", flags),
    ):
        merged = deep_merge(merged, layer)
        for key in layer:
            origins[key] = name
    merged.pop("profiles", None)

    cwd = (overrides.cwd or Path.cwd()).resolve()
    providers = _build_providers(merged, env)
    provider_id = merged.get("model_provider") or "openai"
    origins.setdefault("model_provider", "default")
    if provider_id not in providers:
        known = ", ".join(sorted(providers))
        raise ConfigError(
            f"model_provider `{provider_id}` is not defined (known: {known}); "
            f"add a [model_providers.{provider_id}] table to {config_path}"
        )

    base_override = None
    instr_file = merged.get("model_instructions_file") or merged.get("experimental_instructions_file")
    if instr_file:
        instr_path = Path(instr_file).expanduser()
        try:
            base_override = instr_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"model_instructions_file {instr_path}: {exc.strerror}") from None
    elif isinstance(merged.get("instructions"), str):
        base_override = merged["instructions"]

    from codexbro.config.keys import KEYS, lookup
    from codexbro.config.mcp_servers import parse_servers

    direct = {k.field: _as_field(lookup(merged, k.path)) for k in KEYS if k.field is not None}
    return Config(
        codexbro_home=home,
        cwd=cwd,
        model_provider_id=provider_id,
        model_providers=providers,
        approval_policy=_approval(lookup(merged, "approval_policy")),
        sandbox_workspace_write=SandboxWorkspaceWrite(
            writable_roots=tuple(lookup(merged, "sandbox_workspace_write.writable_roots"))
            + tuple(str((cwd / d).resolve()) for d in overrides.add_dirs),
            network_access=lookup(merged, "sandbox_workspace_write.network_access"),
            exclude_tmpdir_env_var=lookup(merged, "sandbox_workspace_write.exclude_tmpdir_env_var"),
            exclude_slash_tmp=lookup(merged, "sandbox_workspace_write.exclude_slash_tmp"),
        ),
        shell_environment_policy=ShellEnvironmentPolicy(
            inherit=lookup(merged, "shell_environment_policy.inherit"),
            ignore_default_excludes=lookup(merged, "shell_environment_policy.ignore_default_excludes"),
            exclude=tuple(lookup(merged, "shell_environment_policy.exclude")),
            set=dict(lookup(merged, "shell_environment_policy.set")),
            include_only=tuple(lookup(merged, "shell_environment_policy.include_only")),
            credential_vars=tuple(
                sorted(
                    {v for p in providers.values() for v in (p.env_key, *p.env_http_headers.values()) if v}
                )
            ),
        ),
        base_instructions_override=base_override,
        mcp_servers=parse_servers(merged.get("mcp_servers")),
        history_persistence=lookup(merged, "history.persistence"),
        profile=profile_name,
        origins=origins,
        raw=merged,
        warnings=tuple(warnings),
        **direct,
    )


def _as_field(value: Any) -> Any:
    """TOML arrays become tuples and tables are copied: a Config never shares the merged doc."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _approval(value: Any) -> ApprovalPolicy:
    # Granular approval tables (2026 upstream) are accepted; until they are modelled they behave
    # like on-request, the interactive default.
    for policy in get_args(ApprovalPolicy):
        if value == policy:
            return policy  # type: ignore[no-any-return]
    return "on-request"


def builtin_providers(env: Mapping[str, str]) -> dict[str, ModelProviderInfo]:
    oss_base = env.get("CODEXBRO_OSS_BASE_URL") or env.get("CODEX_OSS_BASE_URL")
    oss_port = env.get("CODEXBRO_OSS_PORT") or env.get("CODEX_OSS_PORT")

    def oss(default_port: int) -> str:
        if oss_base:
            return oss_base
        return f"http://localhost:{oss_port or default_port}/v1"

    return {
        "openai": ModelProviderInfo(
            id="openai",
            name="OpenAI",
            base_url=None,  # chosen by auth mode at request time (API key vs ChatGPT login)
            http_headers={"version": __version__},
            env_http_headers={
                "OpenAI-Organization": "OPENAI_ORGANIZATION",
                "OpenAI-Project": "OPENAI_PROJECT",
            },
            requires_openai_auth=True,
            supports_websockets=True,
            builtin=True,
        ),
        "ollama": ModelProviderInfo(id="ollama", name="gpt-oss", base_url=oss(11434), builtin=True),
        "lmstudio": ModelProviderInfo(id="lmstudio", name="gpt-oss", base_url=oss(1234), builtin=True),
        # In-process model (codexbro[local]); no network, no credentials.
        "embedded": ModelProviderInfo(
            id="embedded",
            name="embedded",
            base_url="embedded://local",
            request_max_retries=0,
            stream_max_retries=0,
            builtin=True,
        ),
    }


def _build_providers(merged: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, ModelProviderInfo]:
    providers = builtin_providers(env)
    for pid, table in merged.get("model_providers", {}).items():
        if pid == "ollama-chat":
            raise ConfigError(
                "`ollama-chat` is no longer supported. How to fix: replace `ollama-chat` with "
                "`ollama` in `model_provider` / [model_providers]."
            )
        wire = table.get("wire_api", "responses")
        if wire == "chat" and table.get("chat_completions_bridge") is not True:
            raise ConfigError(
                '`wire_api = "chat"` is no longer supported.\n'
                'How to fix: set `wire_api = "responses"` in your provider config.\n'
                "More info: https://github.com/openai/codex/discussions/7782\n"
                f"in `model_providers.{pid}.wire_api`\n"
                "(codexbro: for a server that only has /chat/completions, add "
                f"`chat_completions_bridge = true` to [model_providers.{pid}] to use its chat bridge)"
            )
        if table.get("chat_completions_bridge") is True and wire != "chat":
            raise ConfigError(
                f'`chat_completions_bridge = true` needs `wire_api = "chat"` in [model_providers.{pid}]'
            )
        if wire not in ("responses", "chat"):
            raise ConfigError(
                f"unknown variant `{wire}`, expected `responses` in `model_providers.{pid}.wire_api`"
            )
        base = providers.get(pid)
        fields: dict[str, Any] = {} if base is None else dict(base.__dict__)
        fields.update(table)
        fields["id"] = pid
        fields.setdefault("name", pid)
        for key in ("request_max_retries", "stream_max_retries"):
            if key in fields:
                fields[key] = min(int(fields[key]), MAX_RETRIES_CAP)
        fields.pop("auth", None)
        fields.pop("aws", None)
        providers[pid] = ModelProviderInfo(**fields)
    return providers
