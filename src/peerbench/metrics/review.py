"""Review measures: what a review says, beyond its decision, as metric plugins.

A :class:`ReviewMeasure` is registered through the same ``register_metrics`` hook as a decision
metric. Scoring hands it every answered review at once (so an encoder can batch) as
:class:`ReviewInput` records and takes back one dict of named values per review (``None``: not
applicable to that review). Where the measure can stand a human in the model's place (the human
ceiling), it is ``paired`` and gives two lists: the model's values and the same names for one
human against the others, on the same papers. Scoring turns the
values into means over papers with seeded bootstrap intervals, paired with the human's where
there is one (:func:`aggregate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from peerbench.metrics.review_format import ReviewFormat

Values = dict[str, float | None]


@dataclass(frozen=True)
class ReviewInput:
    """One answered review and what scoring knows around it. ``given_text`` is the title, abstract
    and body as the model was given them (after truncation), ``whole_text`` the same with the whole
    body; both None where the paper could not be read back. ``human_reviews`` are the texts of the
    paper's human reviews (None where the dataset carries none): they reach measures, never prompts."""

    id: str
    venue: str
    review: str
    format: ReviewFormat | None = None
    parser: str = "reference"
    completion_tokens: int | None = None
    given_text: str | None = None
    whole_text: str | None = None
    human_reviews: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ReviewMeasure:
    """A family of review measures. ``measure(inputs, options)`` gives one Values per input, or, where
    ``paired``, a pair of such lists: the model's and the human ceiling's (the same names).
    ``higher_is_better`` says which way each name points (compare's tests need no direction, the
    tables mark it). ``options`` carries run-wide choices such as the sentence encoder."""

    name: str
    description: str
    measure: Callable[[Sequence[ReviewInput], Mapping[str, Any]], Any]
    paired: bool = False
    higher_is_better: Mapping[str, bool | None] = field(default_factory=dict)


@lru_cache(maxsize=16)
def _resample_index(seed: int, n: int, resamples: int):
    """The seeded resample matrix (resamples x n): the same for every name over the same papers."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(rng_seed: int, columns: Sequence[Any], resamples: int, confidence: float):
    """Percentile intervals of each column's mean over the same paper resamples (paired)."""
    import numpy as np

    n = len(columns[0])
    if n == 0 or resamples <= 0:
        return [None for _ in columns]
    index = _resample_index(rng_seed, n, resamples)
    alpha = (1 - confidence) / 2
    means = np.stack([np.asarray(col, dtype=float)[index].mean(1) for col in columns])
    return [[float(q) for q in row] for row in np.quantile(means, [alpha, 1 - alpha], axis=1).T]


def aggregate(model: Sequence[Values], human: Sequence[Values] | None, *, resamples: int, seed: int,
              confidence: float) -> dict[str, dict[str, Any]]:
    """Each name's mean over the papers where it has a value, with its interval. Where the human
    has a value for that name too, both are taken over the papers where both have one (the same
    papers), with the paired difference model - human and its interval."""
    import numpy as np

    names = list(dict.fromkeys(name for values in model for name in values))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        pairs = [(m.get(name), (human[i] if human else {}).get(name)) for i, m in enumerate(model)]
        paired = [(a, b) for a, b in pairs if a is not None and b is not None]
        if paired:
            a, b = np.array(paired, dtype=float).T
            ci_a, ci_b, ci_d = _interval(seed, [a, b, a - b], resamples, confidence)
            out[name] = {"value": float(a.mean()), "ci": ci_a, "n": len(a),
                         "human": {"value": float(b.mean()), "ci": ci_b},
                         "difference": {"value": float((a - b).mean()), "ci": ci_d}}
            continue
        values = np.array([a for a, _ in pairs if a is not None], dtype=float)
        if len(values):
            out[name] = {"value": float(values.mean()), "ci": _interval(seed, [values], resamples, confidence)[0],
                         "n": len(values)}
    return out
