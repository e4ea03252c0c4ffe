"""``codexbro trace show FILE [--html OUT]``: a turn timeline from a ``--trace`` file."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from codexbro.errors import UserError


def load(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read trace {path}: {exc.strerror}") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            raise UserError(f"{path}:{n}: not a JSON line (is this a codexbro --trace file?)") from None
        if not isinstance(doc, dict):
            raise UserError(
                f"{path}:{n}: not a trace record (a JSON object) — is this a codexbro --trace file?"
            )
        records.append(doc)
    return records


def summary(r: dict[str, Any]) -> str:
    """One line for a record; a record missing fields (hand-edited, another version's) is shown
    whole rather than failing the listing."""
    try:
        return _summary(r)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "(fields missing) " + _rest(r)


def _rest(r: dict[str, Any]) -> str:
    return json.dumps(
        {key: v for key, v in r.items() if key not in ("t", "time", "kind")}, ensure_ascii=False
    )


def _when(r: dict[str, Any]) -> str:
    t = r.get("t", 0)
    return f"{t:>8.3f}s" if isinstance(t, int | float) else f"{str(t)[:8]:>8} "


def _summary(r: dict[str, Any]) -> str:
    k = r.get("kind")
    if k == "model_resolution":
        return (f"{r['model']} via provider {r['provider_id']} → {r['base_url']} [{r['bucket']}]; "
                f"model from {r['model_source']}; base URL: {r['base_url_reason']}; auth: {r['auth']}")  # fmt: skip
    if k == "session":
        return f"session {r['session_id']} in {r['cwd']} (sandbox {r['sandbox']}, approval {r['approval']})"
    if k == "turn_started":
        return f"turn {r['turn_id']} started"
    if k == "request":
        outcome = f"→ {r['status']}" if r.get("status") is not None else f"✗ {r.get('error')}"
        retry = f" (attempt {r['attempt']})" if r.get("attempt", 1) > 1 else ""
        return f"{r['method']} {r['route']} [{r['bucket']}] {outcome} in {r['duration_ms']} ms{retry}"
    if k == "usage":
        last = r.get("last") or {}
        return (f"tokens in {last.get('input_tokens', 0)} (cached {last.get('cached_input_tokens', 0)}), "
                f"out {last.get('output_tokens', 0)}; session total {(r.get('total') or {}).get('total_tokens', 0)}")  # fmt: skip
    if k == "context":
        return f"next request ~{r['estimated_tokens']} tokens (window {r['context_window']}, auto-compact at {r['auto_compact_limit']})"
    if k == "compaction":
        return f"{r['strategy']} ({r['reason']}): ~{r['tokens_before']} → ~{r['tokens_after']} tokens"
    if k == "stream_retry":
        return f"{r['message']} — {r.get('details') or r.get('error_kind')}"
    if k == "tool_decision":
        approval = f", approval {r['approval']}" if r.get("approval") else ""
        return f"{r['tool']} {r['call_id']}: {r['verdict']}, sandbox {r['sandbox']}{approval} — {r['reason']}"
    if k == "approval_request":
        what = " ".join(r.get("command") or r.get("paths") or [])
        return f"asked the user ({r['what']}): {what} — {r.get('reason')}"
    if k == "command":
        denied = ", SANDBOX DENIED" if r.get("sandbox_denied") else ""
        return f"{' '.join(r['command'])} → exit {r['exit_code']} in {r['duration_ms']} ms, {r['output_bytes']} B{denied}"
    if k == "patch":
        files = ", ".join(f"{kind} {path}" for path, kind in (r.get("files") or {}).items())
        return f"{'applied' if r['success'] else 'FAILED'}: {files}"
    if k == "tool":
        return f"{r['tool']} {r['call_id']} {'ok' if r['success'] else 'failed'} in {r['duration_ms']} ms, {r['output_bytes']} B out"
    if k in ("error", "warning"):
        return str(r.get("message"))
    if k == "turn_completed":
        return f"turn {r['turn_id']} completed ({r['last_message_chars']} chars of final message)"
    if k == "turn_aborted":
        return f"turn {r['turn_id']} aborted: {r['reason']}"
    return _rest(r)


def render_text(records: list[dict[str, Any]]) -> str:
    return "\n".join(f"{_when(r)}  {r.get('kind', '?')!s:<16} {summary(r)}" for r in records)


_COLORS = {"request": "#2563eb", "command": "#059669", "patch": "#059669", "tool_decision": "#7c3aed",
           "error": "#dc2626", "stream_retry": "#d97706", "approval_request": "#db2777"}  # fmt: skip


def render_html(records: list[dict[str, Any]], title: str) -> str:
    rows = []
    for r in records:
        color = _COLORS.get(str(r.get("kind")), "#374151")
        detail = html.escape(json.dumps(r, indent=2, ensure_ascii=False))
        rows.append(
            f"<tr><td class=t>{html.escape(_when(r).strip())}</td><td><span class=k style='color:{color}'>"
            f"{html.escape(str(r.get('kind')))}</span></td><td>{html.escape(summary(r))}"
            f"<details><summary>record</summary><pre>{detail}</pre></details></td></tr>"
        )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>codexbro trace — {html.escape(title)}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#111}} h1{{font-size:18px}}
table{{border-collapse:collapse;width:100%}} td{{border-bottom:1px solid #e5e7eb;padding:4px 8px;vertical-align:top}}
td.t{{font-family:monospace;color:#6b7280;white-space:nowrap}} .k{{font-weight:600;font-family:monospace}}
pre{{background:#f9fafb;padding:6px;overflow:auto}} summary{{color:#6b7280;cursor:pointer;font-size:12px}}
</style></head><body>
<h1>codexbro trace — {html.escape(title)}</h1>
<p>{len(records)} records. Every request went through the route table; no headers or bodies are recorded.</p>
<table>{"".join(rows)}</table></body></html>
"""


def show(path: Path, html_out: str | None) -> str:
    records = load(path)
    if html_out:
        Path(html_out).write_text(render_html(records, path.name), encoding="utf-8")
        return f"wrote {html_out} ({len(records)} records)"
    return render_text(records)
