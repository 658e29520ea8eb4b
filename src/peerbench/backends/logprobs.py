"""P(accept) from token log-probabilities at the decision word the task's parser read.

The model has already written "I recommend this paper for "; what it would have written next is
the distribution we want. The position is the one the parser took its decision from
(``parsing.decision_match``), so P(accept) and the decision can never come from two different
lines; a review without a usable decision (UNPARSED, AMBIGUOUS) has no P(accept).

Tokens that begin the decision word count for its side: "ACC", "ACCEPT" for accept, "REJ" for
reject; under the case-sensitive reference parser only upper-case ones (" a" or " re" are other
words), under the lenient parser any case from three letters on. The probability is
accept / (accept + reject) over the top alternatives the server returned, with no alternative of
either kind in view, None rather than a guess. These are the model's raw (temperature 1)
next-token probabilities, not the tempered, top-p distribution the decision was sampled from.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from peerbench.parsing import DEFAULT_PARSER, decision_match

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


def _side(token: str, parser: str = DEFAULT_PARSER) -> str | None:
    """Which decision a token starts: a prefix of ACCEPTANCE or REJECTION in the parser's case rule."""
    word = token.strip(_STRIP)
    if not word:
        return None
    if parser == "lenient":
        if len(word) < 3 and not word.isupper():
            return None
        word = word.upper()
    if "ACCEPTANCE".startswith(word):
        return "accept"
    if "REJECTION".startswith(word):
        return "reject"
    return None


def decision_token_index(token_texts: Sequence[str], parser: str = DEFAULT_PARSER) -> int | None:
    """Index of the token that starts the decision word the parser read, if any."""
    ends = list(itertools.accumulate(map(len, token_texts), initial=0))
    text = "".join(token_texts)
    return decision_index_by_prefix(len(token_texts), lambda i: text[: ends[i]], parser)


def decision_index_by_prefix(n_tokens: int, prefix: Callable[[int], str], parser: str = DEFAULT_PARSER) -> int | None:
    """decision_token_index when token texts are costly: ``prefix(i)`` is the text of the first i
    tokens (a tokenizer's decode of them), asked for O(log n) times instead of once per token."""
    match = decision_match(prefix(n_tokens), parser)
    if match is None:
        return None
    position = match.start(1)
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
    if _side(token(lo), parser) is None and lo + 1 < n_tokens and _side(token(lo + 1), parser):
        return lo + 1
    return lo


def probability_from_alternatives(alternatives: dict[str, float],
                                  parser: str = DEFAULT_PARSER) -> tuple[float, float] | None:
    """(P(accept), covered mass) from token -> logprob at the decision position; None if neither side shows."""
    mass = {"accept": 0.0, "reject": 0.0}
    for token, logprob in alternatives.items():
        side = _side(token, parser)
        if side is not None and logprob is not None and math.isfinite(logprob):
            mass[side] += math.exp(logprob)
    total = mass["accept"] + mass["reject"]
    if total <= 0:
        return None
    return mass["accept"] / total, total


def decision_probability(tokens: Sequence[TokenLogprob], parser: str = DEFAULT_PARSER) -> DecisionProbability | None:
    """Find the decision word the parser read and read P(accept) off its alternatives."""
    index = decision_token_index([t.token for t in tokens], parser)
    if index is None:
        return None
    chosen = tokens[index]
    alternatives = dict(chosen.top)
    alternatives.setdefault(chosen.token, chosen.logprob)
    found = probability_from_alternatives(alternatives, parser)
    return None if found is None else DecisionProbability(found[0], found[1], index)
