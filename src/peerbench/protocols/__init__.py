"""Reviewer protocols: how a reviewer turns one paper into one review through one or more calls.

A protocol is inspect_ai's solver shape with peerbench's guarantees: it receives the paper's
prepared prompt (:class:`PaperPrompt`) and a ``call`` that the harness provides, and awaits
``call`` as often as it likes. The protocol never sees a client, a cache or a semaphore: every
call is the pipeline's cached, retried, resumable request, bounded by ``--concurrency`` together
with every other paper's calls, and recorded in the sample's trace.

``call(messages, *, n=1, label="", **settings) -> list[Completion]``: ``n`` choices of one
request (a backend that cannot give several choices gets ``n`` requests, seeds ``seed+i``);
``settings`` override the task's generation settings (``temperature``, ``max_tokens``, ``top_p``,
``seed``); ``label`` names the call in the trace. A call that gets no answer raises
:class:`CallFailed`: the paper is FAILED and a rerun asks for exactly the calls not yet answered.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol as _Protocol

from pydantic import BaseModel, ConfigDict

from peerbench.errors import PeerbenchError, validated_options
from peerbench.records import Completion, Decision, GenerationConfig, Paper

__all__ = ["Call", "CallFailed", "PaperPrompt", "Protocol", "ProtocolOptions", "Review", "create_protocol",
           "option_spelling"]


class CallFailed(PeerbenchError):
    """A protocol's call got no answer (after the harness's retries): the paper is FAILED."""


class Call(_Protocol):
    """The ``call`` a protocol awaits; see the module docstring."""

    def __call__(self, messages: list[dict[str, str]], *, n: int = 1, label: str = "",
                 **settings: Any) -> Awaitable[list[Completion]]: ...


@dataclass(frozen=True)
class PaperPrompt:
    """What a protocol gets for one paper: the task's prompt as prepared for it (rendered and
    truncated to fit), the task's generation settings, and the task's decision parser."""

    paper: Paper
    messages: list[dict[str, str]]
    generation: GenerationConfig
    parser: str
    decide: Callable[[str], Decision] = field(repr=False, default=lambda text: Decision.UNPARSED)


@dataclass
class Review:
    """A protocol's result: the final review's text (parsed by the task's parser), a P(accept)
    where the protocol has one, and details to keep with the sample (``extra``)."""

    text: str
    p_accept: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProtocolOptions(BaseModel):
    """A protocol's options; unknown names are refused before any work starts. An option with a
    flag of its own on ``peerbench run`` declares it: ``Field(..., json_schema_extra={"flag": "--x"})``."""

    model_config = ConfigDict(extra="forbid")


def option_spelling(options: type[BaseModel], name: str) -> str:
    """How the user sets option ``name``: its flag, else ``-o NAME=VALUE``."""
    info = options.model_fields.get(name)
    extra = info.json_schema_extra if info is not None else None
    flag = extra.get("flag") if isinstance(extra, dict) else None
    return str(flag) if flag else f"-o {name}"


class Protocol(ABC):
    """Subclass, set ``name`` and ``Options``, implement :meth:`review`.

    A protocol whose calls are k independent requests of the prepared prompt (``single``,
    ``self-consistency``) says so with :meth:`independent_samples`; the harness then sends them
    through its batched one-call path, whose samples are those of ``--samples k``."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = ProtocolOptions

    def __init__(self, **options: Any):
        self.options = validated_options(self.Options, options, f"protocol {self.name!r}", option_spelling)

    def check(self, task: Any) -> None:
        """Refuse, with a ConfigError, a task this protocol cannot review (called by the plan)."""

    async def setup(self, context: Any) -> None:
        """Called once before the first call, with the backends' :class:`~peerbench.RunContext`."""

    @abstractmethod
    async def review(self, prompt: PaperPrompt, call: Call) -> Review:
        """One paper's review, from as many calls as the protocol needs."""

    def independent_samples(self) -> int | None:
        """k when every call is one of k independent requests of the prepared prompt, else None."""
        return None

    def identity(self) -> dict[str, Any]:
        """What decides the reviews: the name and every option (in the run identity)."""
        return {"name": self.name, "options": self.options.model_dump(mode="json")}

    def calls_per_paper(self) -> str:
        """The number of calls one paper takes, in words, for ``peerbench protocols``."""
        return ""


def create_protocol(name: str, options: dict[str, Any]) -> Protocol:
    from peerbench.registry import registries

    return registries().protocols.get(name).value(**options)
