"""llama.cpp's own server, run in this process by ``xllamacpp`` (a prebuilt wheel: no compiler).

Generation goes through the server's Python entry point (``handle_completions``: no socket), which
streams one chunk per token and, with ``return_progress``, one per evaluated batch of the prompt — so
a cancelled request is noticed between batches (``BATCH`` tokens) and the server stops it there.

The server also opens an HTTP listener (it always does); the template, tokenizer and KV-slot
endpoints are reached through it. It listens on a Unix socket in a fresh 0700 directory of this
process (no TCP port at all: other users cannot reach it), and every endpoint except ``/health``
requires a random 256-bit key that lives only in this process's memory (never in the environment,
argv or a file), so other processes of the same user — sandboxed commands included — cannot use it
either; the web UI is off, and read/write timeouts of seconds keep a connection that never sends its
request from holding a listener thread. Slot files are written only into the KV cache directory
(0700), by name.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codexbro.errors import UserError

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'codexbro[local]'"
# Prompt tokens per evaluation step. The server notices a cancelled request between steps, so this
# bounds how long an interrupted prompt evaluation keeps the CPU (~1.5 s for the 1.5B model on 2
# cores); below 64 prompt throughput drops by a third here (28 vs 43 tokens/s), above it gains 7 %.
BATCH = 64


class EngineError(RuntimeError):
    """The embedded engine refused a request (bad grammar, context overflow, damaged slot file)."""


class LlamaServer:
    """One model loaded into llama.cpp's server; one slot (one conversation at a time)."""

    def __init__(self, model_path: Path, *, n_ctx: int, threads: int, slot_dir: Path | None) -> None:
        try:
            import xllamacpp
        except ImportError:
            raise UserError(f"the embedded model needs its engine (xllamacpp): {INSTALL_HINT}") from None
        if not model_path.is_file():
            raise UserError(f"model weights not found at {model_path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.n_batch = params.n_ubatch = BATCH
        params.verbosity = -1  # the server logs nothing to the terminal
        params.use_jinja = True  # the GGUF's own chat template, with tools
        params.warmup = False  # an empty warm-up decode at load: time the first request pays anyway
        params.cache_ram_mib = 0  # no host-memory prompt cache: one slot, its KV is the cache
        params.ctx_shift = False  # a prompt that does not fit is an error, not silently cut
        # Measured on 2 cores with the 1.5B model: flash attention (llama.cpp's "auto" turns it on)
        # cost 25 % of prompt and generation speed; repacking the weights into extra CPU buffer
        # types cost ~0.9 s of load for no measurable speed.
        params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_extra_bufts = True
        # llama.cpp's "fit" pass sizes the context to the device's memory by a trial load first:
        # ~0.6 s of every load here (1.4 → 0.8 s), for a context size we set ourselves.
        params.fit_params = False
        params.ui = False
        params.n_threads_http = 2
        self._socket_dir = tempfile.mkdtemp(prefix="codexbro-engine-")  # 0700, ours
        self._socket = f"{self._socket_dir}/engine.sock"
        params.hostnames = [self._socket]  # a path ending in .sock: llama.cpp listens there, no TCP
        self._key = secrets.token_urlsafe(32)
        params.api_keys = [self._key]
        # A client that opens a connection and never sends its request holds one of the listener's
        # threads: read/write timeouts of seconds (llama.cpp's default is an hour) free it.
        params.timeout_read = params.timeout_write = 10
        if slot_dir is not None:  # the caller checked it (kvcache.private_dir)
            params.endpoint_slots = True
            params.slot_save_path = f"{slot_dir}/"
        self.slot_dir = slot_dir
        start = time.perf_counter()
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as exc:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            raise UserError(f"the embedded engine could not load {model_path.name}: {exc}") from None
        self.load_s = time.perf_counter() - start
        self._http: Any = None
        self._props: dict[str, Any] | None = None

    # ---- the HTTP side (template, tokenizer, slots) ----------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call to the server's listener (``http.client`` over its Unix socket: no proxy from
        the environment can ever see the key or the prompt; one kept-alive connection)."""
        import http.client
        import json

        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        for attempt in (1, 2):
            fresh = self._http is None
            if self._http is None:
                self._http = _UnixConnection(self._socket)
            try:
                self._http.request(method, path, body=payload, headers=headers)
                response = self._http.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._http.close()
                self._http = None
                # The server drops a kept-alive connection after a few idle seconds (a long
                # generation in between): one retry on a new connection; a new one failing is real.
                if fresh or attempt == 2:
                    raise EngineError(f"{path}: the engine's listener failed: {exc}") from None
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = None
        if response.status != 200:
            message = data.get("error", {}).get("message") if isinstance(data, dict) else None
            raise EngineError(f"{path}: {message or raw[:200].decode(errors='replace')}")
        return data if isinstance(data, dict) else {"result": data}

    def props(self) -> dict[str, Any]:
        if self._props is None:
            self._props = self._request("GET", "/props")
        return self._props

    @property
    def chat_template(self) -> str:
        return str(self.props().get("chat_template") or "")

    def apply_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *, generation: bool = True
    ) -> str:
        body: dict[str, Any] = {"messages": messages, "add_generation_prompt": generation}
        if tools:
            body["tools"] = tools
        return str(self._post("/apply-template", body)["prompt"])

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """``text``'s tokens; ``special`` also adds the model's start tokens (a whole prompt), else
        it is a piece to append. Special tokens written in the text are always parsed."""
        tokens = self._post("/tokenize", {"content": text, "add_special": special, "parse_special": True})
        return [int(t) for t in tokens["tokens"]]

    def detokenize(self, tokens: list[int]) -> str:
        return str(self._post("/detokenize", {"tokens": tokens})["content"])

    def slot(self, action: str, filename: str | None = None) -> dict[str, Any]:
        """``save``/``restore``/``erase`` slot 0 (``filename`` inside the slot directory)."""
        return self._post(f"/slots/0?action={action}", {"filename": filename} if filename else {})

    # ---- generation -----------------------------------------------------------------------------

    def complete(self, body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool]) -> None:
        """Run one completion on slot 0; ``on_chunk`` gets each streamed chunk and returns True to
        stop (the server then cancels the request at its next step). Blocks: call it from a worker
        thread (the GIL is released while the server works)."""
        failure: list[str] = []
        raised: list[BaseException] = []

        def chunk(data: Any) -> bool:
            if isinstance(data, dict) and ("error" in data or data.get("type") == "server_error"):
                error = data.get("error", data)
                failure.append(str(error.get("message") if isinstance(error, dict) else error))
                return True
            try:
                return bool(on_chunk(data))
            except BaseException as exc:  # the binding would swallow it: stop, and raise it below
                raised.append(exc)
                return True

        self._server.handle_completions(
            {**body, "stream": True, "return_progress": True, "id_slot": 0, "cache_prompt": True}, chunk
        )
        if raised:
            raise raised[0]
        if failure:
            raise EngineError(failure[0])

    def close(self) -> None:
        """Stop the server (waits for its current step) and free the model."""
        if self._http is not None:
            self._http.close()
            self._http = None
        self._server = None
        shutil.rmtree(self._socket_dir, ignore_errors=True)


class _UnixConnection:
    """``http.client.HTTPConnection`` to a Unix socket (built on first use: ``http.client`` is
    imported only when the engine runs)."""

    def __new__(cls, path: str) -> Any:
        import http.client
        import socket

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(120)
                sock.connect(path)
                self.sock = sock

        return Connection("localhost", timeout=120)
