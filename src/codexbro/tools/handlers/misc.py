"""Small built-in tools: ``view_image``, ``update_plan``, ``request_user_input``."""

from __future__ import annotations

import asyncio
import base64
import json

from codexbro.protocol import PlanUpdate
from codexbro.protocol.images import MAX_IMAGE_BYTES, image_mime
from codexbro.tools.base import FunctionTool, RespondToModel, ToolCall, ToolContext, ToolOutput, function_spec

VIEW_IMAGE = function_spec(
    "view_image",
    "Attaches a local image file (PNG, JPEG, GIF or WebP) so you can look at it.",
    {"path": {"type": "string", "description": "Path of the image file (absolute, or relative to the cwd)."}},
    ["path"],
)


class ViewImageHandler(FunctionTool):
    name = "view_image"
    SPEC = VIEW_IMAGE

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        path = ctx.resolve_path(args["path"])
        from codexbro.tools.agent_reads import ReadRefused, read_bytes

        try:
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise RespondToModel(f"unable to process image: {path} is larger than 20 MiB")
            data = await asyncio.to_thread(
                read_bytes, path, home=ctx.home, restricted=ctx.sandbox is not None
            )
        except ReadRefused as exc:
            raise RespondToModel(f"unable to read image `{path}`: {exc.strerror}") from None
        except IsADirectoryError:
            raise RespondToModel(f"unable to locate image at `{path}`: it is a directory") from None
        except OSError as exc:
            raise RespondToModel(
                f"unable to locate image at `{path}`: {exc.strerror} (os error {exc.errno})"
            ) from None
        mime = image_mime(data[:16])
        if mime is None:
            raise RespondToModel("unable to process image: invalid or unsupported image data")
        url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        return ToolOutput([{"type": "input_image", "image_url": url, "detail": "high"}])


UPDATE_PLAN = function_spec(
    "update_plan",
    "Keeps a short task plan up to date for the user. Send the whole plan each time; at most one step "
    "may be in_progress.",
    {
        "explanation": {"type": "string", "description": "Optional note on what changed."},
        "plan": {
            "type": "array",
            "description": "The steps, in order.",
            "items": {
                "type": "object",
                "properties": {
                    "step": {"type": "string"},
                    "status": {"type": "string", "description": "pending, in_progress or completed"},
                },
                "required": ["step", "status"],
                "additionalProperties": False,
            },
        },
    },
    ["plan"],
)

_STATUSES = ("pending", "in_progress", "completed")


class UpdatePlanHandler(FunctionTool):
    name = "update_plan"
    supports_parallel = False
    SPEC = UPDATE_PLAN

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        plan = args["plan"]
        for i, step in enumerate(plan):
            if step["status"] not in _STATUSES:
                raise RespondToModel(
                    f"failed to parse function arguments: `plan[{i}].status` must be one of {list(_STATUSES)}"
                )
        if sum(1 for s in plan if s["status"] == "in_progress") > 1:
            raise RespondToModel("at most one step can be in_progress at a time")
        ctx.emit(
            PlanUpdate(args.get("explanation"), [{"step": s["step"], "status": s["status"]} for s in plan])
        )
        return ToolOutput("Plan updated")


REQUEST_USER_INPUT = function_spec(
    "request_user_input",
    "Asks the user one to three multiple-choice questions when a decision is genuinely theirs to make.",
    {
        "questions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "header": {"type": "string", "description": "Short label, at most 12 characters."},
                    "question": {"type": "string"},
                    "options": {
                        "type": "array",
                        "description": "Two or three choices, the recommended one first.",
                        "items": {
                            "type": "object",
                            "properties": {"label": {"type": "string"}, "description": {"type": "string"}},
                            "required": ["label", "description"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["id", "header", "question", "options"],
                "additionalProperties": False,
            },
        }
    },
    ["questions"],
)


class RequestUserInputHandler(FunctionTool):
    """Asks the user through the front end (``request_user_input`` event, answered with the
    ``user_input_answer`` Op) where one can answer; headless sessions have nobody to ask and say so
    as upstream does outside Plan mode. The answer reaches the model as upstream's JSON:
    ``{"answers": {"<question id>": {"answers": ["<label or the user's words>"]}}}``."""

    name = "request_user_input"
    supports_parallel = False
    SPEC = REQUEST_USER_INPUT

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        questions = args["questions"]
        if not 1 <= len(questions) <= 3:
            raise RespondToModel("ask between one and three questions")
        if ctx.ask_user is None:
            return ToolOutput("request_user_input is unavailable in Default mode", success=False)
        from codexbro.protocol import RequestUserInput

        answers = await ctx.ask_user(RequestUserInput(call.call_id, ctx.turn_id, questions))
        ids = [str(q.get("id")) for q in questions]
        chosen = {
            qid: {"answers": [str(answers[qid])]}
            for qid in ids
            if isinstance(answers, dict) and qid in answers
        }
        return ToolOutput(json.dumps({"answers": chosen}, ensure_ascii=False))
