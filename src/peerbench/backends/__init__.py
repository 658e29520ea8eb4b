"""The backend interface. A backend turns chat requests into completions; the runner owns
batching, concurrency, retries, caching and storage, so a backend only has to talk to its model
and declare the facts the runner acts on (see :class:`Backend`)."""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from peerbench.errors import ConfigError, UnknownNameError, scrub, url_has_credentials, validated_options
from peerbench.pipeline.retry import Failure, RetryPolicy
from peerbench.prompts import TokenCounter
from peerbench.records import ChatRequest, Completion, Paper

__all__ = ["Backend", "BackendOptions", "EnvName", "Failure", "RetryPolicy", "RunContext", "create_backend",
           "option_flag", "redact"]

# A key names a secret when its last word is one of these (api_key, access_token, x-api-key,
# client_secret), never when a secret-sounding word is only part of it: max_completion_tokens and
# tokenizer shape the request and are always recorded.
SECRET_KEY_RE = re.compile(r"(?i)(?:^|[_\-.])(?:api_?key|apikey|key|token|secret|password|passwd|credentials?|"
                           r"authorization|auth|bearer|cookie|signature)$")
REDACTED = "***"
# What --api-key-env takes: the NAME of a variable (a pasted key is refused, and never echoed).
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_ENV_NAME_CHARS = 64
# How keys look and variable names do not: a run of 6 or more digits, or lower-case letters, upper-case
# letters and digits all in one name (OPENAI_API_KEY, my_key_2 and GEMINI_API_KEY pass; skATTACK1234 does not).
_KEY_LIKE_RE = re.compile(r"\d{6}|^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)")


def env_name(name: str) -> str:
    """An environment variable's name, refused (without echoing it) when it is not in the usual shape
    or looks like a pasted key: the value would otherwise be written to config.json and stderr."""
    if not re.match(ENV_NAME_PATTERN, name) or len(name) > MAX_ENV_NAME_CHARS:
        raise ValueError(f"not an environment variable name (letters, digits and _, not starting with a digit, "
                         f"at most {MAX_ENV_NAME_CHARS} characters); give the NAME of the variable that holds the key")
    if _KEY_LIKE_RE.search(name):
        raise ValueError("this looks like a key, not the name of a variable (it has a run of 6 digits, or mixes "
                         "lower case, upper case and digits); put the key in a variable and give its name")
    return name


EnvName = Annotated[str, AfterValidator(env_name)]


def base_url_from_env(variable: str, default: str | None) -> str | None:
    """A server URL's default from the environment, refused like --base-url when it holds credentials."""
    import os

    value = os.environ.get(variable) or default
    if value and url_has_credentials(value):
        raise ConfigError(f"${variable}: the URL holds credentials (user:password@ or a key in the query); put the "
                          "key in an environment variable and name it with --api-key-env")
    return value


def no_credentials(url: str | None) -> str | None:
    """A server URL, refused when it carries credentials: they would be sent to logs and proxies and
    land in error messages, where an environment variable keeps them out of everything peerbench writes."""
    if url and url_has_credentials(url):
        raise ValueError("the URL holds credentials (user:password@ or a key in the query); put the key in an "
                         "environment variable and name it with --api-key-env")
    return url


ServerURL = Annotated[str, AfterValidator(no_credentials)]


async def within(awaitable: Any, seconds: float) -> Any:
    """``await awaitable``, raising asyncio.TimeoutError after ``seconds`` in all: an HTTP client's own
    timeout is per read, so a reply dripped slowly would hold a paper indefinitely. asyncio.timeout
    where there is one (3.11+): wait_for there can swallow the run's own cancellation and retry."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


def secret_from_env(name: str) -> str | None:
    """The variable's value, registered so that it is masked wherever it could be printed or stored."""
    import os

    from peerbench.errors import register_secret

    value = os.environ.get(name)
    register_secret(value)
    return value


def is_secret_key(name: str) -> bool:
    """Whether an option key holds a secret value (``*_env`` keys hold a variable's name: not secret)."""
    return not name.lower().endswith("_env") and bool(SECRET_KEY_RE.search(name))


def map_secrets(value: Any, secret: Any, other: Any = None) -> Any:
    """``value`` rebuilt with ``secret(v)`` for every secret-keyed entry's value and ``other(v)`` for
    every other leaf (unchanged by default), at any depth: the one walk behind :func:`redact` (what
    is stored), :func:`fingerprint_secrets` (what is hashed) and :func:`register_option_secrets`."""
    if isinstance(value, dict):
        return {k: secret(v) if is_secret_key(str(k)) else map_secrets(v, secret, other) for k, v in value.items()}
    if isinstance(value, list):
        return [map_secrets(v, secret, other) for v in value]
    return other(value) if other is not None else value


def fingerprint_secrets(value: Any) -> Any:
    """The value with every secret-keyed entry's value replaced by its SHA-256, at any depth.

    What the run identity and the response-cache key hash: two runs that differ only in a
    secret-named ``extra_body`` value (``x_api_key``, ``prompt_cache_key``) send different requests,
    so they must not share a run directory or cached answers; the digest tells them apart without
    putting the value itself anywhere (what is stored or printed goes through :func:`redact`)."""
    return map_secrets(value, _digest_of)


def _digest_of(value: Any) -> Any:
    import hashlib
    import json

    if value is None:
        return None
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def register_option_secrets(value: Any) -> None:
    """Register the value of every secret-keyed option (``-o extra_body='{"x_api_key": ...}'`` too) as a
    known secret: a server that echoes it into a review or an error gets it masked where it is written."""
    from peerbench.errors import register_secret

    def register(inner: Any) -> Any:
        if isinstance(inner, str):
            register_secret(inner)
        else:  # a secret-named object or list: its own secret-named strings, as anywhere else
            map_secrets(inner, register)
        return inner

    map_secrets(value, register)


def redact(value: Any) -> Any:
    """The value with every secret-keyed entry's value masked, at any depth
    (``-o extra_body='{"api_key": ...}'`` too). The key stays, so config.json shows it was set."""
    return map_secrets(value, lambda _: REDACTED, lambda v: scrub(v) if isinstance(v, str) else v)


class BackendOptions(BaseModel):
    """Backend options; unknown names are refused before any work starts.

    An option that has a flag of its own on ``peerbench run`` says so in its field's metadata,
    ``Field(..., json_schema_extra={"flag": "--base-url"})``, so that an error names the flag the
    user typed rather than ``--backend-arg NAME``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def option_flag(options: type[BaseModel], name: str) -> str:
    """The command-line spelling of option ``name``: its declared flag, else ``--backend-arg NAME``."""
    field = options.model_fields.get(name)
    extra = field.json_schema_extra if field is not None else None
    flag = extra.get("flag") if isinstance(extra, dict) else None
    return str(flag) if flag else f"--backend-arg {name}"


@dataclass
class RunContext:
    """What a backend may need before generating: the task, its dataset and selection, and every
    paper of the run's selection (a replay file is matched against all of them, not only those
    still to do, so that an id shared by two papers is caught whichever is left)."""

    task: Any
    dataset: Any = None
    dataset_args: Any = None
    papers: Sequence[Paper] = ()
    task_args: dict[str, Any] | None = None  # the task's own selection, before --split and --ids

    def load_papers(self, **selection: Any) -> list[Paper]:
        """Papers of the task's dataset under another selection, e.g. ``**task.train`` for a
        baseline's training split; with no argument, the task's whole selection (never the run's
        --split, --ids or --limit)."""
        raw = {**(self.task_args if self.task_args is not None else self.task.dataset.args()), **selection}
        raw.pop("ids", None)
        args = self.dataset.parse_args(raw, f"task {self.task.task} ({', '.join(selection) or 'selection'})")
        return self.dataset.load(args, progress=False)


class Backend(ABC):
    """Subclass, set ``name`` and ``Options``, implement :meth:`generate`.

    Declared capabilities (never guessed): ``supports_logprobs``, and :meth:`token_counter` for
    token-aware truncation. ``batch_size`` requests go to one :meth:`generate` call; at most
    ``max_concurrency`` calls run at once per :meth:`connection_key`.

    Declared facts the harness schedules by, so that no part of it names a backend: ``in_process``
    and :meth:`gpus` (how a sweep places the run), :meth:`connection_key` (which runs share a
    concurrency bound), :meth:`retry_policy` and :meth:`classify_error` (the harness's retries).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = BackendOptions
    models: ClassVar[tuple[str, ...] | None] = None
    default_model: ClassVar[str | None] = None
    supports_logprobs: ClassVar[bool] = False
    cacheable: ClassVar[bool] = True
    batch_size: int = 1
    max_concurrency: int = 16
    # Options that change how requests are sent (timeouts, retries), not what comes back: kept in
    # config.json, left out of the run identity and the response-cache key.
    operational_options: ClassVar[frozenset[str]] = frozenset()
    # The task's decision parser, set by the harness before setup: a backend that reads P(accept)
    # from logprobs reads it where this parser reads the decision (peerbench.parsing.decision_match).
    decision_parser: str = "reference"
    # Holds its model in this process (weights, an engine): a local sweep runs such runs one at a
    # time. True unless a backend says otherwise, because two models loaded at once in one process
    # can exhaust a GPU, while an I/O backend run serially is merely slower.
    in_process: ClassVar[bool] = True

    def __init__(self, model: str | None = None, **options: Any):
        model = model or self.default_model
        if model is None:
            raise ConfigError(f"--model: backend {self.name!r} needs a model")
        if self.models is not None and model not in self.models:
            raise UnknownNameError(f"{self.name} model", model, self.models)
        self.model = model
        self.options = validated_options(self.Options, options, f"backend {self.name!r}", option_flag)
        register_option_secrets(self.options.model_dump(mode="json"))

    def token_counter(self) -> TokenCounter | None:
        """A function counting a chat's tokens in the model's own tokenizer, if the backend has one."""
        return None

    async def setup(self, context: RunContext) -> None:
        """Called once before the first request (load weights, train a baseline...)."""

    @abstractmethod
    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One completion per request, in order. Per-paper outcomes that are answers of a kind (a
        safety block) go in ``Completion.error``. A backend with a :meth:`retry_policy` makes one
        attempt and raises on failure: the harness classifies, retries and records it."""

    async def aclose(self) -> None:
        """Release connections, engines or files."""

    def generate_sync(self, requests: list[ChatRequest]) -> list[Completion]:
        """For notebooks and scripts that are not async; with the harness's retries, as in a run."""
        from peerbench.pipeline.dispatch import generate_all

        return asyncio.run(generate_all(self, requests))

    def gpus(self) -> float:
        """GPUs this configuration needs (a Ray sweep reserves them); none unless a backend says so."""
        return 0.0

    def slots(self, per_connection: int) -> int:
        """How many requests the harness lets this backend have in flight, given the bound per
        connection (``--concurrency``, or :attr:`max_concurrency`): that bound, unless the backend
        sends over several connections (peerbench.backends.replicas)."""
        return per_connection

    def connection_key(self) -> str:
        """Requests with the same key share one concurrency bound: a server's URL for HTTP backends,
        so that two runs against one server do not overload it; by default the backend and model."""
        return f"{self.name}:{self.model}"

    def retry_policy(self) -> RetryPolicy | None:
        """None: the backend gets no harness retries, and its requests go in batches of ``batch_size``.
        A policy: each request goes alone through :meth:`generate` and the harness retries what
        :meth:`classify_error` calls transient. By default read from the ``max_retries`` and
        ``retry_backoff`` options, so a backend declares retries by having those options."""
        max_retries = getattr(self.options, "max_retries", None)
        if max_retries is None:
            return None
        return RetryPolicy(int(max_retries), float(getattr(self.options, "retry_backoff", 1.0)))

    def classify_error(self, exc: Exception) -> Failure:
        """Judge one failed attempt: ``Failure(problem, retry=True[, retry_after])`` to try again,
        ``Failure(problem, retry=False)`` to fail this paper, raise BackendError to end the run.
        By default the exception is raised again: an error nobody classified is a bug, not a retry."""
        raise exc

    def describe(self) -> dict[str, Any]:
        """Settings for config.json and the cache key, with anything secret-looking removed."""
        return {"backend": self.name, "model": self.model, "options": redact(self.options.model_dump(mode="json"))}

    def identity(self) -> dict[str, Any]:
        """What decides the completions: describe() less the operational options, with the real
        option values (secret-named ones as their digests, :func:`fingerprint_secrets`), never the
        masked ones: masking before hashing would make two different requests one identity.
        Only ever hashed, never stored."""
        described = self.describe()
        options = fingerprint_secrets(self.options.model_dump(mode="json"))
        described["options"] = {k: v for k, v in options.items() if k not in self.operational_options}
        return described


def create_backend(name: str, model: str | None, options: dict[str, Any]) -> Backend:
    """The backend ``name`` with ``options``; a list of several ``base_url`` makes one per server
    behind one (peerbench.backends.replicas: data parallelism over servers)."""
    from peerbench.registry import registries

    urls = options.get("base_url")
    if isinstance(urls, (list, tuple)):
        if len(urls) > 1:
            from peerbench.backends.replicas import Replicas

            return Replicas.create(name, model, {k: v for k, v in options.items() if k != "base_url"}, list(urls))
        options = {k: v for k, v in options.items() if k != "base_url"} | ({"base_url": urls[0]} if urls else {})
    entry = registries().backends.get(name)
    return entry.value(model, **options)
