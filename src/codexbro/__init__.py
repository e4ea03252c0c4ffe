"""codexbro: a terminal coding agent over the OpenAI Responses API, built to be inspected.

Nothing is imported here on purpose: ``codexbro --version`` must start fast.
"""

import sys as _sys

__version__ = "0.1.0"

# httpx imports its command-line client (`httpx._main`: click, rich, pygments — ~70 ms) whenever
# click is installed, and the MCP SDK's server side brings click in. codexbro never runs that CLI:
# stand a two-line module in for it before anything imports httpx.
if "httpx" not in _sys.modules and "httpx._main" not in _sys.modules:
    import types as _types

    def _httpx_cli() -> None:
        raise SystemExit("the httpx command-line client is not available inside codexbro")

    _stub = _types.ModuleType("httpx._main")
    _stub.main = _httpx_cli  # type: ignore[attr-defined]
    _sys.modules["httpx._main"] = _stub
