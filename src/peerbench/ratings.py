"""The rating prompt family and its parser: a review that gives the venue's overall rating as well
as the decision line.

The prompts are the reference's (``data/card.json``) with one section added before its
``## Final Recommendation``: the card's text is never retyped, so the decision part of the
review, and its parser (``parsing.py``), stay the reference's. One prompt per rating scale, named
``reference-rating-LO-HI``: the scale is in the prompt's name, so a task that names the prompt
names the scale, and the task fingerprint changes with it.

The rating line is ``Overall rating: N``. The parser reads the *last* such line (a review may
quote the instruction earlier); it takes letter case and markdown marks as they come
(``**Overall rating:** 7``), an optional ``/HI`` or ``out of HI`` after the number and any words
after it (``7 (good paper, accept)``). A number outside the scale, a ``/M`` with another M, and a
range (``1-10``, ``1 to 10``: an echo of the instruction) give no rating.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from peerbench.errors import ConfigError

# prompt name -> (lowest, highest): ICLR's 1-10 overall rating; ACL's and CoNLL's 1-5 RECOMMENDATION.
RATING_SCALES: dict[str, tuple[int, int]] = {"reference-rating-1-10": (1, 10), "reference-rating-1-5": (1, 5)}
_ANCHOR = "## Final Recommendation"
_MARKS = r"[ \t*_`]"
_RATING_RE = re.compile(
    rf"^[ \t>*_`#-]*overall{_MARKS}+rating{_MARKS}*:{_MARKS}*(?P<value>\d+(?:\.\d+)?)"
    rf"(?:{_MARKS}*(?:/|out{_MARKS}+of){_MARKS}*(?P<of>\d+))?(?P<rest>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE)
_RANGE_RE = re.compile(r"^\s*(?:-|–|to\b)\s*(?P<end>\d+)")
_NUMBER_GOES_ON_RE = re.compile(r"^(?:[,.]\d|[eE][+-]?\d)")  # "6,5" or "1e1": not the number the regex read


def rating_section(low: int, high: int) -> str:
    """The section the rating prompts add, in the card's own format."""
    return (f"## Overall Rating\n<one paragraph placing the paper on the venue's overall rating scale>\n"
            f"End this section with EXACTLY ONE line:\n    Overall rating: <an integer from {low} (lowest) "
            f"to {high} (highest)>\n\n")


@lru_cache(maxsize=1)
def rating_prompts() -> dict[str, tuple[str, str, Literal["format"]]]:
    """Named prompts (system, user template, syntax): the card's, with the rating section added."""
    from peerbench.reference import card

    facts = card()
    user = facts["user_template"]
    if user.count(_ANCHOR) != 1:
        raise ConfigError(f"data/card.json: user_template must hold {_ANCHOR!r} exactly once for the rating prompts")
    return {name: (facts["system"], user.replace(_ANCHOR, rating_section(*scale) + _ANCHOR), "format")
            for name, scale in RATING_SCALES.items()}


def scale_of(prompt: str | None) -> tuple[int, int] | None:
    """The rating scale a prompt asks for (a custom template on a rating prompt keeps its scale);
    None for a prompt that asks no rating."""
    if not prompt:
        return None
    return RATING_SCALES.get(prompt.removesuffix("+custom"))


def rating_scale_for(prompt: str | None, parser: str) -> tuple[int, int] | None:
    """The scale of the rating a run reads: a parser that reads a rating from the review's own
    format (the AI Scientist's JSON ``Overall``, :mod:`peerbench.json_review`) has its own, else the prompt's."""
    from peerbench.parsing import JSON_PARSERS

    if parser in JSON_PARSERS:
        from peerbench.json_review import RATING_SCALE

        return RATING_SCALE
    return scale_of(prompt)


def read_rating(text: str | None, scale: tuple[int, int], parser: str) -> float | None:
    """The review's rating as the task's parser reads it (see :func:`rating_scale_for`)."""
    from peerbench.parsing import JSON_PARSERS

    if parser in JSON_PARSERS:
        from peerbench.json_review import parse_rating as json_rating

        return json_rating(text)
    return parse_rating(text, scale)


def parse_rating(text: str | None, scale: tuple[int, int]) -> float | None:
    """The review's overall rating on ``scale``, or None where it gives no usable rating line.

    The last rating line counts. A line that repeats the instruction's own range ("1-10") is
    skipped; any other range ("6-7"), a number written on ("6,5", "1e1"), a "/M" of another scale
    or a value off the scale is no rating (None), never an earlier line's. A decimal ("7.5") is
    taken as written."""
    low, high = scale
    for match in reversed(list(_RATING_RE.finditer(text or ""))):
        rest = match.group("rest")
        value = float(match.group("value"))
        span = _RANGE_RE.match(rest)
        if span and value == low and int(span.group("end")) == high:
            continue  # "1-10", "1 to 10": the instruction echoed, not a rating
        if span or _NUMBER_GOES_ON_RE.match(rest):
            return None
        if match.group("of") is not None and int(match.group("of")) != high:
            return None
        return value if low <= value <= high else None
    return None
