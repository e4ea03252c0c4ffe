"""What a server's tool result turns into for the model.

Finding A (images): `mcp/tools.py::_content_item` builds `input_image` from a server's image block
without any check: `data` that is not base64, a `mimeType` that is not an image (or carries
`;base64,` / commas of its own), any size. The Responses API refuses such a request, and the item
stays in the history, so every later request of the session fails the same way (the thread is
poisoned). `view_image` (tools/handlers/misc.py) already sniffs the bytes (`image_mime`) and caps
the size at 20 MiB. Expected: decode with `base64.b64decode(data, validate=True)`, sniff the type
with `image_mime`, cap the size, build the data URL from the sniffed type; anything else becomes an
`input_text` note ("<image omitted: invalid image data from the server>").

Finding B (size): MCP results (and `read_mcp_resource` / list outputs) reach the model and the
rollout whole: no `truncation_limit` (tool_output_token_limit / the model's truncation policy) is
applied, unlike every shell-family tool, and unlike upstream, whose history truncates every
function output with the turn's policy. A 4 MB result is a 4 MB request (50 MB was tried: a 52 MB
request and a 52 MB rollout line). Expected: `McpToolHandler.handle`/`model_output` truncate text
items with `tools.output.truncate_text(..., ctx.truncation_mode, ctx.truncation_limit)` (and the
resource tools' JSON text likewise)."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.fakes.events import message_turn
from tests.fakes.responses_server import Reply
from tests.mcp_hostile.common import calls_then, hostile, outputs, run_exec


def test_invalid_image_from_a_server_is_not_sent_as_an_image(home: Path, workspace: Path) -> None:
    result, bodies = run_exec(home, workspace, hostile("bad_image"), calls_then(("c1", "mcp__h__echo", {})))
    assert result.code == 0, result.stderr
    items = outputs(bodies[1])["c1"]
    images = [i for i in items if isinstance(i, dict) and i.get("type") == "input_image"]
    for image in images:  # now: data:text/html;base64,%%% not base64 %%%
        head, _, data = image["image_url"].partition(",")
        assert head in ("data:image/png;base64", "data:image/jpeg;base64", "data:image/gif;base64",
                        "data:image/webp;base64"), head  # fmt: skip
        base64.b64decode(data, validate=True)


def test_huge_result_is_truncated_for_the_model(home: Path, workspace: Path) -> None:
    script = calls_then(("c1", "mcp__h__echo", {}), more=[Reply(message_turn("more"))] * 4)
    result, bodies = run_exec(home, workspace, hostile("big_text", "4"), script)
    sent = [outputs(b)["c1"] for b in bodies if "c1" in outputs(b)]
    assert sent, (result.code, result.stderr[-300:])
    out = sent[0]
    size = len(out) if isinstance(out, str) else sum(len(str(i.get("text", ""))) for i in out)
    # The model's truncation limit is 10 000 bytes (gpt-5.1-codex); give it generous room.
    assert size < 200_000, f"{size} characters of one MCP result sent to the model"
    rollouts = list((home / "sessions").rglob("*.jsonl"))
    assert rollouts and max(r.stat().st_size for r in rollouts) < 1_000_000


def test_a_tool_schema_that_is_not_json_schema_is_not_sent_as_is(home: Path, workspace: Path) -> None:
    """Finding C (schemas): `names.model_schema` repairs types but forwards everything else, so a
    server's `"additionalProperties": "no"`, `"minLength": "three"` reach the Responses API
    unchanged (the SDK itself only type-checks a few keys such as `required`). The API validates function parameters and refuses the *whole request*
    (400 invalid_function_parameters — not observable against the fake), and the tools go with
    every request: one bad tool of one server fails every turn of the session. Expected: validate
    each sanitised schema (jsonschema's Draft 2020-12 `check_schema`, already installed with the
    SDK) and skip that tool with a warning naming server and tool (or drop the offending keywords)."""
    from jsonschema import Draft202012Validator, SchemaError

    result, bodies = run_exec(home, workspace, hostile("bad_schema"), calls_then())
    assert result.code == 0, result.stderr
    for tool in bodies[0]["tools"]:
        if str(tool.get("name", "")).startswith("mcp__h__"):
            try:
                Draft202012Validator.check_schema(tool["parameters"])
            except SchemaError as exc:
                raise AssertionError(f"{tool['name']}: invalid schema sent: {exc.message}") from None
