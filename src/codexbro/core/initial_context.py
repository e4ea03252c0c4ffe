"""The items a session's first turn starts with: developer instructions, AGENTS.md, and the
environment context (cwd, policies, writable roots) — upstream's order."""

from __future__ import annotations

from codexbro.config.types import Config
from codexbro.core.instructions import environment_context
from codexbro.core.project_doc import as_message_text, discover
from codexbro.protocol.items import ResponseItem, developer_message, user_message


def initial_context(cfg: Config) -> list[ResponseItem]:
    items = []
    if cfg.developer_instructions:
        items.append(developer_message(cfg.developer_instructions))
    docs = discover(
        cfg.cwd, home=cfg.codexbro_home, max_bytes=cfg.project_doc_max_bytes,
        fallback_names=cfg.project_doc_fallback_filenames, markers=cfg.project_root_markers,
    )  # fmt: skip
    if docs is not None:
        items.append(user_message(as_message_text(docs, cfg.cwd)))
    roots = [str(cfg.cwd), *cfg.sandbox_workspace_write.writable_roots]
    network = cfg.sandbox_mode == "danger-full-access" or (
        cfg.sandbox_mode == "workspace-write" and cfg.sandbox_workspace_write.network_access
    )
    items.append(
        user_message(
            environment_context(
                cwd=cfg.cwd,
                approval_policy=cfg.approval_policy,
                sandbox_mode=cfg.sandbox_mode,
                network_access=network,
                writable_roots=roots if cfg.sandbox_mode == "workspace-write" else None,
            )
        )
    )
    return items
