"""Exact answers for every number the scorer prints: intervals against ``numpy.quantile`` of the
very same seeded resamples, calibration on cases where the bin of each P(accept) decides the
answer, and score_samples' bookkeeping counted by hand. Loose bounds let planted bugs through
(docs/testing.md, issue 26); these pin the value."""

import numpy as np
import pytest

from peerbench.metrics import ScoreInputs
from peerbench.metrics.decision import (BUILTIN_METRICS, _ece_resamples, calibration_bin,
                                        expected_calibration_error, reliability_bins)
from peerbench.reporting.comparison import paired_bootstrap
from peerbench.reporting.scoring import (bootstrap, completeness, confusion, is_answered, score_inputs,
                                         score_samples, summary_of)

pytestmark = pytest.mark.fast

BY_NAME = {m.name: m for m in BUILTIN_METRICS}
PAIRED = [BY_NAME[name] for name in ("f1", "accuracy", "balanced_accuracy")]


def mixed_inputs(n=37, seed=11):
    """Gold, decisions, a P(accept) on every paper, and a few unparsed reviews."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.6
    said = rng.random(n) < 0.55
    unparsed = rng.random(n) < 0.15
    pred = np.where(unparsed, ~y, said)
    p = np.round(rng.random(n), 2)
    return ScoreInputs(y, pred, p, unparsed, said & ~unparsed, np.zeros(n, dtype=bool))


def by_hand(inputs, metric, index):
    """The metric on each resampled row by its plain definition (never the vectorised formulas)."""
    values = np.array([v if (v := metric.compute(inputs.subset(row))) is not None else np.nan for row in index])
    return values[~np.isnan(values)]


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_bootstrap_intervals_are_the_quantiles_of_the_same_seeded_resamples(confidence):
    inputs = mixed_inputs()
    n, resamples, seed = len(inputs.y_true), 300, 7
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    intervals = bootstrap(inputs, BUILTIN_METRICS, resamples=resamples, seed=seed, confidence=confidence)
    alpha = (1 - confidence) / 2
    assert set(intervals) == {m.name for m in BUILTIN_METRICS}
    for metric in BUILTIN_METRICS:
        values = by_hand(inputs, metric, index)
        expected = [np.quantile(values, alpha), np.quantile(values, 1 - alpha)]
        assert intervals[metric.name] == pytest.approx(expected, abs=1e-12), metric.name


def test_a_95_interval_is_not_a_90_interval():
    """The 2.5/97.5 percentiles, never 5/95: the two differ on this input, so the test above bites."""
    inputs = mixed_inputs()
    wide = bootstrap(inputs, PAIRED, resamples=300, seed=7, confidence=0.95)["f1"]
    narrow = bootstrap(inputs, PAIRED, resamples=300, seed=7, confidence=0.9)["f1"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bootstrap_with_some_papers_missing_p_accept_uses_only_the_rows_it_can_score():
    inputs = mixed_inputs()
    p = inputs.p_accept.copy()
    p[::4] = np.nan
    partial = ScoreInputs(inputs.y_true, inputs.y_pred, p, inputs.unparsed, inputs.said_accept, inputs.ambiguous)
    n = len(p)
    index = np.random.default_rng(3).integers(0, n, size=(200, n))
    intervals = bootstrap(partial, BUILTIN_METRICS, resamples=200, seed=3, confidence=0.95)
    for name in ("auroc", "brier", "ece", "average_precision"):
        values = by_hand(partial, BY_NAME[name], index)
        assert intervals[name] == pytest.approx([np.quantile(values, 0.025), np.quantile(values, 0.975)]), name


def test_score_samples_prints_the_point_values_and_intervals_of_the_rows_in_id_order(monkeypatch):
    from peerbench import labels

    monkeypatch.setattr(labels, "get_label_rule", lambda name: labels.DECISION)
    inputs = mixed_inputs(n=24)
    decisions = ["UNPARSED" if u else ("ACCEPT" if a else "REJECT")
                 for u, a in zip(inputs.unparsed, inputs.said_accept)]
    samples = [{"id": f"v/{i:02d}", "venue": "v", "gold": {"r": bool(y)}, "decision": d, "p_accept": float(p)}
               for i, (y, d, p) in enumerate(zip(inputs.y_true, decisions, inputs.p_accept))]
    out = score_samples(list(reversed(samples)), label_rules=["r"], metrics=BUILTIN_METRICS, resamples=150, seed=5)
    overall = out["label_rules"]["r"]["overall"]
    index = np.random.default_rng(5).integers(0, 24, size=(150, 24))
    for metric in BUILTIN_METRICS:
        values = by_hand(inputs, metric, index)
        assert overall["metrics"][metric.name]["value"] == pytest.approx(metric.compute(inputs)), metric.name
        assert overall["metrics"][metric.name]["ci"] == pytest.approx(
            [np.quantile(values, 0.025), np.quantile(values, 0.975)]), metric.name
    t, pr = inputs.y_true, inputs.y_pred
    assert overall["confusion"] == {"tp": int((t & pr).sum()), "fp": int((~t & pr).sum()),
                                    "fn": int((t & ~pr).sum()), "tn": int((~t & ~pr).sum()),
                                    "unparsed": int(inputs.unparsed.sum()), "ambiguous": 0}
    assert (overall["n"], overall["n_with_p_accept"]) == (24, 24)
    assert out["bootstrap"] == {"resamples": 150, "seed": 5, "confidence": 0.95}


def test_paired_differences_are_the_quantiles_of_b_minus_a_on_the_same_papers():
    a, b = mixed_inputs(seed=1), mixed_inputs(seed=1)
    rng = np.random.default_rng(2)
    flip = rng.random(len(b.y_true)) < 0.3
    b = ScoreInputs(a.y_true, np.where(flip, ~a.y_pred, a.y_pred), a.p_accept, a.unparsed)
    n = len(a.y_true)
    index = np.random.default_rng(9).integers(0, n, size=(250, n))
    out = paired_bootstrap(a, b, PAIRED, resamples=250, seed=9, confidence=0.95)
    for metric in PAIRED:
        diff = np.array([metric.compute(b.subset(row)) - metric.compute(a.subset(row)) for row in index])
        assert out[metric.name]["difference"] == pytest.approx(metric.compute(b) - metric.compute(a))
        assert out[metric.name]["ci"] == pytest.approx([np.quantile(diff, 0.025), np.quantile(diff, 0.975)])
        share = min((diff <= 0).mean(), (diff >= 0).mean())
        assert out[metric.name]["p_value"] == pytest.approx(min(1.0, 2 * share))


# Calibration, where the bins decide: two papers share a bin but not a gold label, so ECE is not
# the mean |gold - p| (0.456 here), and a paper moved one bin over changes the answer.
Y = [1, 0, 0, 1, 1]
P = [0.12, 0.18, 0.31, 0.39, 0.7]


def test_ece_by_hand_where_papers_share_a_bin():
    # bin 1: {0.12, 0.18} mean 0.15, gold 1/2 -> 0.35; bin 3: {0.31, 0.39} mean 0.35, gold 1/2 -> 0.15;
    # bin 7: {0.7}, gold 1 -> 0.3.  ECE = 2/5 * 0.35 + 2/5 * 0.15 + 1/5 * 0.3 = 0.26
    assert expected_calibration_error(Y, P) == pytest.approx(0.26, abs=1e-12)
    assert reliability_bins(Y, P) == [(1, 2, pytest.approx(0.15), 0.5), (3, 2, pytest.approx(0.35), 0.5),
                                      (7, 1, pytest.approx(0.7), 1.0)]
    inputs = ScoreInputs(np.array(Y, dtype=bool), np.array(Y, dtype=bool), np.array(P), np.zeros(5, dtype=bool))
    assert _ece_resamples(inputs, np.array([[0, 1, 2, 3, 4], [0, 0, 1, 1, 4]])) == pytest.approx(
        [0.26, 4 / 5 * 0.35 + 1 / 5 * 0.3], abs=1e-12)  # row 2: four papers in bin 1
    assert BY_NAME["ece"].compute(inputs) == pytest.approx(0.26, abs=1e-12)


def test_ece_edges_and_the_last_bin():
    # 0.2 opens bin 2 (with 0.25), 0.1999 stays in bin 1; 1.0 joins 0.95 in the last bin.
    assert calibration_bin([0.1999, 0.2, 0.25, 0.95, 1.0, 0.0, 0.05]).tolist() == [1, 2, 2, 9, 9, 0, 0]
    y, p = [1, 0, 1, 0, 1, 0, 0], [0.1999, 0.2, 0.25, 0.95, 1.0, 0.0, 0.05]
    # bin 0: {0, 0.05} gold 0 -> 0.025 (x2); bin 1: {0.1999} -> 0.8001; bin 2: {0.2, 0.25} gold 0.5 -> 0.275 (x2);
    # bin 9: {0.95, 1.0} gold 0.5 -> 0.475 (x2)
    expected = (2 * 0.025 + 0.8001 + 2 * 0.275 + 2 * 0.475) / 7
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)
    assert calibration_bin([0.5], bins=4).tolist() == [2] and calibration_bin([0.74], bins=4).tolist() == [2]
    assert np.isnan(expected_calibration_error([], []))


def test_probability_metrics_by_hand():
    y = np.array([1, 0, 1, 0, 1], dtype=bool)
    p = np.array([0.9, 0.4, 0.4, 0.1, np.nan])
    inputs = ScoreInputs(y, y, p, np.zeros(5, dtype=bool))
    # pairs (pos, neg): (0.9,0.4) 1, (0.9,0.1) 1, (0.4,0.4) 0.5, (0.4,0.1) 1 -> 3.5 / 4
    assert BY_NAME["auroc"].compute(inputs) == pytest.approx(0.875)
    assert BY_NAME["brier"].compute(inputs) == pytest.approx((0.01 + 0.16 + 0.36 + 0.01) / 4)
    # ranked 0.9 (pos), then the 0.4 tie (one pos, one neg), then 0.1: AP = 0.5 * 1 + 0.5 * 2/3
    assert BY_NAME["average_precision"].compute(inputs) == pytest.approx(0.5 + 1 / 3)
    one_class = ScoreInputs(np.array([True, True]), np.array([True, True]), np.array([0.2, 0.3]),
                            np.zeros(2, dtype=bool))
    assert BY_NAME["auroc"].compute(one_class) is None
    assert BY_NAME["average_precision"].compute(ScoreInputs(~one_class.y_true, one_class.y_pred, one_class.p_accept,
                                                            one_class.unparsed)) is None


def test_unparsed_and_ambiguous_are_counted_apart_and_follow_the_policy():
    rows = [{"gold": {"r": True}, "decision": "ACCEPT"}, {"gold": {"r": True}, "decision": "UNPARSED"},
            {"gold": {"r": False}, "decision": "AMBIGUOUS"}, {"gold": {"r": False}, "decision": "REJECT"},
            {"gold": {"r": False}, "decision": "ACCEPT", "p_accept": 0.75}]
    wrong = score_inputs(rows, "r", "wrong")
    assert wrong.y_pred.tolist() == [True, False, True, False, True]
    assert wrong.unparsed.tolist() == [False, True, True, False, False]
    assert wrong.accepts.tolist() == [True, False, False, False, True]
    assert confusion(wrong) == {"tp": 1, "fp": 2, "fn": 1, "tn": 1, "unparsed": 1, "ambiguous": 1}
    assert np.isnan(wrong.p_accept[:4]).all() and wrong.p_accept[4] == 0.75
    reject = score_inputs(rows, "r", "reject")
    assert reject.y_pred.tolist() == [True, False, False, False, True]
    assert confusion(reject) == {"tp": 1, "fp": 1, "fn": 1, "tn": 2, "unparsed": 1, "ambiguous": 1}
    always = score_inputs(rows, "r", "wrong", y_pred_override=True)
    assert always.y_pred.tolist() == [True] * 5 and not always.unparsed.any()


def test_completeness_and_the_summary_are_counted_exactly():
    samples = [{"id": "a", "decision": "ACCEPT", "error": None, "truncation": {"method": "chars", "cut_chars": 0},
                "latency_s": 2.0, "cached": False, "prompt_tokens": 10, "completion_tokens": 3,
                "extra": {"cost_usd": 0.5, "thinking_tokens": 4}},
               {"id": "b", "decision": "REJECT", "error": None, "truncation": {"method": "chars", "cut_chars": 30},
                "latency_s": 9.0, "cached": True, "prompt_tokens": 7, "completion_tokens": 2, "extra": {}},
               {"id": "c", "decision": "FAILED", "error": "HTTP 500", "truncation": {"method": "tokens",
                                                                                    "cut_chars": 10},
                "latency_s": 4.0, "cached": False, "extra": {"cost_usd": 0.25}}]
    assert [is_answered(s) for s in samples] == [True, True, False]
    assert is_answered({"decision": "FAILED"}) is False
    assert completeness(samples, 5) == {"n_papers": 5, "n_answered": 2, "n_failed": 1, "n_missing": 2,
                                        "complete": False}
    assert completeness(samples[:2], None) == {"n_papers": 2, "n_answered": 2, "n_failed": 0, "n_missing": 0,
                                               "complete": True}
    summary = summary_of(samples)
    assert summary["failures"] == {"count": 1, "most_common": [{"error": "HTTP 500", "papers": 1}]}
    assert summary["truncation"] == {"method": "chars,tokens", "papers_truncated": 2, "mean_cut_chars": 20.0,
                                     "max_cut_chars": 30}
    assert summary["timing"] == {"mean_latency_s": 3.0, "cached_samples": 1}
    assert summary["tokens"] == {"prompt": 17, "completion": 5, "thinking": 4}
    assert summary["cost_usd"] == 0.75
    assert summary["decisions"]["ACCEPT"] == 1 and summary["decisions"]["FAILED"] == 1
