"""Gold label rules: how a Paper becomes the decision a reviewer is scored against.

Two rules ship and both are always reported, because they disagree a lot (ICLR 2017 in
peerread95: 70/78 positive by the score rule, 33/78 really accepted). See docs/label-audit.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from peerbench.errors import DataError, UnknownNameError
from peerbench.hookspecs import hookimpl
from peerbench.records import Paper


@dataclass(frozen=True)
class LabelRule:
    """``label(paper)`` gives True (accept), False (reject) or None (unknown).

    Under a task's primary rule an unknown label is an error naming the paper (a run never scores a
    paper whose gold it cannot tell); under a rule only reported beside it, the paper is left out
    of that rule's numbers and counted."""

    name: str
    description: str
    label: Callable[[Paper], bool | None]
    # False only for a rule under which no paper has a gold label by design ("none": a run that only
    # generates, like a distillation teacher's); such a run is never scored, and says so.
    required: bool = True


def recommendation_at_least(threshold: float) -> LabelRule:
    def label(paper: Paper) -> bool | None:
        mean = paper.mean_recommendation
        return None if mean is None else mean >= threshold

    name = f"recommendation>={threshold:g}"
    return LabelRule(
        name,
        f"mean official reviewer RECOMMENDATION >= {threshold:g} (no scored review: unknown, never the decision)",
        label,
    )


NONE = LabelRule("none", "no gold label: a run that only generates reviews (nothing is scored)",
                 lambda paper: None, required=False)

DECISION = LabelRule("decision", "the venue's real accept/reject decision (unknown where the venue did not publish it)",
                     lambda paper: paper.accepted)

_THRESHOLD_RE = re.compile(r"^recommendation>=(\d+(?:\.\d+)?)$")


def no_gold_label(rule: LabelRule, first: Paper, missing: int) -> DataError:
    """The error for ``missing`` papers without a gold label under a task's primary rule, naming the
    first (its reviews file where the dataset says which): never scored against another rule's label."""
    where = first.meta.get("reviews_path") or first.key
    more = f" (and {missing - 1} more papers)" if missing > 1 else ""
    return DataError(f"{where}: paper {first.key} has no gold label under {rule.name} "
                     f"({rule.description}){more}; pick papers with --ids or another label rule")


def get_label_rule(name: str) -> LabelRule:
    """Registered rules, plus any ``recommendation>=X`` threshold a user names."""
    from peerbench.registry import registries

    rules = registries().label_rules
    if name in rules:
        return rules.get(name).value
    match = _THRESHOLD_RE.match(name)
    if match:
        return recommendation_at_least(float(match.group(1)))
    raise UnknownNameError("label rule", name, [*rules.names(), "recommendation>=X"])


@hookimpl
def register_label_rules(register):
    register(recommendation_at_least(4))
    register(DECISION)
    register(NONE)
