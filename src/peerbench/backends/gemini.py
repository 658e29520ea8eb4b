"""Gemini through Google's own SDK (google-genai): Vertex AI (`vertex`, the distillation teacher)
and the Gemini Developer API (`gemini`).

The system prompt goes in as the system instruction and the paper as the user content; the
thinking budget, temperature, top_p and max output tokens map onto GenerateContentConfig. A
safety block or an empty candidate list is that paper's recorded outcome (with its finish or
block reason), never a crash. Token usage (prompt, output, thinking) is kept per sample and,
given prices, turned into a cost estimate.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from peerbench.backends import ENV_NAME_PATTERN, Backend, BackendOptions, RunContext, ServerURL, secret_from_env
from peerbench.errors import BackendError, ConfigError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.pipeline.retry import RETRY_STATUS, Failure, retry_after_seconds
from peerbench.records import ChatRequest, Completion

CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ADC_FILE = Path("~/.config/gcloud/application_default_credentials.json").expanduser()
MAX_ERROR_CHARS = 300


class GeminiOptions(BackendOptions):
    thinking_budget: int | None = Field(None, ge=-1, description="thinking tokens; -1 lets the model decide",
                                        json_schema_extra={"flag": "--thinking-budget"})
    timeout: float = Field(600.0, gt=0, description="seconds one request may take")
    max_retries: int = Field(6, ge=0)
    retry_backoff: float = Field(2.0, ge=0)
    base_url: ServerURL | None = Field(None, description="another endpoint (a proxy, a regional or test server)",
                                 json_schema_extra={"flag": "--base-url"})
    price_input_per_m: float | None = Field(None, ge=0, description="USD per million prompt tokens")
    price_output_per_m: float | None = Field(None, ge=0, description="USD per million output + thinking tokens")


class VertexOptions(GeminiOptions):
    project: str | None = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_PROJECT"),
                                json_schema_extra={"flag": "--project"})
    location: str = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_LOCATION", "us-central1"),
                          json_schema_extra={"flag": "--location"})
    access_token_env: str | None = Field(None, description="take an OAuth access token from this variable "
                                                           "instead of Application Default Credentials")
    use_metadata_server: bool = Field(False, description="allow ADC to ask the GCE metadata server")


class DeveloperOptions(GeminiOptions):
    api_key_env: str | None = Field(None, description="default: GEMINI_API_KEY, then GOOGLE_API_KEY",
                                    pattern=ENV_NAME_PATTERN, json_schema_extra={"flag": "--api-key-env"})


def _short(text: object) -> str:
    return " ".join(str(text).split())[:MAX_ERROR_CHARS]


def _import_genai() -> Any:
    try:
        from google import genai
    except ImportError:
        raise MissingDependency("google-genai", "gemini") from None
    return genai


class GeminiBackend(Backend):
    """Shared by `vertex` and `gemini`; subclasses only differ in how the client authenticates."""

    Options: ClassVar[type[GeminiOptions]] = GeminiOptions
    default_model = "gemini-3.1-pro-preview"
    max_concurrency = 8
    in_process = False
    operational_options = frozenset({"timeout", "max_retries", "retry_backoff", "base_url", "price_input_per_m",
                                     "price_output_per_m", "access_token_env", "use_metadata_server",
                                     "api_key_env"})

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self._client: Any = None

    def _client_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def endpoint(self) -> str:
        """Where requests go without a ``base_url``: the API's host (and, for Vertex, the project)."""
        raise NotImplementedError

    def connection_key(self) -> str:
        """The endpoint: runs against one Gemini endpoint share its concurrency bound."""
        return (self.options.base_url or self.endpoint()).rstrip("/")

    async def setup(self, context: RunContext | None = None) -> None:
        genai = _import_genai()
        from google.genai import types

        http = types.HttpOptions(timeout=int(self.options.timeout * 1000), base_url=self.options.base_url)
        self._client = genai.Client(http_options=http, **self._client_kwargs())

    def _config(self, request: ChatRequest) -> Any:
        from google.genai import types

        gen = request.generation
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system") or None
        config: dict[str, Any] = {"system_instruction": system, "temperature": gen.temperature, "top_p": gen.top_p,
                                  "max_output_tokens": gen.max_tokens}
        if gen.seed is not None:
            config["seed"] = gen.seed
        if self.options.thinking_budget is not None:
            config["thinking_config"] = types.ThinkingConfig(thinking_budget=self.options.thinking_budget)
        return types.GenerateContentConfig(**config)

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One attempt per request; a failure is raised for the harness to classify and retry."""
        if self._client is None:
            await self.setup()
        return list(await asyncio.gather(*(self._complete(r) for r in requests)))

    async def _complete(self, request: ChatRequest) -> Completion:
        contents = [{"role": "user" if m["role"] == "user" else "model", "parts": [{"text": m["content"]}]}
                    for m in request.messages if m["role"] != "system"]
        response = await self._client.aio.models.generate_content(model=self.model, contents=contents,
                                                                  config=self._config(request))
        return self._to_completion(response)

    def classify_error(self, exc: Exception) -> Failure:
        """429 RESOURCE_EXHAUSTED, 5xx, deadlines and dropped connections are transient (Retry-After
        honoured); other 4xx fail the paper; 401/403 and an unknown model end the run."""
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            problem = f"HTTP {exc.code} {exc.status or ''}: {_short(exc.message)}".replace("  ", " ")
            if exc.code in (401, 403):
                raise BackendError(f"{self.name}: the request was refused ({problem}); {self.login_hint()}") from None
            if exc.code == 404:
                raise BackendError(f"{self.name}: model {self.model!r} was not found ({problem})") from None
            headers = getattr(getattr(exc, "response", None), "headers", None)
            return Failure(problem, exc.code in RETRY_STATUS, retry_after_seconds(headers))
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return Failure(f"no reply within {self.options.timeout:g} s ({type(exc).__name__})", True)
        if _is_transport_error(exc):  # transport errors differ between the SDK's httpx and aiohttp paths
            return Failure(f"connection failed: {type(exc).__name__} {_short(exc)}".strip(), True)
        raise exc

    def _to_completion(self, response: Any) -> Completion:
        usage = getattr(response, "usage_metadata", None)
        prompt = getattr(usage, "prompt_token_count", None)
        output = getattr(usage, "candidates_token_count", None)
        thinking = getattr(usage, "thoughts_token_count", None)
        extra: dict[str, Any] = {"thinking_tokens": thinking}
        cost = self.cost(prompt, output, thinking)
        if cost is not None:
            extra["cost_usd"] = cost
        candidates = getattr(response, "candidates", None) or []
        if not candidates:
            feedback = getattr(response, "prompt_feedback", None)
            reason = getattr(getattr(feedback, "block_reason", None), "value", None) or "no candidates"
            return Completion(error=f"no candidate returned (block reason: {reason})", finish_reason=str(reason),
                              prompt_tokens=prompt, extra=extra)
        candidate = candidates[0]
        finish = getattr(getattr(candidate, "finish_reason", None), "value", None)
        parts = getattr(getattr(candidate, "content", None), "parts", None) or []
        text = "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
        if not text and finish not in (None, "STOP", "MAX_TOKENS"):
            return Completion(error=f"empty candidate (finish reason: {finish})", finish_reason=finish,
                              prompt_tokens=prompt, completion_tokens=output, extra=extra)
        return Completion(text=text, finish_reason=finish, prompt_tokens=prompt, completion_tokens=output, extra=extra)

    def cost(self, prompt: int | None, output: int | None, thinking: int | None) -> float | None:
        opts = self.options
        if opts.price_input_per_m is None or opts.price_output_per_m is None:
            return None
        return round(((prompt or 0) * opts.price_input_per_m
                      + ((output or 0) + (thinking or 0)) * opts.price_output_per_m) / 1e6, 8)

    def login_hint(self) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._client is not None:
            close = getattr(self._client.aio, "aclose", None)
            if callable(close):
                await close()
            self._client = None


def _is_transport_error(exc: Exception) -> bool:
    names = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    return bool(names & {"httpx", "httpx2", "aiohttp", "httpcore"}) or isinstance(exc, ConnectionError)


class VertexBackend(GeminiBackend):
    name = "vertex"
    Options = VertexOptions

    def endpoint(self) -> str:
        opts = self.options
        host = "aiplatform.googleapis.com" if opts.location == "global" else \
            f"{opts.location}-aiplatform.googleapis.com"
        return f"https://{host}/projects/{opts.project}"

    def login_hint(self) -> str:
        return ("log in with `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
                "service-account key file, and check the project's Vertex AI permissions")

    def _credentials(self) -> Any:
        opts = self.options
        if opts.access_token_env:
            token = os.environ.get(opts.access_token_env)
            if not token:
                raise ConfigError(f"--backend-arg access_token_env={opts.access_token_env}: that variable is not set")
            from google.oauth2.credentials import Credentials

            return Credentials(token=token)
        explicit = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not explicit and not ADC_FILE.is_file() and not opts.use_metadata_server:
            # google.auth.default() would next ask the GCE metadata server, which off Google Cloud only times out.
            raise BackendError(f"vertex: no Google Cloud credentials found; {self.login_hint()} (on a Google Cloud VM, "
                               "add -o use_metadata_server=true)")
        import google.auth

        try:
            credentials, _ = google.auth.default(scopes=[CLOUD_SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise BackendError(f"vertex: {_short(exc)}; {self.login_hint()}") from None
        return credentials

    def _client_kwargs(self) -> dict[str, Any]:
        if not self.options.project:
            raise ConfigError("--project: vertex needs a Google Cloud project (or set GOOGLE_CLOUD_PROJECT)")
        return {"vertexai": True, "project": self.options.project, "location": self.options.location,
                "credentials": self._credentials()}


class DeveloperBackend(GeminiBackend):
    name = "gemini"
    Options = DeveloperOptions

    def endpoint(self) -> str:
        return "https://generativelanguage.googleapis.com"

    def _key(self) -> tuple[str, str | None]:
        names = [self.options.api_key_env] if self.options.api_key_env else ["GEMINI_API_KEY", "GOOGLE_API_KEY"]
        for name in names:
            if secret_from_env(name):
                return name, os.environ[name]
        return " or ".join(names), None

    def login_hint(self) -> str:
        return f"check the API key in ${self._key()[0]}"

    def _client_kwargs(self) -> dict[str, Any]:
        name, key = self._key()
        if not key:
            raise ConfigError(f"gemini: set {name} to a Gemini API key (or --api-key-env NAME)")
        return {"api_key": key}


@hookimpl
def register_backends(register):
    register("vertex", VertexBackend, extra="gemini",
             description="Gemini on Vertex AI through google-genai (--project, --location; ADC credentials)")
    register("gemini", DeveloperBackend, extra="gemini",
             description="Gemini Developer API through google-genai (GEMINI_API_KEY or GOOGLE_API_KEY)")
