"""GBNF grammars for small local models: the output is either one schema-valid tool call, as JSON
``{"name": …, "arguments": {…}}``, or a plain-text answer (reference embedded-model.md: a grammar
that allows either got 4/5 simple tool tasks right with Qwen2.5-Coder-1.5B).

Only the JSON Schema subset Codex's tools use is translated: object (required + optional properties,
no extras), array, string, number/integer, boolean, enum. Optional properties may be omitted but must
appear in schema order when present, which keeps the grammar small.
"""

from __future__ import annotations

import json
import re
from typing import Any

BASE_RULES = r"""
ws ::= [ \t\n]{0,2}
string ::= "\"" string-body
string-body ::= ( [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] | "\\u" [0-9a-fA-F]{4} ){0,2000} "\""
number ::= "-"? [0-9]{1,15} ("." [0-9]{1,10})?
integer ::= "-"? [0-9]{1,15}
boolean ::= "true" | "false"
text ::= [^<{`\x00-\x08\n] [^\x00]{0,4000}
prose ::= "\"" prose-body
prose-body ::= ( [^"\\<{`\x00-\x1f] | "\\" ["\\/bfnrt] ) ( [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] | "\\u" [0-9a-fA-F]{4} ){0,2000} "\""
"""


class GrammarBuilder:
    def __init__(self, *, required_only: bool = False) -> None:
        self.rules: dict[str, str] = {}
        self.required_only = required_only

    def _name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "r"
        name, n = base, 2
        while name in self.rules:
            name, n = f"{base}-{n}", n + 1
        return name

    def value(self, schema: dict[str, Any], hint: str) -> str:
        if schema.get("enum"):
            return "(" + " | ".join(_lit(json.dumps(v)) for v in schema["enum"]) + ")"
        kind = schema.get("type")
        if kind == "string":
            return "prose" if schema.get("x-prose") else "string"
        if kind == "integer":
            return "integer"
        if kind == "number":
            return "number"
        if kind == "boolean":
            return "boolean"
        if kind == "array":
            item = self.value(schema.get("items") or {"type": "string"}, hint + "-item")
            name = self._name(hint + "-array")
            self.rules[name] = f'"[" ws ( {item} ( ws "," ws {item} ){{0,50}} )? ws "]"'
            return name
        if kind == "object":
            return self.object(schema, hint)
        return "string"  # anything else: a string keeps the call well-formed

    def object(self, schema: dict[str, Any], hint: str) -> str:
        """Required properties first (in schema order), then the optional ones, each omittable."""
        props: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        name = self._name(hint + "-obj")

        def member(key: str) -> str:
            return f'{_lit(json.dumps(key))} ws ":" ws {self.value(props[key], f"{hint}-{key}")}'

        req = [member(k) for k in props if k in required]
        opt = [] if self.required_only else [member(k) for k in props if k not in required]
        if req:
            body = ' ws "," ws '.join(req) + "".join(f' ( ws "," ws {m} )?' for m in opt)
        elif opt:
            body = "( " + opt[0] + "".join(f' ( ws "," ws {m} )?' for m in opt[1:]) + " )?"
        else:
            body = ""
        self.rules[name] = f'"{{" ws {body} ws "}}"' if body else '"{" ws "}"'
        return name


def _lit(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _call_rule(builder: GrammarBuilder, tool: dict[str, Any], opening: str = "") -> str:
    """A rule for one call of ``tool`` from its name's first character (after ``opening``, the
    grammar text before it) to the call object's closing brace."""
    name = tool["name"]
    args = builder.object(tool.get("parameters") or {"type": "object"}, f"{name}-args")
    rule = builder._name(f"call-{name}")
    rest = _lit(json.dumps(name)[1:])  # the name and its closing quote, JSON-escaped
    builder.rules[rule] = f'{opening}{rest} ws "," ws "\\"arguments\\"" ws ":" ws {args} ws "}}"'
    return rule


def tool_grammar(
    tools: list[dict[str, Any]], *, allow_text: bool = True, required_only: bool = False,
    tagged: bool = False, text_schema: dict[str, Any] | None = None,
) -> str:  # fmt: skip
    """A GBNF grammar: ``root ::= call | text`` over the function tools in ``tools``.

    ``required_only`` leaves optional arguments out: small models fill them with wrong values
    (``offset: 0``, invented ``workdir``s) far more often than they need them. ``tagged`` wraps each
    call in Qwen's ``<tool_call>`` tags (the chat template's own call format). ``text_schema`` makes
    the text alternative a JSON value of that schema (``exec --output-schema``).
    """
    builder = GrammarBuilder(required_only=required_only)
    calls = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        calls.append(_call_rule(builder, tool, '"{" ws "\\"name\\"" ws ":" ws "\\"" '))
    if tagged and calls:
        builder.rules["tagged"] = '"<tool_call>\\n" ( ' + " | ".join(calls) + ' ) "\\n</tool_call>"'
        calls = ["tagged"]
    text = builder.value(text_schema, "answer") if text_schema else "text"
    alternatives = [*calls, *([text] if allow_text or not calls else [])]
    lines = [f"root ::= {' | '.join(alternatives)}"]
    lines += [f"{k} ::= {v}" for k, v in builder.rules.items()]
    return "\n".join(lines) + BASE_RULES


# A tagged call as the template writes it. The native profile's replies are all tagged calls, so
# the text before the tool's name is the same in every reply (``reply.py`` writes it into the prompt).
CALL_OPEN = "<tool_call>\n"
CALL_HEAD = CALL_OPEN + '{"name": "'
CALL_TAIL = "\n</tool_call>"


def call_rest(tools: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A tagged call to one of ``tools`` after ``CALL_HEAD``, split at the model's first real
    choice: the text every such call continues with — nothing when there are several tools (the
    name is the choice); with one tool its name and ``", "arguments": {"first": "`` — and a grammar
    for the rest, through the call's two closing braces (required arguments only, in schema
    order). ``(text, None)`` when nothing is left to choose."""
    builder = GrammarBuilder(required_only=True)
    if len(tools) == 1:
        schema = tools[0].get("parameters") or {}
        props: dict[str, Any] = schema.get("properties") or {}
        required = [k for k in props if k in set(schema.get("required") or [])]
        head = json.dumps(tools[0]["name"])[1:] + ", " + '"arguments": '
        if not required:
            return head + "{}}", None
        first, *others = required
        value = builder.value(props[first], f"args-{first}")
        head += "{" + json.dumps(first) + ":"
        if value in ("string", "prose"):  # the opening quote is written too (` "` is one token)
            head += ' "'
            value += "-body"
        else:  # ` {"`, ` [` … are tokens of their own: the space is left to the model
            value = f"ws {value}"
        members = "".join(
            f' ws "," ws {_lit(json.dumps(k))} ws ":" ws {builder.value(props[k], f"args-{k}")}'
            for k in others
        )
        root = f'{value}{members} ws "}}" ws "}}"'
    else:
        head = ""
        root = " | ".join(_call_rule(builder, tool) for tool in tools)
    lines = [f"root ::= {root}", *(f"{k} ::= {v}" for k, v in builder.rules.items())]
    return head, "\n".join(lines) + BASE_RULES
