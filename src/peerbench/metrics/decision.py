"""Decision metrics (F1, accuracy, precision, recall, specificity, balanced accuracy, MCC, accept
rates, parse-failure rate) and, where a P(accept) exists, AUROC, average precision, Brier score
and expected calibration error. Papers without a P(accept) are left out of the last four.

All in numpy, point estimates and bootstrap alike (scikit-learn, the reference the tests check
every formula against, costs a second to import at the end of every run)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from peerbench.hookspecs import hookimpl
from peerbench.metrics import Metric, ScoreInputs


def _point(from_counts):
    """The point estimate by the formula the bootstrap applies to each resample (one row: every
    paper once), so that a value and its interval can never disagree on a definition. No
    scikit-learn here: its import alone is about a second; tests check these against it."""
    def compute(inputs: ScoreInputs) -> float:
        import numpy as np

        from peerbench.reporting.scoring import resampled_counts

        whole = np.arange(len(inputs.y_true))[None, :]
        return float(np.asarray(from_counts(*resampled_counts(inputs, whole)))[0])

    return compute


def _ratio(num, den):
    import numpy as np

    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _f1_counts(tp, fp, fn, tn, unparsed):
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _mcc_counts(tp, fp, fn, tn, unparsed):
    """0 where a margin is empty (one class, or one prediction), as scikit-learn defines it."""
    import numpy as np

    tp, fp, fn, tn = (np.asarray(x, dtype=float) for x in (tp, fp, fn, tn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return _ratio(tp * tn - fp * fn, den)


_SHARED: list[Any] = []  # inside shared_weights(): [(index, n, weights)] of the last call, or []
_SHARED_TABLE: list[Any] = []  # inside shared_weights(): [(index, inputs, (pos, neg))] of the last call
_SHARING: list[bool] = []


@contextlib.contextmanager
def shared_weights() -> Iterator[None]:
    """Within the block, :func:`resample_weights` and :func:`_drawn_by_score` of the same index
    matrix are built once and handed to every P(accept) metric (scoring's bootstrap, one chunk of
    resamples at a time)."""
    _SHARING.append(True)
    try:
        yield
    finally:
        _SHARING.pop()
        _SHARED.clear()
        _SHARED_TABLE.clear()


def resample_weights(n: int, index):
    """How often each of the ``n`` papers is drawn in each resample (one row per resample): the
    P(accept) metrics are computed from these weights, all resamples at once. Callers never
    modify the matrix (inside :func:`shared_weights` it is shared)."""
    import numpy as np

    if _SHARING and _SHARED and _SHARED[0][0] is index and _SHARED[0][1] == n:
        return _SHARED[0][2]
    index = np.asarray(index)
    rows = index.shape[0]
    flat = (index + n * np.arange(rows)[:, None]).ravel()
    weights = np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)
    if _SHARING:
        _SHARED[:] = [(index, n, weights)]
    return weights


def _with_proba(inputs: ScoreInputs, index=None):
    """(gold, P(accept), weights) of the papers that have a P(accept); the others weigh nothing.
    Without ``index``, one row of weight 1 (the point estimate)."""
    import numpy as np

    has = ~np.isnan(inputs.p_accept)
    y, p = inputs.y_true[has].astype(float), inputs.p_accept[has]
    if index is None:
        w = np.ones((1, len(p)))
    else:
        w = resample_weights(len(has), index)
        w = w if has.all() else w[:, has]
    return y, p, w


def _by_score(y, p, w, descending: bool):
    """Weights of gold-accept and gold-reject papers per distinct P(accept), in P order: tied
    papers share one threshold, as in scikit-learn's curves."""
    import numpy as np

    order = np.argsort(-p if descending else p, kind="stable")
    ranked = p[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    drawn = w[:, order]
    pos = np.add.reduceat(drawn * y[order], starts, axis=1)
    return pos, np.add.reduceat(drawn, starts, axis=1) - pos


def weighted_auroc(y, p, w):
    """AUROC of scores ``p`` against gold ``y`` for each row of non-negative weights ``w`` (draw
    counts of a resample, or any sample weights): the Mann-Whitney form, the weighted share of
    (accept, reject) pairs ranked right, ties counting half; NaN where a class weighs nothing."""
    import numpy as np

    if len(p) == 0:
        return np.full(len(w), np.nan)
    return _auroc_of(*_by_score(y, p, w, descending=False))


def _auroc_of(pos, neg):
    """AUROC from the weights of gold-accept and gold-reject papers per distinct score, ascending."""
    import numpy as np

    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (below + neg / 2)).sum(1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _average_precision_weighted(y, p, w):
    """Mean over gold-accept papers of the precision at their own P(accept) (all papers scored at
    least as high count): scikit-learn's step-wise average precision, without interpolation."""
    import numpy as np

    if len(p) == 0:
        return np.full(len(w), np.nan)
    return _average_precision_of(*_by_score(y, p, w, descending=True))


def _average_precision_of(pos, neg):
    """Average precision from the weights of gold-accept and gold-reject papers per distinct score, descending."""
    import numpy as np

    seen_pos, seen = np.cumsum(pos, axis=1), np.cumsum(pos + neg, axis=1)
    precision = np.divide(seen_pos, seen, out=np.zeros_like(seen), where=seen > 0)
    n_pos = pos.sum(1)
    return np.where(n_pos > 0, (pos * precision).sum(1) / np.where(n_pos > 0, n_pos, 1), np.nan)


def _drawn_by_score(inputs: ScoreInputs, index, descending: bool):
    """:func:`_by_score` of a resample index matrix: each paper's (score level, gold) counted over
    each row (one bincount), instead of building, reordering and summing the (rows x papers) weight
    matrix. The counts are the same integers, so every value computed from them is the same."""
    if _SHARING and _SHARED_TABLE and _SHARED_TABLE[0][0] is index and _SHARED_TABLE[0][1] is inputs:
        pos, neg = _SHARED_TABLE[0][2]
    else:
        pos, neg = _ascending_table(inputs, index)
        if _SHARING:
            _SHARED_TABLE[:] = [(index, inputs, (pos, neg))]
    if not descending:
        return pos, neg
    import numpy as np

    return np.ascontiguousarray(pos[:, ::-1]), np.ascontiguousarray(neg[:, ::-1])


def _ascending_table(inputs: ScoreInputs, index):
    import numpy as np

    has = ~np.isnan(inputs.p_accept)
    distinct = np.unique(inputs.p_accept[has])
    levels = len(distinct)
    level = np.searchsorted(distinct, np.where(has, inputs.p_accept, distinct[0]))
    slots = 2 * levels + 1  # (level, gold) pairs, and one slot for the papers without a P(accept)
    code = np.where(has, 2 * level + inputs.y_true.astype(int), slots - 1)
    rows = len(index)
    counts = np.bincount((code[index] + slots * np.arange(rows)[:, None]).ravel(), minlength=rows * slots)
    table = counts.reshape(rows, slots)[:, :-1].reshape(rows, levels, 2).astype(float)
    return table[:, :, 1], table[:, :, 0]


def _counted_metric(weighted, of, descending: bool):
    """(point estimate, all resamples at once) of a metric of the per-score weights (AUROC, average
    precision), the resamples counted from the index (:func:`_drawn_by_score`)."""
    compute, _ = _proba_metric(weighted)

    def from_resamples(inputs: ScoreInputs, index):
        import numpy as np

        if np.isnan(inputs.p_accept).all():
            return np.full(len(index), np.nan)
        return of(*_drawn_by_score(inputs, index, descending))

    from_resamples.leaves_out_missing_p = True  # scoring may hand it papers without a P(accept)
    return compute, from_resamples


def _brier_weighted(y, p, w):
    import numpy as np

    total = w.sum(1)
    return np.where(total > 0, (w * (p - y) ** 2).sum(1) / np.where(total > 0, total, 1), np.nan)


def _proba_metric(weighted):
    """(point estimate, all resamples at once) of a P(accept) metric; papers without one left out."""
    import math

    def compute(inputs: ScoreInputs) -> float | None:
        value = float(weighted(*_with_proba(inputs))[0])
        return None if math.isnan(value) else value

    def from_resamples(inputs: ScoreInputs, index):
        return weighted(*_with_proba(inputs, index))

    from_resamples.leaves_out_missing_p = True  # scoring may hand it papers without a P(accept)
    return compute, from_resamples


ECE_BINS = 10


def calibration_bin(p_accept, bins: int = ECE_BINS):
    """The bin of each P(accept): [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0].

    A value on an edge goes to the bin it opens (0.3 to [0.3, 0.4)), also where floating point
    puts 0.3 * 10 at 2.9999999999999996; ECE and the reliability diagram both bin with this, so a
    paper is in the same bin in both."""
    import numpy as np

    scaled = np.round(np.asarray(p_accept, dtype=float) * bins, 9)
    return np.clip(np.floor(scaled).astype(int), 0, bins - 1)


def reliability_bins(y_true, p_accept, bins: int = ECE_BINS) -> list[tuple[int, int, float, float]]:
    """(bin, papers, mean P(accept), gold accept rate) for each non-empty bin."""
    import numpy as np

    y, p = np.asarray(y_true, dtype=float), np.asarray(p_accept, dtype=float)
    which = calibration_bin(p, bins)
    return [(b, int((which == b).sum()), float(p[which == b].mean()), float(y[which == b].mean()))
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(y_true, p_accept, bins: int = ECE_BINS) -> float:
    """Sum over equal-width bins of (share of papers in bin) x |gold accept rate - mean P(accept)|."""
    n = len(y_true)
    if n == 0:
        return float("nan")
    return float(sum(count / n * abs(gold - mean) for _, count, mean, gold in reliability_bins(y_true, p_accept, bins)))


def _ece_weighted(y, p, w):
    """Per bin |sum of (gold - P)|, summed over bins, over the papers: the same number as
    expected_calibration_error (share x |gold rate - mean P| per bin), with draws as weights."""
    import numpy as np

    total = w.sum(1)
    if len(p) == 0:
        return np.full(len(w), np.nan)
    members = (calibration_bin(p)[:, None] == np.arange(ECE_BINS)).astype(float)
    gaps = np.abs((w * (y - p)) @ members).sum(1)
    return np.where(total > 0, gaps / np.where(total > 0, total, 1), np.nan)


def _ece(inputs: ScoreInputs) -> float | None:
    import numpy as np

    mask = ~np.isnan(inputs.p_accept)
    return expected_calibration_error(inputs.y_true[mask], inputs.p_accept[mask]) if mask.any() else None


def _ece_resamples(inputs: ScoreInputs, index):
    return _ece_weighted(*_with_proba(inputs, index))


_ece_resamples.leaves_out_missing_p = True


_auroc, _auroc_resamples = _counted_metric(weighted_auroc, _auroc_of, descending=False)
_average_precision, _average_precision_resamples = _counted_metric(_average_precision_weighted,
                                                                   _average_precision_of, descending=True)
_brier, _brier_resamples = _proba_metric(_brier_weighted)


def _balanced_counts(tp, fp, fn, tn, unparsed):
    import numpy as np

    pos, neg = np.asarray(tp + fn, dtype=float), np.asarray(tn + fp, dtype=float)
    rec, spec = _ratio(tp, pos), _ratio(tn, neg)
    both = (pos > 0) & (neg > 0)
    return np.where(both, (rec + spec) / 2, np.where(pos > 0, rec, spec))


def _mean(x) -> float:
    import numpy as np

    return float(np.mean(x)) if len(x) else 0.0


def _counted(name: str, description: str, from_counts, **kwargs) -> Metric:
    """A metric of the confusion counts: point estimate and bootstrap by the same formula."""
    return Metric(name, description, _point(from_counts), from_counts, **kwargs)


BUILTIN_METRICS = (
    _counted("f1", "F1 of the accept class", _f1_counts),
    _counted("accuracy", "share of correct decisions", lambda tp, fp, fn, tn, u: _ratio(tp + tn, tp + fp + fn + tn)),
    _counted("precision", "of the papers predicted accept, the share gold-accept",
             lambda tp, fp, fn, tn, u: _ratio(tp, tp + fp)),
    _counted("recall", "of the gold-accept papers, the share predicted accept",
             lambda tp, fp, fn, tn, u: _ratio(tp, tp + fn)),
    _counted("specificity", "of the gold-reject papers, the share predicted reject",
             lambda tp, fp, fn, tn, u: _ratio(tn, tn + fp)),
    _counted("balanced_accuracy", "mean of recall and specificity", _balanced_counts),
    _counted("mcc", "Matthews correlation coefficient", _mcc_counts),
    Metric("pred_accept_rate", "share of papers whose review says ACCEPTANCE (never an unparsed one)",
           lambda i: _mean(i.accepts), higher_is_better=None,
           from_resamples=lambda i, index: i.accepts[index].mean(1)),
    Metric("gold_accept_rate", "share of papers gold-accept", lambda i: _mean(i.y_true),
           lambda tp, fp, fn, tn, u: _ratio(tp + fn, tp + fp + fn + tn), higher_is_better=None),
    Metric("parse_failure_rate", "share of reviews with no usable decision line (UNPARSED or AMBIGUOUS)",
           lambda i: _mean(i.unparsed), lambda tp, fp, fn, tn, u: _ratio(u, tp + fp + fn + tn),
           higher_is_better=False),
    Metric("auroc", "area under the ROC curve of P(accept)", _auroc, needs_proba=True,
           from_resamples=_auroc_resamples),
    Metric("average_precision", "area under the precision-recall curve of P(accept) (accept class)",
           _average_precision, needs_proba=True, from_resamples=_average_precision_resamples),
    Metric("brier", "Brier score of P(accept)", _brier, needs_proba=True, higher_is_better=False,
           from_resamples=_brier_resamples),
    Metric("ece", f"expected calibration error of P(accept), {ECE_BINS} equal-width bins", _ece, needs_proba=True,
           higher_is_better=False, from_resamples=_ece_resamples),
)


@hookimpl
def register_metrics(register):
    for metric in BUILTIN_METRICS:
        register(metric)
