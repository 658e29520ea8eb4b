"""The bootstrap's resamples, drawn and used in chunks of rows, each chunk shared by every metric.

A (1000 x n) index matrix, and the (1000 x n) weight matrix of the P(accept) metrics, are 160 MB
each at 20,000 papers and 1.6 GB at 200,000: built whole, and rebuilt for each metric, they were
most of `report`'s time and memory. The rows are drawn here a chunk at a time from the one seeded
generator, which yields exactly the rows one ``integers(0, n, (resamples, n))`` call would (numpy's
generators fill arrays in order), and every metric computes its values for the chunk's rows; each
row's value is computed as before, so the intervals are the same numbers as a whole-matrix
bootstrap's for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from peerbench.metrics import Metric, ScoreInputs

CHUNK_ENTRIES = 2_000_000  # resample rows x papers held at once
MIN_ROWS = 50                # but never fewer rows than this a chunk (10,000,000 entries at 200,000 papers)


def resample_chunks(n: int, resamples: int, seed: int, chunk_entries: int | None = None):
    """The rows of the seeded (resamples x n) index matrix, a block of rows at a time."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # at least MIN_ROWS a chunk: each chunk costs the metrics some O(n) set-up (sorting P(accept))
    step = max(min(MIN_ROWS, resamples), (chunk_entries or CHUNK_ENTRIES) // max(1, n))
    for start in range(0, resamples, step):
        yield rng.integers(0, n, size=(min(step, resamples - start), n))


def resampled_values(inputs: ScoreInputs, metrics: Sequence[Metric], *, resamples: int, seed: int,
                     counts_of: Callable[[ScoreInputs, Any], tuple]) -> dict[str, Any]:
    """Each metric's value on every resample (nan where undefined), metric name -> array.

    ``counts_of(inputs, index)`` gives the confusion counts of each row (scoring.resampled_counts).
    Metrics of P(accept) that every paper lacks are left out, as are, per paper, the papers without
    one for a ``from_resamples`` that says it leaves them out; any other metric is computed on each
    resample's subset."""
    import numpy as np

    from peerbench.metrics.decision import shared_weights

    missing_p = np.isnan(inputs.p_accept)
    chosen = [m for m in metrics if m.from_counts is not None or not (m.needs_proba and missing_p.all())]
    parts: dict[str, list[Any]] = {m.name: [] for m in chosen}
    for index in resample_chunks(len(inputs.y_true), resamples, seed):
        counts = counts_of(inputs, index) if any(m.from_counts is not None for m in chosen) else None
        with shared_weights():  # one weight matrix for all the P(accept) metrics of this chunk
            for metric in chosen:
                parts[metric.name].append(_values(metric, inputs, index, counts, missing_p))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _values(metric: Metric, inputs: ScoreInputs, index, counts, missing_p):
    import numpy as np

    if metric.from_counts is not None:
        return np.asarray(metric.from_counts(*counts), dtype=float)
    # papers without a P(accept) go to a from_resamples only if it says it leaves them out
    vectorised = metric.from_resamples is not None and (
        not (metric.needs_proba and missing_p.any())
        or getattr(metric.from_resamples, "leaves_out_missing_p", False))
    if vectorised:
        return np.asarray(metric.from_resamples(inputs, index), dtype=float)
    return np.array([v if (v := metric.compute(inputs.subset(row))) is not None else np.nan for row in index],
                    dtype=float)
