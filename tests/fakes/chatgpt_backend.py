"""A fake of the ChatGPT backend's cloud-task, environment, managed-config and plugin routes,
mounted on ``FakeResponsesServer`` (loopback). Shapes as Codex CLI 0.169 reads and sends them —
captured from the real 0.169 binary talking to a loopback recorder (2026-12-03; see
docs/chatgpt.md, "Provenance"): task list items need ``id``, ``title``, ``archived``,
``has_unread_turn``; details carry ``task``, ``task_status_display`` and the
``current_*_turn`` objects with the diff as an ``output_diff`` or ``pr`` output item; sibling turns
are ``{"sibling_turns": [...]}``; environments are bare arrays; the config bundle has
``requirements_toml.enterprise_managed[]``; plugins are ``{"plugins": [...], "pagination": ...}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.responses_server import FakeResponsesServer, Recorded

PREFIX = "/backend-api"
Answer = tuple[int, dict[str, str], bytes]


def diff_for(path: str, old: str, new: str, index: str | None = None) -> str:
    """A one-line change; ``index`` (``OLD..NEW`` blob ids) lets git merge it three-way."""
    head = f"index {index} 100644\n" if index else ""
    return f"diff --git a/{path} b/{path}\n{head}--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"


def list_item(task_id: str, title: str, status: str = "completed", *, label: str | None = "acme/widgets",
              siblings: int = 0, age_s: float = 600, files: int = 1) -> dict[str, Any]:  # fmt: skip
    now = time.time()
    return {
        "id": task_id, "title": title, "has_generated_title": True, "updated_at": now - age_s,
        "created_at": now - age_s - 60, "archived": False, "has_unread_turn": False, "pull_requests": [],
        "task_status_display": {
            **({"environment_label": label} if label else {}),
            "latest_turn_status_display": {
                "turn_status": status, "sibling_turn_ids": [f"turn_s{i}" for i in range(siblings)],
                "diff_stats": {"files_modified": files, "lines_added": files, "lines_removed": files},
            },
        },
    }  # fmt: skip


def details(task_id: str, title: str, diff: str | None, status: str = "completed", *, siblings: int = 0,
            error: dict[str, str] | None = None, env: str = "env_abc") -> dict[str, Any]:  # fmt: skip
    output: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"content_type": "text", "text": f"Did: {title}"}],
        }
    ]
    if diff is not None:
        output.append({"type": "pr", "pr_title": title, "output_diff": {"diff": diff}})
    now = time.time()
    return {
        "task": {"id": task_id, "title": title, "environment_id": env, "created_at": now - 700,
                 "updated_at": now - 600, "archived": False, "external_pull_requests": []},
        "task_status_display": {"environment_label": "acme/widgets", "latest_turn_status_display": {
            "turn_status": status, "sibling_turn_ids": [f"turn_s{i}" for i in range(siblings)],
            "diff_stats": {"files_modified": 1 if diff else 0, "lines_added": 1 if diff else 0,
                           "lines_removed": 1 if diff else 0}}},
        "current_user_turn": {"id": "turn_user", "turn_status": "completed", "input_items": [
            {"type": "message", "role": "user", "content": [{"content_type": "text", "text": f"please: {title}"}]}]},
        "current_assistant_turn": {"id": "turn_main", "attempt_placement": 0, "turn_status": status,
                                   "sibling_turn_ids": [f"turn_s{i}" for i in range(siblings)],
                                   "output_items": output, **({"error": error} if error else {})},
        "current_diff_task_turn": None,
    }  # fmt: skip


class FakeChatGPTBackend:
    """State the routes answer from; every request is kept in ``seen``."""

    def __init__(self, fake: FakeResponsesServer) -> None:
        self.fake = fake
        self.seen: list[Recorded] = []
        self.tasks: list[dict[str, Any]] = []
        self.details: dict[str, dict[str, Any]] = {}
        self.siblings: dict[str, list[dict[str, Any]]] = {}
        self.cursor: str | None = None
        self.environments: list[dict[str, Any]] = [
            {"id": "env_abc", "label": "acme/widgets", "is_pinned": True, "task_count": 3},
            {"id": "env_def", "label": "acme/gadgets", "is_pinned": False, "task_count": 1},
        ]
        self.by_repo: dict[str, list[dict[str, Any]]] = {"acme/widgets": [self.environments[0]]}
        self.bundle: dict[str, Any] = {}
        self.plugins: list[dict[str, Any]] = []
        self.installed: list[dict[str, Any]] = []
        self.created = 0
        self.fail: dict[str, Answer] = {}  # path → a canned failure
        for method, path in (("GET", "/wham/tasks/list"), ("POST", "/wham/tasks"), ("GET", "/wham/environments"),
                             ("GET", "/wham/config/bundle"), ("GET", "/ps/plugins/list"),
                             ("GET", "/ps/plugins/installed")):  # fmt: skip
            fake.route(method, PREFIX + path, self._handle)

    def add_task(self, task_id: str, title: str, diff: str | None, status: str = "completed", *,
                 siblings: list[tuple[int, str | None]] = (), **kw: Any) -> None:  # type: ignore[assignment]  # fmt: skip
        self.tasks.append(list_item(task_id, title, status, siblings=len(siblings)))
        self.details[task_id] = details(task_id, title, diff, status, siblings=len(siblings), **kw)
        self.siblings[task_id] = [
            {"id": f"turn_s{i}", "attempt_placement": placement, "turn_status": "completed",
             "created_at": time.time() - 500 + i,
             "output_items": [{"type": "output_diff", "diff": d}] if d else []}
            for i, (placement, d) in enumerate(siblings)
        ]  # fmt: skip
        self.fake.route("GET", f"{PREFIX}/wham/tasks/{task_id}", self._handle)
        self.fake.route("GET", f"{PREFIX}/wham/tasks/{task_id}/turns/turn_main/sibling_turns", self._handle)

    def add_repo(self, owner_repo: str, envs: list[dict[str, Any]]) -> None:
        self.by_repo[owner_repo] = envs
        self.fake.route("GET", f"{PREFIX}/wham/environments/by-repo/github/{owner_repo}", self._handle)

    def _handle(self, rec: Recorded) -> Answer:
        self.seen.append(rec)
        path = rec.path.split("?")[0][len(PREFIX) :]
        if path in self.fail:
            return self.fail[path]
        doc: Any
        if path == "/wham/tasks/list":
            doc = {"items": self.tasks, "cursor": self.cursor}
        elif path == "/wham/tasks" and rec.method == "POST":
            self.created += 1
            doc = {"task": {"id": f"task_e_new{self.created}"}}
        elif path.endswith("/sibling_turns"):
            doc = {"sibling_turns": self.siblings.get(path.split("/")[3], [])}
        elif path.startswith("/wham/tasks/"):
            doc = self.details[path.split("/")[3]]
        elif path == "/wham/environments":
            doc = self.environments
        elif path.startswith("/wham/environments/by-repo/github/"):
            doc = self.by_repo.get(path.split("/by-repo/github/")[1], [])
        elif path == "/wham/config/bundle":
            doc = self.bundle
        elif path == "/ps/plugins/list":
            doc = {"plugins": self.plugins, "pagination": {"limit": 200, "next_page_token": None}}
        elif path == "/ps/plugins/installed":
            doc = {"plugins": self.installed, "pagination": {"limit": 200, "next_page_token": None}}
        else:
            return 404, {"content-type": "application/json"}, b'{"detail": "not found"}'
        return 200, {"content-type": "application/json"}, json.dumps(doc).encode()

    def paths(self) -> list[str]:
        return [r.path for r in self.seen]
