"""Cloud environments: which ones the repository's GitHub remotes point at, and which one a
``--env`` names — as upstream 0.169 does it (its ``env_detect``; requests captured on loopback):
every remote URL of the work tree that is on GitHub is looked up with
``wham/environments/by-repo/github/OWNER/REPO``, then the workspace's whole list is merged in;
pinned first, then by label. ``--env`` takes an id or a label (case-insensitive, unambiguous).
Each environment keeps the reason it matched, for ``cloud envs``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from codexbro.cloud.git import run_git
from codexbro.errors import ApiError, CodexbroError, UserError

_GITHUB = re.compile(
    r"^(?:(?:https?|git|ssh)://)?(?:[^@/]+@)?github\.com[:/](?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$"
)


class Environment(Struct):
    id: str
    label: str | None = None
    is_pinned: bool = False
    task_count: int | None = None
    repos: list[str] = field(default_factory=list)  # owner/repo of the remotes it was found by

    @property
    def reason(self) -> str:
        if self.repos:
            return "matches this repository's remote " + ", ".join(f"github.com/{r}" for r in self.repos)
        return "in your workspace's list"


def github_repos(cwd: Path) -> list[tuple[str, str]]:
    """(owner, repo) of every GitHub remote of the work tree at ``cwd``, sorted, no duplicates.
    git runs without hooks or fsmonitor (a repository's config must not run anything here)."""
    try:
        out = run_git(["config", "--get-regexp", r"^remote\..*\.url$"], cwd, timeout_s=10).stdout
    except (UserError, OSError):
        return []
    found = set()
    for line in out.splitlines():
        parts = line.split(None, 1)
        match = _GITHUB.match(parts[1].strip()) if len(parts) == 2 else None
        if match:
            found.add((match["owner"], match["repo"]))
    return sorted(found)


def _merge(into: dict[str, Environment], items: list[dict[str, Any]], repo: str | None) -> None:
    for doc in items:
        eid = doc.get("id")
        if not isinstance(eid, str) or not eid:
            continue
        label = doc.get("label") if isinstance(doc.get("label"), str) else None
        count = doc.get("task_count") if isinstance(doc.get("task_count"), int) else None
        env = into.setdefault(eid, Environment(eid, label, False, count))
        env.label = env.label or label
        env.is_pinned = env.is_pinned or bool(doc.get("is_pinned"))
        env.task_count = env.task_count if env.task_count is not None else count
        if repo and repo not in env.repos:
            env.repos.append(repo)


async def list_environments(backend: Any, cwd: Path) -> tuple[list[Environment], list[str]]:
    """Every environment, the repository's first; notes on lookups that failed (a by-repo lookup
    failing is not fatal; the global list failing is when nothing was found)."""
    envs: dict[str, Environment] = {}
    notes: list[str] = []
    for owner, repo in github_repos(cwd):
        try:
            _merge(envs, await backend.environments_by_repo("github", owner, repo), f"{owner}/{repo}")
        except ApiError as exc:
            if exc.status != 404:
                notes.append(f"by-repo lookup for github.com/{owner}/{repo} failed: {exc.message}")
    try:
        _merge(envs, await backend.environments(), None)
    except CodexbroError:
        if not envs:
            raise
        notes.append("the workspace's environment list could not be fetched; showing the repository's")
    ordered = sorted(envs.values(), key=lambda e: (not e.is_pinned, (e.label or "").lower(), e.id))
    return ordered, notes


def resolve_env(envs: list[Environment], wanted: str) -> Environment:
    """``--env``: an id, else a label (case-insensitive); ambiguous labels are refused."""
    if not envs:
        raise UserError("no cloud environments are available for this workspace")
    for env in envs:
        if env.id == wanted:
            return env
    matches = [e for e in envs if e.label and e.label.lower() == wanted.lower()]
    if len({e.id for e in matches}) > 1:
        ids = ", ".join(e.id for e in matches)
        raise UserError(f"environment label {wanted!r} is ambiguous ({ids}); pass the id with --env")
    if matches:
        return matches[0]
    raise UserError(f"environment {wanted!r} not found; `codexbro cloud envs` lists them")


def autodetect(envs: list[Environment], cwd: Path) -> Environment:
    """The environment for this repository when none is named: among those its remotes matched
    (else all), a label naming the repository, else the only one, else the first pinned, else the
    busiest — upstream's rule."""
    if not envs:
        raise UserError("no cloud environments are available for this workspace")
    pool = [e for e in envs if e.repos] or envs
    names = {f"{o}/{r}".lower() for o, r in github_repos(cwd)}
    for env in pool:
        if env.label and env.label.lower() in names:
            return env
    if len(pool) == 1:
        return pool[0]
    pinned = [e for e in pool if e.is_pinned]
    if pinned:
        return pinned[0]
    return max(pool, key=lambda e: e.task_count or 0)
