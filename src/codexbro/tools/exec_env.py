"""The environment of every process a tool spawns, from ``[shell_environment_policy]``.

Steps (upstream's order): start from all / core / no variables; drop the default secret patterns
(upstream's ``*KEY*``, ``*SECRET*``, ``*TOKEN*``, plus ``*PASSWORD*`` and ``*PASSWD*``) unless
``ignore_default_excludes``; drop ``exclude`` matches; apply ``set``; keep only ``include_only``
matches when given. Patterns are case-insensitive globs, and a match drops the whole variable.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping

from codexbro.config.types import ShellEnvironmentPolicy

CORE_VARS = ("HOME", "LOGNAME", "PATH", "SHELL", "USER", "USERNAME", "TMPDIR", "TEMP", "TMP")
DEFAULT_EXCLUDES = ("*KEY*", "*SECRET*", "*TOKEN*", "*PASSWORD*", "*PASSWD*")


def _matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, p.upper()) for p in patterns)


def user_shell() -> str:
    """The user's shell (``$SHELL``), or ``/bin/sh`` when that does not exist."""
    shell = os.environ.get("SHELL") or "/bin/bash"
    return shell if os.path.exists(shell) else "/bin/sh"


def build_env(policy: ShellEnvironmentPolicy, parent: Mapping[str, str] | None = None) -> dict[str, str]:
    parent = os.environ if parent is None else parent
    if policy.inherit == "all":
        env = dict(parent)
    elif policy.inherit == "core":
        env = {k: v for k, v in parent.items() if k in CORE_VARS}
    else:
        env = {}
    if not policy.ignore_default_excludes:
        env = {k: v for k, v in env.items() if not _matches(k, DEFAULT_EXCLUDES)}
    if policy.exclude:
        env = {k: v for k, v in env.items() if not _matches(k, policy.exclude)}
    for name in policy.credential_vars:
        env.pop(name, None)
    env.update(policy.set)
    if policy.include_only:
        env = {k: v for k, v in env.items() if _matches(k, policy.include_only)}
    return env


def policy_allows(policy: ShellEnvironmentPolicy, name: str) -> bool:
    """Whether a variable of this name may reach a command — the policy's filters without the
    ``inherit`` step (for variables that come from elsewhere, e.g. a login profile's exports)."""
    if not policy.ignore_default_excludes and _matches(name, DEFAULT_EXCLUDES):
        return False
    if policy.exclude and _matches(name, policy.exclude):
        return False
    if name in policy.credential_vars:
        return False
    return not policy.include_only or _matches(name, policy.include_only)
