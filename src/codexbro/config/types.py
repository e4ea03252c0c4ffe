"""Typed configuration values, built once from the merged layers by ``config.loader``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msgspec import Struct, field

from codexbro.config.keys import FIELD_DEFAULTS as _D
from codexbro.config.mcp_servers import McpServerConfig
from codexbro.config.values import (
    ApprovalPolicy,
    CompactionStrategy,
    EnvInherit,
    HistoryPersistence,
    ReasoningEffort,
    ReasoningSummary,
    SandboxBackend,
    SandboxMode,
    Verbosity,
)

DEFAULT_REQUEST_MAX_RETRIES = 4
DEFAULT_STREAM_MAX_RETRIES = 5
DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000
MAX_RETRIES_CAP = 100


class ModelProviderInfo(Struct, frozen=True):
    """One ``[model_providers.ID]`` entry, with upstream's fields and defaults."""

    id: str
    name: str = ""
    base_url: str | None = None
    env_key: str | None = None
    env_key_instructions: str | None = None
    experimental_bearer_token: str | None = None
    wire_api: str = "responses"
    query_params: dict[str, str] = field(default_factory=dict)
    http_headers: dict[str, str] = field(default_factory=dict)
    env_http_headers: dict[str, str] = field(default_factory=dict)
    request_max_retries: int = DEFAULT_REQUEST_MAX_RETRIES
    stream_max_retries: int = DEFAULT_STREAM_MAX_RETRIES
    stream_idle_timeout_ms: int = DEFAULT_STREAM_IDLE_TIMEOUT_MS
    websocket_connect_timeout_ms: int = 15_000
    requires_openai_auth: bool = False
    supports_websockets: bool = False
    chat_completions_bridge: bool = False  # codexbro only: `wire_api = "chat"` through api/chat_bridge.py
    builtin: bool = False

    @property
    def is_openai(self) -> bool:
        """Upstream treats a provider named exactly "OpenAI" specially (remote compaction etc.)."""
        return self.name == "OpenAI"


class SandboxWorkspaceWrite(Struct, frozen=True):
    """``[sandbox_workspace_write]``."""

    writable_roots: tuple[str, ...] = ()
    network_access: bool = False
    exclude_tmpdir_env_var: bool = False
    exclude_slash_tmp: bool = False


class ShellEnvironmentPolicy(Struct, frozen=True):
    """``[shell_environment_policy]``; applied to every process a tool spawns."""

    inherit: EnvInherit = "all"
    # Upstream 0.169 stopped applying the *KEY*/*SECRET*/*TOKEN* default excludes unless asked;
    # codexbro keeps the older, safer default (excludes on) — see docs/config.md.
    ignore_default_excludes: bool = False
    exclude: tuple[str, ...] = ()
    set: dict[str, str] = field(default_factory=dict)
    include_only: tuple[str, ...] = ()
    # The variables the agent reads its own credentials from (every provider's `env_key` and
    # `env_http_headers` sources): dropped whatever the policy says, whatever their names.
    credential_vars: tuple[str, ...] = ()


class Config(Struct, frozen=True):
    """The effective configuration for one run: every layer merged, every value checked."""

    codexbro_home: Path
    cwd: Path
    model: str | None
    model_provider_id: str
    model_providers: dict[str, ModelProviderInfo]
    approval_policy: ApprovalPolicy
    sandbox_mode: SandboxMode
    sandbox_workspace_write: SandboxWorkspaceWrite
    shell_environment_policy: ShellEnvironmentPolicy
    # The rest default to what config/keys.py declares for their keys.
    model_reasoning_effort: ReasoningEffort | None = _D["model_reasoning_effort"]
    model_reasoning_summary: ReasoningSummary | None = _D["model_reasoning_summary"]
    model_verbosity: Verbosity | None = _D["model_verbosity"]
    model_context_window: int | None = _D["model_context_window"]
    model_auto_compact_token_limit: int | None = _D["model_auto_compact_token_limit"]
    tool_output_token_limit: int | None = _D["tool_output_token_limit"]
    retry_wait_max_ms: int = _D["retry_wait_max_ms"]  # a server asking for longer is told no, visibly
    model_catalog_json: str | None = _D["model_catalog_json"]
    base_instructions_override: str | None = None  # model_instructions_file's text, or `instructions`
    developer_instructions: str | None = _D["developer_instructions"]
    openai_base_url: str | None = _D["openai_base_url"]
    chatgpt_base_url: str = _D["chatgpt_base_url"]
    service_tier: str | None = _D["service_tier"]
    project_doc_max_bytes: int = _D["project_doc_max_bytes"]
    project_doc_fallback_filenames: tuple[str, ...] = _D["project_doc_fallback_filenames"]
    hide_agent_reasoning: bool = _D["hide_agent_reasoning"]
    show_raw_agent_reasoning: bool = _D["show_raw_agent_reasoning"]
    history_persistence: HistoryPersistence = "save-all"
    notify: tuple[str, ...] = _D["notify"]
    features: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    sandbox_backend: SandboxBackend = _D["sandbox_backend"]
    compaction_strategy: CompactionStrategy = _D["compaction_strategy"]
    embedded_model: str | None = _D["embedded_model"]
    offline_fallback: bool = _D["offline_fallback"]  # no credentials at all → the embedded model
    compact_prompt: str | None = _D["compact_prompt"]
    project_root_markers: tuple[str, ...] = _D["project_root_markers"]
    mcp_servers: dict[str, McpServerConfig] = field(default_factory=dict)  # [mcp_servers.NAME], checked
    # Where each effective top-level value came from ("default", a file path, "-c", "flag", …):
    # inspection shows it so nobody has to guess why a model or provider was chosen.
    origins: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def model_provider(self) -> ModelProviderInfo:
        return self.model_providers[self.model_provider_id]
