"""Thinking models: a reply's reasoning is kept apart from its review.

A server with a reasoning parser (vLLM, SGLang) returns the reasoning in ``reasoning_content`` or
``reasoning``; Gemini returns thought parts; a server without a parser leaves it in the text as a
leading ``<think>...</think>``. Whichever way it comes, the reasoning is stored in
``extra["reasoning"]`` and the review is what follows it: the decision and the rating are read
from the answer alone (a trace that weighs "I recommend this paper for ACCEPTANCE" decides
nothing). As vLLM's parser does, the answer is the text after ``</think>`` exactly as it stands.

A thinking reply that ended at the token budget (finish reason ``length``) is a failure named as
such, never an UNPARSED review; so is an answer left empty after the reasoning.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from peerbench.records import Completion

MAX_CHARS_PER_TOKEN = 64  # a reply longer than this many characters per max_token is a failure, not a review
_THINK_RE = re.compile(r"\A\s*<think>(.*?)</think>", re.DOTALL)
_OPEN_THINK_RE = re.compile(r"\A\s*<think>(.*)\Z", re.DOTALL)


def split_thinking(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a text that starts with ``<think>``; (None, text) otherwise. A
    ``<think>`` never closed is all reasoning: the budget ran out before the answer began."""
    closed = _THINK_RE.match(text or "")
    if closed:
        return closed.group(1), text[closed.end():]
    unclosed = _OPEN_THINK_RE.match(text or "")
    if unclosed:
        return unclosed.group(1), ""
    return None, text


def as_failure_if_empty(completion: Completion) -> Completion:
    """An answer without any text (an empty string, a null content) is no review: a failed paper
    (requested again by the next run), never cached and never scored as a review that forgot its
    decision. Whitespace the model generated is its answer, and is scored (UNPARSED)."""
    if completion.text is not None and not isinstance(completion.text, str):  # a backend's bug, not a review
        return dataclasses.replace(completion, text=None,
                                   error=f"the reply's text is a {type(completion.text).__name__}, not text")
    if completion.error or completion.text:
        return completion
    reason = f"finish reason {completion.finish_reason}" if completion.finish_reason else "no finish reason"
    what = "no answer after the reasoning" if completion.extra.get("reasoning") else "empty completion"
    return dataclasses.replace(completion, error=f"{what} ({reason})")


def as_failure_if_oversized(completion: Completion, max_tokens: int) -> Completion:
    """A reply longer than ``max_tokens`` could make, at MAX_CHARS_PER_TOKEN characters a token (real
    tokens average 3-5), is no review of this request (a broken or hostile server): a failed paper,
    named as such, whose text is not stored (nor cached, nor put in a report)."""
    limit = MAX_CHARS_PER_TOKEN * max_tokens
    if completion.error or not isinstance(completion.text, str) or len(completion.text) <= limit:
        return completion
    return dataclasses.replace(completion, text=None, p_accept=None,
                               error=f"oversized reply: {len(completion.text):,} characters, more than max_tokens "
                                     f"{max_tokens} can make ({MAX_CHARS_PER_TOKEN} characters a token: at most "
                                     f"{limit:,}); the text was not stored")


def settle_reply(completion: Completion, max_tokens: int | None = None) -> Completion:
    """One reply as the harness keeps it: inline reasoning moved out of the text (its logprob
    P(accept), read over the whole text, dropped), a thinking reply cut by the budget failed, an
    empty or oversized one failed (:func:`as_failure_if_empty`, :func:`as_failure_if_oversized`)."""
    if completion.error or not isinstance(completion.text, str):
        return as_failure_if_empty(completion)
    reasoning, answer = split_thinking(completion.text)
    if reasoning is not None:
        completion = dataclasses.replace(completion, text=answer, p_accept=None,
                                         extra={**completion.extra, "reasoning": reasoning})
    if completion.extra.get("reasoning") and completion.finish_reason == "length":
        where = "in the answer" if completion.text.strip() else "while thinking, before any answer"
        return dataclasses.replace(completion, error=f"cut by the token budget {where} (finish reason length); "
                                                     "raise --max-tokens or the reasoning budget option")
    completion = as_failure_if_empty(completion)
    return completion if max_tokens is None else as_failure_if_oversized(completion, max_tokens)


def reasoning_of(message: Any) -> str | None:
    """A reasoning parser's trace: ``reasoning_content`` (vLLM, DeepSeek) or ``reasoning`` (newer vLLM, OpenRouter)."""
    extra = getattr(message, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None) or extra.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def answer_tokens(tokens: list[Any], answer: str) -> list[Any]:
    """The tokens that spell the answer, when the tokens spell more (an inline ``<think>`` before it,
    or a server whose logprobs cover the reasoning too); unchanged where they do not line up."""
    joined = "".join(t.token for t in tokens)
    if joined == answer or not joined.endswith(answer):
        return tokens
    cut, length = 0, len(joined) - len(answer)
    for index, token in enumerate(tokens):
        if cut == length:
            return tokens[index:]
        cut += len(token.token)
    return tokens if cut != length else []
