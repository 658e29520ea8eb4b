"""The metric interface: a metric maps scored decisions to one number.

``compute`` gives the point estimate (built-ins call scikit-learn); ``from_counts``, where a metric
is a function of the confusion counts, computes all bootstrap resamples at once with numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any  # numpy.ndarray; numpy is imported only where metrics are computed


@dataclass(frozen=True)
class ScoreInputs:
    """Per-paper arrays: gold (bool), predicted (bool, after the unparsed policy), p_accept (float or nan),
    unparsed (bool)."""

    y_true: Array
    y_pred: Array
    p_accept: Array
    unparsed: Array


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
