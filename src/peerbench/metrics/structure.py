"""Structure of a review against the task's own format (read from its prompt template).

Per review (1 = yes, 0 = no; rates over papers in metrics.json):
``structure_section:<name>`` the section is present and not empty; ``structure_sections`` the share
of required sections present and not empty; ``structure_in_order`` all present, in the template's
order; ``structure_one_decision`` exactly one decision line in the review's final part (JSON: a
Decision field holding one of Accept/Reject); ``structure_bullets`` every listed section holds a
list (None where the format has no listed section); ``structure_full`` all of these at once;
``structure_words`` the review's length in words (white-space separated); ``structure_tokens``
its completion tokens where the backend counted them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from peerbench.hookspecs import hookimpl
from peerbench.metrics.review import ReviewInput, ReviewMeasure, Values
from peerbench.metrics.review_format import (
    ReviewFormat,
    has_items,
    json_review,
    markdown_sections,
    section_key,
)


def _decision_lines_in_final_part(review: str, parser: str) -> int:
    from peerbench.parsing import _final_part_start, _pattern

    start = _final_part_start(review)
    return sum(1 for m in _pattern(parser).finditer(review) if m.start() >= start)


def _markdown(review: str, fmt: ReviewFormat) -> tuple[dict[str, bool], bool, bool | None]:
    """(required name -> present and not empty, all in order, listed sections hold lists)."""
    found: dict[str, tuple[int, str]] = {}
    for position, (heading, text) in enumerate(markdown_sections(review)):
        found.setdefault(section_key(heading), (position, text))
    filled = {name: bool(re.search(r"\w", found.get(section_key(name), (0, ""))[1])) for name in fmt.sections}
    positions = [found[section_key(n)][0] for n in fmt.sections if section_key(n) in found]
    in_order = len(positions) == len(fmt.sections) and positions == sorted(positions)
    bullets = None if not fmt.listed else all(has_items(found.get(section_key(n), (0, ""))[1]) for n in fmt.listed)
    return filled, in_order, bullets


def _json(review: str, fmt: ReviewFormat) -> tuple[dict[str, bool], bool, bool | None, int | None]:
    data = json_review(review) or {}
    keys = {section_key(k): (i, v) for i, (k, v) in enumerate(data.items())}

    def filled(value: Any) -> bool:
        return value not in (None, "", [], {}) and (not isinstance(value, str) or bool(value.strip()))

    present = {name: section_key(name) in keys and filled(keys[section_key(name)][1]) for name in fmt.sections}
    positions = [keys[section_key(n)][0] for n in fmt.sections if section_key(n) in keys]
    in_order = len(positions) == len(fmt.sections) and positions == sorted(positions)
    bullets = None if not fmt.listed else all(isinstance(keys.get(section_key(n), (0, None))[1], list)
                                              and bool(keys[section_key(n)][1]) for n in fmt.listed)
    if "decision" not in {section_key(n) for n in fmt.sections}:
        return present, in_order, bullets, None  # a form without a decision field: nothing to check
    decision = keys.get("decision", (0, None))[1]
    one = int(isinstance(decision, str) and decision.strip().casefold() in ("accept", "reject"))
    return present, in_order, bullets, one


def structure_of(item: ReviewInput) -> Values:
    """One review's structure values (see the module's docstring); only length where the task has no format."""
    values: Values = {"structure_words": float(len(item.review.split()))}
    if item.completion_tokens is not None:
        values["structure_tokens"] = float(item.completion_tokens)
    fmt = item.format
    if fmt is None or not fmt.sections:
        return values
    if fmt.kind == "json":
        present, in_order, bullets, one = _json(item.review, fmt)
    else:
        present, in_order, bullets = _markdown(item.review, fmt)
        one = int(_decision_lines_in_final_part(item.review, item.parser) == 1)
    full = all(present.values()) and in_order and one != 0 and bullets is not False
    values.update({
        "structure_full": float(full),
        "structure_sections": sum(present.values()) / len(present),
        "structure_in_order": float(in_order),
        "structure_one_decision": None if one is None else float(one),
        "structure_bullets": None if bullets is None else float(bullets),
        **{f"structure_section:{name}": float(ok) for name, ok in present.items()},
    })
    return values


def measure(inputs: Sequence[ReviewInput], options: Mapping[str, Any]) -> list[Values]:
    return [structure_of(item) for item in inputs]


STRUCTURE = ReviewMeasure(
    "structure", "review structure against the task's own sections: present, in order, one decision line, "
                 "bullets, length", measure,
    higher_is_better={"structure_words": None, "structure_tokens": None})


@hookimpl
def register_metrics(register):
    register(STRUCTURE)
