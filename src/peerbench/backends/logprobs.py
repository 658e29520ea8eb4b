"""P(accept) from token log-probabilities at the decision word of the review's final line.

The model has already written "I recommend this paper for "; what it would have written next is
the distribution we want. Tokens that begin "ACCEPTANCE" count for accept and tokens that begin
"REJECTION" for reject; the probability is accept / (accept + reject) over the top alternatives
the server returned. With no alternative of either kind in view there is no probability, and
None is returned rather than a guess.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_FINAL_LINE_RE = re.compile(r"I\s+recommend\s+this\s+paper\s+for\s+[*_`]*(ACCEPTANCE|REJECTION)", re.IGNORECASE)
_STRIP = " \t\n*_`\"'.:"


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability, and the top alternatives at its position."""

    token: str
    logprob: float
    top: Sequence[tuple[str, float]] = ()


@dataclass(frozen=True)
class DecisionProbability:
    p_accept: float
    mass: float  # accept + reject probability seen among the alternatives (how much the top-k covered)
    token_index: int


def _side(token: str) -> str | None:
    word = token.strip(_STRIP).upper()
    if not word:
        return None
    if "ACCEPTANCE".startswith(word):
        return "accept"
    if "REJECTION".startswith(word):
        return "reject"
    return None


def decision_token_index(token_texts: Sequence[str]) -> int | None:
    """Index of the token that starts the decision word of the last decision line, if any."""
    ends = list(itertools.accumulate(map(len, token_texts), initial=0))
    text = "".join(token_texts)
    return decision_index_by_prefix(len(token_texts), lambda i: text[: ends[i]])


def decision_index_by_prefix(n_tokens: int, prefix: Callable[[int], str]) -> int | None:
    """decision_token_index when token texts are costly: ``prefix(i)`` is the text of the first i
    tokens (a tokenizer's decode of them), asked for O(log n) times instead of once per token."""
    matches = list(_FINAL_LINE_RE.finditer(prefix(n_tokens)))
    if not matches:
        return None
    position = matches[-1].start(1)
    lo, hi = 0, n_tokens - 1  # the first token whose text ends past the word's first character
    while lo < hi:
        mid = (lo + hi) // 2
        if len(prefix(mid + 1)) > position:
            hi = mid
        else:
            lo = mid + 1

    def token(i: int) -> str:
        return prefix(i + 1)[len(prefix(i)):]

    # The word may start inside a token that also holds emphasis ("**ACC"); the word token is that
    # one, unless it held only emphasis or space, when the next token carries the word.
    if _side(token(lo)) is None and lo + 1 < n_tokens and _side(token(lo + 1)):
        return lo + 1
    return lo


def probability_from_alternatives(alternatives: dict[str, float]) -> tuple[float, float] | None:
    """(P(accept), covered mass) from token -> logprob at the decision position; None if neither side shows."""
    mass = {"accept": 0.0, "reject": 0.0}
    for token, logprob in alternatives.items():
        side = _side(token)
        if side is not None and logprob is not None and math.isfinite(logprob):
            mass[side] += math.exp(logprob)
    total = mass["accept"] + mass["reject"]
    if total <= 0:
        return None
    return mass["accept"] / total, total


def decision_probability(tokens: Sequence[TokenLogprob]) -> DecisionProbability | None:
    """Find the decision word of the last decision line and read P(accept) off its alternatives."""
    index = decision_token_index([t.token for t in tokens])
    if index is None:
        return None
    chosen = tokens[index]
    alternatives = dict(chosen.top)
    alternatives.setdefault(chosen.token, chosen.logprob)
    found = probability_from_alternatives(alternatives)
    return None if found is None else DecisionProbability(found[0], found[1], index)
