"""Errors a user can act on.

Every :class:`PeerbenchError` is printed by the CLI as one line and exits with code 2, so the
message itself must name the file, field or flag at fault and, where possible, the fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any


class PeerbenchError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2


class UnknownNameError(PeerbenchError, KeyError):
    """A backend, task, metric, dataset, label rule or model name that nothing registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name = kind, name
        self.choices = sorted(choices)
        close = difflib.get_close_matches(name, self.choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        valid = ", ".join(self.choices) or "none registered"
        super().__init__(f"unknown {kind} {name!r}{hint}; valid choices: {valid}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(PeerbenchError):
    """Two plugins registered the same name for the same kind of thing."""


class MissingDependency(PeerbenchError):
    """A plugin needs an optional extra that is not installed."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"{package} is not installed; run: pip install 'peerbench[{extra}]'")


class ConfigError(PeerbenchError):
    """A task file, option or run directory that does not fit."""


class DataError(PeerbenchError):
    """A data file that is missing, malformed or disagrees with the known facts."""


class BackendError(PeerbenchError):
    """A backend could not serve any request; raised to stop a run early."""


# Values that must never reach output, logs, run directories or reports: API keys a backend read
# from the environment register here, and every message that leaves peerbench goes through scrub().
_SECRETS: set[str] = set()
_URL_USERINFO_RE = re.compile(r"(?<=//)[^/@\s]+@")
_SECRET_QUERY_RE = re.compile(r"(?i)([?&](?:api[-_]?key|key|token|access_token|sig|signature|password)=)[^&\s#]+")


def url_has_credentials(url: str) -> bool:
    """Whether a URL carries user:password@ or a secret-looking query value (what scrub() masks)."""
    return bool(_URL_USERINFO_RE.search(url) or _SECRET_QUERY_RE.search(url))


def register_secret(value: str | None) -> None:
    """Mask this value wherever it would be printed or stored (short values would mask ordinary words)."""
    if value and len(value) >= 8:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """The text with every registered secret, URL credentials and secret-looking query values masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _SECRET_QUERY_RE.sub(r"\1***", _URL_USERINFO_RE.sub("***@", text))


def mask_secrets(value: Any) -> Any:
    """``value`` (a JSON-like record: a sample, a cached completion, metrics) with :func:`scrub` applied
    to every string in it, keys included: whatever field a server echoed a key into (the review, the
    finish reason, an error), it is masked where peerbench writes it. Only what is stored or printed is
    masked; identities and cache keys are hashed from the real values."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {mask_secrets(k) if isinstance(k, str) else k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value


def register_env_secrets(options: Any) -> None:
    """Register the values of the variables a run's options name (``api_key_env``, ``access_token_env``):
    a report written by another process masks them too, though it never read them to send a request."""
    import os

    if isinstance(options, dict):
        for key, value in options.items():
            if str(key).endswith("_env") and isinstance(value, str):
                register_secret(os.environ.get(value))
            else:
                register_env_secrets(value)


def environment_message(exc: OSError) -> str:
    """One line for a file-system failure (read-only, full, a file where a folder should be), naming
    the path and what to do; every finished paper is already stored when this is raised."""
    import errno

    where = exc.filename or "a file"
    hints = {errno.EROFS: "read-only file system: point --out or PEERBENCH_HOME at a writable folder",
             errno.EACCES: "permission denied: point --out or PEERBENCH_HOME at a writable folder",
             errno.ENOSPC: "no space left on the device: free some and rerun; finished papers are kept",
             errno.ENOTDIR: "a file stands where a folder is needed: pick another --out or PEERBENCH_HOME",
             errno.EEXIST: "a file stands where a folder is needed: pick another --out or PEERBENCH_HOME",
             errno.EISDIR: "a folder stands where a file is needed"}
    return f"{where}: {hints.get(exc.errno, exc.strerror or str(exc))}"


def first_problem(exc: Any) -> tuple[str, str, str]:
    """(field path, message, kind) of a pydantic ValidationError's first error: every one-line
    message about a task file, sweep file, dataset selection or backend option starts from it."""
    err = exc.errors()[0]
    message = str(err["msg"]).removeprefix("Value error, ")
    return ".".join(str(part) for part in err["loc"]), message, err["type"]


def validated_options(model: Any, values: dict[str, Any], owner: str, spelling: Any) -> Any:
    """``model(**values)``, or a ConfigError naming the option as the user spells it
    (``spelling(model, field)``: a flag, or ``-o NAME``) and every option ``owner`` takes."""
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        field, message, _ = first_problem(exc)
        valid = ", ".join(model.model_fields) or "none"
        raise ConfigError(f"{spelling(model, field)}: {message} ({owner} takes: {valid})") from None
