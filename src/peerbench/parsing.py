"""Review text -> decision, by one of the named parsers.

The two below read a decision line; ``aiscientist-json`` and ``aiscientist-json-overall6`` read
the AI Scientist reviewer's JSON review (:mod:`peerbench.json_review`, which documents them).

``reference`` is the published reviewer's own filter: the card's regex
``I recommend this paper for (ACCEPTANCE|REJECTION)\\.?``, case-sensitive, read from the packaged
card. ``lenient`` also takes other letter cases, markdown emphasis marks between the line's words
(``for **ACCEPTANCE**``) and the short words ``ACCEPT``/``REJECT``; it is an option, never the
default, because it turns reviews the reference would not count into decisions.

Both match the review's own text, so :func:`decision_match` gives the very place a decision was
read, where P(accept) is then read from the token log-probabilities.

Both parsers share two rules. The last decision line wins, because reviews quote the instruction
earlier. But a review whose final part holds both decision lines (a model that echoed the
template's two options) is AMBIGUOUS: counted and shown beside UNPARSED, never silently one class.
The final part is everything after the review's last markdown heading (``#...``) or, in a review
without headings, its last paragraph.
"""

from __future__ import annotations

import re
from functools import lru_cache

from peerbench.errors import ConfigError
from peerbench.records import Decision

PARSERS: tuple[str, ...] = ("reference", "lenient", "aiscientist-json", "aiscientist-json-overall6")
JSON_PARSERS = ("aiscientist-json", "aiscientist-json-overall6")
DEFAULT_PARSER = "reference"
_GAP = r"[\s*_`]+"  # white space and the markdown emphasis or code marks models put between words
_LENIENT_RE = re.compile(rf"I{_GAP}recommend{_GAP}this{_GAP}paper{_GAP}for{_GAP}(ACCEPT(?:ANCE)?|REJECT(?:ION)?)\b\.?",
                         re.IGNORECASE)
_HEADING_RE = re.compile(r"^[ \t]*#", re.MULTILINE)
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")


@lru_cache(maxsize=1)
def reference_regex() -> re.Pattern[str]:
    """The card's decision regex, compiled as published (case-sensitive)."""
    from peerbench.reference import card

    return re.compile(card()["decision_regex"])


def _final_part_start(text: str) -> int:
    headings = list(_HEADING_RE.finditer(text))
    if headings:
        return headings[-1].start()
    breaks = list(_PARAGRAPH_BREAK_RE.finditer(text.rstrip()))
    return breaks[-1].end() if breaks else 0


def _decide(matches: list[re.Match[str]], final_start: int) -> Decision:
    if not matches:
        return Decision.UNPARSED
    words = {m.group(1).upper().startswith("ACCEPT") for m in matches if m.start() >= final_start}
    if len(words) == 2:
        return Decision.AMBIGUOUS
    return Decision.ACCEPT if matches[-1].group(1).upper().startswith("ACCEPT") else Decision.REJECT


def _pattern(parser: str) -> re.Pattern[str]:
    if parser == "reference":
        return reference_regex()
    if parser == "lenient":
        return _LENIENT_RE
    raise ConfigError(f"parser {parser!r}: valid choices: {', '.join(PARSERS)}")


def _matches(text: str, parser: str) -> tuple[list[re.Match[str]], Decision]:
    matches = list(_pattern(parser).finditer(text))
    return matches, _decide(matches, _final_part_start(text))


def parse_decision(text: str | None, parser: str = DEFAULT_PARSER) -> Decision:
    """ACCEPT, REJECT, AMBIGUOUS or UNPARSED, by the named parser (the reference's by default)."""
    if parser in JSON_PARSERS:
        from peerbench import json_review

        return json_review.parse_decision(text, parser)
    if not text:
        _pattern(parser)
        return Decision.UNPARSED
    return _matches(text, parser)[1]


def decision_match(text: str, parser: str = DEFAULT_PARSER) -> re.Match[str] | None:
    """The match the decision was read from (its group 1 is the decision word), or None where the
    review has no usable decision (UNPARSED or AMBIGUOUS): then there is no P(accept) either."""
    if parser in JSON_PARSERS:
        from peerbench import json_review

        return json_review.decision_match(text, parser) if text else None
    matches, decision = _matches(text, parser) if text else ([], Decision.UNPARSED)
    return matches[-1] if decision.decided else None


def decision_line(accept: bool) -> str:
    return f"I recommend this paper for {'ACCEPTANCE' if accept else 'REJECTION'}."
