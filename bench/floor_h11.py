"""The floor codexbro now stands on: interpreter + asyncio + h11 + one streamed SSE request, nothing
of codexbro (bench/floor_client.py is the issue's httpx floor). Run by bench/run.py;
`python bench/floor_h11.py URL`.
"""

import asyncio
import json
import sys
from urllib.parse import urlsplit

import h11


async def main(url):
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    conn = h11.Connection(h11.CLIENT)
    body = json.dumps({"model": "x", "input": []}).encode()
    writer.write(
        conn.send(
            h11.Request(
                method="POST",
                target=parts.path,
                headers=[
                    ("host", parts.netloc),
                    ("authorization", "Bearer x"),
                    ("content-type", "application/json"),
                    ("content-length", str(len(body))),
                ],
            )
        )
        + conn.send(h11.Data(data=body))
        + conn.send(h11.EndOfMessage())
    )
    buffer = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Data):
            buffer += bytes(event.data)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data:") and json.loads(line[5:])["type"] == "response.completed":
                    writer.close()
                    return
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return


asyncio.run(main(sys.argv[1]))
