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

from peerbench.records import Completion

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
    if completion.error or completion.text:
        return completion
    reason = f"finish reason {completion.finish_reason}" if completion.finish_reason else "no finish reason"
    what = "no answer after the reasoning" if completion.extra.get("reasoning") else "empty completion"
    return dataclasses.replace(completion, error=f"{what} ({reason})")


def settle_reply(completion: Completion) -> Completion:
    """One reply as the harness keeps it: inline reasoning moved out of the text (its logprob
    P(accept), read over the whole text, dropped), a thinking reply cut by the budget failed."""
    if completion.error:
        return completion
    reasoning, answer = split_thinking(completion.text)
    if reasoning is not None:
        completion = dataclasses.replace(completion, text=answer, p_accept=None,
                                         extra={**completion.extra, "reasoning": reasoning})
    if completion.extra.get("reasoning") and completion.finish_reason == "length":
        where = "in the answer" if completion.text.strip() else "while thinking, before any answer"
        return dataclasses.replace(completion, error=f"cut by the token budget {where} (finish reason length); "
                                                     "raise --max-tokens or the reasoning budget option")
    return as_failure_if_empty(completion)
