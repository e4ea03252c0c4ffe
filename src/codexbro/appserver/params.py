"""The app server's params in and results out: checking what a client sent (``-32602`` naming the
field), config overrides from ``thread/start``, user input, per-turn settings, stored threads and
their turns, models, config, account, MCP status, fuzzy file search."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, get_args

from codexbro import __version__
from codexbro import protocol as p
from codexbro.appserver.rpc import INVALID_REQUEST, RpcError, invalid_params
from codexbro.config.loader import Overrides, nest
from codexbro.config.values import ReasoningEffort, SandboxMode

# The approval policies of 0.169's wire (its AskForApproval has no `on-failure`).
WIRE_APPROVALS = ("untrusted", "on-request", "never")
KIND_NAMES = {str: "a string", list: "an array", dict: "an object", bool: "a boolean", int: "an integer"}


def require(params: dict[str, Any], key: str, kind: type) -> Any:
    value = params.get(key)
    if value is None:
        raise invalid_params(f"missing field `{key}`")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid_params(f"`{key}` must be {KIND_NAMES.get(kind, kind.__name__)}")
    return value


def check_thread_id(thread_id: str) -> None:
    """Thread ids are UUIDs (32 hex digits, dashes allowed): anything else names no thread."""
    digits = thread_id.replace("-", "")
    if len(digits) != 32 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise RpcError(INVALID_REQUEST, f"invalid thread id: {thread_id[:80]!r}")


def _optional(params: dict[str, Any], key: str, kind: type) -> Any:
    return None if params.get(key) is None else require(params, key, kind)


def overrides(params: dict[str, Any], base: Overrides) -> Overrides:
    """``thread/start``/``resume``/``fork`` params over the server's own ``-c``/``-p``."""
    flags: dict[str, Any] = {}
    for key, setting in (("model", "model"), ("modelProvider", "model_provider"), ("baseInstructions", "instructions"),
                         ("developerInstructions", "developer_instructions")):  # fmt: skip
        value = _optional(params, key, str)
        if value is not None:
            flags[setting] = value
    approval = params.get("approvalPolicy")
    if approval is not None:
        if approval not in WIRE_APPROVALS:
            raise invalid_params(f"`approvalPolicy` must be one of {', '.join(WIRE_APPROVALS)}")
        flags["approval_policy"] = approval
    sandbox = params.get("sandbox")
    if sandbox is not None:
        if sandbox not in get_args(SandboxMode):
            raise invalid_params(f"`sandbox` must be one of {', '.join(get_args(SandboxMode))}")
        flags["sandbox_mode"] = sandbox
    config = _optional(params, "config", dict) or {}
    layer: dict[str, Any] = {}
    from codexbro.config.loader import deep_merge

    for key, value in config.items():
        layer = deep_merge(layer, nest(str(key).split("."), value))
    from codexbro.config.spec import validate
    from codexbro.errors import ConfigError

    try:
        validate(layer, "`config`")
    except ConfigError as err:
        raise invalid_params(err.message) from None
    cwd = _optional(params, "cwd", str)
    if cwd is not None and not Path(cwd).is_dir():
        raise invalid_params(f"`cwd` {cwd} is not a directory")
    return Overrides(cli_overrides=list(base.cli_overrides), profile=base.profile, flags={**layer, **flags},
                     cwd=Path(cwd) if cwd else base.cwd)  # fmt: skip


def user_inputs(raw: Any) -> tuple[p.UserInput, ...]:
    if not isinstance(raw, list) or not raw:
        raise invalid_params("`input` must be a non-empty array of user inputs")
    out = []
    for n, item in enumerate(raw):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            out.append(p.UserInput("text", text=item["text"]))
        elif kind == "image" and isinstance(item.get("url"), str):
            out.append(p.UserInput("image", image_url=item["url"]))
        elif kind == "localImage" and isinstance(item.get("path"), str):
            _check_image(Path(item["path"]), n)
            out.append(p.UserInput("local_image", path=item["path"]))
        else:
            raise invalid_params(f"`input[{n}]`: expected {{type: text, text}}, {{type: image, url}} or "
                                 "{type: localImage, path}")  # fmt: skip
    return tuple(out)


def _check_image(path: Path, n: int) -> None:
    """A local image is sent to the provider: only a real image (PNG, JPEG, GIF, WebP), ≤ 20 MiB."""
    from codexbro.protocol.images import MAX_IMAGE_BYTES, image_mime

    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise invalid_params(f"`input[{n}].path`: cannot read {path}: {exc.strerror}") from None
    if not path.is_file() or size > MAX_IMAGE_BYTES or image_mime(head) is None:
        raise invalid_params(f"`input[{n}].path`: {path} is not a PNG, JPEG, GIF or WebP image under 20 MiB")


def turn_override(params: dict[str, Any], session: Any) -> p.OverrideTurnContext | None:
    """``turn/start``'s model, effort, approval policy, sandbox and cwd: for this turn and the next
    ones (as upstream)."""
    cwd = _optional(params, "cwd", str)
    if cwd is not None:
        if not Path(cwd).is_absolute() or not Path(cwd).is_dir():
            raise invalid_params(f"`cwd` {cwd} is not an existing absolute directory")
        cwd = None if Path(cwd).resolve() == session.config.cwd else str(Path(cwd).resolve())
    sandbox = None
    policy = params.get("sandboxPolicy")
    if policy is not None:
        kinds = {
            "dangerFullAccess": "danger-full-access",
            "readOnly": "read-only",
            "workspaceWrite": "workspace-write",
        }
        if not isinstance(policy, dict) or policy.get("type") not in kinds:
            raise invalid_params("`sandboxPolicy.type` must be dangerFullAccess, readOnly or workspaceWrite")
        sandbox = kinds[policy["type"]]
    approval = params.get("approvalPolicy")
    if approval is not None and approval not in WIRE_APPROVALS:
        raise invalid_params(f"`approvalPolicy` must be one of {', '.join(WIRE_APPROVALS)}")
    model, effort = _optional(params, "model", str), _optional(params, "effort", str)
    if effort is not None and effort not in get_args(ReasoningEffort):
        raise invalid_params(f"`effort` must be one of {', '.join(get_args(ReasoningEffort))}")
    if (
        model is not None
        and model != session.model.slug
        and (session.model_lookup is None or getattr(session.client, "retarget", None) is None)
    ):
        raise invalid_params(f"this thread's model cannot change (to {model})")
    if not any((model, effort, approval, sandbox, cwd)):
        return None
    return p.OverrideTurnContext(
        model=model, effort=effort, approval_policy=approval, sandbox_mode=sandbox, cwd=cwd
    )


# ---- stored threads -----------------------------------------------------------------------------


def preview(history: list[dict[str, Any]]) -> str:
    from codexbro.core.history import is_user_turn
    from codexbro.protocol.items import message_text

    return next((message_text(i)[:200] for i in history if is_user_turn(i)), "")


def turns(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored conversation as v2 turns: each user message starts one; its messages as items."""
    from codexbro.core.history import is_user_turn
    from codexbro.protocol.items import message_text

    out: list[dict[str, Any]] = []
    for n, item in enumerate(history):
        if is_user_turn(item):
            out.append({"id": f"turn_{len(out) + 1}", "items": [], "status": "completed"})
            out[-1]["items"].append({"type": "userMessage", "id": f"item_{n}",
                                     "content": [{"type": "text", "text": message_text(item), "text_elements": []}]})  # fmt: skip
        elif out and item.get("type") == "message" and item.get("role") == "assistant":
            out[-1]["items"].append({"type": "agentMessage", "id": f"item_{n}", "text": message_text(item)})
    return out


def stored_thread(loaded: Any) -> dict[str, Any]:
    meta = loaded.meta
    created = _timestamp(meta.get("timestamp")) or int(loaded.path.stat().st_mtime)
    return {
        "id": loaded.thread_id, "sessionId": loaded.thread_id, "cliVersion": str(meta.get("cli_version") or __version__),
        "createdAt": created, "updatedAt": int(loaded.path.stat().st_mtime), "cwd": str(meta.get("cwd") or "/"),
        "ephemeral": False, "modelProvider": str(meta.get("model_provider") or "openai"),
        "model": (loaded.last_turn_context or {}).get("model"), "preview": preview(loaded.history),
        "projectId": None, "source": "appServer" if meta.get("source") == "appServer" else _source(meta.get("source")),
        "status": {"type": "notLoaded"}, "turns": [], "path": str(loaded.path),
    }  # fmt: skip


def _source(value: Any) -> str:
    return value if value in ("cli", "vscode", "exec", "appServer") else "unknown"


def _timestamp(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return int(time.mktime(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone)
    return None


def thread_list(home: Path, params: dict[str, Any]) -> dict[str, Any]:
    from codexbro.core.rollout import list_sessions, load_rollout

    limit = _optional(params, "limit", int)
    if limit is None:
        limit = 25
    if not 1 <= limit <= 200:
        raise invalid_params("`limit` must be between 1 and 200")
    cwd = _optional(params, "cwd", str)
    cursor = _optional(params, "cursor", str) or "0"
    if not cursor.isdigit() or len(cursor) > 9:
        raise invalid_params("`cursor` must be a cursor from an earlier thread/list")
    start = int(cursor)
    found = list_sessions(home, Path(cwd).resolve() if cwd else None, limit=start + limit + 1)
    data = []
    for summary in found[start : start + limit]:
        with contextlib.suppress(Exception):
            data.append(stored_thread(load_rollout(summary.path)))
    more = len(found) > start + limit
    return {"data": data, "nextCursor": str(start + limit) if more else None}


def archive(home: Path, path: Path) -> None:
    target = home / "archived_sessions" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


# ---- models, config, account, MCP, files ----------------------------------------------------------


def model_list(base: Overrides, params: dict[str, Any]) -> dict[str, Any]:
    from codexbro.config.loader import load_config
    from codexbro.models.manager import cached_catalog

    config = load_config(base)
    catalog, _live = cached_catalog(config.codexbro_home, config.model_catalog_json)
    hidden = bool(params.get("includeHidden"))
    data = []
    for info in catalog.models:
        if info.raw.get("visibility") == "hide" and not hidden:
            continue
        efforts = [{"reasoningEffort": e, "description": e} for e in info.supported_reasoning_levels]
        data.append({"id": info.slug, "model": info.slug, "displayName": str(info.raw.get("display_name") or info.slug),
                     "description": str(info.raw.get("description") or ""), "hidden": info.raw.get("visibility") == "hide",
                     "isDefault": info.slug == catalog.default_slug, "supportedReasoningEfforts": efforts,
                     "defaultReasoningEffort": info.default_reasoning_level or "medium",
                     "inputModalities": list(info.input_modalities)})  # fmt: skip
    return {"data": data, "nextCursor": None}


def config_read(base: Overrides, params: dict[str, Any]) -> dict[str, Any]:
    from codexbro.config.loader import load_config

    cwd = _optional(params, "cwd", str)
    config = load_config(
        Overrides(base.cli_overrides, base.profile, dict(base.flags), Path(cwd) if cwd else base.cwd)
    )
    raw = config.raw
    doc: dict[str, Any] = {k: raw[k] for k in CONFIG_STRINGS if isinstance(raw.get(k), str)}
    doc |= {
        k: raw[k] for k in CONFIG_INTS if isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)
    }
    doc["model"] = config.model
    doc["model_provider"] = config.model_provider_id
    doc["approval_policy"] = (
        "on-request" if config.approval_policy == "on-failure" else config.approval_policy
    )
    doc["sandbox_mode"] = config.sandbox_mode
    origins = {k: {"name": {"type": "user", "file": v} if v.endswith(".toml") else {"type": "sessionFlags"},
                   "version": "1"} for k, v in config.origins.items() if k in doc}  # fmt: skip
    return {"config": doc, "origins": origins}


# What config/read shows: the settings the 0.169 schema types as plain strings and integers (the
# rest — tools, providers, MCP servers, tables upstream shapes differently — stays out).
CONFIG_STRINGS = ("model_reasoning_effort", "model_reasoning_summary", "model_verbosity", "developer_instructions",
                  "instructions", "compact_prompt", "review_model", "service_tier")  # fmt: skip
CONFIG_INTS = ("model_context_window", "model_auto_compact_token_limit")


def account_read(home: Path) -> dict[str, Any]:
    from codexbro.auth import storage

    auth = storage.load(home)
    if auth is None:
        return {"account": None, "requiresOpenaiAuth": True}
    if auth.tokens is not None:
        claims = storage.jwt_claims(auth.tokens.id_token)
        email = claims.get("email") or (claims.get("https://api.openai.com/profile") or {}).get("email")
        plan = (claims.get("https://api.openai.com/auth") or {}).get("chatgpt_plan_type")
        return {"account": {"type": "chatgpt", "email": str(email or ""), "planType": str(plan or "unknown")},
                "requiresOpenaiAuth": True}  # fmt: skip
    return {"account": {"type": "apiKey"}, "requiresOpenaiAuth": True}


def mcp_status(servers: list[dict[str, Any]]) -> dict[str, Any]:
    data = [{"name": s["name"], "tools": {t: {"name": t, "inputSchema": {"type": "object"}} for t in s["tools"]},
             "resources": [], "resourceTemplates": [], "authStatus": "unsupported"} for s in servers]  # fmt: skip
    return {"data": data, "nextCursor": None}


def fuzzy_search(query: str, roots: list[str]) -> dict[str, Any]:
    """The TUI's @-mention ranking (subsequence match, file names first) over each root's files."""
    from codexbro.tui.mentions import best, score, workspace_files

    files = []
    for root in roots:
        for path in best(query, workspace_files(Path(root)), 50):
            files.append({"root": root, "path": path, "file_name": Path(path).name,
                          "score": max(0, score(query, path) or 0), "match_type": "file"})  # fmt: skip
    return {"files": files}
