"""Reading the judge's answers. Each reader returns (value, None) or (None, why): an answer that
cannot be read is a parse failure, counted and shown, never scored as zero points or a grade of 0.

The answer may wrap its JSON in prose or a ```json fence; the outermost JSON value of the expected
kind is taken.
"""

from __future__ import annotations

import json
from typing import Any

ASPECTS = ("specificity", "actionability", "correctness", "coverage")
Parsed = tuple[Any, str | None]


def _json_between(text: str, opening: str, closing: str) -> Any:
    start, end = text.find(opening), text.rfind(closing)
    if start < 0 or end <= start:
        raise ValueError(f"no JSON {'list' if opening == '[' else 'object'} in the answer")
    return json.loads(text[start:end + 1])


def _read(text: str, opening: str, closing: str) -> Parsed:
    try:
        return _json_between(text or "", opening, closing), None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return None, str(exc).split(":")[0]


def points(text: str, max_points: int) -> Parsed:
    """A list of short criticisms (strings); more than ``max_points`` is cut to the first ones."""
    value, why = _read(text, "[", "]")
    if why:
        return None, why
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        return None, "not a list of strings"
    kept = [" ".join(p.split()) for p in value if p.strip()]
    return kept[:max_points], None


def matches(text: str, size_a: int, size_b: int) -> Parsed:
    """Pairs [a, b] of 1-based point numbers -> (matched indices of A, matched indices of B), 0-based.
    A number outside its list, or a point matched twice, makes the answer unreadable."""
    value, why = _read(text, "[", "]")
    if why:
        return None, why
    if not isinstance(value, list):
        return None, "not a list of pairs"
    seen_a: list[int] = []
    seen_b: list[int] = []
    for pair in value:
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in pair)):
            return None, f"not a pair of point numbers: {json.dumps(pair)[:40]}"
        a, b = pair
        if not (1 <= a <= size_a and 1 <= b <= size_b):
            return None, f"pair {pair} names a point outside the lists ({size_a} and {size_b} points)"
        if a - 1 in seen_a or b - 1 in seen_b:
            return None, f"pair {pair} matches a point a second time"
        seen_a.append(a - 1)
        seen_b.append(b - 1)
    return (sorted(seen_a), sorted(seen_b)), None


def aspects(text: str) -> Parsed:
    """{aspect: integer 1-5} for the four aspects, every one present."""
    value, why = _read(text, "{", "}")
    if why:
        return None, why
    if not isinstance(value, dict):
        return None, "not an object"
    grades = {}
    for name in ASPECTS:
        grade = value.get(name)
        if not isinstance(grade, int) or isinstance(grade, bool) or not 1 <= grade <= 5:
            return None, f"{name}: not an integer from 1 to 5 ({json.dumps(grade)[:20]})"
        grades[name] = grade
    return grades, None
