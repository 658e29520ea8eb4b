"""The harness's one retry driver. Backends only classify a failed attempt (``Backend.classify_error``
returns a :class:`Failure`); how often to try again and how long to wait is decided here, the same
way for every backend, built-in or third-party (inspect_ai's split between ``should_retry`` and
the harness).

The wait is the server's Retry-After when it sends one, else exponential backoff with jitter, so
that many clients do not retry in lockstep. Standard library only: backends import
:class:`Failure` from here and ``peerbench --help`` must stay fast.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_RETRY_AFTER_S = 60.0
# HTTP statuses worth another try: timeouts, conflicts, too early, rate limits, server errors.
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
    """How a backend judges one failed attempt: transient (``retry``), rate-limited (``retry`` with
    the server's ``retry_after`` in seconds), or final for this paper (``retry=False``: the problem
    becomes the paper's error). Failures no paper could survive are raised as BackendError instead."""

    problem: str
    retry: bool
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How many more tries a failed request gets, and the first backoff in seconds (doubling per try)."""

    max_retries: int
    backoff: float = 1.0


async def complete_with_retries(call: Callable[[], Awaitable[Any]], judge: Callable[[Exception], Failure], *,
                                max_retries: int, backoff: float) -> Any:
    """``call()`` until it returns a Completion, up to ``max_retries`` more times; the last problem
    becomes the paper's error and ``extra["attempts"]`` counts the tries. BackendError (fatal for the
    whole run) is never judged: it ends the run whatever the backend's classifier would say.
    ``judge`` re-raises what it does not know, so an unexpected exception is a bug, not a retry."""
    from peerbench.errors import BackendError
    from peerbench.records import Completion

    attempts = max_retries + 1
    failure = Failure("", True)
    for attempt in range(attempts):
        try:
            completion = await call()
            completion.extra["attempts"] = attempt + 1
            return completion
        except BackendError:
            raise
        except Exception as exc:  # judged below: retried, recorded, or raised again
            failure = judge(exc)
        if not failure.retry:
            return Completion(error=failure.problem, extra={"attempts": attempt + 1})
        if attempt < attempts - 1:
            wait = backoff_delay(attempt, backoff) if failure.retry_after is None else failure.retry_after
            await asyncio.sleep(wait)
    tries = "1 try" if attempts == 1 else f"{attempts} tries"
    return Completion(error=f"{failure.problem} (gave up after {tries})", extra={"attempts": attempts})
