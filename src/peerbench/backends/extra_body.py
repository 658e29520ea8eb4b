"""What ``-o extra_body`` may add to an OpenAI-compatible request: fields the server understands
and peerbench does not set (vLLM's ``top_k``, ``repetition_penalty``, ``chat_template_kwargs``...).

A key the harness sets itself is refused, naming the flag that sets it: sent from extra_body it would
replace the paper's prompt or the task's settings while config.json recorded the task's. A NaN or an
infinite number is refused too: JSON has none, and the server's refusal of every retry would be
blamed on the server."""

from __future__ import annotations

import math
from typing import Any

# extra_body keys the harness sets itself, and where the user sets them instead: sent from extra_body
# they would replace the paper's prompt or the task's settings while config.json records the task's.
# (max_completion_tokens is not one: peerbench never sends it, and a reasoning model's servers take it
# as the cap on reasoning and answer together, beside max_tokens; it is recorded and in the identity.)
HARNESS_KEYS = {
    "messages": "the task's prompt (the paper)", "prompt": "the task's prompt (the paper)", "model": "--model",
    "temperature": "--temperature", "top_p": "--top-p", "max_tokens": "--max-tokens", "n": "--samples", "seed": "the task's generation.seed",
    "logprobs": "-o logprobs", "top_logprobs": "-o top_logprobs", "stream": "peerbench (it reads whole replies)",
    "stream_options": "peerbench (it reads whole replies)",
    "stop": "peerbench (a review runs to its end: a stop sequence could cut its decision)",
}


def refuse_harness_keys(body: dict[str, Any]) -> dict[str, Any]:
    """extra_body with no key the harness sets and no NaN or infinite number (a server would refuse the
    request, and every retry after it, while the error blamed the server)."""
    for key in body:
        if key in HARNESS_KEYS:
            raise ValueError(f"extra_body key {key!r} is set by {HARNESS_KEYS[key]}; remove it from extra_body")
    where = non_finite(body)
    if where is not None:
        raise ValueError(f"extra_body{where} is not a finite number; JSON has no NaN or infinity")
    return body


def non_finite(value: Any, where: str = "") -> str | None:
    """The path (``.a[0]``) of the first NaN or infinite number in a JSON-like value, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(value)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found = non_finite(inner, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]")
        if found is not None:
            return found
    return None
