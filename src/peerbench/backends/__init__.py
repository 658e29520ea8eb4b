"""The backend interface. A backend turns chat requests into completions; the runner owns
batching, concurrency, caching and storage, so a backend only has to talk to its model."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from peerbench.errors import ConfigError, UnknownNameError
from peerbench.prompts import TokenCounter
from peerbench.records import ChatRequest, Completion, Paper

SECRET_WORDS = ("key", "token", "secret", "password", "credential")
# Options that have a flag of their own on `peerbench run`, so errors name the flag the user typed.
OPTION_FLAGS = {"base_url": "--base-url", "api_key_env": "--api-key-env", "lora": "--lora", "project": "--project",
                "location": "--location", "thinking_budget": "--thinking-budget"}


def redact(value: Any) -> Any:
    """Drop every mapping key that looks secret, at any depth (``-o extra_body='{"api_key": ...}'`` too).

    ``*_env`` keys hold the name of a variable, not its value, and are kept."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()
                if k.lower().endswith("_env") or not any(w in k.lower() for w in SECRET_WORDS)}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class BackendOptions(BaseModel):
    """Backend options; unknown names are refused before any work starts."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class RunContext:
    """What a backend may need before generating: the task, its dataset and selection, and every
    paper of the run's selection (a replay file is matched against all of them, not only those
    still to do, so that an id shared by two papers is caught whichever is left)."""

    task: Any
    dataset: Any = None
    dataset_args: Any = None
    papers: Sequence[Paper] = ()

    def load_papers(self, **selection: Any) -> list[Paper]:
        """Papers of the task's dataset under another selection, e.g. ``**task.train`` for a
        baseline's training split (never the run's ids)."""
        raw = {**self.task.dataset.args(), **selection}
        raw.pop("ids", None)
        args = self.dataset.parse_args(raw, f"task {self.task.task} ({', '.join(selection) or 'selection'})")
        return self.dataset.load(args, progress=False)


class Backend(ABC):
    """Subclass, set ``name`` and ``Options``, implement :meth:`generate`.

    Declared capabilities (never guessed): ``supports_logprobs``, and :meth:`token_counter` for
    token-aware truncation. ``batch_size`` requests go to one :meth:`generate` call; at most
    ``max_concurrency`` calls run at once.
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

    def __init__(self, model: str | None = None, **options: Any):
        model = model or self.default_model
        if model is None:
            raise ConfigError(f"--model: backend {self.name!r} needs a model")
        if self.models is not None and model not in self.models:
            raise UnknownNameError(f"{self.name} model", model, self.models)
        self.model = model
        try:
            self.options = self.Options(**options)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            valid = ", ".join(self.Options.model_fields) or "none"
            flag = OPTION_FLAGS.get(field, f"--backend-arg {field}")
            raise ConfigError(f"{flag}: {err['msg']} (backend {self.name!r} takes: {valid})") from None

    def token_counter(self) -> TokenCounter | None:
        """A function counting a chat's tokens in the model's own tokenizer, if the backend has one."""
        return None

    async def setup(self, context: RunContext) -> None:
        """Called once before the first request (load weights, train a baseline...)."""

    @abstractmethod
    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One completion per request, in order. Per-paper failures go in ``Completion.error``."""

    async def aclose(self) -> None:
        """Release connections, engines or files."""

    def generate_sync(self, requests: list[ChatRequest]) -> list[Completion]:
        """For notebooks and scripts that are not async."""
        return asyncio.run(self.generate(requests))

    def describe(self) -> dict[str, Any]:
        """Settings for config.json and the cache key, with anything secret-looking removed."""
        return {"backend": self.name, "model": self.model, "options": redact(self.options.model_dump(mode="json"))}

    def identity(self) -> dict[str, Any]:
        """What decides the completions: describe() less the operational options."""
        described = self.describe()
        described["options"] = {k: v for k, v in described["options"].items() if k not in self.operational_options}
        return described


def create_backend(name: str, model: str | None, options: dict[str, Any]) -> Backend:
    from peerbench.registry import registries

    entry = registries().backends.get(name)
    return entry.value(model, **options)
