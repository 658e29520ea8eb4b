"""How a failed Gemini request is judged: retried, this paper's failure, or the end of the run.

The API's error body carries what the HTTP status does not: ``google.rpc.RetryInfo.retryDelay``
on a 429 (the wait the quota needs; Gemini sends no Retry-After header), and, on a 400
INVALID_ARGUMENT, whether a setting was refused (a thinking budget, a level, the output cap, the
key), which no paper can get past, or this paper's own input (a prompt over the context), which
only fails the paper. A refused setting ends the run with one line instead of failing every
paper one by one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import Any

from peerbench.errors import BackendError, scrub
from peerbench.pipeline.retry import MAX_RETRY_AFTER_S, RETRY_STATUS, Failure, retry_after_seconds

MAX_ERROR_CHARS = 300
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
# What a 400 names when a request setting, not the paper, was refused (the messages Gemini sends:
# "Budget 0 is invalid. This model only works in thinking mode.", "Thinking level is not supported
# for this model.", "... maxOutputTokens value of ... but the supported range ...", "API key not valid").
SETTING_RE = re.compile(r"(?i)thinking|budget|generation_?config|max_?output_?tokens|maxOutputTokens|temperature|"
                        r"\btop_?p\b|topP|\bseed\b|response_?mime|api key|not supported for this model")
SETTING_FIELDS = ("generation_config", "generationConfig", "system_instruction", "systemInstruction")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def short(text: object, secrets: Iterable[str | None] = ()) -> str:
    """One line, secrets masked (registered ones, and those the backend holds), at most 300 characters."""
    message = " ".join(str(text).split())
    for secret in secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
    return scrub(message)[:MAX_ERROR_CHARS]


def _details(exc: Any) -> list[dict[str, Any]]:
    body = getattr(exc, "details", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    found = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def retry_delay(exc: Any) -> float | None:
    """RetryInfo.retryDelay ("41s", "0.5s") in seconds, capped like Retry-After; None if absent."""
    for detail in _details(exc):
        if detail.get("@type") == RETRY_INFO:
            found = _DURATION_RE.match(str(detail.get("retryDelay", "")))
            if found:
                return min(float(found.group(1)), MAX_RETRY_AFTER_S)
    return None


def refused_setting(exc: Any) -> bool:
    """A 400 about the request's settings or key, which every paper would get again."""
    if exc.code != 400:
        return False
    if exc.status == "FAILED_PRECONDITION" or SETTING_RE.search(str(exc.message or "")):
        return True
    fields = [str(v.get("field", "")) for d in _details(exc) if d.get("@type") == BAD_REQUEST
              for v in d.get("fieldViolations") or [] if isinstance(v, dict)]
    return any(f.startswith(SETTING_FIELDS) for f in fields)


def judge_api_error(exc: Any, name: str, model: str, login_hint: str, location_hint: str,
                    mask: Callable[[object], str]) -> Failure:
    """An HTTP error from the API: raise BackendError to end the run, or a Failure for this paper."""
    problem = f"HTTP {exc.code} {exc.status or ''}: {mask(exc.message)}".replace("  ", " ")
    if exc.code in (401, 403) or (exc.code == 400 and "api key" in str(exc.message or "").lower()):
        raise BackendError(f"{name}: the request was refused ({problem}); {login_hint}") from None
    if exc.code == 404:
        raise BackendError(f"{name}: model {model!r} was not found ({problem}){location_hint}") from None
    if refused_setting(exc):
        raise BackendError(f"{name}: the API refused the request's settings ({problem}); no paper can succeed "
                           "with them: check --thinking-budget, --thinking-level, --max-tokens, --temperature "
                           "and --model") from None
    headers = getattr(getattr(exc, "response", None), "headers", None)
    wait = retry_delay(exc)
    return Failure(problem, exc.code in RETRY_STATUS, wait if wait is not None else retry_after_seconds(headers))


def judge_other(exc: Exception, name: str, timeout: float, login_hint: str,
                mask: Callable[[object], str]) -> Failure:
    """Timeouts, dropped connections and credential refreshes; anything else is raised again."""
    from google.auth import exceptions as auth_errors

    if isinstance(exc, auth_errors.RefreshError):  # a revoked or expired login: no paper can succeed
        raise BackendError(f"{name}: Google refused to refresh the credentials ({mask(exc)}); {login_hint}") from None
    if isinstance(exc, auth_errors.TransportError):  # the token endpoint did not answer: try again
        return Failure(f"could not refresh the Google access token ({mask(exc)})", True)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Failure(f"no reply within {timeout:g} s ({type(exc).__name__})", True)
    if isinstance(exc, (ValueError, TypeError, AttributeError)):  # garbage, HTML, invalid UTF-8, a bare list
        return Failure(f"malformed reply: {type(exc).__name__}: {mask(exc)}", True)
    if _is_transport_error(exc):  # transport errors differ between the SDK's httpx and aiohttp paths
        return Failure(f"connection failed: {type(exc).__name__} {mask(exc)}".strip(), True)
    raise exc


def _is_transport_error(exc: Exception) -> bool:
    names = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    return bool(names & {"httpx", "httpx2", "aiohttp", "httpcore"}) or isinstance(exc, ConnectionError)
