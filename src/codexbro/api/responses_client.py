"""``ResponsesModelClient``: the ``ModelClient`` for any Responses endpoint (OpenAI's public API,
the ChatGPT Codex backend, Azure, a local server). Session-scoped: knows the provider, the
credential, the model and the thread id; builds upstream's request body and headers from a
``Prompt`` and streams the answer over SSE. The base URL a config leads to is decided here too
(``resolve_base_url``), once, by the composition root.

Body fields and order follow upstream Codex; headers follow 0.169 (hyphenated session/thread ids).
"""

from __future__ import annotations

import os
import platform
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from codexbro import __version__
from codexbro.api.events import ResponseEvent
from codexbro.api.http import RouteHttp
from codexbro.api.model_client import Prompt, RequestLog, RequestPreview
from codexbro.api.responses import ResponsesClient
from codexbro.auth.resolve import ProviderAuth
from codexbro.config.loader import CHATGPT_CODEX_BASE, OPENAI_API_BASE
from codexbro.config.types import Config, ModelProviderInfo
from codexbro.errors import FatalApiError
from codexbro.models.catalog import ModelInfo
from codexbro.protocol.items import ResponseItem

if TYPE_CHECKING:
    from codexbro.api.responses_ws import ModelClientSession, WsTransport
    from codexbro.auth.manager import AuthManager


def resolve_base_url(config: Config, provider: ModelProviderInfo, auth: ProviderAuth) -> tuple[str, str]:
    """The provider base URL and why it was chosen (for inspection)."""
    if provider.base_url:
        return provider.base_url, f"model_providers.{provider.id}.base_url"
    if provider.id == "openai":
        if config.openai_base_url:
            return config.openai_base_url, "openai_base_url"
        if auth.mode == "chatgpt":
            return CHATGPT_CODEX_BASE, "ChatGPT login → ChatGPT Codex backend"
        return OPENAI_API_BASE, "API key → public API"
    return OPENAI_API_BASE, "default"


def user_agent(originator: str) -> str:
    system = platform.system() or "unknown"
    release = platform.release() or "unknown"
    ua = f"{originator}/{__version__} ({system} {release}; {platform.machine() or 'unknown'}) codexbro"
    return "".join(c if 32 <= ord(c) < 127 else "_" for c in ua)


def originator_for(default: str) -> str:
    """The ``originator`` header: ``CODEXBRO_ORIGINATOR`` when set (as upstream's override)."""
    return os.environ.get("CODEXBRO_ORIGINATOR", default)


class ResponsesModelClient:
    """A ``ModelClient`` over HTTP + SSE; with a ChatGPT login it refreshes the token as needed."""

    def __init__(
        self,
        *,
        config: Config,
        provider: ModelProviderInfo,
        auth: ProviderAuth,
        model: ModelInfo,
        thread_id: str,
        base_url: str,
        originator: str = "codex_exec",
        request_log: RequestLog | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.auth = auth
        self.model = model
        self.thread_id = thread_id
        self.subagent: str | None = None  # every request of a sub-agent session carries this label
        self.parent_thread_id: str | None = None  # a sub-agent session: its parent's thread
        self.originator = originator_for(originator)
        self.base_url = base_url
        self.idle_timeout_s = provider.stream_idle_timeout_ms / 1000
        # A ChatGPT login refreshes tokens at https://auth.openai.com even when the model is local.
        tls = not self.base_url.startswith("http://") or auth.mode == "chatgpt"
        self.http = RouteHttp(read_timeout_s=self.idle_timeout_s + 5, tls=tls)
        if request_log is not None:
            self.http.observers.append(request_log)
        self.auth_manager: AuthManager | None = None
        if auth.mode == "chatgpt":
            from codexbro.auth.manager import AuthManager

            self.auth_manager = AuthManager(config.codexbro_home, self.http)
        client_cls: type[ResponsesClient] = ResponsesClient
        if provider.wire_api == "chat" and provider.chat_completions_bridge:
            from codexbro.api.chat_bridge import ChatCompletionsClient

            client_cls = ChatCompletionsClient
        self.responses = client_cls(
            self.http,
            base_url=self.base_url,
            query_params=provider.query_params,
            request_max_retries=provider.request_max_retries,
            idle_timeout_s=self.idle_timeout_s,
            retry_wait_max_s=config.retry_wait_max_ms / 1000,
        )
        self.base_instructions = config.base_instructions_override or model.base_instructions or ""
        # Responses over WebSocket (provider `supports_websockets`, as upstream): the session's socket.
        self.ws: WsTransport | None = None
        if provider.supports_websockets and client_cls is ResponsesClient:
            from codexbro.api.responses_ws import WsTransport, ws_url

            self.ws = WsTransport(
                ws_url(self.responses.url), connect_timeout_s=provider.websocket_connect_timeout_ms / 1000,
                max_failures=provider.stream_max_retries, record=request_log,
            )  # fmt: skip

    def start_turn(self, turn_id: str) -> ModelClientSession:
        """The turn's model transport (``responses_ws.ModelClientSession``): WebSocket with its
        incremental baseline when the provider supports it, this client's HTTP/SSE otherwise."""
        from codexbro.api.responses_ws import ModelClientSession

        return ModelClientSession(self, self.ws, turn_id)

    async def ensure_auth(self) -> None:
        """A ChatGPT login's token refreshed before a request when it is about to expire."""
        if self.auth_manager is not None:
            await self.auth_manager.ensure_fresh()
            self._sync_auth()

    def retarget(self, model: ModelInfo, config: Config) -> None:
        """Following requests use ``model`` and ``config``'s settings (``/model``: effort too)."""
        self.model, self.config = model, config
        self.base_instructions = config.base_instructions_override or model.base_instructions or ""

    @property
    def on_wait(self) -> Callable[[str], None] | None:
        return self.responses.on_wait

    @on_wait.setter
    def on_wait(self, value: Callable[[str], None] | None) -> None:
        self.responses.on_wait = value

    def preview(self, prompt: Prompt) -> RequestPreview:
        headers = {"accept": "text/event-stream", "content-type": "application/json",
                   **self.build_headers(lite=self._lite(prompt))}  # fmt: skip
        # what is really sent (the chat bridge translates the body)
        return RequestPreview(
            self.responses.url, self.responses.request_body(self.build_body(prompt)), headers
        )

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.aclose()
        await self.http.aclose()

    def build_body(self, prompt: Prompt) -> dict[str, Any]:
        model, cfg = self.model, self.config
        body: dict[str, Any] = {"model": model.slug}
        if self.base_instructions:
            body["instructions"] = self.base_instructions
        body["input"] = prompt.input
        if not prompt.code_mode:  # 0.169 sends no ``tools`` key in code mode
            body["tools"] = prompt.tools
        body["tool_choice"] = "auto"
        body["parallel_tool_calls"] = prompt.parallel_tool_calls
        reasoning = None
        # 0.169 sends reasoning for every catalog model with reasoning levels, whether or not its
        # entry says supports_reasoning_summaries (captured: fixtures/codex-0.169/reasoning-requests.json);
        # models no catalog knows get none (codexbro's choice: third-party servers may refuse it).
        # ``model_supports_reasoning_summaries = true`` (upstream's key) asks for it for any model.
        forced = cfg.raw.get("model_supports_reasoning_summaries") is True
        if model.supports_reasoning_summaries or model.supported_reasoning_levels or forced:
            reasoning = {}
            effort = cfg.model_reasoning_effort or model.default_reasoning_level
            if effort:
                reasoning["effort"] = effort
            summary = cfg.model_reasoning_summary or model.default_reasoning_summary
            if summary and summary != "none":
                reasoning["summary"] = summary
            if self._lite(prompt):
                reasoning["context"] = "all_turns"
        body["reasoning"] = reasoning
        body["store"] = _is_azure(self.provider, self.base_url)
        body["stream"] = True
        body["include"] = ["reasoning.encrypted_content"] if reasoning is not None else []
        body["prompt_cache_key"] = self.thread_id
        text: dict[str, Any] = {}
        if model.support_verbosity and (cfg.model_verbosity or model.default_verbosity):
            text["verbosity"] = cfg.model_verbosity or model.default_verbosity
        if prompt.output_schema is not None:
            text["format"] = {
                "type": "json_schema",
                "strict": True,
                "schema": prompt.output_schema,
                "name": "codex_output_schema",
            }
        if text:
            body["text"] = text
        if cfg.service_tier:
            body["service_tier"] = "priority" if cfg.service_tier == "fast" else cfg.service_tier
        return body

    def _lite(self, prompt: Prompt) -> bool:
        """0.169's "responses lite" request (a catalog entry's ``use_responses_lite``, with the menu in
        an ``additional_tools`` item): ``reasoning.context`` and a header mark it."""
        return prompt.code_mode and self.model.raw.get("use_responses_lite") is True

    def build_headers(self, subagent: str | None = None, *, lite: bool = False) -> dict[str, str]:
        """``subagent`` marks sub-agent traffic (``compact``, ``review``, …) as upstream does."""
        headers: dict[str, str] = {}
        if lite:
            headers["x-openai-internal-codex-responses-lite"] = "true"
        if self.auth.token:
            headers["authorization"] = f"Bearer {self.auth.token}"
        if self.auth.mode == "chatgpt" and self.auth.account_id:
            headers["chatgpt-account-id"] = self.auth.account_id
        headers["originator"] = self.originator
        headers["user-agent"] = user_agent(self.originator)
        # A sub-agent's requests (0.169, fixture multi-agent-exec.json): the session is the parent's,
        # the request id the child's thread, plus the parent's thread and the subagent label.
        headers["session-id"] = self.parent_thread_id or self.thread_id
        headers["thread-id"] = self.thread_id
        headers["x-client-request-id"] = self.thread_id
        if self.parent_thread_id:
            headers["x-codex-parent-thread-id"] = self.parent_thread_id
        subagent = subagent or self.subagent
        if subagent:
            headers["x-openai-subagent"] = subagent
        headers.update(self.provider.http_headers)
        for header, var in self.provider.env_http_headers.items():
            value = os.environ.get(var, "").strip()
            if value:
                headers[header] = value
        return headers

    def _sync_auth(self) -> None:
        manager = self.auth_manager
        if manager is not None and manager.access_token:
            self.auth = ProviderAuth(
                "chatgpt", manager.access_token, self.auth.source, account_id=manager.account_id
            )

    async def stream(self, prompt: Prompt, subagent: str | None = None) -> AsyncIterator[ResponseEvent]:
        """Stream one response; with a ChatGPT login, refresh first if needed and recover from a 401."""
        await self.ensure_auth()
        body = self.build_body(prompt)
        for attempt in range(3):
            try:
                async for event in self.responses.stream(
                    body, self.build_headers(subagent, lite=self._lite(prompt))
                ):
                    yield event
                return
            except FatalApiError as err:
                # A 401 arrives before any event, so retrying cannot duplicate output.
                if err.kind != "unauthorized" or self.auth_manager is None or attempt == 2:
                    raise
                if not await self.auth_manager.recover_unauthorized(attempt):
                    raise
                self._sync_auth()

    async def compact_remote(
        self, items: list[ResponseItem], tools: list[dict[str, Any]]
    ) -> list[ResponseItem]:
        from codexbro.api.compact import compact_remote

        full = self.build_body(
            Prompt(input=items, tools=tools, parallel_tool_calls=self.model.supports_parallel_tool_calls)
        )
        keep = ("model", "instructions", "input", "tools", "parallel_tool_calls", "reasoning", "text")
        body: dict[str, Any] = {k: full[k] for k in keep if k in full and full[k] is not None}
        return await compact_remote(
            self.http, self.base_url, self.provider.query_params, body, self.build_headers("compact")
        )


def _is_azure(provider: ModelProviderInfo, base_url: str) -> bool:
    if provider.name.lower() == "azure":
        return True
    markers = (
        "openai.azure.",
        "cognitiveservices.azure.",
        "aoai.azure.",
        "azure-api.",
        "azurefd.",
        "windows.net/openai",
    )
    return any(m in base_url for m in markers)
