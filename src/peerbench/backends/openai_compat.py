"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, TGI, hosted APIs).

The ``openai`` SDK speaks the wire format; this module owns the policy an evaluation needs and the
SDK leaves to its caller: which failures are worth another try (429, 5xx, timeouts, dropped
connections, a malformed body, an empty choices list), which end one paper (a 400 such as a
prompt over the context), and which end the run because no paper could succeed (auth refused, an
unknown model). That judgement is :meth:`OpenAIBackend.classify_error`; the harness's retry driver
acts on it. The SDK's own retries are off so that every attempt is counted there.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from peerbench.backends import (Backend, BackendOptions, EnvName, RunContext, ServerURL, base_url_from_env,
                               secret_from_env, within)
from peerbench.backends.extra_body import refuse_harness_keys
from peerbench.backends.logprobs import SERVER_MODE, TokenLogprob, decision_probability
from peerbench.errors import BackendError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.pipeline.retry import RETRY_STATUS, Failure, retry_after_seconds
from peerbench.records import ChatRequest, Completion

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
MAX_ERROR_CHARS = 300


class OpenAIOptions(BackendOptions):
    base_url: ServerURL = Field(default_factory=lambda: base_url_from_env("OPENAI_BASE_URL", DEFAULT_BASE_URL),
                          json_schema_extra={"flag": "--base-url"})
    api_key_env: EnvName = Field("OPENAI_API_KEY", json_schema_extra={"flag": "--api-key-env"})
    timeout: float = Field(600.0, gt=0, le=86400, description="seconds one whole request may take, reply included")
    max_retries: int = Field(6, ge=0, le=100)
    retry_backoff: float = Field(1.0, ge=0, le=600, description="first backoff in seconds; doubles per try")
    logprobs: bool = True
    top_logprobs: int = Field(5, ge=1, le=20)
    tokenizer: str = Field("auto", pattern="^(auto|server|transformers|chars)$")
    check_server: bool = True
    http_client: str = Field("auto", pattern="^(auto|aiohttp|httpx)$",
                             description="auto: aiohttp when installed (faster under concurrency), else httpx")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra JSON fields for the server")

    @field_validator("extra_body")
    @classmethod
    def _no_harness_keys(cls, body: dict[str, Any]) -> dict[str, Any]:
        return refuse_harness_keys(body)


class _Malformed(Exception):
    """A 2xx reply that is not a usable chat completion."""


class WholeRequestTimeout(Exception):
    """The request, reply included, took longer than the ``timeout`` option."""


def _short(text: object, secret: str | None = None) -> str:
    message = " ".join(str(text).split())
    if secret and len(secret) >= 4:
        message = message.replace(secret, "***")
    return message[:MAX_ERROR_CHARS]


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(getattr(exc, "message", exc))


def _causes(exc: BaseException) -> list[BaseException]:
    chain = [exc]
    while (chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain


DISCONNECTED = ("RemoteProtocolError", "ServerDisconnectedError")
# What the SDK raises on a 200 whose body is no JSON object (garbage, HTML, a bare list or string):
# it parses lazily and builds its types without validating them.
MALFORMED = (ValueError, TypeError, AttributeError)


def connection_problem(exc: BaseException, timeout_s: float, secret: str | None = None) -> tuple[str, str]:
    """What went wrong on the wire, as (kind, message), named by its root cause: the SDK's aiohttp
    transport reports a server that hung up as a timeout, which would send the user looking at the
    wrong thing. kind is "timeout", "closed" or "unreachable"."""
    chain = _causes(exc)
    closed = [cause for cause in chain if type(cause).__name__ in DISCONNECTED]
    if closed:
        return "closed", (f"the server closed the connection before replying "
                          f"({type(closed[0]).__name__}: {_short(closed[0], secret)})")
    if any(isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__ for cause in chain):
        return "timeout", f"no reply within {timeout_s:g} s"
    cause = exc.__cause__ or exc
    return "unreachable", f"connection failed: {_short(cause, secret) or type(cause).__name__}"


def _error_in_body(response: Any) -> str | None:
    """A 2xx reply that carries an error object instead of choices (some proxies and hosted APIs)."""
    extra = getattr(response, "model_extra", None) or {}
    error = extra.get("error") or extra.get("detail")
    if isinstance(error, Mapping):
        error = error.get("message") or error
    return str(error) if error else None


def server_root(base_url: str) -> str:
    """vLLM serves /tokenize beside /v1, not under it."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class OpenAIBackend(Backend):
    name = "openai"
    Options = OpenAIOptions
    supports_logprobs = True
    max_concurrency = 16
    in_process = False
    operational_options: ClassVar[frozenset[str]] = frozenset(
        {"timeout", "max_retries", "retry_backoff", "check_server", "api_key_env", "http_client"})

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self._client: Any = None
        self._counter: Any = None
        self._completion_type: Any = None

    def connection_key(self) -> str:
        """The server: runs against one URL share its concurrency bound, whatever model they ask for."""
        return self.options.base_url.rstrip("/")

    @property
    def api_key(self) -> str:
        return secret_from_env(self.options.api_key_env) or "EMPTY"

    def _make_client(self) -> Any:
        try:
            import openai
        except ImportError:
            raise MissingDependency("openai", "openai") from None
        return openai.AsyncOpenAI(base_url=self.options.base_url, api_key=self.api_key, max_retries=0,
                                  timeout=self.options.timeout, http_client=self._http_client(openai))

    def _http_client(self, openai: Any) -> Any:
        """The SDK's aiohttp transport when installed: under 16 concurrent requests httpx adds ~10 ms each."""
        choice = self.options.http_client
        if choice == "httpx":
            return None
        try:
            return openai.DefaultAioHttpClient(timeout=self.options.timeout)
        except (AttributeError, RuntimeError):
            if choice == "aiohttp":
                raise MissingDependency("openai[aiohttp]", "openai") from None
            return None

    async def setup(self, context: RunContext | None = None) -> None:
        self._client = self._make_client()
        # The SDK imports and builds its chat types on first use (~0.2 s of CPU); do it now rather
        # than while the first 16 replies are waiting to be read.
        from openai.types.chat import ChatCompletion

        ChatCompletion.model_validate({"id": "warm-up", "object": "chat.completion", "created": 0, "model": "m",
                                       "choices": []})
        self._completion_type = ChatCompletion
        if self.options.check_server:
            await check_models(self._client, self.options.base_url, self.model, self.options.api_key_env)
        self._counter = self._pick_counter()
        if context is not None:
            check_context(self.options.base_url, self.model, getattr(self._counter, "max_model_len", None),
                          context.task)

    def token_counter(self):
        return self._counter

    def _pick_counter(self):
        from peerbench.backends.token_counting import server_counter, transformers_counter

        mode = self.options.tokenizer
        counter = None
        if mode in ("auto", "server"):
            counter = server_counter(server_root(self.options.base_url), self.model, self.api_key)
            if counter is None and mode == "server":
                raise BackendError(f"--backend-arg tokenizer=server: {server_root(self.options.base_url)}/tokenize "
                                   "did not answer; use tokenizer=auto")
        if counter is None and mode in ("auto", "transformers"):
            counter = transformers_counter(self.model, required=mode == "transformers")
        return counter

    def _payload(self, request: ChatRequest, logprobs: bool) -> dict[str, Any]:
        """The chat-completions JSON body. Sent through the SDK's documented ``client.post`` rather than
        ``chat.completions.create``, whose per-call parameter transform costs ~0.5 ms of CPU on a
        50 KB prompt: at 16 in flight on two cores that alone moved the run 4% further from ideal."""
        gen = request.generation
        payload: dict[str, Any] = {"model": self.model, "messages": request.messages, "max_tokens": gen.max_tokens,
                                   "temperature": gen.temperature, "top_p": gen.top_p}
        if gen.seed is not None:
            payload["seed"] = gen.seed
        if logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = self.options.top_logprobs
        payload.update(self.options.extra_body)
        return payload

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One attempt per request; a failure is raised for the harness to classify and retry."""
        if self._client is None:
            await self.setup()
        return list(await asyncio.gather(*(self._complete(r) for r in requests)))

    async def _complete(self, request: ChatRequest) -> Completion:
        """``timeout`` bounds the whole request, reply included: the SDK's own timeout is per read, so a
        server dripping its reply a byte at a time would hold the paper indefinitely."""
        logprobs = self.options.logprobs and request.logprobs
        try:
            response = await within(self._client.post("/chat/completions", body=self._payload(request, logprobs),
                                                      cast_to=self._completion_type), self.options.timeout)
        except asyncio.TimeoutError:
            raise WholeRequestTimeout() from None
        return self._to_completion(response)

    def classify_error(self, exc: Exception) -> Failure:
        """429, 5xx, timeouts, dropped connections and malformed replies are transient (Retry-After
        honoured); other 4xx fail the paper; auth refused and an unknown model end the run."""
        import openai

        opts = self.options
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            raise BackendError(auth_refused(opts.base_url, exc.status_code, _status_message(exc),
                                            opts.api_key_env)) from None
        if isinstance(exc, openai.NotFoundError):
            raise BackendError(f"HTTP 404 from {opts.base_url}/chat/completions for model {self.model!r}: "
                               f"{_short(_status_message(exc), self.api_key)}; check --base-url (it usually "
                               "ends in /v1) and --model (peerbench serve-check lists the served models)") from None
        if isinstance(exc, openai.APIStatusError):
            return Failure(f"HTTP {exc.status_code}: {_short(_status_message(exc), self.api_key)}",
                           exc.status_code in RETRY_STATUS, retry_after_seconds(exc.response.headers))
        if isinstance(exc, openai.APIConnectionError):  # timeouts included
            return Failure(connection_problem(exc, opts.timeout, self.api_key)[1], True)
        if isinstance(exc, WholeRequestTimeout):
            return Failure(f"no reply within {opts.timeout:g} s", True)  # the whole reply: a dripped one too
        if isinstance(exc, (_Malformed, ValueError)):
            return Failure(f"malformed reply: {_short(exc, self.api_key)}", True)
        raise exc

    def _to_completion(self, response: Any) -> Completion:
        choices = getattr(response, "choices", None)
        if not hasattr(response, "choices"):
            raise _Malformed(f"expected a chat completion object, got {type(response).__name__}")
        if not choices:
            error = _error_in_body(response)
            raise _Malformed(f"the server answered 200 with an error: {error}" if error
                             else "the reply has an empty choices list")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise _Malformed("the first choice has no message")
        if not message.content:  # no review: retried, then a failed paper, never a cached success
            refusal = getattr(message, "refusal", None)
            what = "null" if message.content is None else "empty"
            raise _Malformed(f"the reply's message content is {what}" + (f" (refusal: {refusal})" if refusal else ""))
        if not isinstance(message.content, str):  # the SDK builds replies unvalidated: an integer gets here
            raise _Malformed(f"the reply's message content is a JSON {type(message.content).__name__}, not text")
        text = message.content
        p_accept = None
        extra: dict[str, Any] = {}
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            tokens = [TokenLogprob(t.token, t.logprob, [(a.token, a.logprob) for a in (t.top_logprobs or [])])
                      for t in content]
            found = decision_probability(tokens, text, self.decision_parser)
            extra["logprobs_mode"] = SERVER_MODE  # raw or processed as the server was started; not ours to know
            if found is not None:
                p_accept = found.p_accept
                extra["decision_mass"] = round(found.mass, 6)
        usage = getattr(response, "usage", None)
        return Completion(text=text, p_accept=p_accept, finish_reason=choice.finish_reason,
                          prompt_tokens=getattr(usage, "prompt_tokens", None),
                          completion_tokens=getattr(usage, "completion_tokens", None), extra=extra)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def auth_refused(base_url: str, status: int, message: str, api_key_env: str) -> str:
    present = "is set" if os.environ.get(api_key_env) else "is not set"
    return (f"{base_url} refused the request (HTTP {status}: {_short(message)}); the key comes from "
            f"${api_key_env}, which {present} (use --api-key-env NAME for another variable)")


def server_error(exc: Exception, base_url: str, api_key_env: str, what: str, timeout_s: float,
                 secret: str | None = None) -> BackendError | None:
    """One line for a request that failed before any paper could be tried; None if not the server's doing."""
    import openai

    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return BackendError(auth_refused(base_url, exc.status_code, _status_message(exc), api_key_env))
    if isinstance(exc, openai.APIConnectionError):
        kind, problem = connection_problem(exc, timeout_s, secret)
        if kind == "timeout":
            return BackendError(f"{base_url}: no reply to {what} within {timeout_s:g} s; is the server still loading?")
        if kind == "closed":
            return BackendError(f"{base_url}: {what}: {problem}")
        return BackendError(f"cannot reach {base_url} ({_short(exc.__cause__ or exc, secret)}); is the server running? "
                            f"Check with: peerbench serve-check --base-url {base_url}")
    if isinstance(exc, openai.APIStatusError):
        return BackendError(f"{base_url}: {what} answered HTTP {exc.status_code}: "
                            f"{_short(_status_message(exc), secret)}")
    if isinstance(exc, MALFORMED):
        return BackendError(f"{base_url}: {what}: malformed reply ({type(exc).__name__}: {_short(exc, secret)})")
    return None


async def served_models(client: Any, base_url: str, api_key_env: str) -> list[str] | None:
    """The model ids the server lists, or None when it has no /models route."""
    import openai

    try:
        page = await client.with_options(timeout=30.0).models.list()
        return sorted(str(m.id) for m in getattr(page, "data", []) or [])
    except openai.NotFoundError:
        return None
    except Exception as exc:  # explained in one line, or not ours to explain
        error = server_error(exc, base_url, api_key_env, "GET /models", 30.0)
        if error is None:
            raise
        raise error from None


async def check_models(client: Any, base_url: str, model: str, api_key_env: str) -> list[str] | None:
    served = await served_models(client, base_url, api_key_env)
    if served is not None and served and model not in served:
        raise BackendError(f"--model {model!r} is not served by {base_url}; it serves: {', '.join(served)}")
    return served


def check_context(base_url: str, model: str, served_len: int | None, task: Any) -> None:
    """A server with a shorter context than the task's would fail every long paper with a 400."""
    if served_len and served_len < task.max_model_len:
        raise BackendError(f"{base_url} serves {model} with max_model_len {served_len}, below the "
                           f"{task.max_model_len} of task {task.task!r}; restart the server with a longer "
                           f"context or pass --max-model-len {served_len}")


@hookimpl
def register_backends(register):
    register("openai", OpenAIBackend, extra="openai",
             description="any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp, TGI, hosted): --base-url URL")
