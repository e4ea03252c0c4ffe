"""The floor for (b): interpreter + asyncio + httpx + one streamed SSE request, nothing of codexbro.

Run by bench/run.py; `python bench/floor_client.py URL`.
"""

import asyncio
import json
import sys
import types

# As codexbro did while it used httpx: httpx's command-line client is not imported (with
# click installed — the MCP SDK brings it — httpx would load click, rich and pygments, ~70 ms).
_stub = types.ModuleType("httpx._main")
_stub.main = lambda: None
sys.modules["httpx._main"] = _stub

import httpx  # noqa: E402
from httpx_sse import EventSource  # noqa: E402


async def main(url):
    async with (
        httpx.AsyncClient(verify=False) as c,
        c.stream("POST", url, json={"model": "x", "input": []}, headers={"authorization": "Bearer x"}) as r,
    ):
        async for ev in EventSource(r).aiter_sse():
            if json.loads(ev.data)["type"] == "response.completed":
                break


asyncio.run(main(sys.argv[1]))
