import numpy as np
import pytest
from sklearn import metrics as skm

from peerbench.metrics import ScoreInputs
from peerbench.metrics.decision import BUILTIN_METRICS
from peerbench.reporting.scoring import bootstrap, point_estimates, score_samples

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)

BY_NAME = {m.name: m for m in BUILTIN_METRICS}


def inputs_from_counts(tp, fp, fn, tn, unparsed=0):
    y_true = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn, dtype=bool)
    y_pred = np.array([1] * tp + [1] * fp + [0] * fn + [0] * tn, dtype=bool)
    return ScoreInputs(y_true, y_pred, np.full(len(y_true), np.nan), np.zeros(len(y_true), dtype=bool))


def test_published_peerread95_confusion_counts():
    """TP 74, FP 12, FN 6, TN 3: the published card's F1 0.892, acc 0.811, P 0.860, R 0.925, 90.5% accept."""
    values = point_estimates(inputs_from_counts(74, 12, 6, 3), BUILTIN_METRICS)
    assert round(values["f1"], 3) == 0.892
    assert round(values["accuracy"], 3) == 0.811
    assert round(values["precision"], 3) == 0.860
    assert round(values["recall"], 3) == 0.925
    assert round(values["pred_accept_rate"], 3) == 0.905
    assert round(values["gold_accept_rate"], 3) == 0.842
    assert values["specificity"] == pytest.approx(3 / 15)
    assert values["balanced_accuracy"] == pytest.approx((74 / 80 + 3 / 15) / 2)
    # MCC by hand: (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))
    assert values["mcc"] == pytest.approx((74 * 3 - 12 * 6) / np.sqrt(86 * 80 * 15 * 9))
    assert "auroc" not in values  # no P(accept) given


def test_always_accept_on_peerread95_labels():
    values = point_estimates(inputs_from_counts(80, 15, 0, 0), BUILTIN_METRICS)
    assert round(values["f1"], 3) == 0.914
    assert values["mcc"] == 0.0 and values["balanced_accuracy"] == 0.5


def test_count_formulas_match_sklearn_on_random_inputs():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        y_true, y_pred = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        inputs = ScoreInputs(y_true, y_pred, np.full(n, np.nan), np.zeros(n, dtype=bool))
        t, p = y_true, y_pred
        counts = ((t & p).sum(), (~t & p).sum(), (t & ~p).sum(), (~t & ~p).sum(), 0)
        for metric in BUILTIN_METRICS:
            if metric.from_counts is None:
                continue
            assert float(metric.from_counts(*counts)) == pytest.approx(metric.compute(inputs), abs=1e-12), metric.name
        assert BY_NAME["mcc"].compute(inputs) == pytest.approx(skm.matthews_corrcoef(t, p))


def test_vectorised_auroc_and_brier_match_sklearn_per_resample():
    rng = np.random.default_rng(0)
    n = 60
    y_true = rng.random(n) < 0.7
    p = np.round(np.clip(y_true * 0.3 + rng.random(n) * 0.7, 0, 1), 1)  # rounded: ties on purpose
    inputs = ScoreInputs(y_true, y_true, p, np.zeros(n, dtype=bool))
    index = rng.integers(0, n, size=(20, n))
    auc = BY_NAME["auroc"].from_resamples(inputs, index)
    brier = BY_NAME["brier"].from_resamples(inputs, index)
    for row, a, b in zip(index, auc, brier):
        assert a == pytest.approx(skm.roc_auc_score(y_true[row], p[row]))
        assert b == pytest.approx(skm.brier_score_loss(y_true[row], p[row]))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    inputs = inputs_from_counts(74, 12, 6, 3)
    a = bootstrap(inputs, BUILTIN_METRICS, resamples=1000, seed=1, confidence=0.95)
    b = bootstrap(inputs, BUILTIN_METRICS, resamples=1000, seed=1, confidence=0.95)
    c = bootstrap(inputs, BUILTIN_METRICS, resamples=1000, seed=2, confidence=0.95)
    assert a == b and a != c
    lo, hi = a["f1"]
    assert lo < 0.892 < hi and 0.8 < lo and hi < 0.96


def test_bootstrap_of_constant_predictions_has_zero_width_where_it_must():
    ci = bootstrap(inputs_from_counts(80, 15, 0, 0), BUILTIN_METRICS, resamples=200, seed=0, confidence=0.95)
    assert ci["recall"] == [1.0, 1.0] and ci["pred_accept_rate"] == [1.0, 1.0]


def _sample(i, gold, decision, venue="v1"):
    return {"id": f"{venue}/{i}", "venue": venue, "gold": {"r": gold}, "decision": decision, "p_accept": None}


@pytest.mark.parametrize("policy, expected_acc, n", [("wrong", 2 / 4, 4), ("reject", 3 / 4, 4), ("exclude", 1.0, 2)])
def test_unparsed_policies(policy, expected_acc, n, monkeypatch):
    from peerbench import labels

    monkeypatch.setattr(labels, "get_label_rule", lambda name: labels.DECISION)
    samples = [_sample(0, True, "ACCEPT"), _sample(1, False, "REJECT"), _sample(2, True, "UNPARSED"),
               _sample(3, False, "UNPARSED")]
    out = score_samples(samples, label_rules=["r"], metrics=BUILTIN_METRICS, unparsed_policy=policy, resamples=10)
    overall = out["label_rules"]["r"]["overall"]
    assert overall["n"] == n
    assert overall["metrics"]["accuracy"]["value"] == pytest.approx(expected_acc)
    if policy != "exclude":
        assert overall["metrics"]["parse_failure_rate"]["value"] == 0.5


def test_unknown_gold_is_left_out_and_counted(monkeypatch):
    from peerbench import labels

    monkeypatch.setattr(labels, "get_label_rule", lambda name: labels.DECISION)
    samples = [_sample(0, True, "ACCEPT"), _sample(1, None, "REJECT", "v2"), _sample(2, False, "REJECT", "v2")]
    out = score_samples(samples, label_rules=["r"], metrics=BUILTIN_METRICS, resamples=10)
    entry = out["label_rules"]["r"]
    assert entry["n_unknown_gold"] == 1 and entry["overall"]["n"] == 2
    assert set(entry["per_venue"]) == {"v1", "v2"}
    assert entry["baselines"]["always-accept"]["accuracy"] == 0.5


def test_calibration_metrics_on_fixed_inputs():
    y_true = np.array([1, 1, 0, 1, 0, 0, 1, 1], dtype=bool)
    p = np.array([0.95, 0.85, 0.15, 0.55, 0.45, 0.05, 0.91, np.nan])
    inputs = ScoreInputs(y_true, y_true, p, np.zeros(8, dtype=bool))
    values = point_estimates(inputs, BUILTIN_METRICS)
    kept_y, kept_p = y_true[:7], p[:7]  # the paper without a P(accept) is left out
    assert values["average_precision"] == pytest.approx(skm.average_precision_score(kept_y, kept_p))
    assert values["brier"] == pytest.approx(skm.brier_score_loss(kept_y, kept_p))
    # ECE by hand, bins of width 0.1: {0.05} {0.15} {0.45} {0.55} {0.85} {0.91, 0.95}
    by_hand = (abs(0 - 0.05) + abs(0 - 0.15) + abs(0 - 0.45) + abs(1 - 0.55) + abs(1 - 0.85)
               + 2 * abs(1 - 0.93)) / 7
    assert values["ece"] == pytest.approx(by_hand)


def test_vectorised_ece_matches_the_point_estimate_per_resample():
    rng = np.random.default_rng(5)
    n = 50
    y_true = rng.random(n) < 0.8
    p = np.clip(rng.random(n), 0, 1)
    p[:3] = [0.0, 1.0, 0.1]  # the edges of the bins
    inputs = ScoreInputs(y_true, y_true, p, np.zeros(n, dtype=bool))
    index = rng.integers(0, n, size=(30, n))
    from peerbench.metrics.decision import expected_calibration_error

    for row, value in zip(index, BY_NAME["ece"].from_resamples(inputs, index)):
        assert value == pytest.approx(expected_calibration_error(y_true[row], p[row]))


def test_calibration_bins_put_edge_values_in_the_bin_they_open_in_ece_and_the_diagram_alike():
    import numpy as np

    from peerbench.metrics import ScoreInputs
    from peerbench.metrics.decision import _ece_resamples, calibration_bin, expected_calibration_error, reliability_bins

    assert calibration_bin([0.3, 0.6, 0.7, 1.0, 0.0, 0.0999, 0.1]).tolist() == [3, 6, 7, 9, 0, 0, 1]
    # 0.3 * 10 is 2.9999999999999996 in floating point: binned with 0.25 the ECE would be 0.225
    assert expected_calibration_error([1, 0], [0.3, 0.25]) == pytest.approx(0.5 * 0.7 + 0.5 * 0.25)
    assert reliability_bins([1, 0], [0.3, 0.25]) == [(2, 1, 0.25, 0.0), (3, 1, 0.3, 1.0)]
    inputs = ScoreInputs(np.array([True, False]), np.array([True, False]), np.array([0.3, 0.25]),
                         np.zeros(2, dtype=bool))
    assert _ece_resamples(inputs, np.array([[0, 1]]))[0] == pytest.approx(0.475)
