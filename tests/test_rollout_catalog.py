from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from codexbro.core.rollout import RolloutRecorder, find_rollout, latest_rollout, load_rollout, new_thread_id
from codexbro.errors import ConfigError, UserError
from codexbro.models.catalog import ModelCatalog

SEED_SLUGS = [
    "gpt-5.3-codex", "gpt-5.4", "gpt-5.2-codex", "gpt-5.1-codex-max", "gpt-5.1-codex", "gpt-5.2", "gpt-5.1",
    "gpt-5-codex", "gpt-5", "gpt-oss-120b", "gpt-oss-20b", "gpt-5.1-codex-mini", "gpt-5-codex-mini",
]  # fmt: skip


def test_thread_ids_are_uuid7_and_ordered() -> None:
    ids = [new_thread_id() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == 50


def test_torn_last_line_and_compacted_replace(home: Path) -> None:
    rec = RolloutRecorder(home, "t-1")
    rec.write("session_meta", {"id": "t-1", "cwd": "/w"})
    rec.item({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "old"}]})
    rec.write("compacted", {"message": "", "replacement_history": [{"type": "message", "role": "user",
                                                                    "content": [{"type": "input_text", "text": "kept"}]}]})  # fmt: skip
    rec.item({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "new"}]})
    rec.close()
    with open(rec.path, "a") as fh:
        fh.write('{"timestamp": "x", "type": "response_item", "payload": {"type": "mess')  # SIGKILL mid-write
    loaded = load_rollout(rec.path)
    assert loaded.thread_id == "t-1" and loaded.skipped_lines == 1
    assert [i["content"][0]["text"] for i in loaded.history] == ["kept", "new"]
    assert find_rollout(home, "t-1") == rec.path
    assert latest_rollout(home, Path("/w")) == rec.path
    with pytest.raises(UserError, match="no previous session started in /elsewhere"):
        latest_rollout(home, Path("/elsewhere"))
    with pytest.raises(UserError, match="no session `zzzz`"):
        find_rollout(home, "zzzz")


def test_not_a_rollout(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"type": "response_item", "payload": {}}) + "\n")
    with pytest.raises(UserError, match="no session_meta"):
        load_rollout(path)


CODEX_169 = Path(__file__).parent / "fixtures" / "codex-0.169" / "debug-models.json"


def test_bundled_catalog_has_the_seed_slugs_and_upstreams() -> None:
    cat = ModelCatalog.bundled()
    upstream = [m["slug"] for m in json.loads(CODEX_169.read_text())["models"]]
    assert len(upstream) == 12 and "gpt-5.5" in upstream
    assert sorted(m.slug for m in cat.models) == sorted([*SEED_SLUGS, *upstream])
    assert cat.resolve("gpt-5.1-codex-mini").info.apply_patch_tool_type == "freeform"
    assert cat.resolve("gpt-5").info.shell_type == "default"
    assert cat.resolve("gpt-oss-20b").info.apply_patch_tool_type == "function"
    assert cat.default_model().slug == "gpt-5.3-codex"


def test_upstream_models_keep_their_metadata() -> None:
    """`-m gpt-5.5` gets its own entry: upstream's fields as `codex debug models` printed them."""
    cat = ModelCatalog.bundled()
    by_slug = {m["slug"]: m for m in json.loads(CODEX_169.read_text())["models"]}
    for slug in ("gpt-5.5", "gpt-6.1-terra", "gpt-6-astra"):
        res = cat.resolve(slug)
        up = by_slug[slug]
        assert res.match == "exact" and res.entry == slug
        info = res.info
        assert info.context_window == up["context_window"] and info.shell_type == up["shell_type"]
        assert info.default_reasoning_level == up["default_reasoning_level"]
        assert list(info.supported_reasoning_levels) == [
            lv["effort"] for lv in up["supported_reasoning_levels"]
        ]
        assert info.truncation_mode == up["truncation_policy"]["mode"]
        assert info.priority == up["priority"] and info.visibility == up["visibility"]
        assert "base_instructions" not in info.raw and info.instructions_family == "gpt"


def test_models_show_names_what_codexbro_ignores(home: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("models", "show", "gpt-6-astra")
    assert res.code == 0, res.stderr
    assert "resolved: `gpt-6-astra`: its own entry in the bundled catalog" in res.stdout
    assert "tool_mode" not in res.stdout.split("(ignored):")[1]  # code mode is built (tools/codemode)
    assert "multi_agent_version" not in res.stdout.split("(ignored):")[1]  # v1 and v2 are built
    assert (
        "experimental_supported_tools: send_user_message_async not implemented" in res.stdout
    )  # clock is built
    res = run_cli("models", "show", "gpt-5.5-2027-01-01")
    assert "using `gpt-5.5`'s (longest prefix)" in res.stdout, res.stdout


def test_lookup_longest_prefix_namespace_and_fallback() -> None:
    cat = ModelCatalog.bundled()
    hit = cat.resolve("gpt-5.1-codex-max-2026-01-01")
    assert hit.info.slug == "gpt-5.1-codex-max-2026-01-01" and hit.info.display_name == "GPT-5.1 Codex Max"
    assert (hit.match, hit.entry) == ("prefix", "gpt-5.1-codex-max")
    ns = cat.resolve("openai/gpt-5.4")
    assert ns.info.display_name == "GPT-5.4" and (ns.match, ns.entry) == ("namespace", "gpt-5.4")
    miss = cat.resolve("llama3.2")
    assert miss.match == "fallback" and miss.entry is None
    assert (
        miss.info.is_fallback and miss.warning and "Model metadata for `llama3.2` not found" in miss.warning
    )
    assert not miss.info.supports_reasoning_summaries


def test_bad_catalog_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelCatalog.from_file(bad)
    bad.write_text('{"models": [{"display_name": "x"}]}')
    with pytest.raises(ConfigError, match="needs a string `slug`"):
        ModelCatalog.from_file(bad)
