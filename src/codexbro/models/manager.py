"""The live catalog: ``GET {base}/models?client_version=X`` merged over the bundled catalog, cached in
``$CODEXBRO_HOME/models_cache.json`` (upstream's shape) for 300 s.

- ``model_catalog_json`` wins over everything and disables refresh and cache.
- The cache is valid only for the same ``client_version`` and within its TTL; a remote entry
  replaces the bundled entry with the same slug, new slugs are appended.
- The request sends ``If-None-Match`` with the cached ETag; 304 (or the same ETag) only renews
  ``fetched_at``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codexbro import __version__
from codexbro.api.http import RouteHttp
from codexbro.api.routes import route
from codexbro.errors import ApiError, ConfigError, TransportError
from codexbro.models.catalog import ModelCatalog, ModelInfo

TTL_S = 300
CACHE = "models_cache.json"
MODELS = route("models.list")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _age_s(fetched_at: str) -> float:
    try:
        return time.time() - datetime.fromisoformat(fetched_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")


def read_cache(home: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((home / CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("client_version") != __version__
        or not isinstance(doc.get("models"), list)
    ):
        return None
    return doc


def write_cache(home: Path, models: list[dict[str, Any]], etag: str | None) -> None:
    doc = {"fetched_at": _now_iso(), "etag": etag, "client_version": __version__, "models": models}
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".models_cache.", dir=home)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    os.replace(tmp, home / CACHE)


def merged(bundled: ModelCatalog, remote: list[dict[str, Any]], source: str) -> ModelCatalog:
    by_slug: dict[str, ModelInfo] = {m.slug: m for m in bundled.models}
    for entry in remote:
        info = ModelInfo.from_json(entry, source)
        by_slug[info.slug] = info
    # The live list's priorities choose the default (upstream's rule), not the bundled file's key.
    return ModelCatalog(list(by_slug.values()), f"bundled catalog + {source}")


def cached_catalog(home: Path, catalog_json: str | None) -> tuple[ModelCatalog, bool]:
    """The catalog without any network call, and whether a refresh is due."""
    if catalog_json:
        return ModelCatalog.from_file(catalog_json), False
    bundled = ModelCatalog.bundled()
    cache = read_cache(home)
    if cache is None:
        return bundled, True
    try:
        catalog = merged(bundled, cache["models"], f"cache ({home / CACHE})")
    except ConfigError:
        return bundled, True
    return catalog, _age_s(str(cache.get("fetched_at", ""))) > TTL_S


async def refresh(
    http: RouteHttp, base_url: str, headers: dict[str, str], home: Path, timeout_s: float = 5.0
) -> int:
    """Fetch the live list into the cache; returns how many models came back (0 on 304)."""
    cache = read_cache(home)
    url = MODELS.url(base_url, {"client_version": __version__})
    req_headers = {"accept": "application/json", **headers}
    if cache and cache.get("etag"):
        req_headers["if-none-match"] = str(cache["etag"])
    try:
        resp = await http.request(MODELS, url, headers=req_headers, timeout_s=timeout_s)
    except TransportError as exc:
        raise ApiError(f"could not refresh the model list from {url}: {exc.detail}", kind="http_connection_failed",
                       route=MODELS.name) from None  # fmt: skip
    if resp.status_code == 304 and cache:
        write_cache(home, cache["models"], cache.get("etag"))
        return 0
    if resp.status_code != 200:
        raise ApiError(f"GET {url} failed with HTTP {resp.status_code}", kind="other", status=resp.status_code,
                       route=MODELS.name)  # fmt: skip
    try:
        doc = json.loads(resp.content)
    except ValueError:
        raise ApiError(f"GET {url} did not answer JSON", kind="other", route=MODELS.name) from None
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, list):
        raise ApiError(f'GET {url} did not answer {{"models": [...]}}', kind="other", route=MODELS.name)
    etag = resp.headers.get("etag") or (doc.get("etag") if isinstance(doc.get("etag"), str) else None)
    valid = [m for m in models if isinstance(m, dict) and isinstance(m.get("slug"), str)]
    write_cache(home, valid, etag)
    return len(valid)
