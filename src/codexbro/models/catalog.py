"""The model catalog: bundled ``models.json`` (our own file, upstream's shape), or a user's
``model_catalog_json`` that replaces it. Lookup by longest slug prefix; unknown slugs get fallback
metadata and a visible warning, as upstream does.

The live ``GET /models`` refresh and its cache belong to the model manager (issue 5).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from codexbro.errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    slug: str
    display_name: str = ""
    description: str = ""
    default_reasoning_level: str | None = None
    supported_reasoning_levels: tuple[str, ...] = ()
    shell_type: str = "shell_command"
    visibility: str = "list"
    supported_in_api: bool = True
    priority: int = 100
    instructions_family: str = "default"
    base_instructions: str | None = None
    supports_reasoning_summaries: bool = False
    default_reasoning_summary: str = "auto"
    support_verbosity: bool = False
    default_verbosity: str | None = None
    apply_patch_tool_type: str | None = None
    truncation_mode: str = "bytes"
    truncation_limit: int = 10_000
    supports_parallel_tool_calls: bool = False
    context_window: int | None = None
    auto_compact_token_limit: int | None = None
    effective_context_window_percent: int = 95
    experimental_supported_tools: tuple[str, ...] = ()
    input_modalities: tuple[str, ...] = ("text", "image")
    is_fallback: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, entry: dict[str, Any], source: str) -> ModelInfo:
        slug = entry.get("slug")
        if not isinstance(slug, str) or not slug:
            raise ConfigError(f"{source}: every model entry needs a string `slug`")
        trunc = entry.get("truncation_policy") or {}
        levels = entry.get("supported_reasoning_levels") or []
        try:
            return cls(
                slug=slug,
                display_name=str(entry.get("display_name") or slug),
                description=str(entry.get("description") or ""),
                default_reasoning_level=entry.get("default_reasoning_level"),
                supported_reasoning_levels=tuple(
                    lv["effort"] if isinstance(lv, dict) else str(lv) for lv in levels
                ),
                shell_type=str(entry.get("shell_type") or "shell_command"),
                visibility=str(entry.get("visibility") or "list"),
                supported_in_api=bool(entry.get("supported_in_api", True)),
                priority=int(entry.get("priority", 100)),
                instructions_family=str(entry.get("instructions_family") or "default"),
                base_instructions=entry.get("base_instructions"),
                supports_reasoning_summaries=bool(entry.get("supports_reasoning_summaries", False)),
                default_reasoning_summary=str(entry.get("default_reasoning_summary") or "auto"),
                support_verbosity=bool(entry.get("support_verbosity", False)),
                default_verbosity=entry.get("default_verbosity"),
                apply_patch_tool_type=entry.get("apply_patch_tool_type"),
                truncation_mode=str(trunc.get("mode", "bytes")),
                truncation_limit=int(trunc.get("limit", 10_000)),
                supports_parallel_tool_calls=bool(entry.get("supports_parallel_tool_calls", False)),
                context_window=entry.get("context_window"),
                auto_compact_token_limit=entry.get("auto_compact_token_limit"),
                effective_context_window_percent=int(entry.get("effective_context_window_percent", 95)),
                experimental_supported_tools=tuple(entry.get("experimental_supported_tools") or ()),
                input_modalities=tuple(entry.get("input_modalities") or ("text", "image")),
                raw=entry,
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{source}: model `{slug}` has a malformed field: {exc}") from None


def fallback_model(slug: str) -> ModelInfo:
    """Metadata for a slug no catalog knows: conservative, no reasoning or verbosity parameters."""
    return ModelInfo(
        slug=slug,
        display_name=slug,
        shell_type="shell_command",
        apply_patch_tool_type=None,
        context_window=272_000,
        is_fallback=True,
    )


@dataclass(frozen=True)
class Resolved:
    info: ModelInfo
    source: str  # where the entry came from: "bundled catalog", a file path, "fallback"
    warning: str | None = None


class ModelCatalog:
    def __init__(self, models: list[ModelInfo], source: str) -> None:
        self.models = sorted(models, key=lambda m: (m.priority, m.slug))
        self.source = source

    @classmethod
    def bundled(cls) -> ModelCatalog:
        text = resources.files("codexbro.models").joinpath("models.json").read_text(encoding="utf-8")
        return cls.from_text(text, "bundled catalog")

    @classmethod
    def from_file(cls, path: str | Path) -> ModelCatalog:
        p = Path(path).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"model_catalog_json {p}: {exc.strerror}") from None
        return cls.from_text(text, str(p))

    @classmethod
    def from_text(cls, text: str, source: str) -> ModelCatalog:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from None
        entries = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(f'{source}: expected an object with a "models" array')
        return cls([ModelInfo.from_json(e, source) for e in entries if isinstance(e, dict)], source)

    def default_model(self, *, api_key_auth: bool = True) -> ModelInfo:
        for m in self.models:
            if m.visibility == "list" and (m.supported_in_api or not api_key_auth):
                return m
        if not self.models:
            raise ConfigError(f"{self.source}: the catalog lists no models")
        return self.models[0]

    def resolve(self, slug: str) -> Resolved:
        """Longest-prefix match; then once more without a ``namespace/`` prefix; else fallback."""
        for candidate in (slug, _strip_namespace(slug)):
            if candidate is None:
                continue
            best = None
            for m in self.models:
                if candidate.startswith(m.slug) and (best is None or len(m.slug) > len(best.slug)):
                    best = m
            if best is not None:
                return Resolved(replace(best, slug=slug), self.source)
        return Resolved(
            fallback_model(slug),
            "fallback",
            f"Model metadata for `{slug}` not found. Defaulting to fallback metadata; this can "
            "degrade performance and cause issues.",
        )


def _strip_namespace(slug: str) -> str | None:
    match = re.fullmatch(r"\w+/(.+)", slug)
    return match.group(1) if match else None
