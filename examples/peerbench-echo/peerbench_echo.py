"""An example third-party peerbench plugin: one backend and one model preset.

The backend 'echo' writes a short review that repeats the paper's title and ends with a decision
chosen by its options. It counts tokens as whitespace-separated words, which shows how a backend
declares a token counter so that peerbench truncates bodies in "model" tokens.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import peerbench
from peerbench.backends import Backend, BackendOptions
from peerbench.parsing import decision_line


class EchoOptions(BackendOptions):
    decision: Literal["accept", "reject", "alternate", "none"] = "accept"
    delay: float = 0.0


class EchoBackend(Backend):
    name = "echo"
    Options = EchoOptions
    default_model = "echo"
    batch_size = 1
    max_concurrency = 4

    def __init__(self, model=None, **options):
        super().__init__(model, **options)
        self.calls = 0

    def token_counter(self):
        return lambda messages: sum(len(m["content"].split()) for m in messages)

    async def generate(self, requests):
        out = []
        for request in requests:
            if self.options.delay:
                await asyncio.sleep(self.options.delay)
            self.calls += 1
            title = request.user_text.split("Title: ", 1)[-1].split("\n", 1)[0]
            choice = self.options.decision
            if choice == "alternate":
                choice = "accept" if self.calls % 2 else "reject"
            last = "" if choice == "none" else decision_line(choice == "accept")
            words = len(request.user_text.split())
            out.append(peerbench.Completion(text=f"## Summary\nA paper titled {title}.\n\n## Final Recommendation\n{last}",
                                            prompt_tokens=words, completion_tokens=12, finish_reason="stop"))
        return out


@peerbench.hookimpl
def register_backends(register):
    register("echo", EchoBackend, description="example plugin: echoes the title, fixed decision")


@peerbench.hookimpl
def register_models(register):
    register("echo-reject", backend="echo", model="echo", options={"decision": "reject"},
             description="the echo backend, always rejecting")
