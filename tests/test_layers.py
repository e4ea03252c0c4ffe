"""The layering is a test (issue 15.9): every import in the package — function-level ones
included, ``TYPE_CHECKING`` blocks aside — points down the layer order of docs/architecture.md,
and no module grows past 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "codexbro"
MAX_LINES = 600

# Bottom to top. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("protocol", ("codexbro.protocol", "codexbro.textsafe", "codexbro.records")),
    ("base", ("codexbro", "codexbro.errors", "codexbro.logs", "codexbro.homefiles", "codexbro.config", "codexbro.apply_patch")),
    ("transport", ("codexbro.api.http", "codexbro.api.transport", "codexbro.api.sse", "codexbro.api.netenv", "codexbro.api.bodies", "codexbro.api.routes", "codexbro.api.classify")),
    ("foundation", ("codexbro.auth", "codexbro.models")),
    ("model clients", ("codexbro.api", "codexbro.embedded")),
    ("tools", ("codexbro.sandbox", "codexbro.tools", "codexbro.mcp", "codexbro.cloud")),
    ("core", ("codexbro.core",)),
    ("front ends", ("codexbro.composition", "codexbro.cli", "codexbro.exec", "codexbro.inspection",
                    "codexbro.tui", "codexbro.__main__", "codexbro.mcp.server", "codexbro.appserver",
                    "codexbro.batch")),
]  # fmt: skip


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # `codexbro` itself (the package's __init__) is not a prefix: a new top-level package
            # must be placed in a layer on purpose.
            under = module.startswith(prefix + ".") and prefix != "codexbro"
            if (module == prefix or under) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import outside ``if TYPE_CHECKING:`` bodies — statements,
    ``importlib.import_module("codexbro…")`` calls (an f-string counts by its constant start), and
    ``codexbro.x.y`` attribute chains after a bare ``import codexbro``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    me = module_name(path)
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target == "codexbro":  # `from codexbro import textsafe`
                found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((target, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                arg = arg.values[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((arg.value.rstrip("."), node.lineno))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain = []
            inner: ast.expr = node
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "codexbro":
                found.append(("codexbro." + ".".join(reversed(chain)), node.lineno))
    return [(m, line) for m, line in found if m == "codexbro" or m.startswith("codexbro.")]


def _resolve(module: str) -> str:
    """``codexbro.x.y`` as the module it names (``codexbro.x`` when ``y`` is a name in it)."""
    parts = module.split(".")
    while parts:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return module


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_walker_sees_function_level_imports(tmp_path: Path) -> None:
    """The control: an upward import hidden in a function is found."""
    probe = PACKAGE / "tools" / "_layer_probe.py"
    probe.write_text("def f():\n    from codexbro.core import session\n    return session\n")
    try:
        (target, line), = imports_of(probe)  # fmt: skip
        assert target == "codexbro.core" and line == 2
        assert layer_of(_resolve("codexbro.core.session")) > layer_of(module_name(probe))
    finally:
        probe.unlink()


@pytest.mark.parametrize(
    "body",
    [
        "if not TYPE_CHECKING:\n    from codexbro.core import session\n",
        "import importlib\nimportlib.import_module('codexbro.core.session')\n",
        "import importlib\nname = 'session'\nimportlib.import_module(f'codexbro.core.{name}')\n",
        "import codexbro\nx = codexbro.core.session\n",
    ],
)
def test_the_walker_sees_disguised_imports(body: str) -> None:
    probe = PACKAGE / "tools" / "_layer_probe2.py"
    probe.write_text("from typing import TYPE_CHECKING\n" + body)
    try:
        targets = [_resolve(t) for t, _line in imports_of(probe)]
        assert any(layer_of(t) > layer_of(module_name(probe)) for t in targets), targets
    finally:
        probe.unlink()


def test_a_new_top_level_package_must_be_placed() -> None:
    with pytest.raises(AssertionError, match="is in no layer"):
        layer_of("codexbro.tuiapp")


def test_every_import_points_down() -> None:
    upward = []
    for path in SOURCES:
        me = module_name(path)
        mine = layer_of(me)
        for target, line in imports_of(path):
            theirs = layer_of(_resolve(target))
            if theirs > mine:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {me} ({LAYERS[mine][0]}) imports "
                    f"{target} ({LAYERS[theirs][0]})"
                )
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_front_ends_never_import_tool_handlers() -> None:
    front = [p for p in SOURCES if LAYERS[layer_of(module_name(p))][0] == "front ends"]
    offenders = [
        f"{p.relative_to(PACKAGE.parent)}:{line}: {target}"
        for p in front
        for target, line in imports_of(p)
        if target.startswith("codexbro.tools.handlers")
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by idea"


def test_the_http_libraries_are_only_known_to_the_transport() -> None:
    """HTTP is spoken in api/transport.py and its failures mapped once (api/http.py); nothing above
    imports h11 or catches a transport failure (and httpx, which codexbro no longer uses, stays out)."""
    offenders = []
    for path in SOURCES:
        if path.relative_to(PACKAGE).as_posix() in ("api/http.py", "api/transport.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("httpx", "h11", "httpcore") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    "noun",
    ["core.session.Session", "api.model_client.ModelClient", "tools.router.ToolRouter", "tools.base.ToolContext",
     "core.turn.TurnContext", "core.history.History", "core.rollout.RolloutRecorder", "composition.resolve.Resolution",
     "api.responses_client.ResponsesModelClient", "embedded.provider.EmbeddedClient", "auth.manager.AuthManager",
     "models.catalog.ModelCatalog", "api.http.RouteHttp", "config.types.Config"],
)  # fmt: skip
def test_the_public_nouns_say_what_they_are(noun: str) -> None:
    import importlib

    module, name = noun.rsplit(".", 1)
    assert (getattr(importlib.import_module(f"codexbro.{module}"), name).__doc__ or "").strip(), noun
