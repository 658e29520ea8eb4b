"""Echoes: a review that copies a long stretch of its own prompt back.

A model that repeats the paper it was given (a small model looping, a server that returns the
prompt) can carry the paper's own text into its review, and with it anything the paper says,
a decision line included. Such a stretch is no part of the model's review: it is found, recorded
on the sample, and blanked before the decision and the rating are read.

The rule (docs/metrics.md, "Echoes"): words are runs of non-space characters, compared exactly.
A word of the review is *copied* when it lies in some run of ``SHINGLE_WORDS`` consecutive
review words that also stands, word for word, in the prompt. An *echo* is a stretch of at least
``ECHO_MIN_WORDS`` consecutive copied words. Reviews quote a sentence or two (well under 50
words); a copied paragraph or a whole section is an echo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHINGLE_WORDS = 8
ECHO_MIN_WORDS = 50
_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class Echo:
    """The echoed stretches of one review, as character spans of the review text."""

    spans: tuple[tuple[int, int], ...]
    words: int

    def to_json(self) -> dict[str, object]:
        return {"spans": [list(span) for span in self.spans], "words": self.words,
                "min_words": ECHO_MIN_WORDS}


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _copied_flags(review_words: list[str], prompt_shingles: set[tuple[str, ...]]) -> list[bool]:
    copied = [False] * len(review_words)
    for start in range(len(review_words) - SHINGLE_WORDS + 1):
        if tuple(review_words[start:start + SHINGLE_WORDS]) in prompt_shingles:
            copied[start:start + SHINGLE_WORDS] = [True] * SHINGLE_WORDS
    return copied


def find_echo(review: str | None, prompt: str) -> Echo | None:
    """The review's echoed stretches of ``prompt``, or None when it has none."""
    if not review or not prompt:
        return None
    matches = list(_WORD_RE.finditer(review))
    if len(matches) < ECHO_MIN_WORDS:
        return None
    copied = _copied_flags([m.group() for m in matches], _shingles(_WORD_RE.findall(prompt)))
    spans, words, run_start = [], 0, None
    for index, flag in enumerate([*copied, False]):
        if flag and run_start is None:
            run_start = index
        elif not flag and run_start is not None:
            if index - run_start >= ECHO_MIN_WORDS:
                spans.append((matches[run_start].start(), matches[index - 1].end()))
                words += index - run_start
            run_start = None
    return Echo(tuple(spans), words) if spans else None


def without_echo(review: str, echo: Echo | None) -> str:
    """The review with its echoed stretches blanked (same length: offsets still point into it)."""
    if echo is None:
        return review
    chars = list(review)
    for start, end in echo.spans:
        chars[start:end] = re.sub(r"\S", " ", review[start:end])
    return "".join(chars)


def prompt_text(messages: list[dict[str, str]]) -> str:
    """What the model was given: every message of the prompt, the paper as truncated included."""
    return "\n".join(str(message.get("content") or "") for message in messages)
