"""The judge's requests: rendered from the packaged prompts, keyed for the response cache by the
request as sent (the judge backend's identity, the generation settings, the messages).

Matching is where a judge's position bias would show (the first list favoured, or its first
points): each match request shows its two lists in an order, and each list's points in an order,
drawn from a seed that is the hash of the two lists. The draw is fixed by the content, so the
same request is asked again on a rerun (and served by the cache), and the answer is mapped back
to the points' own numbers before anything is counted.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from peerbench.judging import prompts
from peerbench.pipeline.store import stable_hash
from peerbench.records import ChatRequest, GenerationConfig


@dataclass
class JudgeItem:
    """One judge request (what dispatch sends: ``request`` and ``key``) and how to read its answer."""

    kind: str                      # extract | match | aspects
    key: str
    request: ChatRequest
    order: dict[str, Any] = field(default_factory=dict)  # match: swapped lists and the shown orders


@dataclass(frozen=True)
class RequestMaker:
    """Builds the judge's requests from its identity and settings."""

    identity: dict[str, Any]       # the judge backend's identity (hashed, never stored)
    generation: GenerationConfig
    max_points: int
    paper_chars: int

    def _item(self, kind: str, messages: list[dict[str, str]], generation: GenerationConfig | None = None,
              order: dict[str, Any] | None = None) -> JudgeItem:
        config = generation or self.generation
        key = stable_hash({"backend": self.identity, "generation": config.to_dict(), "messages": messages})
        return JudgeItem(kind, key, ChatRequest(f"judge:{kind}:{key[:12]}", messages, config), order or {})

    def extract(self, review: str) -> JudgeItem:
        return self._item("extract", prompts.render("extract", review=review.strip(), max_points=self.max_points))

    def aspects(self, review: str, paper_text: str, repeat: bool = False) -> JudgeItem:
        """The rubric request; ``repeat`` asks it again with the next seed (the judge's self-agreement)."""
        generation = None
        if repeat:
            generation = dataclasses.replace(self.generation, seed=(self.generation.seed or 0) + 1)
        return self._item("aspects", prompts.render("aspects", review=review.strip(),
                                                    paper=paper_text[: self.paper_chars]), generation)

    def match(self, points_a: list[str], points_b: list[str]) -> JudgeItem:
        """Points A against points B, shown in an order drawn from the two lists themselves."""
        rng = random.Random(stable_hash([points_a, points_b]))
        swapped = rng.random() < 0.5
        order_a = rng.sample(range(len(points_a)), len(points_a))
        order_b = rng.sample(range(len(points_b)), len(points_b))
        first, second = ((points_b, order_b), (points_a, order_a)) if swapped else ((points_a, order_a),
                                                                                   (points_b, order_b))
        messages = prompts.render("match", list_a=numbered(*first), list_b=numbered(*second))
        return self._item("match", messages, order={"swapped": swapped, "order_a": order_a, "order_b": order_b})


def numbered(points: list[str], order: list[int]) -> str:
    return "\n".join(f"{shown}. {points[index]}" for shown, index in enumerate(order, 1))


def unshuffle(order: dict[str, Any], shown: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    """Matched indices as shown (first list, second list) -> matched indices of A and of B, as given."""
    first, second = shown
    if order["swapped"]:
        first, second = second, first
    return (sorted(order["order_a"][i] for i in first), sorted(order["order_b"][i] for i in second))
