"""The reviewers' own numbers beside their review texts: what a judge's grades of the human reviews
are checked against (peerbench.judging.figures)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _number(value: Any) -> float | None:
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def review_numbers(reviews: Sequence[dict[str, Any]], text_key: str = "comments",
                   numbers: dict[str, str] | None = None) -> list[dict[str, float | None]]:
    """The recommendation and confidence of each review that has a non-empty text, in order (the
    order of the texts kept as human reviews); None where a number is missing or unreadable."""
    numbers = numbers or {"recommendation": "RECOMMENDATION", "confidence": "REVIEWER_CONFIDENCE"}
    return [{name: _number(review.get(field)) for name, field in numbers.items()} for review in reviews
            if isinstance(review.get(text_key), str) and review[text_key].strip()]
