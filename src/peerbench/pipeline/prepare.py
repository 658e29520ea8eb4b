"""Stage 2, prepare: each paper's prompt (rendered once, truncated to fit), gold labels, prompt
hash and response-cache key, and the sample that records its answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from peerbench.echo import Echo, find_echo, prompt_text, without_echo
from peerbench.errors import scrub
from peerbench.labels import LabelRule
from peerbench.parsing import decision_match, parse_decision
from peerbench.pipeline.store import stable_hash
from peerbench.prompts import BodyInsert, RenderedPrompt, TokenCounter, render
from peerbench.ratings import rating_scale_for, read_rating
from peerbench.records import ChatRequest, Completion, Decision, Paper, Sample
from peerbench.task import Task


@dataclass
class Item:
    """One request to send: a paper's prompt, and which of its k generations this is."""

    paper: Paper
    request: ChatRequest
    rendered: RenderedPrompt
    golds: dict[str, bool | None]
    key: str            # the response-cache key: the request as sent
    prompt_hash: str
    index: int = 0
    paper_hash: str | None = None
    rating_scale: tuple[int, int] | None = None  # where the prompt asks for the venue's overall rating
    prompt_digest: str | None = None  # the messages' full hash (a protocol's first call reuses it)


def prepare(task: Task, backend: Any, papers: Sequence[Paper], counter: TokenCounter | None,
            rules: dict[str, LabelRule], samples_per_paper: int,
            paper_hashes: dict[str, str] | None = None, weights: dict[str, str] | None = None,
            insert: BodyInsert | None = None) -> list[Item]:
    """Render every prompt once (token-aware when the backend counts) and key each request for the cache:
    the key is the request as sent (backend identity, local weights, generation settings, messages)."""
    template = task.prompt_template()
    rating_scale = rating_scale_for(template.name, task.parser)
    generation = task.generation_config()
    described = {**backend.identity(), "weights": weights} if weights else backend.identity()
    # Each of k generations gets its own seed, so they differ and each has its own cache entry.
    configs = [generation] if samples_per_paper == 1 else [
        dataclasses.replace(generation, seed=(generation.seed or 0) + index) for index in range(samples_per_paper)]
    settings = [config.to_dict() for config in configs]  # once per call, not once per paper
    items = []
    for paper in papers:
        rendered = render(paper, template, max_model_len=task.max_model_len, max_tokens=generation.max_tokens,
                          count_tokens=counter, insert=insert)
        golds = {name: rule.label(paper) for name, rule in rules.items()}
        # The ~50 KB prompt is hashed once: the cache keys of its k requests hash this digest instead.
        prompt_digest = stable_hash(rendered.messages)
        prompt_hash = prompt_digest[:16]
        paper_hash = (paper_hashes or {}).get(paper.key) or paper.content_hash()
        for index, (config, setting) in enumerate(zip(configs, settings)):
            request = ChatRequest(paper.key, rendered.messages, config, logprobs=backend.supports_logprobs,
                                  meta={"paper_id": paper.id, "venue": paper.venue, "sample_index": index},
                                  paper=paper)
            key = stable_hash({"backend": described, "generation": setting, "messages_sha256": prompt_digest})
            items.append(Item(paper, request, rendered, golds, key, prompt_hash, index, paper_hash, rating_scale,
                              prompt_digest))
    return items


def build_sample(item: Item, completion: Completion, latency: float, cached: bool, parser: str,
                 store_prompt: bool = False) -> Sample:
    """The stored record of one paper's answer; a failed request is FAILED, never parsed. What the
    review echoed of its prompt is recorded and blanked first: the decision and the rating are
    read from the model's own words only (peerbench.echo)."""
    paper = item.paper
    echo = None if completion.error else find_echo(completion.text, prompt_text(item.request.messages))
    own_text = without_echo(completion.text, echo)
    decision = Decision.FAILED if completion.error else parse_decision(own_text, parser)
    scale = item.rating_scale
    return Sample(
        id=paper.key, paper_id=paper.id, venue=paper.venue, split=paper.split, title=paper.title,
        gold=item.golds, accepted=paper.accepted, mean_recommendation=paper.mean_recommendation,
        prompt_hash=item.prompt_hash, truncation=item.rendered.truncation,
        completion=completion.text, decision=decision.value, p_accept=_own_p_accept(completion, echo, parser),
        error=scrub(completion.error) if completion.error else None, finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
        latency_s=round(latency, 6), cached=cached, extra=dict(completion.extra or {}),
        messages=item.request.messages if store_prompt else None, paper_hash=item.paper_hash,
        recommendations=list(paper.recommendations) or None, rating_scale=list(scale) if scale else None,
        rating=read_rating(own_text, scale, parser) if scale and not completion.error else None,
        echo=_echo_record(echo, completion.text, decision, parser))


def _echo_record(echo: Echo | None, text: str, decision: Decision, parser: str) -> dict[str, Any] | None:
    """The echo as stored, with the decision the whole text would have given: where it differs from
    the sample's, a decision line stood in the copied words (the case the echo rule exists for)."""
    if echo is None:
        return None
    return {**echo.to_json(), "whole_text_decision": parse_decision(text, parser).value}


def _own_p_accept(completion: Completion, echo: Echo | None, parser: str) -> float | None:
    """P(accept) from logprobs is read at the review's last decision line; where that line is in an
    echoed stretch, it is the prompt's line, not the model's, and there is no P(accept). (A share of
    k samples is already counted on each generation's own words: collect.combine_generations.)"""
    if echo is None or completion.p_accept is None or "samples" in (completion.extra or {}):
        return completion.p_accept
    match = decision_match(completion.text, parser)
    inside = match is not None and any(start <= match.start() < end for start, end in echo.spans)
    return None if inside else completion.p_accept
