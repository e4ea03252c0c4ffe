"""A hand-written JSON-RPC-over-stdio MCP server that misbehaves on purpose (attack reproducers).

``python hostile_server.py MODE [ARG]``; modes:

- ``ok``            a well-behaved server: tools echo (read-only) and others as the mode needs
- ``noinit``        reads requests but never answers ``initialize``
- ``garbage``       writes non-JSON lines (with terminal escapes) on stdout around every answer
- ``closed_error``  ``tools/call`` answers a JSON-RPC error whose message contains "closed"
- ``timedout_error`` same, with "timed out" in the message
- ``bad_image``     ``tools/call`` answers an image block whose data is not base64 and mime not an image
- ``big_text``      ``tools/call`` answers ARG megabytes of text
- ``many_tools``    ``tools/list`` has ARG tools
- ``deep_schema``   one tool whose inputSchema nests ARG levels deep
- ``bad_schema``    one tool whose inputSchema is not valid JSON Schema (`additionalProperties` a string …)
- ``ansi``          escape sequences in tool names, descriptions, results and errors; stderr too
- ``elicit_loop``   ``tools/call`` sends ARG elicitation requests before answering
- ``elicit_odd``    ``tools/call`` asks one elicitation whose field is named "first name"
- ``log_flood``     ``tools/call`` sends ARG notifications/message before answering
- ``close_stdout``  closes stdout right after the tools list, keeps running (PID in $PIDFILE)
- ``stubborn``      ignores SIGTERM and stdin EOF (PID in $PIDFILE); answers normally
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
ARG = sys.argv[2] if len(sys.argv) > 2 else ""
ESC = "\x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[31m"


def send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def result(rid, res) -> None:
    send({"jsonrpc": "2.0", "id": rid, "result": res})


def error(rid, code, message) -> None:
    send({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})


def tools() -> list[dict]:
    ro = {"readOnlyHint": True}
    base = [{"name": "echo", "description": "Echo.", "inputSchema": {"type": "object"}, "annotations": ro}]
    if MODE == "many_tools":
        desc = "d" * 200
        many = [
            {
                "name": f"tool_{i}",
                "description": desc,
                "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
                "annotations": ro,
            }
            for i in range(int(ARG or 10000))
        ]
        return [*base, *many]
    if MODE == "deep_schema":
        schema: dict = {"type": "string"}
        for _ in range(int(ARG or 400)):
            schema = {"type": "object", "properties": {"a": schema}}
        return [*base, {"name": "deep", "description": "deep", "inputSchema": schema, "annotations": ro}]
    if MODE == "bad_schema":  # not valid JSON Schema: `additionalProperties` must be a schema …
        schema = {
            "type": "object",
            "properties": {"a": {"type": "string", "minLength": "three"}},
            "additionalProperties": "no",
        }
        return [*base, {"name": "bad", "description": "bad", "inputSchema": schema, "annotations": ro}]
    if MODE == "ansi":
        evil = {"name": "evil" + ESC, "description": "desc" + ESC, "inputSchema": {"type": "object"},
                "annotations": ro}  # fmt: skip
        return [*base, evil]
    return base


def main() -> None:
    if MODE == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("PIDFILE"):
        with open(os.environ["PIDFILE"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
    if MODE == "ansi":
        sys.stderr.write("stderr says " + ESC + "\n")
        sys.stderr.flush()
    next_id = 10_000
    for line in sys.stdin:
        if MODE == "garbage":
            sys.stdout.write("this is not json " + ESC + "\n")
            sys.stdout.write('{"jsonrpc": "2.0", "method": 5}\n')
            sys.stdout.flush()
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        method, rid = msg.get("method"), msg.get("id")
        if method is None:
            continue  # a response to one of our requests
        if method == "initialize":
            if MODE == "noinit":
                continue
            result(
                rid,
                {
                    "protocolVersion": msg["params"]["protocolVersion"],
                    "capabilities": {"tools": {}, "resources": {}, "logging": {}},
                    "serverInfo": {"name": "hostile", "version": "1"},
                    "instructions": "hostile test server",
                },
            )
        elif method == "tools/list":
            result(rid, {"tools": tools()})
            if MODE == "close_stdout":
                sys.stdout.close()
                os.close(1)
                while True:
                    time.sleep(1)
        elif method == "tools/call":
            name = msg["params"]["name"]
            if MODE == "closed_error":
                error(rid, -32602, "Invalid params: ticket is closed")
            elif MODE == "timedout_error":
                error(rid, -32000, "upstream API timed out")
            elif MODE == "bad_image":
                result(
                    rid,
                    {"content": [{"type": "image", "data": "%%% not base64 %%%", "mimeType": "text/html"}]},
                )
            elif MODE == "big_text":
                text = "x" * (int(float(ARG or 50) * 1024 * 1024))
                result(rid, {"content": [{"type": "text", "text": text}]})
            elif MODE == "ansi":
                if name == "echo":
                    result(rid, {"content": [{"type": "text", "text": "result " + ESC}]})
                else:
                    error(rid, -32000, "error " + ESC)
            elif MODE == "elicit_loop":
                for _ in range(int(ARG or 1000)):
                    next_id += 1
                    send(
                        {
                            "jsonrpc": "2.0",
                            "id": next_id,
                            "method": "elicitation/create",
                            "params": {
                                "message": "again?",
                                "requestedSchema": {"type": "object", "properties": {}},
                            },
                        }
                    )
                result(rid, {"content": [{"type": "text", "text": "after elicitations"}]})
            elif MODE == "elicit_odd":  # one elicitation whose field name has a space; waits for it
                send(
                    {
                        "jsonrpc": "2.0",
                        "id": 77,
                        "method": "elicitation/create",
                        "params": {
                            "message": "Who are you?",
                            "requestedSchema": {
                                "type": "object",
                                "properties": {"first name": {"type": "string"}},
                            },
                        },
                    }
                )
                answer = None
                for reply in sys.stdin:
                    got = json.loads(reply)
                    if got.get("id") == 77 and "method" not in got:
                        answer = got
                        break
                result(rid, {"content": [{"type": "text", "text": "elicited: " + json.dumps(answer)}]})
            elif MODE == "log_flood":
                for i in range(int(ARG or 100000)):
                    send(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/message",
                            "params": {"level": "info", "data": f"log {i}"},
                        }
                    )
                result(rid, {"content": [{"type": "text", "text": "after logs"}]})
            else:
                result(rid, {"content": [{"type": "text", "text": f"called {name}"}]})
        elif method in ("resources/list", "resources/templates/list"):
            key = "resources" if method == "resources/list" else "resourceTemplates"
            result(rid, {key: []})
        elif method == "ping":
            result(rid, {})
        elif rid is not None:
            error(rid, -32601, "Method not found")
    if MODE == "stubborn":  # stdin closed: keep running anyway
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
