"""Stage 4 for multi-call protocols: each paper's protocol runs as one task, and every call it
makes is a cached, retried, bounded request.

A call's cache key is the one-call path's scheme (backend identity + generation settings + the
messages' hash; ``n`` joins it when several choices are asked for), so a call is looked up before
it is sent and its answer is stored the moment it lands: a run killed between two calls of a
paper resumes sending only the calls not yet answered. Calls of all papers share the connection's
semaphore and retry driver (:mod:`peerbench.pipeline.dispatch`), so papers overlap up to
``--concurrency`` in flight, and a paper waits only where its protocol needs the previous answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from peerbench.pipeline.dispatch import connection_semaphore, run_all, send_batch, send_retried
from peerbench.pipeline.prepare import Item, build_sample
from peerbench.pipeline.store import stable_hash
from peerbench.protocols import CallFailed, PaperPrompt, Protocol
from peerbench.records import ChatRequest, Completion
from peerbench.thinking import settle_reply

SETTINGS = ("max_tokens", "temperature", "top_p", "seed")


def call_key(described: dict[str, Any], generation: Any, digest: str, n: int = 1) -> str:
    """The response-cache key of one call (``digest``: the messages' stable_hash): the one-call
    path's key for the same request."""
    parts: dict[str, Any] = {"backend": described, "generation": generation.to_dict(), "messages_sha256": digest}
    if n > 1:
        parts["n"] = n
    return stable_hash(parts)


def choices_of(completion: Completion, n: int) -> list[Completion]:
    """The n choices of one answered request (a backend puts choices 2..n in ``extra["choices"]``)."""
    if n == 1:
        return [completion]
    return [Completion.from_dict(choice) for choice in completion.extra.get("choices", [])]


def with_choices(completion: Completion, choices: list[Completion]) -> Completion:
    """The request's completion carrying its settled choices, as the cache stores it."""
    if len(choices) == 1 and "choices" not in completion.extra:
        return choices[0]
    first = choices[0]
    return dataclasses.replace(first, prompt_tokens=completion.prompt_tokens,
                               completion_tokens=completion.completion_tokens,
                               extra={**first.extra, "choices": [c.to_dict() for c in choices]})


class CallHarness:
    """What every paper's ``call`` shares: the backend, the cache, the bound and the retry policy."""

    def __init__(self, backend: Any, cache: Any, described: dict[str, Any], concurrency: int | None):
        self.backend, self.cache, self.described = backend, cache, described
        self.size = backend.slots(concurrency or backend.max_concurrency)  # per connection, times connections
        self.semaphore = connection_semaphore(backend.connection_key(), self.size)
        self.policy = backend.retry_policy()
        self.model_label = f"{backend.name}:{backend.model}"

    async def send(self, request: ChatRequest) -> tuple[Completion, float]:
        if self.policy is not None:
            return await send_retried(self.backend, request, self.semaphore, self.policy)
        started: list[float] = []
        completion = (await send_batch(self.backend, [request], self.semaphore, started))[0]
        return completion, time.perf_counter() - started[0]

    def store(self, key: str, completion: Completion) -> None:
        if self.cache is None:
            return
        from peerbench.pipeline.store import warn
        from peerbench.errors import ConfigError

        try:
            self.cache.put(key, completion.to_dict(), self.model_label)
        except ConfigError as exc:  # a full disk, say: the run goes on uncached
            warn(f"{exc}; this run goes on without it")
            self.cache = None


class PaperCalls:
    """One paper's ``call``: looks each request up, else sends it; records every call in ``trace``."""

    def __init__(self, harness: CallHarness, item: Item):
        self.harness, self.item = harness, item
        self.trace: list[dict[str, Any]] = []

    async def __call__(self, messages: list[dict[str, str]], *, n: int = 1, label: str = "",
                       **settings: Any) -> list[Completion]:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown or n < 1:
            raise TypeError(f"call(): unknown settings {unknown}" if unknown else f"call(): n must be >= 1, got {n}")
        generation = dataclasses.replace(self.item.request.generation, **settings)
        prepared = messages is self.item.request.messages and self.item.prompt_digest
        digest = prepared or stable_hash(messages)  # the ~50 KB prompt is hashed once per paper, not per call
        messages = [dict(message) for message in messages]  # as at the call: the protocol may extend its list
        if n > 1 and not getattr(self.harness.backend, "supports_choices", False):
            seed = generation.seed or 0
            answers = await asyncio.gather(*(self.one(messages, digest, dataclasses.replace(generation, seed=seed + i),
                                                      1, f"{label} {i + 1}/{n}".strip()) for i in range(n)))
            return [answer[0] for answer in answers]
        return await self.one(messages, digest, generation, n, label)

    async def one(self, messages: list[dict[str, str]], digest: str, generation: Any, n: int,
                  label: str) -> list[Completion]:
        harness = self.harness
        key = call_key(harness.described, generation, digest, n)
        entry: dict[str, Any] = {"label": label, "messages_sha256": digest[:16],
                                 "settings": {**generation.to_dict(), "n": n}}
        hit = harness.cache.get(key) if harness.cache is not None else None
        if hit is not None:
            completion, latency, cached = Completion.from_dict(hit), 0.0, True
            choices = choices_of(completion, n)
        else:
            request = ChatRequest(self.item.paper.key, messages, generation, logprobs=harness.backend.supports_logprobs,
                                  meta={"paper_id": self.item.paper.id, "venue": self.item.paper.venue, "call": label},
                                  paper=self.item.paper, n=n)
            completion, latency = await harness.send(request)
            choices = [settle_reply(c, generation.max_tokens) for c in choices_of(completion, n)] \
                if not completion.error else [completion]
            cached = False
        self.trace.append({**entry, **usage_of(completion), "latency_s": round(latency, 6), "cached": cached,
                           "replies": [reply_of(c) for c in choices]})
        problem = next((c.error for c in choices if c.error), None)
        if problem is None and len(choices) != n:
            problem = f"the backend gave {len(choices)} choices for n={n}"
        if problem is not None:
            raise CallFailed(f"call {len(self.trace)} ({label or 'unnamed'}): {problem}")
        if not cached:
            harness.store(key, with_choices(completion, choices))
        return choices


def usage_of(completion: Completion) -> dict[str, Any]:
    return {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "thinking_tokens": completion.extra.get("thinking_tokens")}


def reply_of(completion: Completion) -> dict[str, Any]:
    reply = {"text": completion.text, "finish_reason": completion.finish_reason}
    if completion.error:
        reply["error"] = completion.error
    if completion.extra.get("reasoning"):
        reply["reasoning"] = completion.extra["reasoning"]
    return reply


def paper_completion(protocol: Protocol, review: Any, trace: list[dict[str, Any]], error: str | None) -> Completion:
    """The sample's completion: the final review (or the failure), the calls' tokens added up."""
    def total(name: str) -> int | None:
        values = [entry[name] for entry in trace if entry.get(name) is not None]
        return sum(values) if values else None

    extra = {"protocol": protocol.name, "calls": len(trace)}
    if total("thinking_tokens") is not None:
        extra["thinking_tokens"] = total("thinking_tokens")
    last = trace[-1]["replies"][0] if trace and trace[-1]["replies"] else {}
    if error is not None:
        return Completion(error=error, prompt_tokens=total("prompt_tokens"),
                          completion_tokens=total("completion_tokens"), extra=extra)
    return Completion(text=review.text, p_accept=review.p_accept, finish_reason=last.get("finish_reason"),
                      prompt_tokens=total("prompt_tokens"), completion_tokens=total("completion_tokens"),
                      extra={**review.extra, **extra})


async def run_protocol(protocol: Protocol, harness: CallHarness, items: Sequence[Item], parser: str,
                       store_prompts: bool, on_sample: Any) -> None:
    """Every paper's protocol, papers overlapping (at most twice the bound in progress at once, so
    that finished papers are stored early and the slots stay full); each sample handed on as it ends."""
    from peerbench.parsing import parse_decision

    papers_open = asyncio.Semaphore(2 * max(1, harness.size))

    async def one_paper(item: Item) -> None:
        async with papers_open:
            calls = PaperCalls(harness, item)
            prompt = PaperPrompt(item.paper, item.request.messages, item.request.generation, parser,
                                 lambda text: parse_decision(text, parser))
            started = time.perf_counter()
            review, error = None, None
            try:
                review = await protocol.review(prompt, calls)
            except CallFailed as exc:
                error = str(exc)
            wall = time.perf_counter() - started
            completion = paper_completion(protocol, review, calls.trace, error)
            completion.extra["wall_s"] = round(wall, 6)
            cached = bool(calls.trace) and all(entry["cached"] for entry in calls.trace)
            sample = build_sample(item, completion, wall, cached, parser, store_prompts)
            sample.trace = calls.trace
            on_sample(sample)

    await run_all([one_paper(item) for item in items])
