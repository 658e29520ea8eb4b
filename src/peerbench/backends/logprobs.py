"""P(accept) from token log-probabilities at the decision word the task's parser read.

The model has already written "I recommend this paper for "; what it would have written next is
the distribution we want. The position is the one the parser took its decision from
(``parsing.decision_match``), so P(accept) and the decision can never come from two different
lines; a review without a usable decision (UNPARSED, AMBIGUOUS) has no P(accept).

At that position exactly one token speaks for each side: the first token where the tokenizations
of the two decision words differ (" ACC" against " REJ" for a byte-level BPE, "▁ACC" against
"▁REJ" for SentencePiece). P(accept) = p(accept token) / (p(accept token) + p(reject token)).
By ids, no other token counts: " a" ("for a major revision") or " R" are other continuations.

Where the backend gives token ids and its tokenizer (vllm, hf) both tokens are found by id
(:func:`probability_from_ids`). Where a server gives only token strings (OpenAI-compatible), the
strings are placed in the review's text, tolerating the leading space a SentencePiece token loses
when decoded alone (as vLLM decodes each logprob token); the decided side's token is the one
generated, the other side's is the longest alternative written the same way (same text before
the word, same case) that spells the start of the other word (:func:`decision_probability`).
Without ids that is a judgement: " R" spells the start of " REJECTION" and counts there, while
" a" or " re" (another case) never do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from peerbench.parsing import DEFAULT_PARSER, decision_match

REPLACEMENT = "\ufffd"  # what a token holding part of a character's bytes decodes to alone
LOGPROBS_MODES = ("processed_logprobs", "raw_logprobs")
SERVER_MODE = "server"  # an OpenAI-compatible server: whatever mode it was started with


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability, and the top alternatives at its position."""

    token: str
    logprob: float
    top: Sequence[tuple[str, float]] = ()


@dataclass(frozen=True)
class DecisionProbability:
    p_accept: float
    mass: float  # p(accept token) + p(reject token): how much of the distribution the two words hold
    token_index: int


def decision_words(word: str) -> tuple[bool, str, str]:
    """(is it an acceptance, accept word, reject word): the word the parser read as written, and
    its counterpart in the same length class and case (upper case when the case is mixed)."""
    accept = word.upper().startswith("ACCEPT")
    pair = ("ACCEPTANCE", "REJECTION") if word.upper().endswith(("ANCE", "ION")) else ("ACCEPT", "REJECT")
    other = pair[1] if accept else pair[0]
    other = other.lower() if word.islower() else other.title() if word.istitle() else other
    return (True, word, other) if accept else (False, other, word)


def _ratio(accept: float | None, reject: float | None, index: int) -> DecisionProbability | None:
    probabilities = [math.exp(v) if v is not None and math.isfinite(v) else 0.0 for v in (accept, reject)]
    total = probabilities[0] + probabilities[1]
    if total <= 0:
        return None
    return DecisionProbability(probabilities[0] / total, total, index)


def _first_token_past(n_tokens: int, prefix: Callable[[int], str], position: int) -> int:
    """The first token whose text ends past ``position``: the one holding that character."""
    lo, hi = 0, n_tokens - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if len(prefix(mid + 1)) > position:
            hi = mid
        else:
            lo = mid + 1
    return lo


def probability_from_ids(ids: Sequence[int], encode: Callable[[str], list[int]], decode: Callable[[list[int]], str],
                         logprobs_at: Callable[[int], Mapping[int, float]],
                         parser: str = DEFAULT_PARSER) -> DecisionProbability | None:
    """P(accept) for generated token ``ids``, by the ids of the two words' first differing tokens.

    ``decode`` turns ids into text (special tokens skipped), ``encode`` text into ids (no special
    tokens); ``logprobs_at(i)`` maps token id -> logprob at generated position i (the top
    alternatives and the chosen token). Prefixes are decoded a logarithmic number of times.
    None when the review has no usable decision, or the model spelled the decision line unlike
    its tokenizer would (then which alternative is the other word cannot be known)."""
    prefix = lru_cache(maxsize=None)(lambda n: decode(list(ids[:n])))
    match = decision_match(prefix(len(ids)), parser) if ids else None
    if match is None:
        return None
    text = match.string
    head = text[match.start():match.start(1)]  # "I recommend this paper for " as written
    # and what follows the word up to the next space: SentencePiece pieces run on through "." or "**"
    tail = text[match.end(1):match.end(1) + 32].split(" ")[0]
    decided_accept, accept_word, reject_word = decision_words(match.group(1))
    accept_ids, reject_ids = encode(head + accept_word + tail), encode(head + reject_word + tail)
    split = next(i for i, (a, r) in enumerate(zip(accept_ids + [-1], reject_ids + [-2])) if a != r)
    decided = accept_ids if decided_accept else reject_ids
    if split >= len(decided):
        return None
    back = max(0, min(split - 1, 2))  # tokens before the split that must agree (never the line's first)
    near = _first_token_past(len(ids), prefix, match.start(1))
    for index in (near, near - 1, near + 1):
        if index - back >= 0 and list(ids[index - back:index + 1]) == decided[split - back:split + 1]:
            alternatives = logprobs_at(index)
            return _ratio(alternatives.get(accept_ids[split]) if split < len(accept_ids) else None,
                          alternatives.get(reject_ids[split]) if split < len(reject_ids) else None, index)
    return None


def token_starts(pieces: Sequence[str], text: str) -> list[int] | None:
    """Where each token string begins in ``text``; None if they are not that text.

    A token may have lost a leading space (a SentencePiece token decoded alone), and a token
    holding part of a character's bytes decodes alone to U+FFFD: it is placed where the text
    resumes, and the next token is looked for a few characters on."""
    starts: list[int] = []
    cursor, pending = 0, 0
    for piece in pieces:
        if not piece or REPLACEMENT in piece:
            starts.append(cursor)
            pending += 1
            continue
        at = text.find(piece, cursor, cursor + len(piece) + 4 * pending + _spaces_at(text, cursor)) if pending \
            else cursor if text.startswith(piece, cursor) else _after_spaces(text, cursor, piece)
        if at is None or at < 0:
            return None
        starts.append(at)
        cursor, pending = at + len(piece), 0
    return starts


def _spaces_at(text: str, cursor: int) -> int:
    end = cursor
    while end < len(text) and text[end].isspace():
        end += 1
    return end - cursor


def _after_spaces(text: str, cursor: int, piece: str) -> int | None:
    at = cursor + _spaces_at(text, cursor)
    return at if at > cursor and text.startswith(piece, at) else None


def _spells(rest: str, word: str) -> bool:
    """The token text after the head starts ``word`` (or is the whole word and punctuation)."""
    return bool(rest) and (word.startswith(rest) or (rest.startswith(word) and not rest[len(word):][:1].isalnum()))


def decision_probability(tokens: Sequence[TokenLogprob], text: str | None = None,
                         parser: str = DEFAULT_PARSER) -> DecisionProbability | None:
    """P(accept) from token strings and the review's text (the joined tokens when not given)."""
    pieces = [t.token for t in tokens]
    text = "".join(pieces) if text is None else text
    match = decision_match(text, parser) if text else None
    starts = token_starts(pieces, text) if match is not None else None
    if match is None or starts is None:
        return None
    position = match.start(1)
    index = next((i for i, (piece, start) in enumerate(zip(pieces, starts))
                  if piece and REPLACEMENT not in piece and start + len(piece) > position), None)
    if index is None or starts[index] > position:
        return None
    chosen = tokens[index]
    head = chosen.token[: position - starts[index]]  # what the token holds before the word: " ", "**", ""
    decided_accept, accept_word, reject_word = decision_words(match.group(1))
    other = reject_word if decided_accept else accept_word
    candidates = [(token, logprob) for token, logprob in chosen.top
                  if token.startswith(head) and _spells(token[len(head):], other)]
    other_logprob = max(candidates, key=lambda c: len(c[0]))[1] if candidates else None
    if decided_accept:
        return _ratio(chosen.logprob, other_logprob, index)
    return _ratio(other_logprob, chosen.logprob, index)


def p_accept_source(samples: Sequence[Mapping[str, Any]]) -> str | None:
    """Where a run's P(accept) values come from, in words for the tables; None if it has none."""
    kinds = set()
    for sample in samples:
        if sample.get("p_accept") is None:
            continue
        extra = sample.get("extra") or {}
        if (extra.get("samples") or 1) > 1:
            kinds.add(f"share of {extra['samples']} samples")
        else:
            kinds.add({"processed_logprobs": "processed logprobs (after temperature/top-p)",
                       "raw_logprobs": "raw logprobs (temperature 1, before top-p)",
                       SERVER_MODE: "the server's logprobs (vLLM: raw unless started with "
                                    "--logprobs-mode processed_logprobs)"}.get(extra.get("logprobs_mode"),
                                                                               _unnamed_source(extra)))
    return "; ".join(sorted(kinds)) or None


def _unnamed_source(extra: Mapping[str, Any]) -> str:
    """A P without a recorded logprobs mode: logprobs from before the mode was recorded, or a backend's
    own estimate (a classifier's probability, a replayed file's column)."""
    return "logprobs of unrecorded kind" if "decision_mass" in extra else "the backend's own estimate (not logprobs)"
