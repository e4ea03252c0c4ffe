"""Should a command run, run sandboxed, need approval, or be refused?

1. Prefix rules (``$CODEXBRO_HOME/rules/*.rules``, upstream's ``prefix_rule(...)`` syntax plus an
   optional ``workspace="/abs/path"`` scope) — strictest match wins: forbidden > prompt > allow.
2. Prefixes the user approved "for this session" (always scoped to one workspace).
3. Upstream's heuristics: known-safe read-only commands run; known-dangerous ones ask (or are
   refused under ``never`` unless there is no sandbox); the rest follows the approval policy.

Beyond upstream: "don't ask again" never means "everywhere, forever". A session approval covers a
command prefix in one workspace for one session; a persisted approval is written as a readable rule
scoped to that workspace.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path, PurePath

from msgspec import Struct, field

from codexbro.config.values import CommandVerdict

SAFE_COMMANDS = frozenset(
    [
        "cat",
        "cd",
        "cut",
        "echo",
        "expr",
        "false",
        "grep",
        "head",
        "id",
        "ls",
        "nl",
        "paste",
        "pwd",
        "rev",
        "seq",
        "stat",
        "tail",
        "tr",
        "true",
        "uname",
        "uniq",
        "wc",
        "which",
        "whoami",
        "numfmt",
        "tac",
    ]
)
_FIND_UNSAFE = {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fls", "-fprint", "-fprint0", "-fprintf"}
_RG_UNSAFE = ("--pre", "--hostname-bin", "--search-zip", "-z")
_GIT_SAFE = {"status", "log", "diff", "show", "branch"}
_GIT_UNSAFE_FLAGS = ("--output", "--ext-diff", "--textconv", "--exec", "--paginate")
_BRANCH_LISTING = {
    "--list",
    "-l",
    "--show-current",
    "-a",
    "--all",
    "-r",
    "--remotes",
    "-v",
    "-vv",
    "--verbose",
}
_COMPLEX = re.compile(r"[<>`$()\\{}*?\[\]~!#]|&(?!&)")


def split_script(script: str) -> list[list[str]] | None:
    """Plain sub-commands of a shell script joined by && || ; | — None if it has anything more
    (redirections, substitutions, variables, globs, subshells): then it is judged as a whole."""
    if _COMPLEX.search(script.replace("&&", "")) or "\n" in script.strip():
        return None
    try:
        lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return None
    commands: list[list[str]] = [[]]
    for tok in tokens:
        if tok in ("&&", "||", ";", "|"):
            commands.append([])
        elif set(tok) <= set(";&|"):
            return None
        else:
            commands[-1].append(tok)
    return commands if all(commands) else None


def plain_commands(argv: list[str]) -> list[list[str]] | None:
    """``[bash, -lc, script]`` → its plain sub-commands; any other argv → ``[argv]``."""
    if len(argv) == 3 and PurePath(argv[0]).name in ("bash", "zsh", "sh") and argv[1] in ("-c", "-lc"):
        return split_script(argv[2])
    return [argv]


def is_safe_one(cmd: list[str]) -> bool:
    name = PurePath(cmd[0]).name
    args = cmd[1:]
    if name in SAFE_COMMANDS:
        return True
    if name == "base64":
        return not any(a in ("-o", "--output") or a.startswith(("--output=", "-o")) for a in args)
    if name == "find":
        return not any(a in _FIND_UNSAFE for a in args)
    if name == "rg":
        return not any(a.startswith(_RG_UNSAFE) for a in args)
    if name == "sed":
        return len(args) in (2, 3) and args[0] == "-n" and re.fullmatch(r"\d+(,\d+)?p", args[1]) is not None
    if name == "git":
        rest = list(args)
        while rest and rest[0].startswith("-"):
            if rest[0] in ("-c", "--config-env"):
                return False
            rest = rest[2:] if rest[0] in ("-C", "--git-dir", "--work-tree") else rest[1:]
        if not rest or rest[0] not in _GIT_SAFE:
            return False
        flags = rest[1:]
        if any(f.startswith(_GIT_UNSAFE_FLAGS) for f in flags):
            return False
        if rest[0] == "branch":
            return all(f in _BRANCH_LISTING or f.startswith("--format=") for f in flags)
        return True
    return False


def is_known_safe(argv: list[str]) -> bool:
    commands = plain_commands(argv)
    return bool(commands) and all(is_safe_one(c) for c in commands or [])


def is_dangerous(argv: list[str]) -> bool:
    for cmd in plain_commands(argv) or [argv]:
        name = PurePath(cmd[0]).name if cmd else ""
        args = cmd[1:]
        if name == "rm" and any(
            a.startswith("-") and ("r" in a or "f" in a) for a in args if not a.startswith("--")
        ):
            return True
        if name == "rm" and any(a in ("--recursive", "--force") for a in args):
            return True
        if name == "git" and args[:1] == ["reset"] and "--hard" in args:
            return True
        if (
            name == "git"
            and args[:1] == ["push"]
            and any(a in ("-f", "--force") or a.startswith("--force") for a in args)
        ):
            return True
        if name in ("sudo", "mkfs", "dd", "shutdown", "reboot"):
            return True
    return False


# ---- rules ------------------------------------------------------------------------------------

DECISION_ORDER = {"allow": 0, "prompt": 1, "forbidden": 2}


class PrefixRule(Struct, frozen=True):
    pattern: tuple[tuple[str, ...], ...]  # each element: the alternatives for that token
    decision: str = "allow"
    justification: str = ""
    workspace: str | None = None
    source: str = ""

    def matches(self, cmd: list[str], cwd: Path) -> bool:
        if self.workspace is not None:
            try:
                cwd.resolve().relative_to(Path(self.workspace).resolve())
            except ValueError:
                return False
        if len(cmd) < len(self.pattern):
            return False
        return all(tok in alts for tok, alts in zip(cmd, self.pattern, strict=False))


class RulesError(Exception):
    pass


def parse_rules(text: str, source: str) -> list[PrefixRule]:
    """Parse ``prefix_rule(pattern=[...], decision=..., justification=..., workspace=...)`` calls."""
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as exc:
        raise RulesError(f"{source}:{exc.lineno}: not a valid rules file ({exc.msg})") from None
    rules = []
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        if not (
            isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "prefix_rule"
        ):
            raise RulesError(f"{source}:{node.lineno}: only prefix_rule(...) calls are allowed")
        try:
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except ValueError:
            raise RulesError(f"{source}:{node.lineno}: arguments must be literals") from None
        pattern = kwargs.get("pattern")
        if not isinstance(pattern, list) or not pattern:
            raise RulesError(f"{source}:{node.lineno}: `pattern` must be a non-empty list")
        decision = kwargs.get("decision", "allow")
        if decision not in DECISION_ORDER:
            raise RulesError(f"{source}:{node.lineno}: `decision` must be allow, prompt or forbidden")
        alts = tuple(tuple(p) if isinstance(p, list) else (str(p),) for p in pattern)
        workspace = kwargs.get("workspace")
        rules.append(PrefixRule(alts, decision, str(kwargs.get("justification", "")),
                                str(workspace) if workspace else None, f"{source}:{node.lineno}"))  # fmt: skip
    return rules


def load_rules(home: Path) -> list[PrefixRule]:
    rules: list[PrefixRule] = []
    folder = home / "rules"
    if folder.is_dir():
        for path in sorted(folder.glob("*.rules")):
            rules += parse_rules(path.read_text(encoding="utf-8"), str(path))
    return rules


def append_rule(home: Path, prefix: list[str], workspace: Path, note: str = "") -> Path:
    """Persist an allow rule scoped to ``workspace`` (a line the user can read and delete)."""
    folder = home / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "default.rules"
    line = (
        f'prefix_rule(pattern={list(prefix)!r}, decision="allow", workspace={str(workspace)!r}'
        + (f", justification={note!r}" if note else "")
        + ")\n"
    )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
    return path


# ---- decisions --------------------------------------------------------------------------------


class ExecDecision(Struct, frozen=True):
    """What the policy decided for one command, and why."""

    verdict: CommandVerdict
    sandboxed: bool = True
    reason: str = ""


class ApprovalStore(Struct):
    """Session approvals: (workspace, prefix) pairs; never global."""

    approved: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    approved_paths: set[str] = field(default_factory=set)

    def allows(self, cmd: list[str], cwd: Path) -> bool:
        for workspace, prefix in self.approved:
            if tuple(cmd[: len(prefix)]) == prefix:
                try:
                    cwd.resolve().relative_to(workspace)
                    return True
                except ValueError:
                    continue
        return False

    def add(self, prefix: list[str], workspace: Path) -> None:
        self.approved.add((str(workspace.resolve()), tuple(prefix)))


def proposed_prefix(argv: list[str], requested: list[str] | None = None) -> list[str]:
    """The prefix an approval "for session" would cover: the model's ``prefix_rule`` if it gave one,
    else the first two words of the (first) command."""
    commands = plain_commands(argv)
    if requested and commands and all(cmd[: len(requested)] == list(requested) for cmd in commands):
        return list(requested)  # only a prefix of what actually runs: never a word the model made up
    if commands is None:  # a complex script: its leading plain words
        words: list[str] = []
        for tok in re.split(r"\s+", argv[2].strip()):
            if not re.fullmatch(r"[\w./:=@+-]+", tok):
                break
            words.append(tok)
        commands = [words or argv]
    first = commands[0]
    return first[:2] if len(first) > 1 and not first[1].startswith("-") else first[:1]


def decide(
    argv: list[str], *, cwd: Path, approval: str, mode: str, escalate: bool, rules: list[PrefixRule],
    store: ApprovalStore,
) -> ExecDecision:  # fmt: skip
    commands = plain_commands(argv) or [argv]
    strictest: PrefixRule | None = None
    unmatched = False  # a command no rule speaks for: an "allow" elsewhere in the script cannot cover it
    for cmd in commands:
        matched = False
        for rule in rules:
            if rule.matches(cmd, cwd):
                matched = True
                if strictest is None or DECISION_ORDER[rule.decision] > DECISION_ORDER[strictest.decision]:
                    strictest = rule
        unmatched = unmatched or not matched
    if strictest is not None and strictest.decision == "allow" and unmatched:
        strictest = None
    shown = shlex.join(argv)
    if strictest is not None:
        if strictest.decision == "forbidden":
            return ExecDecision(
                "reject",
                reason=f"`{shown}` rejected: {strictest.justification or 'forbidden by ' + strictest.source}",
            )
        if strictest.decision == "prompt":
            if approval == "never":
                return ExecDecision(
                    "reject", reason="approval required by policy, but AskForApproval is set to Never"
                )
            return ExecDecision(
                "ask", sandboxed=not escalate, reason=strictest.justification or "a rule asks for approval"
            )
        return ExecDecision("run", sandboxed=not escalate)
    if all(store.allows(cmd, cwd) for cmd in commands):
        return ExecDecision("run", sandboxed=not escalate)
    if escalate:
        if approval == "never":
            return ExecDecision(
                "reject",
                reason="approval policy is Never; reject command — you cannot ask for escalated permissions "
                "if the approval policy is Never",
            )
        return ExecDecision("ask", sandboxed=False, reason="the command asks to run outside the sandbox")
    if is_known_safe(argv):
        return ExecDecision("run")
    if is_dangerous(argv):
        if approval == "never":
            if mode == "danger-full-access":
                return ExecDecision("run")
            return ExecDecision("reject", reason=f"`{shown}` looks destructive and approval policy is never")
        return ExecDecision("ask", reason="the command looks destructive")
    if approval == "untrusted":
        return ExecDecision("ask", reason="untrusted policy: only known-safe commands run without approval")
    return ExecDecision("run")
