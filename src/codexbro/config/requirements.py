"""Managed requirements: what a ChatGPT workspace's administrator allows, and holding a config to it.

An administrator's requirements arrive as TOML fragments (``requirements.toml`` text), each with
a name and an id — from the config bundle 0.169 fetches (``requirements_toml.enterprise_managed``)
or the older requirements route (``{"contents": TOML}``). codexbro enforces the two that decide what
a command may do, ``allowed_sandbox_modes`` and ``allowed_approval_policies`` (several fragments:
only values every fragment allows); other keys are shown as "not enforced by codexbro".

A setting the user chose (a flag, ``-c``, config.toml, a profile) that a requirement does not allow
is refused, naming the requirement and where it came from. A value nobody chose (the default)
falls back to the first allowed value, with a warning — as upstream does for any value.
"""

from __future__ import annotations

import tomllib
from typing import Any

from msgspec import Struct, field

from codexbro.errors import UserError

ENFORCED = {"allowed_sandbox_modes": "sandbox_mode", "allowed_approval_policies": "approval_policy"}
KNOWN = {
    "allowed_sandbox_modes": ("read-only", "workspace-write", "danger-full-access"),
    "allowed_approval_policies": ("untrusted", "on-failure", "on-request", "never"),
}


class Fragment(Struct, frozen=True):
    id: str
    name: str
    contents: str

    @property
    def label(self) -> str:
        return f'enterprise-managed requirements "{self.name}" ({self.id})'


class Rule(Struct, frozen=True):
    key: str  # allowed_sandbox_modes | allowed_approval_policies
    allowed: tuple[str, ...]
    source: str  # the fragment(s) that set it


class Requirements(Struct, frozen=True):
    rules: tuple[Rule, ...] = ()
    ignored: dict[str, str] = field(default_factory=dict)  # key → source: shown, not enforced
    origin: str = "none"  # "live" | "cache" | "stale cache" | "none"
    url: str = ""
    fetched_at: float | None = None
    note: str = ""  # why there are none, or why a cached copy is in force

    def rule(self, key: str) -> Rule | None:
        return next((r for r in self.rules if r.key == key), None)

    def lines(self) -> list[str]:
        """For ``debug request`` and ``/status``."""
        if not self.rules and not self.ignored:
            return [f"none ({self.note})" if self.note else "none"]
        head = f"from {self.url} ({self.origin})" + (f" — {self.note}" if self.note else "")
        out = [head]
        out += [f"{r.key} = {list(r.allowed)}  (set by {r.source})" for r in self.rules]
        out += [f"{k}: not enforced by codexbro  (set by {src})" for k, src in self.ignored.items()]
        return out


def fragments_from_bundle(doc: Any) -> list[Fragment]:
    """``{"requirements_toml": {"enterprise_managed": [{id, name, contents}]}}`` (0.169's bundle)."""
    section = doc.get("requirements_toml") if isinstance(doc, dict) else None
    items = section.get("enterprise_managed") if isinstance(section, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("contents"), str) and item["contents"].strip():
            out.append(
                Fragment(str(item.get("id") or "?"), str(item.get("name") or "unnamed"), item["contents"])
            )
    return out


def fragments_from_route(doc: Any) -> list[Fragment]:
    """``{"contents": TOML or null}`` (the older ``wham/config/requirements``)."""
    contents = doc.get("contents") if isinstance(doc, dict) else None
    if not isinstance(contents, str) or not contents.strip():
        return []
    return [Fragment(str(doc.get("sha256") or "requirements")[:12], "workspace requirements", contents)]


def parse(fragments: list[Fragment]) -> tuple[tuple[Rule, ...], dict[str, str]]:
    allowed: dict[str, tuple[list[str], list[str]]] = {}  # key → (values, sources)
    ignored: dict[str, str] = {}
    for frag in fragments:
        try:
            doc = tomllib.loads(frag.contents)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"the {frag.label} are not valid TOML ({exc}); ask your administrator") from None
        except RecursionError:
            raise UserError(
                f"the {frag.label} are nested too deeply to read; ask your administrator"
            ) from None
        for key, value in doc.items():
            if key not in ENFORCED:
                ignored.setdefault(key, frag.label)
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"the {frag.label} set {key} to {value!r}: expected a list of names")
            known = KNOWN[key]
            unknown = [v for v in value if v not in known]
            if unknown:
                raise UserError(f"the {frag.label} allow {unknown[0]!r} in {key}, which is not one of "
                                f"{', '.join(known)}; ask your administrator")  # fmt: skip
            if key in allowed:
                values, sources = allowed[key]
                allowed[key] = ([v for v in values if v in value], [*sources, frag.label])
            else:
                allowed[key] = (list(value), [frag.label])
    rules = tuple(Rule(k, tuple(v), " and ".join(s)) for k, (v, s) in allowed.items())
    return rules, ignored


def refusal(setting: str, value: str, reqs: Requirements | None) -> str | None:
    """Why ``setting = value`` chosen later in a session (``/approvals``, an app-server client) is not
    allowed, or None."""
    for rule in reqs.rules if reqs is not None else ():
        if ENFORCED[rule.key] == setting and value not in rule.allowed:
            return (f"{setting} = {value!r} is not allowed by your workspace: {rule.key} = {list(rule.allowed)} "
                    f"({rule.source}); the setting is unchanged")  # fmt: skip
    return None


def enforce(
    values: dict[str, str], origins: dict[str, str], reqs: Requirements
) -> tuple[dict[str, str], list[str]]:
    """``values``: the config's ``sandbox_mode`` and ``approval_policy``. Returns the values to use
    and warnings; raises ``UserError`` for a chosen value the requirements do not allow."""
    out = dict(values)
    warnings = []
    for rule in reqs.rules:
        setting = ENFORCED[rule.key]
        value = values.get(setting)
        if value is None or value in rule.allowed:
            continue
        origin = origins.get(setting, "default")
        if not rule.allowed:
            raise UserError(
                f"{rule.key} is empty ({rule.source}): no {setting} is allowed; ask your administrator"
            )
        if origin in ("default", "command default"):
            out[setting] = rule.allowed[0]
            warnings.append(f"{setting} defaults to {value!r}, which {rule.key} does not allow ({rule.source}); "
                            f"using {rule.allowed[0]!r}")  # fmt: skip
            continue
        raise UserError(
            f"{setting} = {value!r} (from {origin}) is not allowed by your workspace: {rule.key} = "
            f"{list(rule.allowed)} ({rule.source}, {reqs.origin} from {reqs.url}). Choose one of those"
        )
    return out, warnings
