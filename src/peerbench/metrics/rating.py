"""Rating metrics, and the human ceiling they are read against.

A review's overall rating (``Sample.rating``, parsed by :mod:`peerbench.ratings`) is scored
against the mean of the human reviewers' ratings (``mean_recommendation``) and against the gold
label of the rule being scored. Papers without a model rating or without a human rating are left
out of these metrics (``n_with_rating`` says how many are in). Point values come from scipy and
scikit-learn; the bootstrap is scoring's, fed one value per resample.

The human ceiling beside them is :mod:`peerbench.metrics.ceiling`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from peerbench.hookspecs import hookimpl
from peerbench.metrics import Array, Metric, ScoreInputs

HUMAN = "one human reviewer"  # the human ceiling's column (metrics/ceiling.py) beside the baselines


@dataclass(frozen=True)
class RatedInputs(ScoreInputs):
    """ScoreInputs plus, per paper, the model's rating and the mean human rating (nan where none)."""

    rating: Array | None = None
    human: Array | None = None

    def subset(self, index: Any) -> RatedInputs:
        base = ScoreInputs.subset(self, index)
        return RatedInputs(**{f.name: getattr(base, f.name) for f in fields(ScoreInputs)},
                           rating=self.rating[index], human=self.human[index])


def _value(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float("nan") if value is None else float(value)


def with_ratings(inputs: ScoreInputs, rows: Sequence[dict[str, Any]]) -> ScoreInputs:
    """The inputs with the ratings of ``rows`` (in the same order) where any row has a model rating."""
    import numpy as np

    if not any(row.get("rating") is not None for row in rows):
        return inputs
    return RatedInputs(**{f.name: getattr(inputs, f.name) for f in fields(ScoreInputs)},
                       rating=np.array([_value(r, "rating") for r in rows], dtype=float),
                       human=np.array([_value(r, "mean_recommendation") for r in rows], dtype=float))


def n_with_rating(inputs: ScoreInputs) -> int | None:
    """Papers with both a model rating and a human rating; None where the run gave no rating."""
    import numpy as np

    if not isinstance(inputs, RatedInputs):
        return None
    return int((~np.isnan(inputs.rating) & ~np.isnan(inputs.human)).sum())


def n_model_rated(inputs: ScoreInputs) -> int | None:
    """Papers with a model rating (what rating_auroc, which needs no human rating, is over)."""
    import numpy as np

    return None if not isinstance(inputs, RatedInputs) else int((~np.isnan(inputs.rating)).sum())


# Scored against the mean human rating: meaningless pooled over venues whose rating scales differ.
AGAINST_HUMANS = ("rating_spearman", "rating_kendall", "rating_pairwise_accuracy", "rating_mae")


def unpool(group: dict[str, Any]) -> None:
    """A group spanning several venues keeps rating_auroc (the model's one scale against gold) and
    drops the metrics against the mean human rating, which each venue's own group keeps."""
    dropped = [name for name in AGAINST_HUMANS if group["metrics"].pop(name, None) is not None]
    if dropped:
        group["rating_note"] = "against the human mean per venue only: the venues' rating scales differ"


def _both(inputs: ScoreInputs):
    """(human, model) ratings of the papers that have both, or None without ratings."""
    import numpy as np

    if not isinstance(inputs, RatedInputs):
        return None
    keep = ~np.isnan(inputs.rating) & ~np.isnan(inputs.human)
    return inputs.human[keep], inputs.rating[keep]


def _finite(value: float) -> float | None:
    import math

    return None if value is None or math.isnan(value) else float(value)


def spearman(human, model) -> float | None:
    from scipy.stats import spearmanr

    if len(human) < 2 or len(set(human)) < 2 or len(set(model)) < 2:
        return None
    return _finite(spearmanr(human, model).statistic)


def kendall(human, model) -> float | None:
    """Kendall's tau-b (ties in either ranking corrected for)."""
    from scipy.stats import kendalltau

    if len(human) < 2 or len(set(human)) < 2 or len(set(model)) < 2:
        return None
    return _finite(kendalltau(human, model).statistic)


def pairwise_accuracy(human, model) -> float | None:
    """Of the pairs of papers whose human ratings differ, the share the model orders the same way,
    a model tie counting half: (1 + Somers' D of model given human) / 2, from tau-b and tie counts
    (n log n, not a loop over pairs). With two human levels this is the AUROC."""
    import numpy as np

    human, model = np.asarray(human, dtype=float), np.asarray(model, dtype=float)
    n = len(human)
    pairs = n * (n - 1) / 2

    def tied_pairs(values) -> float:
        counts = np.unique(values, return_counts=True)[1].astype(float)
        return float((counts * (counts - 1) / 2).sum())

    untied_human, untied_model = pairs - tied_pairs(human), pairs - tied_pairs(model)
    if untied_human <= 0:
        return None
    if untied_model <= 0:
        return 0.5
    tau = kendall(human, model)
    return 0.5 + 0.5 * tau * (untied_model / untied_human) ** 0.5


def _mae(inputs: ScoreInputs) -> float | None:
    import numpy as np

    pair = _both(inputs)
    if pair is None or not len(pair[0]):
        return None
    return float(np.mean(np.abs(pair[1] - pair[0])))


def _on_pairs(function: Callable[[Any, Any], float | None]) -> Callable[[ScoreInputs], float | None]:
    def compute(inputs: ScoreInputs) -> float | None:
        pair = _both(inputs)
        return None if pair is None else function(*pair)

    return compute


def rating_auroc(y_true, rating) -> float | None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true, dtype=bool)
    if len(np.unique(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, rating))


def _auroc(inputs: ScoreInputs) -> float | None:
    import numpy as np

    if not isinstance(inputs, RatedInputs):
        return None
    keep = ~np.isnan(inputs.rating)
    return rating_auroc(inputs.y_true[keep], inputs.rating[keep])


# ---- the bootstrap: one value per row of the resample index matrix (nan where undefined) ----

def _nothing(inputs: ScoreInputs, index):
    import numpy as np

    return None if isinstance(inputs, RatedInputs) else np.full(len(index), np.nan)


def _masked(inputs: RatedInputs, index):
    """(human, model) per resample, nan where either is missing."""
    import numpy as np

    human, model = inputs.human[index], inputs.rating[index]
    both = ~np.isnan(human) & ~np.isnan(model)
    return np.where(both, human, np.nan), np.where(both, model, np.nan)


def average_ranks(values):
    """Ranks from 1 along each row, ties sharing their average rank, nan entries left out (nan):
    scipy.stats.rankdata(values, axis=1, nan_policy="omit"), in numpy, because importing
    scipy.stats costs about a second at the end of every run whose papers carry ratings."""
    import numpy as np

    values = np.atleast_2d(np.asarray(values, dtype=float))
    rows, n = values.shape
    order = np.argsort(values, axis=1, kind="mergesort")  # nan sorts last
    ordered = np.take_along_axis(values, order, 1)
    starts = np.ones((rows, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]  # each nan a group of its own: ranked, then dropped
    groups = (np.cumsum(starts, axis=1) - 1 + np.arange(rows)[:, None] * n).ravel()
    positions = np.broadcast_to(np.arange(1, n + 1, dtype=float), (rows, n)).ravel()
    mean_position = np.bincount(groups, positions, rows * n) / np.maximum(np.bincount(groups, minlength=rows * n), 1)
    ranks = np.empty((rows, n))
    np.put_along_axis(ranks, order, mean_position[groups].reshape(rows, n), 1)
    ranks[np.isnan(values)] = np.nan
    return ranks


def row_spearman(x, y):
    """Spearman's rho of each row pair (nan entries left out), all rows at once."""
    import warnings

    import numpy as np

    return spearman_of_ranks(average_ranks(x), average_ranks(y))


def spearman_of_ranks(rx, ry):
    """Spearman's rho of each row pair of ranks (nan entries left out)."""
    import warnings

    import numpy as np

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without one rated paper: nan
        dx, dy = rx - np.nanmean(rx, axis=1, keepdims=True), ry - np.nanmean(ry, axis=1, keepdims=True)
        rho = np.nansum(dx * dy, 1) / np.sqrt(np.nansum(dx * dx, 1) * np.nansum(dy * dy, 1))
    return np.where(np.isfinite(rho), rho, np.nan)


def _spearman_resamples(inputs: ScoreInputs, index):
    import numpy as np

    empty = _nothing(inputs, index)
    if empty is not None:
        return empty
    if index.shape[1] > PAIR_MATRIX_LIMIT:  # many papers: ranks from per-row level counts, if levels are few
        from peerbench.metrics import tau

        both = ~np.isnan(inputs.human) & ~np.isnan(inputs.rating)
        coded = [tau.levels(np.where(both, values, np.nan)) for values in (inputs.human, inputs.rating)]
        if all(c is not None for c in coded):
            return spearman_of_ranks(*(tau.level_ranks(codes[index], k) for codes, k in coded))
    return row_spearman(*_masked(inputs, index))


def _mae_resamples(inputs: ScoreInputs, index):
    import numpy as np

    empty = _nothing(inputs, index)
    if empty is not None:
        return empty
    human, model = _masked(inputs, index)
    count = (~np.isnan(human)).sum(1)
    total = np.nansum(np.abs(model - human), axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# Above this many papers scipy on each resample (n log n) beats the n x n pair matrices.
PAIR_MATRIX_LIMIT = 400


def row_pair_counts(human, model):
    """Per row: (concordant - discordant pairs, pairs the humans order, pairs the model orders), nan
    entries (missing in both arrays together) in no pair; in chunks of about 4 million pairs. Signs
    are taken of ranks in float32: exact (ranks and counts stay far below 2**24), and 4x lighter."""
    import numpy as np

    chunk = max(1, 4_000_000 // max(1, human.shape[1] ** 2))
    parts = []
    for start in range(0, len(human), chunk):
        signs = []
        for values in (human[start:start + chunk], model[start:start + chunk]):
            ranks = average_ranks(values).astype(np.float32)
            signs.append(np.nan_to_num(np.sign(ranks[:, :, None] - ranks[:, None, :]), copy=False))
        sh, sm = signs
        parts.append(np.stack([np.einsum("ijk,ijk->i", sh, sm), np.count_nonzero(sh, axis=(1, 2)),
                               np.count_nonzero(sm, axis=(1, 2))], 1) / 2)
    return np.concatenate(parts).T


def row_kendall(human, model):
    """Kendall's tau-b of each row pair: (C - D) / sqrt(human-untied pairs x model-untied pairs)."""
    import numpy as np

    score, untied_human, untied_model = row_pair_counts(human, model)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = score / np.sqrt(untied_human * untied_model)
    return np.where(untied_human * untied_model > 0, tau, np.nan)


def row_pairwise(human, model):
    """:func:`pairwise_accuracy` of each row pair: 1/2 + (C - D) / (2 x human-untied pairs)."""
    import numpy as np

    score, untied_human, _ = row_pair_counts(human, model)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(untied_human > 0, 0.5 + 0.5 * score / untied_human, np.nan)


def _per_resample(rows_function, function: Callable[[Any, Any], float | None]):
    """The pair metrics per resample: pair matrices for a small sample; above, pairs counted from
    (human level x model level) tables (:mod:`peerbench.metrics.tau`), scipy on each row where the
    ratings take too many distinct values for tables."""
    def resamples(inputs: ScoreInputs, index):
        import numpy as np

        empty = _nothing(inputs, index)
        if empty is not None:
            return empty
        if index.shape[1] > PAIR_MATRIX_LIMIT:  # many papers: count pairs from level tables, if levels are few
            from peerbench.metrics import tau

            coded = tau.cell_codes(inputs.human, inputs.rating)  # -1 where either rating is missing
            if coded is not None:
                counts = tau.pair_counts(coded[0][index], coded[1])
                return tau.tau_from(counts) if rows_function is row_kendall else tau.pairwise_from(counts)
        human, model = _masked(inputs, index)
        if human.shape[1] <= PAIR_MATRIX_LIMIT:
            return rows_function(human, model)
        values = [function(h[~np.isnan(h)], m[~np.isnan(m)]) for h, m in zip(human, model)]
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    return resamples


def _auroc_resamples(inputs: ScoreInputs, index):
    """Mann-Whitney AUROC per resample, papers without a model rating left out (ties: average ranks)."""
    import numpy as np

    from peerbench.metrics import tau

    empty = _nothing(inputs, index)
    if empty is not None:
        return empty
    rating, gold = inputs.rating[index], inputs.y_true[index]
    rated = ~np.isnan(rating)
    coded = tau.levels(inputs.rating) if index.shape[1] > PAIR_MATRIX_LIMIT else None  # few levels: no sort
    ranks = np.nan_to_num(average_ranks(rating) if coded is None else tau.level_ranks(coded[0][index], coded[1]))
    pos, neg = (gold & rated).sum(1).astype(float), (~gold & rated).sum(1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * (gold & rated)).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


RATING_METRICS = (
    Metric("rating_spearman", "Spearman's rho of the model's rating and the mean human rating",
           _on_pairs(spearman), from_resamples=_spearman_resamples),
    Metric("rating_kendall", "Kendall's tau-b of the model's rating and the mean human rating",
           _on_pairs(kendall), from_resamples=_per_resample(row_kendall, kendall)),
    Metric("rating_pairwise_accuracy", "of the paper pairs whose mean human ratings differ, the share the "
           "model's ratings order the same way (a model tie counts half)",
           _on_pairs(pairwise_accuracy), from_resamples=_per_resample(row_pairwise, pairwise_accuracy)),
    Metric("rating_mae", "mean absolute difference of the model's rating and the mean human rating",
           _mae, from_resamples=_mae_resamples, higher_is_better=False),
    Metric("rating_auroc", "area under the ROC curve of the model's rating against the gold label",
           _auroc, from_resamples=_auroc_resamples),
)


@hookimpl
def register_metrics(register):
    for metric in RATING_METRICS:
        register(metric)
