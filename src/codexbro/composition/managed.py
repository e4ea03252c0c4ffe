"""Managed requirements at session start: fetched for a ChatGPT workspace login, kept in the home,
enforced on the config before anything runs (``config/requirements.py`` says what is enforced).

Who: a ChatGPT login whose plan is a workspace plan (business, team, enterprise, edu — the plans
0.169 fetches them for; a personal plan has no administrator). When: each session's start. A copy
fetched within the hour is used as it is; otherwise the fetch is waited for up to
``WAIT_S`` seconds, and when it does not answer the last copy fetched is used (saying so); with no
copy at all the session goes on under a visible warning (0.169 refuses to start instead: codexbro
will not lock a user out of local work because a server is down — the warning says what is not
enforced). The route is 0.169's config bundle (``wham/config/bundle``); a server without it (404)
is asked the older ``wham/config/requirements``. The copy is ``$CODEXBRO_HOME/managed_requirements.json``
(0600), for this account only.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from codexbro.config.requirements import (
    Fragment,
    Requirements,
    enforce,
    fragments_from_bundle,
    fragments_from_route,
    parse,
)
from codexbro.config.types import Config
from codexbro.errors import CodexbroError

CACHE_FILE = "managed_requirements.json"
FRESH_S = 3600.0
WAIT_S = 4.0
BACKOFF_S = 60.0  # after a failed fetch, sessions opened within this start at once (stale copy or none)
# Plans with no administrator: nothing to fetch. Any other plan (business, team, enterprise, edu,
# a workspace plan not known here) is asked — an unknown plan is asked rather than trusted.
PERSONAL_PLANS = frozenset({"free", "plus", "pro", "go", "prolite"})
_FAILED: dict[tuple[str, str], float] = {}  # (home, account) → when a fetch last failed, this process


def _identity(config: Config) -> tuple[str, str] | None:
    """(account id, plan) of a ChatGPT workspace login; None when requirements do not apply."""
    from codexbro.auth import storage
    from codexbro.errors import AuthError

    try:
        auth = storage.load(config.codexbro_home)
    except AuthError:  # an unreadable login is no workspace login; it is reported where it is used
        return None
    if auth is None or auth.tokens is None:
        return None
    claims = storage.jwt_claims(auth.tokens.id_token).get("https://api.openai.com/auth") or {}
    plan = claims.get("chatgpt_plan_type") if isinstance(claims, dict) else None
    if not isinstance(plan, str) or plan.strip().lower() in PERSONAL_PLANS:
        return None
    account = auth.tokens.account_id or (
        claims.get("chatgpt_account_id") if isinstance(claims, dict) else None
    )
    return str(account or ""), plan


def _read_cache(config: Config, account: str) -> tuple[list[Fragment], float, str] | None:
    from codexbro.homefiles import read_own_file

    raw = read_own_file(config.codexbro_home / CACHE_FILE, 4 << 20)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("account_id") != account
        or not isinstance(doc.get("fetched_at"), float)
    ):
        return None
    if doc["fetched_at"] > time.time() + 300:  # stamped in the future (a clock moved): never fresh
        doc["fetched_at"] = 0.0
    frags = [Fragment(str(f.get("id")), str(f.get("name")), str(f.get("contents")))
             for f in doc.get("fragments") or [] if isinstance(f, dict)]  # fmt: skip
    return frags, doc["fetched_at"], str(doc.get("url") or "")


def _write_cache(config: Config, account: str, frags: list[Fragment], url: str) -> None:
    from codexbro.homefiles import write_own_file

    doc = {"version": 1, "account_id": account, "fetched_at": time.time(), "url": url,
           "fragments": [{"id": f.id, "name": f.name, "contents": f.contents} for f in frags]}  # fmt: skip
    write_own_file(config.codexbro_home / CACHE_FILE, json.dumps(doc).encode())


async def _fetch(config: Config) -> tuple[list[Fragment], str]:
    from codexbro.api.routes import route
    from codexbro.composition.chatgpt import chatgpt_backend

    async with chatgpt_backend(config, timeout_s=WAIT_S, read_timeout_s=WAIT_S) as backend:
        try:
            return fragments_from_bundle(await backend.config_bundle()), route("wham.config.bundle").url(
                config.chatgpt_base_url
            )
        except CodexbroError as exc:
            if getattr(exc, "status", None) != 404:
                raise
        doc = await backend.requirements()
        return fragments_from_route(doc), route("wham.config.requirements").url(config.chatgpt_base_url)


def _fetch_waiting(config: Config) -> tuple[list[Fragment], str] | str:
    """The live answer, or why there is none — waited for at most ``WAIT_S`` (a daemon thread with
    its own event loop: the caller may be inside one, and an unanswered fetch must not hold the
    process at exit)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["ok"] = asyncio.run(_fetch(config))
        except CodexbroError as exc:
            box["error"] = exc.message
        except Exception as exc:  # reported as the reason, never raised into start-up
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=work, name="managed-requirements", daemon=True)
    thread.start()
    thread.join(WAIT_S + 1)
    if "ok" in box:
        return box["ok"]  # type: ignore[no-any-return]
    return str(box.get("error") or f"no answer within {WAIT_S:g} s")


def load(config: Config) -> Requirements:
    """The requirements in force for this config's login (``Requirements()`` when none apply)."""
    who = _identity(config)
    if who is None:
        return Requirements(note="not a ChatGPT workspace login")
    account, _plan = who
    cached = _read_cache(config, account)
    if cached is not None and time.time() - cached[1] < FRESH_S:
        rules, ignored = parse(cached[0])
        return Requirements(rules, ignored, "cache", cached[2], cached[1])
    key = (str(config.codexbro_home), account)
    failed_at = _FAILED.get(key)
    if failed_at is not None and time.monotonic() - failed_at < BACKOFF_S:
        live: tuple[list[Fragment], str] | str = "it failed less than a minute ago"
    else:
        live = _fetch_waiting(config)
        if isinstance(live, str):
            _FAILED[key] = time.monotonic()
        else:
            _FAILED.pop(key, None)
    if not isinstance(live, str):
        frags, url = live
        rules, ignored = parse(frags)  # invalid requirements are refused before they are kept
        _write_cache(config, account, frags, url)
        return Requirements(rules, ignored, "live", url, time.time())
    if cached is not None:
        rules, ignored = parse(cached[0])
        age = (time.time() - cached[1]) / 3600
        return Requirements(rules, ignored, "stale cache", cached[2], cached[1],
                            note=f"the fetch failed ({live}); using the copy from {age:.1f} h ago")  # fmt: skip
    return Requirements(
        origin="none", note=f"UNKNOWN: the workspace's requirements could not be fetched ({live})"
    )


async def prime(config: Config) -> None:
    """For a server opening sessions on its event loop: fetch (or fail) in a worker thread, so
    the ``resolve`` that follows finds a fresh copy or a recent failure and does not wait."""
    if _identity(config) is not None:
        await asyncio.to_thread(load, config)


def apply(config: Config) -> tuple[Config, Requirements, list[str]]:
    """Load the requirements and hold ``config`` to them: the config to use, the requirements, and
    warnings to show. ``UserError`` for a chosen setting they do not allow."""
    reqs = load(config)
    warnings = []
    if reqs.origin == "none" and reqs.note.startswith("UNKNOWN"):
        warnings.append(
            "your ChatGPT workspace's managed requirements could not be fetched and none were kept: "
            f"this session is not held to them ({reqs.note.split('(', 1)[-1].rstrip(')')})"
        )
    if not reqs.rules:
        return config, reqs, warnings
    values: dict[str, str] = {"sandbox_mode": config.sandbox_mode, "approval_policy": config.approval_policy}
    chosen, more = enforce(values, config.origins, reqs)
    if chosen != values:
        from codexbro.records import replace

        config = replace(config, **chosen)
    return config, reqs, [*warnings, *more]
