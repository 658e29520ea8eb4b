"""An example peerbench plugin: one backend and one model preset, using only ``import peerbench``.

The 'echo' backend writes a short review of ``request.paper`` and ends it with the decision its
options choose. It counts whitespace-separated words as tokens, so peerbench truncates bodies in
"model" tokens, and its ``delay`` option is operational: changing it keeps the run and the cache.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Literal

import peerbench


class EchoOptions(peerbench.BackendOptions):  # unknown -o keys are refused before any work
    decision: Literal["accept", "reject", "alternate", "none"] = "accept"
    delay: float = 0.0


class EchoBackend(peerbench.Backend):
    name = "echo"
    Options = EchoOptions
    default_model = "echo"
    operational_options = frozenset({"delay"})  # how requests are sent, not what comes back

    def __init__(self, model: str | None = None, **options):
        super().__init__(model, **options)
        self.turns = itertools.count()

    def token_counter(self):
        return lambda messages: sum(len(m["content"].split()) for m in messages)

    async def generate(self, requests: list[peerbench.ChatRequest]) -> list[peerbench.Completion]:
        return [await self.review(request) for request in requests]

    async def review(self, request: peerbench.ChatRequest) -> peerbench.Completion:
        await asyncio.sleep(self.options.delay)
        choice = self.options.decision
        if choice == "alternate":
            choice = "reject" if next(self.turns) % 2 else "accept"
        last = "" if choice == "none" else peerbench.decision_line(choice == "accept")
        text = f"## Summary\nA paper titled {request.paper.title}.\n\n## Final Recommendation\n{last}"
        return peerbench.Completion(text=text, prompt_tokens=len(request.user_text.split()),
                                    completion_tokens=len(text.split()), finish_reason="stop")


@peerbench.hookimpl
def register_backends(register):
    register("echo", EchoBackend, description="example plugin: echoes the title, fixed decision")


@peerbench.hookimpl
def register_models(register):
    register("echo-reject", backend="echo", model="echo", options={"decision": "reject"},
             description="the echo backend, always rejecting")
