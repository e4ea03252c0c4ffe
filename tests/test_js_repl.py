"""js_repl against a real Node kernel (skipped, with the reason, where Node is not installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codexbro.config.loader import Overrides, load_config
from codexbro.models.catalog import ModelCatalog
from codexbro.tools.base import ToolCall
from codexbro.tools.handlers.js_repl import (
    JsRepl,
    JsReplHandler,
    JsReplPollHandler,
    JsReplResetHandler,
    node_path,
)
from codexbro.tools.menu import build_router
from codexbro.tools.router import ToolRouter
from tests.test_shell_tool import ctx

pytestmark = pytest.mark.skipif(node_path() is None, reason="Node.js is not installed: js_repl is hidden")


def text(content: object) -> str:
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content)
    return str(content)


async def test_persistent_state_await_and_errors(tmp_path: Path) -> None:
    repl = JsRepl()
    router = ToolRouter([JsReplHandler(repl), JsReplPollHandler(repl), JsReplResetHandler(repl)])

    async def js(code: str) -> tuple[str, bool]:
        res = await router.dispatch(ToolCall("c", "js_repl", "custom", input=code), ctx(tmp_path))
        return text(res.output.content), res.output.success

    try:
        assert await js("const base = 40; console.log('set', base); base + 2") == ("set 40\n42", True)
        assert await js("const v = await new Promise(r => setTimeout(() => r(base), 20)); v * 2") == (
            "80",
            True,
        )
        out, ok = await js("null.boom")
        assert not ok and out.startswith("TypeError: Cannot read properties of null")
        out, ok = await js("function (")
        assert not ok and out.startswith("SyntaxError")
        assert await js("base") == ("40", True)  # the kernel survived the errors
        out, _ = await js('{"code": "1+1"}')
        assert "send raw JavaScript, not JSON" in out
        out, _ = await js("```js\n1+1\n```")
        assert "remove the Markdown code fence" in out
        out, ok = await js("// codex-js-repl: timeout_ms=200\nwhile (true) {}")
        assert not ok and "timed out after 200 ms" in out and "state is lost" in out
        out, _ = await js("typeof base")
        assert out == "'undefined'"  # restarted kernel: fresh state
        started = json.loads(
            (await js("// codex-js-repl: poll=true\nawait new Promise(r => setTimeout(r, 300)); 'late'"))[0]
        )
        assert started["status"] == "running"
        poll = ToolCall("p", "js_repl_poll", "function", arguments=json.dumps({"exec_id": started["exec_id"],
                                                                              "yield_time_ms": 3000}))  # fmt: skip
        polled = json.loads(text((await router.dispatch(poll, ctx(tmp_path))).output.content))
        assert polled["status"] == "completed" and polled["output"] == "'late'"
        reset = await router.dispatch(
            ToolCall("r", "js_repl_reset", "function", arguments="{}"), ctx(tmp_path)
        )
        assert reset.output.content == "js_repl kernel reset"
    finally:
        await repl.aclose()


def test_js_repl_is_opt_in(home: Path) -> None:
    model = ModelCatalog.bundled().resolve("gpt-5.1-codex").info
    assert "js_repl" not in build_router(model, load_config()).names()
    names = build_router(model, load_config(Overrides(cli_overrides=["features.js_repl=true"]))).names()
    assert names[2:5] == ["js_repl", "js_repl_poll", "js_repl_reset"]
