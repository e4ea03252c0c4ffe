"""Which tools a turn offers: chosen from the model's catalog entry and the config.

``shell_type`` picks the shell family (``default`` → ``shell``, ``shell_command``, ``local`` →
``local_shell``, ``disabled`` → none). ``unified_exec`` (exec_command/write_stdin) is part of the
full tool surface (issue 3); until it lands such models get ``shell_command``, which every
Codex-trained model knows.
"""

from __future__ import annotations

from codexbro.config.types import Config
from codexbro.models.catalog import ModelInfo
from codexbro.tools.base import ToolHandler
from codexbro.tools.handlers.apply_patch import ApplyPatchHandler
from codexbro.tools.handlers.shell import LocalShellHandler, ShellCommandHandler, ShellHandler
from codexbro.tools.router import ToolRouter


def build_router(model: ModelInfo, config: Config) -> ToolRouter:
    handlers: list[ToolHandler] = []
    shell_type = model.shell_type
    if config.features.get("shell_tool") is False:
        shell_type = "disabled"
    if shell_type == "default":
        handlers.append(ShellHandler())
    elif shell_type == "local":
        handlers.append(LocalShellHandler())
    elif shell_type in ("shell_command", "unified_exec"):
        handlers.append(ShellCommandHandler())
    patch_type = model.apply_patch_tool_type
    if patch_type is None and config.features.get("apply_patch_freeform"):
        patch_type = "freeform"
    if patch_type in ("freeform", "function"):
        handlers.append(ApplyPatchHandler(patch_type))
    return ToolRouter(handlers)
