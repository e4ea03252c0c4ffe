"""``codexbro debug request [PROMPT]``: the exact first request of a turn, built and printed, never sent."""

from __future__ import annotations

import json
import re
from typing import Any

from codexbro.api.http import redact_headers
from codexbro.config.types import Config


async def build(config: Config, prompt: str) -> dict[str, Any]:
    from codexbro.composition import SessionOptions, open_session, resolve

    session = open_session(resolve(config, allow_missing_auth=True), SessionOptions(ephemeral=True))
    try:
        if (
            session.tool_resources.mcp is not None
        ):  # their tools are in the first request: wait as a turn does
            await session.tool_resources.mcp.wait_started()
        preview = session.preview_request(prompt)
    finally:
        await session.close()
    url, body, headers, local = preview.url, preview.body, preview.headers, preview.local
    tools: list[dict[str, Any]] = body.get("tools") or []
    code_mode = _code_mode(body)
    if code_mode is not None:
        tools = code_mode["tools"]
    res = session.resolution
    body_bytes = len(json.dumps(body, ensure_ascii=False).encode())
    instructions = body.get("instructions") or ""
    return {
        "model": {
            "slug": res.model,
            "why": res.model_source,
            "catalog": res.catalog,
            "warning": res.warning,
            "match": res.match,
            "catalog_entry": res.catalog_entry,
        }
        if res
        else None,
        "provider": {"id": res.provider_id, "why": res.provider_source} if res else None,
        "base_url": {"url": res.base_url, "why": res.base_url_reason} if res else None,
        "route": {
            "name": "responses.create",
            "method": "POST",
            "url": url,
            "bucket": res.bucket if res else None,
        },
        "auth": res.auth if res else None,
        "policy": {
            "sandbox_mode": session.config.sandbox_mode,
            "approval_policy": session.config.approval_policy,
            "managed_requirements": list(res.requirements) if res else [],
        },
        "headers": redact_headers(headers),
        "tools": [
            {
                "name": t.get("name") or t.get("type"),
                "type": t.get("type"),
                "bytes": len(json.dumps(t, ensure_ascii=False).encode()),
            }
            for t in tools
        ],
        "code_mode": {"nested": code_mode["nested"]} if code_mode is not None else None,
        "instructions_bytes": len(instructions.encode()),
        "input_items": len(body.get("input") or []),
        "body_bytes": body_bytes,
        "estimated_tokens": (body_bytes + 3) // 4,
        "body": body,
        **({"local": local} if local else {}),
    }


def _match_text(m: dict[str, Any]) -> str:
    match, entry = m.get("match"), m.get("catalog_entry")
    if match == "exact":
        return "exactly (its own catalog entry)"
    if match == "prefix":
        return f"by prefix: the metadata of `{entry}`"
    if match == "namespace":
        return f"by prefix after its namespace: the metadata of `{entry}`"
    return "nothing: fallback metadata"


def render(info: dict[str, Any]) -> str:
    def kb(n: int) -> str:
        return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"

    m, pr, base, rt = info["model"], info["provider"], info["base_url"], info["route"]
    lines = [
        "codexbro debug request — the first request of a turn for this config (nothing is sent)",
        "",
        f"model        {m['slug']}  ({m['why']}; metadata: {m['catalog']})",
        f"             matched {_match_text(m)}",
    ]
    if m["warning"]:
        lines.append(f"             warning: {m['warning']}")
    lines += [
        f"provider     {pr['id']}  (set by: {pr['why']})",
        f"base URL     {base['url']}  ({base['why']})",
        f"route        {rt['method']} {rt['url']}  [{rt['name']}, bucket {rt['bucket']}]",
        f"auth         {info['auth']}",
        f"policy       sandbox {info['policy']['sandbox_mode']}, approvals {info['policy']['approval_policy']}",
        *(
            f"{'managed' if i == 0 else '':<13}{line}"
            for i, line in enumerate(info["policy"]["managed_requirements"])
        ),
        "headers",
        *(f"  {k}: {v}" for k, v in info["headers"].items()),
        f"tools        {len(info['tools'])}, {kb(sum(t['bytes'] for t in info['tools']))}",
        *(f"  {t['name']:<20} {t['type']:<12} {kb(t['bytes'])}" for t in info["tools"]),
        *_code_mode_lines(info),
        f"instructions {kb(info['instructions_bytes'])} (~{info['instructions_bytes'] // 4} tokens)",
        f"input items  {info['input_items']}",
        f"body         {kb(info['body_bytes'])}, ~{info['estimated_tokens']} tokens (4 bytes per token)",
    ]
    local = info.get("local")
    if local:
        lines += [
            f"local model  {local['model_file']}",
            f"             {local['mode']}; {local['prompt_tokens']} prompt tokens of {local['n_ctx']}, "
            f"up to {local['max_tokens']} out; grammar {len((local['grammar'] or '').splitlines())} rules",
            f"             the first {local.get('shared_prefix_tokens', 0)} tokens (instructions, tools, examples) are "
            "the KV prefix shared by every workspace",
            "",
            "prompt as the local model reads it:",
            *(f"  {line}" for line in local["prompt"].splitlines()),
        ]
    lines += ["", "full body: codexbro debug request --json"]
    return "\n".join(lines)


def _code_mode(body: dict[str, Any]) -> dict[str, Any] | None:
    """Code mode's menu (the ``additional_tools`` input item) and the tools ``exec`` reaches."""
    first = (body.get("input") or [None])[0]
    if not isinstance(first, dict) or first.get("type") != "additional_tools":
        return None
    tools = [t for ns in first.get("tools") or [] for t in ns.get("tools") or []]
    exec_desc = next((t.get("description") or "" for t in tools if t.get("name") == "exec"), "")
    return {"tools": tools, "nested": re.findall(r"^### `([^`]+)`", exec_desc, flags=re.M)}


def _code_mode_lines(info: dict[str, Any]) -> list[str]:
    if not info.get("code_mode"):
        return []
    nested = info["code_mode"]["nested"]
    return [
        "  code mode: the menu is the input's additional_tools item; "
        f"exec reaches {len(nested)} nested tools: {', '.join(nested)}"
    ]
