"""The metric interface: a metric maps scored decisions to one number.

``compute`` gives the point estimate (built-ins call scikit-learn); ``from_counts``, where a metric
is a function of the confusion counts, computes all bootstrap resamples at once with numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any  # numpy.ndarray; numpy is imported only where metrics are computed
# Bootstrap resamples unless a run or a command says otherwise (here, not in reporting.scoring, so the
# CLI's options know it without importing scoring at start-up).
DEFAULT_RESAMPLES = 1000
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # the review measures' sentence encoder (--encoder)


@dataclass(frozen=True)
class ScoreInputs:
    """Per-paper arrays: gold (bool), predicted (bool, after the unparsed policy), p_accept (float or nan),
    unparsed (bool: no usable decision, UNPARSED or AMBIGUOUS), and optionally said_accept (bool: the
    review itself said ACCEPTANCE; an unparsed review never did, whatever the policy made of it) and
    ambiguous (bool: both decision lines)."""

    y_true: Array
    y_pred: Array
    p_accept: Array
    unparsed: Array
    said_accept: Array | None = None
    ambiguous: Array | None = None

    @property
    def accepts(self) -> Array:
        """Papers whose review said ACCEPTANCE (y_pred where the caller gave no said_accept)."""
        return self.y_pred if self.said_accept is None else self.said_accept

    def subset(self, index: Any) -> ScoreInputs:
        """The same arrays, indexed (a venue's rows, or a resample matrix)."""
        def pick(array: Array | None) -> Array | None:
            return None if array is None else array[index]

        return ScoreInputs(self.y_true[index], self.y_pred[index], self.p_accept[index], self.unparsed[index],
                           pick(self.said_accept), pick(self.ambiguous))


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    compute: Callable[[ScoreInputs], float | None]
    from_counts: Callable[[Array, Array, Array, Array, Array], Array] | None = None
    # (inputs, resample index matrix) -> one value per resample, for metrics of P(accept).
    from_resamples: Callable[[ScoreInputs, Array], Array] | None = None
    needs_proba: bool = False
    higher_is_better: bool | None = True
