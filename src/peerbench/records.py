"""The plain records that flow through a run: papers in, requests out, completions back, samples stored."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Decision(str, enum.Enum):
    """What a review decided. AMBIGUOUS: both decision lines in its final part. UNPARSED: no
    decision line. FAILED: no review at all (the request failed); never scored."""

    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    AMBIGUOUS = "AMBIGUOUS"
    UNPARSED = "UNPARSED"
    FAILED = "FAILED"

    @property
    def decided(self) -> bool:
        """ACCEPT or REJECT: a usable decision."""
        return self in (Decision.ACCEPT, Decision.REJECT)

    @classmethod
    def of(cls, accept: bool) -> Decision:
        """The decision a gold label (or a prediction) stands for."""
        return cls.ACCEPT if accept else cls.REJECT


@dataclass(frozen=True)
class Section:
    heading: str | None
    text: str


@dataclass
class Paper:
    """One input document plus what its dataset knows about it (never shown to the model)."""

    id: str
    venue: str
    title: str
    abstract: str
    sections: list[Section]
    split: str = ""
    accepted: bool | None = None
    recommendations: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique across venues and splits: PeerRead ids repeat between venues."""
        return f"{self.venue}/{self.split}/{self.id}" if self.split else f"{self.venue}/{self.id}"

    def content_hash(self) -> str:
        """What of the paper can reach a prompt (id, venue, split, title, abstract, sections): a stored
        answer is resumed only for a paper whose content hash is unchanged."""
        import hashlib
        import json

        content = [self.id, self.venue, self.split, self.title, self.abstract,
                   [[section.heading, section.text] for section in self.sections]]
        # surrogatepass: a lone surrogate from a dataset hashes instead of failing; valid text hashes as before
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @property
    def mean_recommendation(self) -> float | None:
        if not self.recommendations:
            return None
        return sum(self.recommendations) / len(self.recommendations)


@dataclass
class GenerationConfig:
    max_tokens: int = 1400
    temperature: float = 0.2
    top_p: float = 0.9
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChatRequest:
    """What a backend receives: chat messages plus sampling settings, keyed by sample id."""

    id: str
    messages: list[dict[str, str]]
    generation: GenerationConfig
    logprobs: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    # The paper behind the prompt, so a backend never has to parse it back out of the text.
    paper: Paper | None = None
    # Choices asked for (a protocol's ensemble): a backend that ``supports_choices`` returns choice 1
    # as the completion and all n in ``extra["choices"]``; others never see n > 1.
    n: int = 1

    @property
    def user_text(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages if m["role"] == "user")


@dataclass
class Completion:
    """What a backend returns for one request. ``error`` set means this paper failed."""

    text: str = ""
    p_accept: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Sample:
    """One line of a run's samples.jsonl: everything known about one paper's review.

    Built by the run as a typed record and stored as JSON (``to_json``); ``from_json`` reads a
    stored line back, keeping keys it does not know (lines written by newer versions) in ``extra``.
    """

    id: str                                  # venue/split/paper_id, unique within a task
    paper_id: str
    venue: str
    split: str
    title: str
    gold: dict[str, bool | None]             # label rule -> gold decision (None: unknown)
    accepted: bool | None
    mean_recommendation: float | None
    prompt_hash: str
    truncation: dict[str, Any]               # method (tokens/chars) and how much of the body was cut
    completion: str
    decision: str                            # a Decision value
    p_accept: float | None = None
    error: str | None = None                 # set when the request failed: then decision is FAILED
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    cached: bool = False                     # served from the response cache
    extra: dict[str, Any] = field(default_factory=dict)  # backend details: tries taken, logprob mass...
    messages: list[dict[str, str]] | None = None         # the prompt, only with --store-prompts
    paper_hash: str | None = None            # the paper's content (title, abstract, sections) it answered
    recommendations: list[float] | None = None  # every human reviewer's rating (the human ceiling's input)
    rating_scale: list[int] | None = None    # [low, high] where the prompt asked for a rating, else None
    rating: float | None = None              # the review's parsed overall rating (None: no rating line)
    echo: dict[str, Any] | None = None       # stretches copied from the prompt (peerbench.echo), never parsed
    trace: list[dict[str, Any]] | None = None  # a multi-call protocol's calls, in the order they ended

    def to_json(self) -> dict[str, Any]:
        """The stored line: ``extra``, ``messages``, ``recommendations``, ``echo`` and ``trace`` only
        when they hold something, ``rating`` only where the prompt asked for one."""
        # shallow (dataclasses.asdict deep-copies every nested dict and list: a third of a run's
        # time at 20,000 papers); the line is written out at once and the record dropped
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for optional in ("extra", "messages", "recommendations", "echo", "trace"):
            if not data[optional]:
                del data[optional]
        if data["rating_scale"] is None:
            del data["rating_scale"], data["rating"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = {k: v for k, v in data.items() if k not in cls.__dataclass_fields__}
        sample = cls(**known)
        if unknown:
            sample.extra = {**sample.extra, "unknown_fields": unknown}
        return sample
