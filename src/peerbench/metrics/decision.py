"""Decision metrics (F1, accuracy, precision, recall, specificity, balanced accuracy, MCC, accept
rates, parse-failure rate) and, where a P(accept) exists, AUROC, average precision, Brier score
and expected calibration error. Papers without a P(accept) are left out of the last four."""

from __future__ import annotations

from peerbench.hookspecs import hookimpl
from peerbench.metrics import Metric, ScoreInputs


def _sk():
    import sklearn.metrics as skm

    return skm


def _ratio(num, den):
    import numpy as np

    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _f1_counts(tp, fp, fn, tn, unparsed):
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _mcc_counts(tp, fp, fn, tn, unparsed):
    import numpy as np

    tp, fp, fn, tn = (np.asarray(x, dtype=float) for x in (tp, fp, fn, tn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return _ratio(tp * tn - fp * fn, den)


def _mcc(inputs: ScoreInputs) -> float:
    import warnings

    with warnings.catch_warnings():  # one class only: sklearn warns, and MCC is 0 by definition
        warnings.simplefilter("ignore", UserWarning)
        return float(_sk().matthews_corrcoef(inputs.y_true, inputs.y_pred))


def _has_both(inputs: ScoreInputs) -> bool:
    import numpy as np

    return len(np.unique(inputs.y_true)) == 2


def _auroc(inputs: ScoreInputs) -> float | None:
    import numpy as np

    mask = ~np.isnan(inputs.p_accept)
    if mask.sum() == 0 or len(np.unique(inputs.y_true[mask])) < 2:
        return None
    return float(_sk().roc_auc_score(inputs.y_true[mask], inputs.p_accept[mask]))


def _brier(inputs: ScoreInputs) -> float | None:
    import numpy as np

    mask = ~np.isnan(inputs.p_accept)
    if mask.sum() == 0:
        return None
    return float(_sk().brier_score_loss(inputs.y_true[mask], inputs.p_accept[mask]))


def _with_proba(inputs: ScoreInputs):
    import numpy as np

    mask = ~np.isnan(inputs.p_accept)
    return inputs.y_true[mask], inputs.p_accept[mask]


def _average_precision(inputs: ScoreInputs) -> float | None:
    y, p = _with_proba(inputs)
    if len(y) == 0 or not y.any():
        return None
    return float(_sk().average_precision_score(y, p))


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


def _ece(inputs: ScoreInputs) -> float | None:
    y, p = _with_proba(inputs)
    return expected_calibration_error(y, p) if len(y) else None


def _ece_resamples(inputs: ScoreInputs, index):
    import numpy as np

    y, p = inputs.y_true[index].astype(float), inputs.p_accept[index]
    which = calibration_bin(p)
    n = y.shape[1]
    total = np.zeros(len(index))
    for b in range(ECE_BINS):
        members = which == b
        count = members.sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.abs((y * members).sum(1) - (p * members).sum(1)) / np.where(count > 0, count, 1)
        total += np.where(count > 0, count / n * gap, 0.0)
    return total


def _auroc_resamples(inputs: ScoreInputs, index):
    """Mann-Whitney form of AUROC, all resamples at once (ties get average ranks, as in sklearn)."""
    import numpy as np
    from scipy.stats import rankdata

    p, t = inputs.p_accept[index], inputs.y_true[index]
    ranks = rankdata(p, axis=1)
    pos = t.sum(1).astype(float)
    neg = t.shape[1] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * t).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def _brier_resamples(inputs: ScoreInputs, index):
    return ((inputs.p_accept[index] - inputs.y_true[index]) ** 2).mean(1)


def _balanced(inputs: ScoreInputs) -> float:
    if not _has_both(inputs):  # sklearn warns and averages one class; define it as that class's recall
        return float(_sk().recall_score(inputs.y_true, inputs.y_pred, pos_label=bool(inputs.y_true[0]),
                                        zero_division=0))
    return float(_sk().balanced_accuracy_score(inputs.y_true, inputs.y_pred))


def _balanced_counts(tp, fp, fn, tn, unparsed):
    import numpy as np

    pos, neg = np.asarray(tp + fn, dtype=float), np.asarray(tn + fp, dtype=float)
    rec, spec = _ratio(tp, pos), _ratio(tn, neg)
    both = (pos > 0) & (neg > 0)
    return np.where(both, (rec + spec) / 2, np.where(pos > 0, rec, spec))


def _mean(x) -> float:
    import numpy as np

    return float(np.mean(x)) if len(x) else 0.0


BUILTIN_METRICS = (
    Metric("f1", "F1 of the accept class", lambda i: float(_sk().f1_score(i.y_true, i.y_pred, zero_division=0)),
           _f1_counts),
    Metric("accuracy", "share of correct decisions", lambda i: float(_sk().accuracy_score(i.y_true, i.y_pred)),
           lambda tp, fp, fn, tn, u: _ratio(tp + tn, tp + fp + fn + tn)),
    Metric("precision", "of the papers predicted accept, the share gold-accept",
           lambda i: float(_sk().precision_score(i.y_true, i.y_pred, zero_division=0)),
           lambda tp, fp, fn, tn, u: _ratio(tp, tp + fp)),
    Metric("recall", "of the gold-accept papers, the share predicted accept",
           lambda i: float(_sk().recall_score(i.y_true, i.y_pred, zero_division=0)),
           lambda tp, fp, fn, tn, u: _ratio(tp, tp + fn)),
    Metric("specificity", "of the gold-reject papers, the share predicted reject",
           lambda i: float(_sk().recall_score(i.y_true, i.y_pred, pos_label=False, zero_division=0)),
           lambda tp, fp, fn, tn, u: _ratio(tn, tn + fp)),
    Metric("balanced_accuracy", "mean of recall and specificity", _balanced, _balanced_counts),
    Metric("mcc", "Matthews correlation coefficient",
           _mcc, _mcc_counts),
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
           _average_precision, needs_proba=True),
    Metric("brier", "Brier score of P(accept)", _brier, needs_proba=True, higher_is_better=False,
           from_resamples=_brier_resamples),
    Metric("ece", f"expected calibration error of P(accept), {ECE_BINS} equal-width bins", _ece, needs_proba=True,
           higher_is_better=False, from_resamples=_ece_resamples),
)


@hookimpl
def register_metrics(register):
    for metric in BUILTIN_METRICS:
        register(metric)
