"""The floor for (b): interpreter + asyncio + httpx + one streamed SSE request, nothing of codexbro.

Run by bench/run.py; `python bench/floor_client.py URL`.
"""

import asyncio
import json
import sys

import httpx
from httpx_sse import EventSource


async def main(url):
    async with (
        httpx.AsyncClient(verify=False) as c,
        c.stream("POST", url, json={"model": "x", "input": []}, headers={"authorization": "Bearer x"}) as r,
    ):
        async for ev in EventSource(r).aiter_sse():
            if json.loads(ev.data)["type"] == "response.completed":
                break


asyncio.run(main(sys.argv[1]))
