"""Review text -> decision, by one of two named parsers.

``reference`` is the published reviewer's own filter: the card's regex
``I recommend this paper for (ACCEPTANCE|REJECTION)\\.?``, case-sensitive, read from the packaged
card. ``lenient`` also takes other letter cases, markdown emphasis inside the line
(``**ACCEPTANCE**``) and the short words ``ACCEPT``/``REJECT``; it is an option, never the default,
because it turns reviews the reference would not count into decisions.

Both parsers share two rules. The last decision line wins, because reviews quote the instruction
earlier. But a review whose final part holds both decision lines (a model that echoed the
template's two options) is AMBIGUOUS: counted and shown beside UNPARSED, never silently one class.
The final part is everything after the review's last markdown heading (``#...``) or, in a review
without headings, its last paragraph.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from peerbench.errors import ConfigError
from peerbench.records import Decision

PARSERS: tuple[str, ...] = ("reference", "lenient")
DEFAULT_PARSER = "reference"
_LENIENT_RE = re.compile(r"I\s+recommend\s+this\s+paper\s+for\s+(ACCEPT(?:ANCE)?|REJECT(?:ION)?)\b\.?", re.IGNORECASE)
# Markdown emphasis and code marks that models wrap around or inside the line: **...**, _..._, `...`.
_EMPHASIS_RE = re.compile(r"[*_`]+")
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


def parse_reference(text: str | None) -> Decision:
    """The card's regex, as published."""
    if not text:
        return Decision.UNPARSED
    return _decide(list(reference_regex().finditer(text)), _final_part_start(text))


def parse_lenient(text: str | None) -> Decision:
    """Any letter case, markdown emphasis removed, ACCEPT/REJECT as well as ACCEPTANCE/REJECTION."""
    if not text:
        return Decision.UNPARSED
    plain = _EMPHASIS_RE.sub("", text)
    return _decide(list(_LENIENT_RE.finditer(plain)), _final_part_start(plain))


_PARSER_FUNCTIONS: dict[str, Callable[[str | None], Decision]] = {"reference": parse_reference,
                                                                   "lenient": parse_lenient}


def get_parser(name: str) -> Callable[[str | None], Decision]:
    try:
        return _PARSER_FUNCTIONS[name]
    except KeyError:
        raise ConfigError(f"parser {name!r}: valid choices: {', '.join(PARSERS)}") from None


def parse_decision(text: str | None, parser: str = DEFAULT_PARSER) -> Decision:
    """ACCEPT, REJECT, AMBIGUOUS or UNPARSED, by the named parser (the reference's by default)."""
    return get_parser(parser)(text)


def decision_line(accept: bool) -> str:
    return f"I recommend this paper for {'ACCEPTANCE' if accept else 'REJECTION'}."
