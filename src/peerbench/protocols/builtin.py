"""The one-call protocols: ``single`` (one request per paper, the default) and ``self-consistency``
(k independent requests of the same prompt, seeds seed..seed+k-1; the review scored is the first,
P(accept) is the share of the k that accept: what ``--samples k`` does, and the same run).

Both declare :meth:`~peerbench.protocols.Protocol.independent_samples`, so the harness sends
their requests through its batched one-call path; :meth:`review` says the same in protocol terms,
for a reader and for a caller that drives a protocol itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from peerbench.hookspecs import hookimpl
from peerbench.protocols import Call, PaperPrompt, Protocol, ProtocolOptions, Review


class Single(Protocol):
    name = "single"

    async def review(self, prompt: PaperPrompt, call: Call) -> Review:
        reply = (await call(prompt.messages, label="review"))[0]
        return Review(reply.text, reply.p_accept)

    def independent_samples(self) -> int:
        return 1

    def calls_per_paper(self) -> str:
        return "1"


class SelfConsistencyOptions(ProtocolOptions):
    samples: int = Field(5, ge=2, description="independent generations per paper (seeds seed..seed+k-1)")


class SelfConsistency(Protocol):
    name = "self-consistency"
    Options = SelfConsistencyOptions

    async def review(self, prompt: PaperPrompt, call: Call) -> Review:
        from peerbench.pipeline.collect import combine_generations

        seed = prompt.generation.seed or 0
        replies = [(await call(prompt.messages, label=f"sample {i + 1}", seed=seed + i))[0]
                   for i in range(self.options.samples)]
        combined = combine_generations(replies, prompt.parser)
        return Review(combined.text, combined.p_accept, dict(combined.extra))

    def independent_samples(self) -> int:
        return self.options.samples

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "options": {"samples": self.options.samples}}

    def calls_per_paper(self) -> str:
        return "samples (default 5)"


@hookimpl
def register_protocols(register):
    register("single", Single, description="one request per paper (the default; the published protocol)")
    register("self-consistency", SelfConsistency,
             description="k independent requests; P(accept) = share of ACCEPT (what --samples k does)")
