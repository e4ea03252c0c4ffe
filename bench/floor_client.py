"""The floor for (b) as the issue defines it: interpreter + asyncio + httpx + one streamed SSE request,
nothing of codexbro (httpx is in the dev extra for it; bench/floor_h11.py is the floor codexbro now
stands on).

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


async def main(url):
    async with (
        httpx.AsyncClient(verify=False) as c,
        c.stream("POST", url, json={"model": "x", "input": []}, headers={"authorization": "Bearer x"}) as r,
    ):
        async for line in r.aiter_lines():  # (httpx-sse is no longer installed: codexbro reads SSE itself)
            if line.startswith("data:") and json.loads(line[5:])["type"] == "response.completed":
                break


asyncio.run(main(sys.argv[1]))
