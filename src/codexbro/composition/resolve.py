"""``resolve(config) → Resolution``: which provider, credential, model and endpoint a config leads
to, and why — without any network call and without writing anything. Files (auth.json, the models
cache, installed weights) are read through ``Readers``, which tests replace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from msgspec import Struct

from codexbro import protocol as p
from codexbro.api.routes import bucket_for, route
from codexbro.auth.resolve import ProviderAuth
from codexbro.config.requirements import Requirements
from codexbro.config.types import Config, ModelProviderInfo
from codexbro.core.instructions import base_instructions
from codexbro.core.rollout import LoadedRollout
from codexbro.errors import AuthError
from codexbro.models.catalog import ModelCatalog, ModelInfo, Resolved
from codexbro.records import replace


def _read_auth(provider: ModelProviderInfo, home: Path) -> ProviderAuth:
    from codexbro.auth.resolve import resolve_auth

    return resolve_auth(provider, home)


def _read_catalog(home: Path, catalog_json: str | None) -> tuple[ModelCatalog, bool]:
    from codexbro.models.manager import cached_catalog

    return cached_catalog(home, catalog_json)


def _embedded_runnable(config: Config) -> bool:
    from codexbro.embedded.provider import runnable

    return runnable(config)


def _read_requirements(config: Config) -> tuple[Config, Requirements, list[str]]:
    from codexbro.composition import managed

    return managed.apply(config)


class Readers(Struct, frozen=True):
    """What ``resolve`` reads from disk and the environment, each replaceable."""

    auth: Callable[[ModelProviderInfo, Path], ProviderAuth] = _read_auth  # auth.json + env vars
    catalog: Callable[[Path, str | None], tuple[ModelCatalog, bool]] = _read_catalog  # (catalog, refresh due)
    embedded_runnable: Callable[[Config], bool] = _embedded_runnable  # llama.cpp + weights present
    # a ChatGPT workspace's managed requirements: (config held to them, them, warnings)
    requirements: Callable[[Config], tuple[Config, Requirements, list[str]]] = _read_requirements


class Resolution(Struct, frozen=True):
    """Everything a session's set-up decided, with the reason for each choice."""

    config: Config  # the config as used: switched to the embedded provider when it stood in
    provider: ModelProviderInfo
    provider_reason: str
    auth: ProviderAuth
    model: ModelInfo  # with base instructions and a configured context window applied
    resolved: Resolved  # how the catalog matched the slug
    model_source: str
    base_url: str
    base_url_reason: str
    bucket: str
    fallback: str | None = None  # the banner when the embedded model stands in for missing credentials
    warnings: tuple[str, ...] = ()
    refresh_catalog: bool = False  # the live model list is due for a refresh (ChatGPT logins only)
    requirements: Requirements | None = None  # a ChatGPT workspace's managed requirements in force

    @property
    def embedded(self) -> bool:
        return self.provider.id == "embedded"

    def event(self) -> p.ModelResolved:
        return p.ModelResolved(
            requested=self.config.model,
            model=self.model.slug,
            model_source=self.model_source,
            catalog=self.resolved.source,
            warning=self.resolved.warning,
            match=self.resolved.match,
            catalog_entry=self.resolved.entry,
            provider_id=self.provider.id,
            provider_source=self.provider_reason,
            base_url=self.base_url,
            base_url_reason=self.base_url_reason,
            bucket=self.bucket,
            auth=self.auth.source,
            requirements=tuple(self.requirements.lines()) if self.requirements is not None else (),
        )


def resolve(
    config: Config,
    *,
    earlier: LoadedRollout | None = None,
    allow_missing_auth: bool = False,
    readers: Readers | None = None,
) -> Resolution:
    """Resolve a config; ``earlier`` is a resumed or forked session (its last model is kept).
    Raises ``AuthError``/``UserError`` with a fix on bad set-up, unless ``allow_missing_auth``
    (inspection: everything is still explained, the credential shown as missing)."""
    readers = readers or Readers()
    config, requirements, held = readers.requirements(config)
    warnings = [*config.warnings, *held]
    catalog, refresh_due = readers.catalog(config.codexbro_home, config.model_catalog_json)
    fallback = None
    try:
        auth = readers.auth(config.model_provider, config.codexbro_home)
    except AuthError as exc:
        from codexbro.embedded.provider import offline_fallback

        try:
            config, fallback = offline_fallback(config, exc, readers.embedded_runnable)
            auth = readers.auth(config.model_provider, config.codexbro_home)
            warnings.append(fallback)
        except AuthError:
            if not allow_missing_auth:
                raise
            auth = ProviderAuth("none", None, f"missing — {exc.message}")
    provider = config.model_provider
    slug = config.model
    if slug is None and earlier and earlier.last_turn_context:
        slug = earlier.last_turn_context.get("model")
    if slug is None and provider.id == "embedded":
        from codexbro.embedded.provider import default_slug

        slug = default_slug(config)
    if slug is None:
        slug = catalog.default_model(api_key_auth=auth.mode != "chatgpt").slug
    if provider.id == "embedded":
        from codexbro.embedded.provider import local_model_info, weights_name

        resolved = Resolved(local_model_info(slug), "embedded models")
        base_url, base_reason = (
            f"embedded://{weights_name(slug, config)}",
            "the embedded provider (in-process)",
        )
    else:
        from codexbro.api.responses_client import resolve_base_url

        resolved = catalog.resolve(slug)
        base_url, base_reason = resolve_base_url(config, provider, auth)
    if resolved.warning:
        warnings.append(resolved.warning)
    model = resolved.info
    if model.base_instructions is None:
        model = replace(model, base_instructions=base_instructions(model.instructions_family))
    if config.model_context_window:
        model = replace(model, context_window=config.model_context_window)
    return Resolution(
        config=config,
        provider=provider,
        provider_reason=config.origins.get("model_provider", "default"),
        auth=auth,
        model=model,
        resolved=resolved,
        model_source=_model_source(config, earlier, slug),
        base_url=base_url,
        base_url_reason=base_reason,
        bucket=bucket_for(
            route("responses.create"), route("responses.create").url(base_url, provider.query_params)
        ),
        fallback=fallback,
        warnings=tuple(warnings),
        refresh_catalog=refresh_due and auth.mode == "chatgpt",
        requirements=requirements,
    )


def model_lookup(config: Config, readers: Readers | None = None) -> Callable[[str], ModelInfo]:
    """``slug → ModelInfo`` as ``resolve`` does it (catalog match, base instructions, a configured
    context window), for a session switching models (``/model``)."""
    catalog = (readers or Readers()).catalog(config.codexbro_home, config.model_catalog_json)[0]

    def lookup(slug: str) -> ModelInfo:
        model = catalog.resolve(slug).info
        if model.base_instructions is None:
            model = replace(model, base_instructions=base_instructions(model.instructions_family))
        if config.model_context_window:
            model = replace(model, context_window=config.model_context_window)
        return model

    return lookup


def _model_source(config: Config, earlier: LoadedRollout | None, slug: str) -> str:
    if config.model is not None:
        origin = config.origins.get("model", "config")
        return {"flag": "the -m/--model flag", "-c": "a -c override"}.get(origin, origin)
    if earlier is not None and earlier.last_turn_context and earlier.last_turn_context.get("model") == slug:
        return "the resumed session's last turn"
    return "the catalog default (lowest priority listed model)"
