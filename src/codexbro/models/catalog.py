"""The model catalog: bundled ``models.json`` (our own file, upstream's shape), or a user's
``model_catalog_json`` that replaces it. Lookup by longest slug prefix; unknown slugs get fallback
metadata and a visible warning, as upstream does.

The bundled file holds the 13 models codexbro's design names and the 12 Codex 0.169 bundles (imported from
``codex debug models`` by ``scripts/import_codex_models.py``, without their prompts: codexbro uses
its own instruction families). Its ``default_model`` key keeps codexbro's default (upstream's
rule — the lowest ``priority`` — would pick a newer model); a catalog without the key, and the
bundled one merged with a live ``/models`` list, use that rule.

Beyond upstream, which matches silently, every resolution says *how* it matched (``Resolved.match``:
exact, prefix, namespace-stripped prefix, or fallback) and to which entry, for ``models show``,
``debug request``, traces and exec's one-line note; and ``ignored_fields`` names what an entry asks
for that codexbro does not implement.

The live ``GET /models`` refresh and its cache are in ``manager.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from codexbro.errors import ConfigError
from codexbro.records import replace


class ModelInfo(Struct, frozen=True):
    """One model's metadata (upstream's catalog fields) as codexbro uses it."""

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
    raw: dict[str, Any] = field(default_factory=dict)  # the entry as given; not compared, not hashed

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__struct_fields__ if f != "raw")

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self.__struct_fields__ if f != "raw"))

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


class Resolved(Struct, frozen=True):
    """How a slug resolved: the metadata used, the match kind and entry, a warning when it fell back."""

    info: ModelInfo
    source: str  # where the entry came from: "bundled catalog", a file path, "fallback"
    warning: str | None = None
    match: str = "exact"  # exact | prefix | namespace (prefix after dropping `ns/`) | fallback
    entry: str | None = None  # the catalog slug whose metadata is used

    def describe(self) -> str:
        """One line: how the slug resolved."""
        slug = self.info.slug
        if self.match == "exact":
            return f"`{slug}`: its own entry in the {self.source}"
        if self.match == "prefix":
            return f"`{slug}` has no entry of its own: using `{self.entry}`'s (longest prefix) from the {self.source}"
        if self.match == "namespace":
            return (f"`{slug}` has no entry of its own: using `{self.entry}`'s (prefix after the namespace) "
                    f"from the {self.source}")  # fmt: skip
        return f"`{slug}` is in no catalog: fallback metadata (272k context, no reasoning parameters)"


# Catalog fields codexbro acts on; the rest of an entry is kept (``raw``) and listed by ``models show``.
USED_FIELDS = frozenset({
    "slug", "display_name", "description", "default_reasoning_level", "supported_reasoning_levels",
    "shell_type", "visibility", "supported_in_api", "priority", "instructions_family", "base_instructions",
    "supports_reasoning_summaries", "default_reasoning_summary", "support_verbosity", "default_verbosity",
    "apply_patch_tool_type", "truncation_policy", "supports_parallel_tool_calls", "context_window",
    "auto_compact_token_limit", "effective_context_window_percent", "experimental_supported_tools",
    "input_modalities", "tool_menu", "use_responses_lite", "tool_mode",
    "multi_agent_version",
})  # fmt: skip
IMPLEMENTED_EXPERIMENTAL_TOOLS = frozenset({"read_file", "list_dir", "grep_files", "clock"})
_WHY_IGNORED = {
    "model_messages": "upstream's per-model messages are not bundled: codexbro's instruction family is used",
    "max_context_window": "codexbro uses context_window (set model_context_window for more)",
    "service_tiers": "service_tier is sent as configured; tiers are not offered per model",
    "additional_speed_tiers": "speed tiers are not offered",
    "web_search_tool_type": "web_search is the plain hosted tool",
}


def ignored_fields(info: ModelInfo) -> list[str]:
    """What the entry specifies that codexbro does not act on, one line each."""
    notes = []
    for key in sorted(k for k in info.raw if k not in USED_FIELDS):
        value = info.raw[key]
        if value in (None, False, [], {}, ""):
            continue
        notes.append(f"{key}: {_WHY_IGNORED.get(key, 'not implemented; ignored')}")
    missing = [t for t in info.experimental_supported_tools if t not in IMPLEMENTED_EXPERIMENTAL_TOOLS]
    if missing:
        notes.append(f"experimental_supported_tools: {', '.join(missing)} not implemented; not offered")
    return notes


class ModelCatalog:
    """The models codexbro knows: bundled, merged with the live list, or a file; resolves slugs."""

    def __init__(self, models: list[ModelInfo], source: str, default_slug: str | None = None) -> None:
        self.models = sorted(models, key=lambda m: (m.priority, m.slug))
        self.source = source
        self.default_slug = default_slug  # a catalog's own `default_model`, else the lowest priority

    @classmethod
    def bundled(cls) -> ModelCatalog:
        text = Path(__file__).with_name("models.json").read_text(encoding="utf-8")
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
        default = doc.get("default_model")
        return cls([ModelInfo.from_json(e, source) for e in entries if isinstance(e, dict)], source,
                   default if isinstance(default, str) else None)  # fmt: skip

    def default_model(self, *, api_key_auth: bool = True) -> ModelInfo:
        for m in self.models:
            if m.slug == self.default_slug and (m.supported_in_api or not api_key_auth):
                return m
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
                match = "exact" if best.slug == slug else ("prefix" if candidate == slug else "namespace")
                return Resolved(replace(best, slug=slug), self.source, match=match, entry=best.slug)
        return Resolved(
            fallback_model(slug),
            "fallback",
            f"Model metadata for `{slug}` not found. Defaulting to fallback metadata; this can "
            "degrade performance and cause issues.",
            match="fallback",
        )


def _strip_namespace(slug: str) -> str | None:
    match = re.fullmatch(r"\w+/(.+)", slug)
    return match.group(1) if match else None
