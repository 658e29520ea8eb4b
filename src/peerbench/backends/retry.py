"""How long to wait before trying a request again: the server's Retry-After when it sends one,
else exponential backoff with jitter, so that many clients do not retry in lockstep."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_RETRY_AFTER_S = 60.0
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, capped at a minute; None if absent or unreadable."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return min(max(float(millis) / 1000, 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def backoff_delay(attempt: int, base: float, cap: float = 30.0) -> float:
    """base * 2**attempt, capped, times a jitter factor in [0.5, 1.5)."""
    return min(cap, base * (2 ** attempt)) * (0.5 + random.random())


@dataclass(frozen=True)
class Failure:
    """How a backend judges one failed attempt: worth another try (with the server's Retry-After, if
    any) or final for this paper. Failures no paper could survive are raised as BackendError instead."""

    problem: str
    retry: bool
    retry_after: float | None = None


async def complete_with_retries(call: Callable[[], Awaitable[Any]], judge: Callable[[Exception], Failure], *,
                                max_retries: int, backoff: float) -> Any:
    """``call()`` until it returns a Completion, up to ``max_retries`` more times; the last problem
    becomes the paper's error. ``judge`` re-raises what it does not know."""
    from peerbench.records import Completion

    attempts = max_retries + 1
    failure = Failure("", True)
    for attempt in range(attempts):
        try:
            completion = await call()
            completion.extra["attempts"] = attempt + 1
            return completion
        except Exception as exc:  # judged below: retried, recorded, or raised again
            failure = judge(exc)
        if not failure.retry:
            return Completion(error=failure.problem, extra={"attempts": attempt + 1})
        if attempt < attempts - 1:
            wait = backoff_delay(attempt, backoff) if failure.retry_after is None else failure.retry_after
            await asyncio.sleep(wait)
    return Completion(error=f"{failure.problem} (gave up after {attempts} tries)", extra={"attempts": attempts})
