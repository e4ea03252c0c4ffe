"""Namespaced tools (``{"type": "namespace", "tools": [...]}`` on the menu; a call names its
function as ``NAMESPACE::FUNCTION``): the namespace entry, which only lists its functions, and the
base of the functions, which are on the menu through it alone (``hidden``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from codexbro.tools.base import RespondToModel, ToolCall, ToolContext, ToolOutput


class NamespaceFunction:
    """One function of a namespace: ``spec()`` is the function's own entry in the namespace."""

    namespace: ClassVar[str]
    function: ClassVar[str]
    supports_parallel = True
    hidden = True  # on the menu through the namespace only

    @property
    def name(self) -> str:
        return f"{self.namespace}::{self.function}"

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        raise NotImplementedError


class Namespace:
    """The namespace's menu entry: its description and its functions' specs."""

    supports_parallel = True

    def __init__(self, name: str, description: str, functions: Sequence[NamespaceFunction]) -> None:
        self.name = name
        self.description = description
        self.functions = list(functions)

    def spec(self) -> dict[str, Any]:
        return {"type": "namespace", "name": self.name, "description": self.description,
                "tools": [f.spec() for f in self.functions]}  # fmt: skip

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        raise RespondToModel(f"call one of the functions of {self.name}, not the namespace")

    def handlers(self) -> list[Any]:
        """What goes on a router: the namespace, then its functions."""
        return [self, *self.functions]
