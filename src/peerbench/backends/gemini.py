"""Gemini through Google's own SDK (google-genai): Vertex AI (`vertex`, the distillation teacher)
and the Gemini Developer API (`gemini`).

The system prompt goes in as the system instruction and the paper as the user content; the
thinking budget or level, temperature, top_p and the output cap (max_tokens plus room for
thinking: see ``gemini_config``) map onto GenerateContentConfig. Only a candidate that finished
with STOP and has text is a review: a reply cut at the cap (MAX_TOKENS, with part of a review or
none), a recitation or safety stop, a blocked prompt or an empty candidate list is that paper's
recorded failure, with its reason, never a crash and never a stored success. Token usage (prompt,
cached, output, thinking) is kept per sample and, given prices, turned into a cost estimate.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, ClassVar

from peerbench.backends import Backend, RunContext, secret_from_env, within
from peerbench.backends.gemini_config import (GLOBAL_ONLY_PREFIX, DeveloperOptions, GeminiOptions, VertexOptions,
                                              base_name, check_options, cost_usd, default_location, output_cap,
                                              thinking_config)
from peerbench.backends.gemini_errors import judge_api_error, judge_other, short
from peerbench.errors import BackendError, ConfigError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.pipeline.retry import Failure
from peerbench.records import ChatRequest, Completion

CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _import_genai() -> Any:
    try:
        from google import genai
    except ImportError:
        raise MissingDependency("google-genai", "gemini") from None
    return genai


def adc_file() -> Path:
    """Where `gcloud auth application-default login` writes, honouring CLOUDSDK_CONFIG as google.auth does."""
    config = os.environ.get("CLOUDSDK_CONFIG")
    if config:
        return Path(config) / "application_default_credentials.json"
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "gcloud" / "application_default_credentials.json"
    return Path("~/.config/gcloud/application_default_credentials.json").expanduser()


class GeminiBackend(Backend):
    """Shared by `vertex` and `gemini`; subclasses only differ in how the client authenticates."""

    Options: ClassVar[type[GeminiOptions]] = GeminiOptions
    default_model = "gemini-3.1-pro-preview"
    max_concurrency = 8
    in_process = False
    operational_options = frozenset({"timeout", "max_retries", "retry_backoff", "base_url", "price_input_per_m",
                                     "price_cached_input_per_m", "price_output_per_m", "access_token_env",
                                     "use_metadata_server", "api_key_env"})

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        check_options(self.model, self.options)
        self._client: Any = None

    def _client_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def endpoint(self) -> str:
        """Where requests go without a ``base_url``: the API's host (and, for Vertex, the project)."""
        raise NotImplementedError

    def connection_key(self) -> str:
        """The endpoint: runs against one Gemini endpoint share its concurrency bound."""
        return (self.options.base_url or self.endpoint()).rstrip("/")

    def identity(self) -> dict[str, Any]:
        """Also how the output cap is made: answers cached when the cap was max_tokens alone (thinking
        could cut the review, stored as a success) belong to another run and are never served here."""
        return {**super().identity(), "output_cap": "max_tokens + thinking"}

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
                                  "max_output_tokens": output_cap(gen.max_tokens, self.model, self.options)}
        if gen.seed is not None:
            config["seed"] = gen.seed
        thinking = thinking_config(self.options)
        if thinking is not None:
            config["thinking_config"] = types.ThinkingConfig(**thinking)
        return types.GenerateContentConfig(**config)

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One attempt per request; a failure is raised for the harness to classify and retry."""
        if self._client is None:
            await self.setup()
        return list(await asyncio.gather(*(self._complete(r) for r in requests)))

    async def _complete(self, request: ChatRequest) -> Completion:
        contents = [{"role": "user" if m["role"] == "user" else "model", "parts": [{"text": m["content"]}]}
                    for m in request.messages if m["role"] != "system"]
        config = self._config(request)
        # timeout bounds the whole request, reply included (the SDK's applies per read)
        response = await within(
            self._client.aio.models.generate_content(model=self.model, contents=contents, config=config),
            self.options.timeout)
        return self._to_completion(response, config.max_output_tokens)

    def _secrets(self) -> list[str | None]:
        """Values an error body may echo and no message may show (the key, the bearer token)."""
        return []

    def _mask(self, text: object) -> str:
        return short(text, self._secrets())

    def location_hint(self) -> str:
        return ""

    def classify_error(self, exc: Exception) -> Failure:
        """429 RESOURCE_EXHAUSTED (RetryInfo's delay, else Retry-After), 5xx, deadlines, dropped
        connections and a token endpoint that did not answer are transient; other 4xx fail the paper;
        a refused key or setting (a 400 about thinking or the cap), 401/403 and an unknown model end
        the run (see ``gemini_errors``)."""
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            return judge_api_error(exc, self.name, self.model, self.login_hint(), self.location_hint(), self._mask)
        return judge_other(exc, self.name, self.options.timeout, self.login_hint(), self._mask)

    def _to_completion(self, response: Any, cap: int | None = None) -> Completion:
        usage = getattr(response, "usage_metadata", None)
        prompt = getattr(usage, "prompt_token_count", None)
        cached = getattr(usage, "cached_content_token_count", None)
        output = getattr(usage, "candidates_token_count", None)
        thinking = getattr(usage, "thoughts_token_count", None)
        extra: dict[str, Any] = {"thinking_tokens": thinking}
        if cached:
            extra["cached_tokens"] = cached
        cost = cost_usd(self.options, prompt, cached, output, thinking)
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
        error = reply_problem(finish, bool(text), cap)
        return Completion(text=text, finish_reason=finish, error=error, prompt_tokens=prompt,
                          completion_tokens=output, extra=extra)

    def login_hint(self) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._client is not None:
            close = getattr(self._client.aio, "aclose", None)
            if callable(close):
                await close()
            self._client = None


def reply_problem(finish: str | None, has_text: bool, cap: int | None) -> str | None:
    """Why a candidate is not a review, or None when it is one (finished with STOP, with text)."""
    if finish == "STOP" and has_text:
        return None
    if finish == "MAX_TOKENS":
        what = "part of a review" if has_text else "no review text (thinking took the whole cap)"
        return (f"cut off at the output cap, max_output_tokens {cap} (finish reason MAX_TOKENS): {what}; thinking "
                "counts against the cap: raise --max-tokens, or lower --thinking-budget or -o thinking_allowance")
    if finish is None:
        return "the reply has no finish reason" + ("" if has_text else " and no text")
    if has_text:
        return f"review stopped before its end (finish reason: {finish})"
    return f"empty candidate (finish reason: {finish})"


class VertexBackend(GeminiBackend):
    name = "vertex"
    Options = VertexOptions

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self._credentials: Any = None
        if not self.options.location:
            self.options.location = default_location(self.model)

    def endpoint(self) -> str:
        opts = self.options
        host = "aiplatform.googleapis.com" if opts.location == "global" else \
            f"{opts.location}-aiplatform.googleapis.com"
        return f"https://{host}/projects/{opts.project}"

    def login_hint(self) -> str:
        return ("log in with `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
                "service-account key file, and check the project's Vertex AI permissions")

    def location_hint(self) -> str:
        if base_name(self.model).startswith(GLOBAL_ONLY_PREFIX) and self.options.location != "global":
            return (f"; Gemini 3 models are served on the global endpoint: use --location global "
                    f"(not {self.options.location})")
        return ""

    def _secrets(self) -> list[str | None]:
        return [getattr(self._credentials, "token", None)]

    def _credentials_from_env(self) -> Any:
        opts = self.options
        if opts.access_token_env:
            token = secret_from_env(opts.access_token_env)
            if not token:
                raise ConfigError(f"--backend-arg access_token_env={opts.access_token_env}: that variable is not set")
            from google.oauth2.credentials import Credentials

            return Credentials(token=token)
        explicit = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not explicit and not adc_file().is_file() and not opts.use_metadata_server:
            # google.auth.default() would next ask the GCE metadata server, which off Google Cloud only times out.
            raise BackendError(f"vertex: no Google Cloud credentials found; {self.login_hint()} (on a Google Cloud VM, "
                               "add -o use_metadata_server=true)")
        import google.auth

        try:
            credentials, _ = google.auth.default(scopes=[CLOUD_SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise BackendError(f"vertex: {self._mask(exc)}; {self.login_hint()}") from None
        return credentials

    def _client_kwargs(self) -> dict[str, Any]:
        if not self.options.project:
            raise ConfigError("--project: vertex needs a Google Cloud project (or set GOOGLE_CLOUD_PROJECT)")
        self._credentials = self._credentials_from_env()
        return {"vertexai": True, "project": self.options.project, "location": self.options.location,
                "credentials": self._credentials}


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

    def _secrets(self) -> list[str | None]:
        return [self._key()[1]]

    def login_hint(self) -> str:
        return f"check the API key in ${self._key()[0]}"

    def _client_kwargs(self) -> dict[str, Any]:
        name, key = self._key()
        if not key:
            raise ConfigError(f"gemini: set {name} to a Gemini API key (or --api-key-env NAME)")
        # vertexai=False: otherwise GOOGLE_GENAI_USE_VERTEXAI=true in the environment sends the key to Vertex.
        return {"api_key": key, "vertexai": False}


@hookimpl
def register_backends(register):
    register("vertex", VertexBackend, extra="gemini",
             description="Gemini on Vertex AI through google-genai (--project, --location; ADC credentials)")
    register("gemini", DeveloperBackend, extra="gemini",
             description="Gemini Developer API through google-genai (GEMINI_API_KEY or GOOGLE_API_KEY)")
