"""``codexbro plugin list``: the account's ChatGPT plugins and what each provides, from the remote
catalog 0.169 reads (``ps/plugins/installed`` and ``ps/plugins/list``, with
``oai-product-sku: codex``; shapes captured on loopback). ``--json`` keeps 0.169's shape
(``{"installed": [...], "available": [...]}``)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from codexbro.config.loader import Overrides, load_config
from codexbro.errors import CodexbroError
from codexbro.textsafe import for_terminal

MARKETPLACE = "openai-curated-remote"


def _entry(doc: dict[str, Any], installed: bool) -> dict[str, Any]:
    release: dict[str, Any] = doc["release"] if isinstance(doc.get("release"), dict) else {}
    interface: dict[str, Any] = release["interface"] if isinstance(release.get("interface"), dict) else {}
    name = str(doc.get("name") or doc.get("id") or "?")
    skills = [s.get("name") for s in release.get("skills") or [] if isinstance(s, dict) and s.get("name")]
    return {
        "pluginId": f"{name}@{MARKETPLACE}", "name": name, "marketplaceName": MARKETPLACE,
        "version": release.get("version"), "installed": installed,
        "enabled": bool(doc.get("enabled")) if installed else False,
        "source": {"source": "remote", "id": doc.get("id")},
        "installPolicy": doc.get("installation_policy"), "authPolicy": doc.get("authentication_policy"),
        # what it provides (codexbro's additions to 0.169's entry)
        "displayName": release.get("display_name"), "description": release.get("description"),
        "skills": skills, "apps": [a for a in release.get("app_ids") or [] if isinstance(a, str)],
        "capabilities": [c for c in interface.get("capabilities") or [] if isinstance(c, str)],
    }  # fmt: skip


def _provides(entry: dict[str, Any]) -> str:
    parts = []
    if entry["skills"]:
        parts.append("skills: " + ", ".join(entry["skills"]))
    if entry["apps"]:
        parts.append("apps: " + ", ".join(entry["apps"]))
    if entry["capabilities"]:
        parts.append("capabilities: " + ", ".join(entry["capabilities"]))
    return "; ".join(parts) or (entry["description"] or "-")


async def _fetch(config: Any, available: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from codexbro.composition.chatgpt import chatgpt_backend

    async with chatgpt_backend(config) as backend:
        installed_docs, catalog_docs = await asyncio.gather(
            backend.plugins(installed=True), backend.plugins() if available else _none()
        )
    installed = [_entry(d, True) for d in installed_docs]
    names = {e["source"]["id"] for e in installed}
    rest = [_entry(d, False) for d in catalog_docs if d.get("id") not in names]
    return installed, rest


async def _none() -> list[dict[str, Any]]:
    return []


def run(ns: Any) -> int:
    config = load_config(Overrides(cli_overrides=ns.config_overrides))
    available = bool(getattr(ns, "available", False))
    try:
        installed, rest = asyncio.run(_fetch(config, available))
    except CodexbroError as err:
        print(f"Error: {for_terminal(err.message)}", file=sys.stderr)
        return 1
    if ns.json:
        print(for_terminal(json.dumps({"installed": installed, "available": rest}, indent=2)))
        return 0
    rows = [*installed, *rest]
    if not rows:
        print("No marketplace plugins found.")
        return 0
    width = max(len(e["pluginId"]) for e in rows) + 2
    lines = [f"Marketplace `{MARKETPLACE}`", "Remote catalog", "",
             f"{'PLUGIN':<{width}}{'STATUS':<20}{'VERSION':<9}PROVIDES"]  # fmt: skip
    for e in rows:
        status = (
            ("installed, enabled" if e["enabled"] else "installed, disabled")
            if e["installed"]
            else "not installed"
        )
        lines.append(f"{e['pluginId']:<{width}}{status:<20}{e['version'] or '-':<9}{_provides(e)}")
    print(for_terminal("\n".join(lines)))
    return 0
