"""``codexbro models [--json]`` and ``codexbro models show SLUG``: the catalog, without any network call."""

from __future__ import annotations

import json

from codexbro.config.types import Config
from codexbro.models.catalog import ModelCatalog, ModelInfo
from codexbro.records import as_dict


def catalog_for(config: Config) -> ModelCatalog:
    from codexbro.models.manager import cached_catalog

    return cached_catalog(config.codexbro_home, config.model_catalog_json)[0]


async def refresh_now(config: Config) -> str:
    """``models --refresh``: the one models command that uses the network (explicitly)."""
    from codexbro.api.responses_client import ResponsesModelClient
    from codexbro.composition import open_model_client, resolve
    from codexbro.core.rollout import new_thread_id
    from codexbro.models.manager import refresh

    if config.model_catalog_json:
        return f"model_catalog_json is set ({config.model_catalog_json}): nothing to refresh"
    resolution = resolve(config)
    if resolution.embedded:
        return "the embedded provider has no live model list: nothing to refresh"
    client = open_model_client(resolution, new_thread_id())
    assert isinstance(client, ResponsesModelClient)
    try:
        count = await refresh(client.http, client.base_url, client.build_headers(), config.codexbro_home)
    finally:
        await client.aclose()
    return (
        f"refreshed from {client.base_url}: {count} models"
        if count
        else "model list unchanged (ETag matched)"
    )


def _public(info: ModelInfo) -> dict[str, object]:
    doc: dict[str, object] = as_dict(info)
    doc.pop("raw", None)
    return doc


def list_models(config: Config, as_json: bool) -> str:
    from codexbro.embedded.provider import embedded_status

    catalog = catalog_for(config)
    default = catalog.default_model().slug
    embedded = embedded_status(config)
    if as_json:
        return json.dumps({"source": catalog.source, "default": default,
                           "models": [_public(m) for m in catalog.models], "embedded": embedded}, indent=2)  # fmt: skip
    lines = [f"models ({catalog.source}); default: {default}", ""]
    w = max([20, *(len(m.slug) for m in catalog.models)])
    lines.append(
        f"  {'slug':<{w}} {'context':>8}  {'effort':<7} {'shell':<14} {'apply_patch':<11} visibility"
    )
    for m in catalog.models:
        mark = "*" if m.slug == default else " "
        lines.append(
            f"{mark} {m.slug:<{w}} {m.context_window or 0:>8}  {m.default_reasoning_level or '-':<7} "
            f"{m.shell_type:<14} {m.apply_patch_tool_type or '-':<11} {m.visibility}"
        )
    lines += ["", "embedded models (in-process, no key: --oss --local-provider embedded -m SLUG)", ""]
    lines += [f"  {e['slug']:<20} {e['context_window']:>8}  {e['status']}" for e in embedded]
    return "\n".join(lines)


def show_model(config: Config, slug: str) -> str:
    from codexbro.models.catalog import ignored_fields

    resolved = catalog_for(config).resolve(slug)
    lines = [f"{slug}  (metadata from {resolved.source})", f"resolved: {resolved.describe()}"]
    if resolved.warning:
        lines.append(f"warning: {resolved.warning}")
    for key, value in _public(resolved.info).items():
        lines.append(f"  {key:<34} {value}")
    ignored = ignored_fields(resolved.info)
    if ignored:
        lines += ["", "in the entry but not implemented by codexbro (ignored):"]
        lines += [f"  {note}" for note in ignored]
    return "\n".join(lines)
