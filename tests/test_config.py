from __future__ import annotations

from pathlib import Path

import pytest

from codexbro.config import loader
from codexbro.config.loader import Overrides, load_config, parse_override
from codexbro.errors import ConfigError


def write(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_defaults_without_a_file(home: Path) -> None:
    cfg = load_config()
    assert cfg.codexbro_home == home
    assert cfg.model is None and cfg.model_provider_id == "openai"
    assert cfg.sandbox_mode == "read-only" and cfg.approval_policy == "on-request"
    assert cfg.model_provider.request_max_retries == 4 and cfg.model_provider.stream_max_retries == 5
    assert cfg.model_provider.stream_idle_timeout_ms == 300_000
    assert cfg.origins.get("model_provider") == "default"


def test_precedence_flags_over_c_over_profile_over_file(home: Path) -> None:
    write(
        home,
        """
model = "file-model"
model_reasoning_effort = "low"
sandbox_mode = "read-only"
model_verbosity = "low"
[profiles.fast]
model = "profile-model"
model_reasoning_effort = "high"
sandbox_mode = "workspace-write"
""",
    )
    cfg = load_config(Overrides(profile="fast"))
    assert (cfg.model, cfg.model_reasoning_effort, cfg.sandbox_mode) == (
        "profile-model",
        "high",
        "workspace-write",
    )
    assert cfg.model_verbosity == "low"
    cfg = load_config(
        Overrides(profile="fast", cli_overrides=['model="c-model"', "model_reasoning_effort=medium"])
    )
    assert cfg.model == "c-model" and cfg.model_reasoning_effort == "medium"
    cfg = load_config(
        Overrides(profile="fast", cli_overrides=['model="c-model"'], flags={"model": "flag-model"})
    )
    assert cfg.model == "flag-model"
    assert cfg.origins["model"] == "flag" and cfg.origins["sandbox_mode"] == "profile fast"
    assert cfg.origins["model_reasoning_effort"] == "profile fast"


def test_profile_selected_in_file(home: Path) -> None:
    write(home, 'profile = "p"\n[profiles.p]\nmodel = "from-p"\n')
    assert load_config().model == "from-p"


def test_c_override_parsing() -> None:
    assert parse_override("model=o3") == (["model"], "o3")
    assert parse_override('model="o3"') == (["model"], "o3")
    assert parse_override("a.b.c=3") == (["a", "b", "c"], 3)
    assert parse_override('projects."/x/y".trust_level="trusted"') == (
        ["projects", "/x/y", "trust_level"],
        "trusted",
    )
    assert parse_override('notify=["a", "b"]') == (["notify"], ["a", "b"])
    with pytest.raises(ConfigError, match="expects key=value"):
        parse_override("justakey")


def test_dotted_override_into_provider_table(home: Path) -> None:
    write(home, '[model_providers.x]\nname = "X"\nbase_url = "http://a/v1"\n')
    cfg = load_config(
        Overrides(cli_overrides=["model_providers.x.request_max_retries=0", 'model_provider="x"'])
    )
    prov = cfg.model_provider
    assert prov.id == "x" and prov.base_url == "http://a/v1" and prov.request_max_retries == 0


def test_all_provider_fields(home: Path) -> None:
    write(
        home,
        """
[model_providers.az]
name = "azure"
base_url = "https://x.openai.azure.com/openai"
env_key = "AZ_KEY"
env_key_instructions = "get one from the portal"
wire_api = "responses"
query_params = { api-version = "2025-04-01-preview" }
http_headers = { "X-A" = "1" }
env_http_headers = { "X-B" = "B_VAR" }
request_max_retries = 500
stream_max_retries = 2
stream_idle_timeout_ms = 1000
requires_openai_auth = false
supports_websockets = false
""",
    )
    prov = load_config().model_providers["az"]
    assert prov.query_params == {"api-version": "2025-04-01-preview"}
    assert prov.request_max_retries == 100  # capped as upstream
    assert prov.env_http_headers == {"X-B": "B_VAR"} and prov.stream_idle_timeout_ms == 1000


def test_wire_api_chat_rejected(home: Path) -> None:
    write(home, '[model_providers.mock]\nname = "m"\nbase_url = "http://x"\nwire_api = "chat"\n')
    with pytest.raises(ConfigError) as err:
        load_config()
    assert '`wire_api = "chat"` is no longer supported' in err.value.message
    assert "in `model_providers.mock.wire_api`" in err.value.message


def test_wrong_type_names_file_key_and_expectation(home: Path) -> None:
    write(home, 'model_context_window = "big"\n')
    with pytest.raises(ConfigError) as err:
        load_config()
    msg = err.value.message
    assert (
        str(home / "config.toml") in msg and "`model_context_window`" in msg and "non-negative integer" in msg
    )
    write(home, "[model_providers.p]\nrequest_max_retries = true\n")
    with pytest.raises(
        ConfigError, match=r"`model_providers\.p\.request_max_retries` must be a non-negative integer"
    ):
        load_config()
    write(home, "")
    with pytest.raises(ConfigError, match=r"-c sandbox_mode=open: `sandbox_mode` must be one of"):
        load_config(Overrides(cli_overrides=["sandbox_mode=open"]))


def test_unknown_keys_warn_once(home: Path) -> None:
    loader._warned.clear()
    write(home, "totally_new_key = 1\n[sandbox_workspace_write]\nnetwork = true\n")
    first = load_config().warnings
    assert any("unknown config key `totally_new_key`" in w for w in first)
    assert any("`sandbox_workspace_write.network`" in w for w in first)
    assert load_config().warnings == ()


def test_unknown_provider_and_profile(home: Path) -> None:
    with pytest.raises(ConfigError, match="model_provider `nope` is not defined"):
        load_config(Overrides(flags={"model_provider": "nope"}))
    write(home, "[profiles.a]\n[profiles.b]\n")
    with pytest.raises(ConfigError, match=r"profile `c` not found .*available: a, b"):
        load_config(Overrides(profile="c"))


def test_oss_builtins_and_env_override(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config().model_providers["ollama"].base_url == "http://localhost:11434/v1"
    monkeypatch.setenv("CODEXBRO_OSS_PORT", "9999")
    assert load_config().model_providers["lmstudio"].base_url == "http://localhost:9999/v1"


# ---- one declaration per key (issue 15.6) -----------------------------------------------------------


def test_every_key_is_declared_once_and_drives_validation_and_defaults(tmp_path: Path) -> None:
    import typing

    import msgspec

    from codexbro.config import values
    from codexbro.config.keys import KEYS, root_spec
    from codexbro.config.spec import Scalar, Table
    from codexbro.config.types import Config

    paths = [k.path for k in KEYS]
    assert len(paths) == len(set(paths)), "a key is declared twice"
    root = root_spec()
    for key in KEYS:  # every declared key is in the validation tree, with its declared check
        head, *rest = key.path.split(".")
        node = root.fields[head]
        if rest:
            assert isinstance(node, Table)
            node = node.fields[rest[0]]
        assert node is key.spec, key.path
    fields = {f.name: f for f in msgspec.structs.fields(Config)}
    for key in KEYS:  # a field's default is its key's default
        if key.field is not None and fields[key.field].default is not msgspec.NODEFAULT:
            assert fields[key.field].default == key.default, key.path
    # a Literal-typed key allows exactly the Literal's values
    mode = next(k for k in KEYS if k.path == "sandbox_mode").spec
    assert isinstance(mode, Scalar)
    assert all(mode.check(v) for v in typing.get_args(values.SandboxMode)) and not mode.check("read-onyl")


def test_a_value_outside_a_literal_names_the_allowed_ones(tmp_path: Path) -> None:
    from codexbro.config.loader import Overrides, load_config
    from codexbro.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(Overrides(cli_overrides=["sandbox_mode=read-onyl"], cwd=tmp_path))
    assert err.value.message == (
        '-c sandbox_mode=read-onyl: `sandbox_mode` must be one of "read-only", "workspace-write", '
        "\"danger-full-access\", found a string ('read-onyl')"
    )
