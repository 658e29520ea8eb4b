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


def openreview_numbers(note: dict[str, Any], shape: Any) -> list[dict[str, float | None]]:
    """The rating and confidence of each official review that ``review_texts`` keeps (the same
    replies, in the same order: each reply is put through it alone)."""
    from peerbench.datasets.openreview_fields import content_value, rating_of, review_texts

    out = []
    for reply in (note.get("details") or {}).get("directReplies") or []:
        if review_texts({"details": {"directReplies": [reply]}}, shape):
            content = reply.get("content") or {}
            out.append({"recommendation": rating_of(content_value(content.get(shape.rating_field))),
                        "confidence": rating_of(content_value(content.get("confidence")))})
    return out
