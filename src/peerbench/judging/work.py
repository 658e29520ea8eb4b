"""What the judge asks about one paper, and the paper's line of ``samples.jsonl`` from the answers.

The work is in two steps. First, for every review of the paper (the model's and each human's):
its key criticisms (points), and its rubric grades (aspects); for a sample of papers the model's
rubric request is asked once more with another seed (self-agreement). Second, from the points:
the model's against each human's, each human's against each other's (the leave-one-out ceiling),
and the model's against the human reviews of another paper (the shuffle control).

A line is rebuilt from the stored answers alone, so a killed judgement resumes by rebuilding it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from peerbench.judging import parse
from peerbench.judging.requests import JudgeItem, RequestMaker, unshuffle
from peerbench.pipeline.store import stable_hash

Answers = Mapping[str, dict[str, Any]]  # cache key -> a stored answer ({"text": ...})


@dataclass
class PaperWork:
    """One judged paper: the model's review, the human reviews (texts, and their own numbers where
    the data has them), the text of the paper, and the paper whose human reviews the shuffle uses."""

    key: str
    venue: str
    title: str
    review: str
    humans: list[str]
    ratings: list[dict[str, Any]] | None
    accepted: bool | None
    paper_text: str
    repeat: bool = False           # in the self-agreement sample
    partner: PaperWork | None = None

    def fingerprint(self) -> str:
        """What the paper's line was judged from: a stored line for other texts is judged again."""
        return stable_hash([self.review, self.humans, self.paper_text,
                            self.partner.humans if self.partner else None])[:16]


def words(text: str) -> int:
    return len(text.split())


class Judged:
    """One paper's requests against the answers known so far: what to ask next, and its line."""

    def __init__(self, work: PaperWork, maker: RequestMaker, rubric: set[str], answers: Answers):
        self.work, self.maker, self.rubric, self.answers = work, maker, rubric, answers
        self.parse_failures: list[dict[str, str]] = []

    # ---- the requests

    def first_step(self) -> list[JudgeItem]:
        work, items = self.work, []
        if "points" in self.rubric:
            items += [self.maker.extract(work.review)] + [self.maker.extract(h) for h in work.humans]
        if "aspects" in self.rubric:
            items += [self.maker.aspects(text, work.paper_text) for text in [work.review, *work.humans]]
            if work.repeat:
                items.append(self.maker.aspects(work.review, work.paper_text, repeat=True))
        return items

    def second_step(self) -> list[JudgeItem]:
        """The match requests whose two point lists are known (non-empty lists only: an empty list
        matches nothing, and needs no request)."""
        if "points" not in self.rubric:
            return []
        model, humans = self._points(self.work.review), [self._points(h) for h in self.work.humans]
        pairs = [(model, h) for h in humans]
        pairs += [(humans[i], humans[j]) for i in range(len(humans)) for j in range(i + 1, len(humans))]
        if self.work.partner is not None:
            pairs += [(model, self._points(h)) for h in self.work.partner.humans]
        return [self.maker.match(a, b) for a, b in pairs if a and b]

    def needed(self) -> list[JudgeItem]:
        """Every request the paper's line stands on: its own, and the other paper's point lists that
        its shuffle control matches against (a line is complete only once all are answered)."""
        borrowed = []
        if "points" in self.rubric and self.work.partner is not None:
            borrowed = [self.maker.extract(h) for h in self.work.partner.humans]
        return self.first_step() + self.second_step() + borrowed

    # ---- reading the answers

    def _answer(self, item: JudgeItem) -> str | None:
        stored = self.answers.get(item.key)
        return None if stored is None else stored["text"]

    def _parsed(self, item: JudgeItem, what: str, reader: Callable[[str], tuple[Any, str | None]]) -> Any:
        text = self._answer(item)
        if text is None:
            return None
        value, why = reader(text)
        if why is not None:
            self.parse_failures.append({"request": what, "why": why, "answer": text[:200]})
        return value

    def _points(self, review: str, what: str = "") -> list[str] | None:
        return self._parsed(self.maker.extract(review), what or "points",
                            lambda text: parse.points(text, self.maker.max_points))

    def _match(self, a: list[str] | None, b: list[str] | None, what: str) -> tuple[list[int], list[int]] | None:
        """Matched indices of A and of B; ([], []) without a request where a list is empty."""
        if a is None or b is None:
            return None
        if not a or not b:
            return [], []
        item = self.maker.match(a, b)
        sizes = (len(b), len(a)) if item.order["swapped"] else (len(a), len(b))
        shown = self._parsed(item, what, lambda text: parse.matches(text, *sizes))
        return None if shown is None else unshuffle(item.order, shown)

    def line(self) -> dict[str, Any]:
        """The paper's line: every judged value (None where the answer is missing or unreadable)."""
        self.parse_failures = []
        work = self.work
        out: dict[str, Any] = {"id": work.key, "venue": work.venue, "title": work.title,
                               "fingerprint": work.fingerprint(), "n_humans": len(work.humans),
                               "length_words": {"model": words(work.review), "humans": [words(h) for h in work.humans]}}
        if "points" in self.rubric:
            out["points"] = self._points_part()
        if "aspects" in self.rubric:
            out["aspects"] = self._aspects_part()
        if work.ratings is not None:
            out["human_ratings"] = work.ratings
        out["accepted"] = work.accepted
        out["parse_failures"] = self.parse_failures
        return out

    def _points_part(self) -> dict[str, Any]:
        work = self.work
        model = self._points(work.review, "points of the model's review")
        humans = [self._points(h, f"points of human review {i + 1}") for i, h in enumerate(work.humans)]
        vs_humans = [self._match(model, h, f"model vs human {i + 1}") for i, h in enumerate(humans)]
        between = {f"{i}-{j}": self._match(humans[i], humans[j], f"human {i + 1} vs human {j + 1}")
                   for i in range(len(humans)) for j in range(i + 1, len(humans))}
        part: dict[str, Any] = {"model": model, "humans": humans, "model_vs_humans": vs_humans,
                                "between_humans": between, "shuffle": None}
        if work.partner is not None:
            before = len(self.parse_failures)  # the other paper's own line counts its parse failures
            others = [self._points(h) for h in work.partner.humans]
            del self.parse_failures[before:]
            part["shuffle"] = {"paper": work.partner.key, "model_vs_humans": [
                self._match(model, h, f"model vs the other paper's human {i + 1}") for i, h in enumerate(others)]}
        return part

    def _aspects_part(self) -> dict[str, Any]:
        work = self.work

        def grades(text: str, what: str, repeat: bool = False) -> dict[str, int] | None:
            return self._parsed(self.maker.aspects(text, work.paper_text, repeat), what, parse.aspects)

        return {"model": grades(work.review, "aspects of the model's review"),
                "humans": [grades(h, f"aspects of human review {i + 1}") for i, h in enumerate(work.humans)],
                "repeat": grades(work.review, "aspects of the model's review, asked again", True)
                if work.repeat else None}
