"""Kendall's tau-b and pairwise accuracy of many rows at once, from contingency tables.

Ratings take few values (a 1-10 scale, a mean of three 1-5 ratings), so the pairs of a row are
counted from the table of (human level, model level) counts rather than from the papers: O(papers)
to fill the table, O(levels^2) to count its concordant, discordant and tied pairs, whatever the
number of papers. This is what lets the human ceiling and the bootstrap of the pair metrics run on
tens of thousands of papers in well under a second, where scipy's ``kendalltau`` per row took
minutes. The counts are exact integers and the final formulas are scipy's (``kendalltau``) and
:func:`peerbench.metrics.rating.pairwise_accuracy`'s, so the values agree with them.

Where a row has more distinct values than :data:`MAX_CELLS` allows (continuous scores), the
callers fall back to scipy per row.
"""

from __future__ import annotations

from typing import Any

MAX_CELLS = 4096           # human levels x model levels of one table
CHUNK_ENTRIES = 2_000_000  # rows x papers handled at once (memory: a few arrays of this many entries)


def levels(values) -> tuple[Any, int] | None:
    """Each value's level (its index among the sorted distinct values), -1 for nan, and how many
    levels there are; None where there are more than :data:`MAX_CELLS`. Meant for per-paper
    arrays (small): a resample's or a draw's codes are these, gathered."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    distinct = np.unique(values[~missing])
    if len(distinct) > MAX_CELLS:
        return None
    codes = np.searchsorted(distinct, np.where(missing, distinct[0] if len(distinct) else 0.0, values))
    return np.where(missing, -1, codes), max(1, len(distinct))


def cell_codes(human, model) -> tuple[Any, int] | None:
    """Each entry's table cell (human level x model level), -1 where either value is nan, and the
    number of cells; None where the table would be too large."""
    import numpy as np

    coded_h, coded_m = levels(human), levels(model)
    if coded_h is None or coded_m is None or coded_h[1] * coded_m[1] > MAX_CELLS:
        return None
    (ch, kh), (cm, km) = coded_h, coded_m
    return np.where((ch >= 0) & (cm >= 0), ch * km + cm, -1), (kh, km)


def pair_counts(cells, shape: tuple[int, int]):
    """Per row of ``cells`` (table cells, -1: in no pair): (concordant - discordant pairs, pairs the
    humans order, pairs the model orders) as int64 arrays, counted in chunks of rows."""
    import numpy as np

    cells = np.atleast_2d(cells)
    kh, km = shape
    size = kh * km + 1  # the last slot collects the entries in no pair
    rows, n = cells.shape
    out = np.zeros((3, rows), dtype=np.int64)
    step = max(1, CHUNK_ENTRIES // max(1, n))
    for start in range(0, rows, step):
        chunk = cells[start:start + step]
        r = len(chunk)
        slots = np.where(chunk >= 0, chunk, size - 1) + (np.arange(r) * size)[:, None]
        table = np.bincount(slots.ravel(), minlength=r * size).reshape(r, size)[:, :-1].reshape(r, kh, km)
        out[:, start:start + r] = _table_counts(table)
    return out


def row_counts(human, model):
    """:func:`pair_counts` of two matrices of values (row by row), or None with too many levels."""
    coded = cell_codes(human, model)
    return None if coded is None else pair_counts(*coded)


def _table_counts(table):
    """(C - D, untied human pairs, untied model pairs) of each (levels x levels) count table."""
    import numpy as np

    r, kh, km = table.shape
    # above[i, j]: papers with a higher human level and a higher model level than (i, j); left: lower model level
    from_corner = table[:, ::-1, ::-1].cumsum(1).cumsum(2)[:, ::-1, ::-1]   # levels >= (i, j)
    higher = np.zeros_like(table)
    higher[:, :-1, :-1] = from_corner[:, 1:, 1:]
    lower_model = table[:, ::-1, :].cumsum(1)[:, ::-1, :].cumsum(2)          # human >= i, model <= j
    crossed = np.zeros_like(table)
    crossed[:, :-1, 1:] = lower_model[:, 1:, :-1]
    concordant = (table * higher).sum((1, 2))
    discordant = (table * crossed).sum((1, 2))
    total = table.sum((1, 2))
    pairs = total * (total - 1) // 2
    by_human, by_model = table.sum(2), table.sum(1)
    tied_human = (by_human * (by_human - 1) // 2).sum(1)
    tied_model = (by_model * (by_model - 1) // 2).sum(1)
    return np.stack([concordant - discordant, pairs - tied_human, pairs - tied_model])


def row_kendall(human, model):
    """Kendall's tau-b of each row pair, as scipy computes it from the same counts (nan where
    either side has no untied pair); None where the levels are too many for tables."""

    counts = row_counts(human, model)
    return None if counts is None else tau_from(counts)


def row_pairwise(human, model):
    """:func:`peerbench.metrics.rating.pairwise_accuracy` of each row pair, by its formula:
    1/2 + tau/2 x sqrt(model-untied / human-untied), 0.5 where the model ties every pair."""
    import numpy as np

    counts = row_counts(human, model)
    return None if counts is None else pairwise_from(counts)


def pairwise_from(counts):
    """Pairwise accuracy from (C - D, untied human pairs, untied model pairs)."""
    import numpy as np

    tau = tau_from(counts)
    _, untied_human, untied_model = counts
    values = [np.nan if h <= 0 else 0.5 if m <= 0 else 0.5 + 0.5 * float(t) * (float(m) / float(h)) ** 0.5
              for t, h, m in zip(tau, untied_human.tolist(), untied_model.tolist())]
    return np.array(values, dtype=float)


def tau_from(counts):
    """tau-b from (C - D, untied human pairs, untied model pairs): scipy's formula, in its order."""
    import numpy as np

    score, untied_human, untied_model = counts
    defined = (untied_human > 0) & (untied_model > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = score / np.sqrt(untied_human.astype(float)) / np.sqrt(untied_model.astype(float))
    return np.where(defined, np.clip(tau, -1.0, 1.0), np.nan)


def level_ranks(codes, k: int):
    """Average ranks (from 1, ties sharing their mean rank) along each row of level codes (-1:
    left out, nan): what :func:`peerbench.metrics.rating.average_ranks` gives for the values, the
    same numbers, from per-row level counts instead of a sort of each row."""
    import numpy as np

    codes = np.atleast_2d(codes)
    rows, n = codes.shape
    ranks = np.empty((rows, n))
    step = max(1, CHUNK_ENTRIES // max(1, n))
    for start in range(0, rows, step):
        chunk = codes[start:start + step]
        r = len(chunk)
        slots = np.where(chunk >= 0, chunk, k) + (np.arange(r) * (k + 1))[:, None]
        counts = np.bincount(slots.ravel(), minlength=r * (k + 1)).reshape(r, k + 1)[:, :k]
        below = np.cumsum(counts, axis=1) - counts
        per_level = np.concatenate([below + (counts + 1) / 2, np.full((r, 1), np.nan)], axis=1)
        ranks[start:start + r] = np.take_along_axis(per_level, np.where(chunk >= 0, chunk, k), 1)
    return ranks
