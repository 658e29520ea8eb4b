"""The AI Scientist reviewer's JSON review: read exactly as its ``extract_json_between_markers``
reads it, then turned into a decision and an overall rating by one of two named parsers.

``extract_json_between_markers`` (``ai_scientist/llm.py`` at commit 9dffdc4): every block between
```` ```json ```` and ```` ``` ```` (non-greedy, across lines); where there is none, every
``{...}`` (non-greedy); the first that ``json.loads`` accepts after stripping white space, or
failing that once the control characters (``\\x00-\\x1f``, ``\\x7f``) are removed, is the review.
A review with no such block is UNPARSED. (Their function returns any JSON value; a value that is
not an object has no fields, so it decides nothing either.)

- ``aiscientist-json``: the decision is the review's ``Decision`` field: ``"Accept"`` or
  ``"Reject"`` exactly (their script compares with ``== "Accept"``); a missing field or any
  other value (``"Weak Accept"``, ``"accept"``) is UNPARSED, counted.
- ``aiscientist-json-overall6``: the decision their published table scores, ``Overall >= 6``.

Both read ``Overall`` as the review's rating on ICLR's 1-10 scale: a number from 1 to 10 (an
integer or a float, never a bool or a string); anything else is an unread rating, counted in the
run's ``ratings`` line. Under ``aiscientist-json-overall6`` an unread rating is an UNPARSED decision.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from peerbench.records import Decision

PARSERS = ("aiscientist-json", "aiscientist-json-overall6")
RATING_SCALE = (1, 10)
OVERALL_THRESHOLD = 6
_FENCED_RE = re.compile(r"```json(.*?)```", re.DOTALL)
_BRACES_RE = re.compile(r"\{.*?\}", re.DOTALL)
_CONTROL_RE = re.compile(r"[\x00-\x1F\x7F]")
_DECISION_FIELD_RE = re.compile(r'"Decision"\s*:\s*"(Accept|Reject)"')


def _candidates(text: str) -> list[re.Match[str]]:
    fenced = list(_FENCED_RE.finditer(text))
    return fenced or list(_BRACES_RE.finditer(text))


def _loaded(match: re.Match[str]) -> Any:
    candidate = (match.group(1) if match.re is _FENCED_RE else match.group(0)).strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        try:
            return json.loads(_CONTROL_RE.sub("", candidate))
        except json.JSONDecodeError:
            return None


def _first_review(text: str) -> tuple[Any, re.Match[str] | None]:
    """(the parsed JSON, the match it came from), or (None, None): their loop, which keeps the match."""
    for match in _candidates(text or ""):
        parsed = _loaded(match)
        if parsed is not None:
            return parsed, match
    return None, None


def extract_json_between_markers(llm_output: str) -> Any:
    """Their function's result: the first JSON block that parses, or None."""
    return _first_review(llm_output)[0]


def overall_rating(review: Any) -> float | None:
    """``Overall`` as a number on 1-10, or None (missing, not a number, a bool, off the scale)."""
    value = review.get("Overall") if isinstance(review, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if RATING_SCALE[0] <= value <= RATING_SCALE[1] else None


def decision_of(review: Any, parser: str) -> Decision:
    if parser == "aiscientist-json-overall6":
        rating = overall_rating(review)
        return Decision.UNPARSED if rating is None else Decision.of(rating >= OVERALL_THRESHOLD)
    value = review.get("Decision") if isinstance(review, dict) else None
    return {"Accept": Decision.ACCEPT, "Reject": Decision.REJECT}.get(value, Decision.UNPARSED) \
        if isinstance(value, str) else Decision.UNPARSED


def parse_decision(text: str | None, parser: str) -> Decision:
    review, _ = _first_review(text or "")
    return Decision.UNPARSED if review is None else decision_of(review, parser)


def parse_rating(text: str | None) -> float | None:
    return overall_rating(_first_review(text or "")[0])


def decision_match(text: str, parser: str) -> re.Match[str] | None:
    """Where ``aiscientist-json`` read the decision word (group 1): the last ``"Decision": "..."``
    inside the block that parsed (json.loads keeps a repeated key's last value), when it spells the
    decision read. None under ``aiscientist-json-overall6``: a number decides, no word, so a
    P(accept) from one token's log-probabilities does not exist."""
    if parser != "aiscientist-json":
        return None
    review, block = _first_review(text)
    if review is None or block is None or not decision_of(review, parser).decided:
        return None
    start, end = block.span(1) if block.re is _FENCED_RE else block.span(0)
    found = list(_DECISION_FIELD_RE.finditer(text, start, end))
    return found[-1] if found and found[-1].group(1) == review["Decision"] else None
