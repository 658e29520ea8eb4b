"""Errors a user can act on.

Every :class:`PeerbenchError` is printed by the CLI as one line and exits with code 2, so the
message itself must name the file, field or flag at fault and, where possible, the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
