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


def sklearn_decision_metrics(t, p) -> dict[str, float]:
    """The reference: scikit-learn, as peerbench called it before it computed these from counts."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_class = len(np.unique(t)) < 2
        return {"f1": skm.f1_score(t, p, zero_division=0), "accuracy": skm.accuracy_score(t, p),
                "precision": skm.precision_score(t, p, zero_division=0),
                "recall": skm.recall_score(t, p, zero_division=0),
                "specificity": skm.recall_score(t, p, pos_label=False, zero_division=0),
                # one class: sklearn warns; defined as that class's recall
                "balanced_accuracy": skm.recall_score(t, p, pos_label=bool(t[0]), zero_division=0) if one_class
                else skm.balanced_accuracy_score(t, p),
                "mcc": skm.matthews_corrcoef(t, p)}


def random_case(rng, n):
    y_true, y_pred = rng.random(n) < rng.random(), rng.random(n) < rng.random()
    return ScoreInputs(y_true, y_pred, np.full(n, np.nan), rng.random(n) < 0.1)


def test_count_metrics_equal_sklearn_on_random_inputs():
    rng = np.random.default_rng(3)
    cases = [random_case(rng, int(rng.integers(1, 40))) for _ in range(60)]
    cases += [inputs_from_counts(*c) for c in [(3, 0, 0, 0), (0, 0, 0, 4), (0, 2, 0, 3), (2, 0, 3, 0), (1, 1, 1, 1)]]
    for inputs in cases:
        t, p = inputs.y_true, inputs.y_pred
        reference = sklearn_decision_metrics(t, p)
        counts = ((t & p).sum(), (~t & p).sum(), (t & ~p).sum(), (~t & ~p).sum(), inputs.unparsed.sum())
        for name, expected in reference.items():
            assert BY_NAME[name].compute(inputs) == pytest.approx(expected, abs=1e-12, rel=0), name
            assert float(BY_NAME[name].from_counts(*counts)) == pytest.approx(expected, abs=1e-12, rel=0), name


def proba_case(rng, n, missing=0.2):
    """Gold, P(accept) rounded to 1-2 decimals (ties on purpose), some papers without a P."""
    y_true = rng.random(n) < rng.random()
    p = np.round(np.clip(0.3 * y_true + 0.7 * rng.random(n), 0, 1), int(rng.integers(1, 3)))
    p[rng.random(n) < missing] = np.nan
    return ScoreInputs(y_true, y_true, p, np.zeros(n, dtype=bool))


def sklearn_proba_metrics(y, p) -> dict[str, float | None]:
    """scikit-learn on the papers with a P(accept); None where a metric is undefined."""
    from peerbench.metrics.decision import expected_calibration_error

    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    if not len(y):
        return {"auroc": None, "average_precision": None, "brier": None, "ece": None}
    return {"auroc": skm.roc_auc_score(y, p) if len(np.unique(y)) == 2 else None,
            "average_precision": skm.average_precision_score(y, p) if y.any() else None,
            "brier": skm.brier_score_loss(y, p, pos_label=True), "ece": expected_calibration_error(y, p)}


def test_proba_metrics_equal_sklearn_on_random_inputs_with_ties_and_missing_p():
    rng = np.random.default_rng(8)
    for _ in range(80):
        inputs = proba_case(rng, int(rng.integers(1, 50)))
        for name, expected in sklearn_proba_metrics(inputs.y_true, inputs.p_accept).items():
            got = BY_NAME[name].compute(inputs)
            assert (got is None) == (expected is None), name
            if expected is not None:
                assert got == pytest.approx(expected, abs=1e-12, rel=0), name


def test_resampled_proba_metrics_equal_sklearn_on_each_resample():
    """All resamples at once, from draw counts; papers drawn without a P(accept) are left out."""
    rng = np.random.default_rng(0)
    for missing in (0.0, 0.3):
        inputs = proba_case(rng, 60, missing)
        index = rng.integers(0, 60, size=(25, 60))
        vectorised = {name: BY_NAME[name].from_resamples(inputs, index)
                      for name in ("auroc", "average_precision", "brier", "ece")}
        for r, row in enumerate(index):
            for name, expected in sklearn_proba_metrics(inputs.y_true[row], inputs.p_accept[row]).items():
                got = vectorised[name][r]
                if expected is None:
                    assert np.isnan(got), name
                else:
                    assert got == pytest.approx(expected, abs=1e-12, rel=0), name


def test_the_bootstrap_of_the_proba_metrics_is_vectorised_even_where_some_papers_lack_a_p():
    """No per-resample loop (it took about 9 s a run for average precision); a plugin's
    from_resamples that does not say it leaves such papers out still gets the loop."""
    import dataclasses

    def boom(inputs):
        raise AssertionError("compute called once per resample")

    inputs = proba_case(np.random.default_rng(1), 50, missing=0.3)
    built_in = [dataclasses.replace(BY_NAME[name], compute=boom) for name in ("auroc", "average_precision",
                                                                                "brier", "ece")]
    assert set(bootstrap(inputs, built_in, resamples=100, seed=0, confidence=0.95)) == {m.name for m in built_in}
    plugin = dataclasses.replace(BY_NAME["brier"], compute=boom, from_resamples=lambda i, index: np.zeros(len(index)))
    with pytest.raises(AssertionError, match="once per resample"):
        bootstrap(inputs, [plugin], resamples=100, seed=0, confidence=0.95)


def test_weighted_auroc_equals_sklearn_with_sample_weights():
    """Fractional weights too (one reviewer's rating weighing 1/reviews, say)."""
    from peerbench.metrics.decision import weighted_auroc

    rng = np.random.default_rng(4)
    for _ in range(20):
        n = int(rng.integers(4, 40))
        y = np.r_[True, False, rng.random(n - 2) < 0.6]
        p, w = np.round(rng.random(n), 1), rng.random(n) + (rng.random(n) < 0.2)
        expected = skm.roc_auc_score(y, p, sample_weight=w)
        assert weighted_auroc(y.astype(float), p, w[None, :])[0] == pytest.approx(expected, abs=1e-12, rel=0)


# Intervals the scikit-learn/scipy implementation gave for this input and seed (before the
# metrics moved to numpy): the move must not change any published interval.
SKLEARN_ERA_INTERVALS = {
    "f1": [0.8726392961876832, 0.9796318527410964], "accuracy": [0.8237499999999999, 0.975],
    "precision": [0.8529411764705882, 1.0], "recall": [0.8460336538461538, 1.0],
    "specificity": [0.5555555555555556, 1.0], "balanced_accuracy": [0.7351960784313726, 0.9666666666666667],
    "mcc": [0.4804408800970765, 0.9003538147081952], "pred_accept_rate": [0.625, 0.85],
    "gold_accept_rate": [0.625, 0.85], "parse_failure_rate": [0.025, 0.175],
    "auroc": [0.6247395833333333, 0.9140585839598998], "average_precision": [0.7793107746769192, 0.9707136593594085],
    "brier": [0.16218000000000002, 0.22242272804054058], "ece": [0.24254285714285712, 0.3864166666666667],
}


def test_bootstrap_intervals_are_those_of_the_sklearn_era_for_the_same_seed():
    rng = np.random.default_rng(2024)
    n = 40
    y = rng.random(n) < 0.7
    y_pred = np.where(rng.random(n) < 0.8, y, ~y)
    p = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1), 2)
    p[::7] = np.nan
    inputs = ScoreInputs(y, y_pred, p, rng.random(n) < 0.1)
    got = bootstrap(inputs, BUILTIN_METRICS, resamples=300, seed=7, confidence=0.9)
    assert set(got) == set(SKLEARN_ERA_INTERVALS)
    for name, (low, high) in SKLEARN_ERA_INTERVALS.items():
        assert got[name] == [pytest.approx(low, abs=1e-12, rel=0), pytest.approx(high, abs=1e-12, rel=0)], name


def test_scoring_imports_neither_sklearn_nor_scipy():
    """scikit-learn's import alone is about a second after the last reply of every run."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from peerbench.metrics import ScoreInputs\n"
            "from peerbench.metrics.decision import BUILTIN_METRICS\n"
            "from peerbench.reporting.scoring import bootstrap, point_estimates\n"
            "y = np.arange(20) % 3 > 0\n"
            "i = ScoreInputs(y, y, np.linspace(0, 1, 20), np.zeros(20, dtype=bool))\n"
            "assert len(point_estimates(i, BUILTIN_METRICS)) == 14 and bootstrap(i, BUILTIN_METRICS, resamples=50,"
            " seed=0, confidence=0.95)\n"
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


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


def test_the_majority_of_k_samples_is_a_strict_majority_and_its_own_column():
    from peerbench.pipeline.collect import combine_generations
    from peerbench.records import Completion
    from peerbench.reporting.scoring import score_samples

    line = {"A": "I recommend this paper for ACCEPTANCE.", "R": "I recommend this paper for REJECTION.", "U": "?"}
    majority = {votes: combine_generations([Completion(text=line[v]) for v in votes]).extra["majority"]
                for votes in ("AUU", "AAU", "RRA", "ARU", "AR")}
    assert majority == {"AUU": None, "AAU": "ACCEPT", "RRA": "REJECT", "ARU": None, "AR": None}

    def row(i, gold, first, voted):
        return {"id": f"p{i}", "venue": "v", "gold": {"decision": gold}, "decision": first, "p_accept": None,
                "extra": {"samples": 3, "majority": voted}}

    rows = [row(0, True, "ACCEPT", "ACCEPT"), row(1, False, "UNPARSED", "REJECT"), row(2, False, "REJECT", None),
            row(3, True, "ACCEPT", None)]
    for policy, accuracy in (("wrong", 0.5), ("reject", 0.75), ("exclude", 1.0)):
        scored = score_samples(rows, label_rules=["decision"], metrics=BUILTIN_METRICS, unparsed_policy=policy,
                               resamples=0)
        assert scored["label_rules"]["decision"]["baselines"]["majority of 3 samples"]["accuracy"] == accuracy, policy
