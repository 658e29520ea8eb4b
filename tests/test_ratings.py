"""The rating prompt family, its parser, the rating metrics (against scipy and scikit-learn) and the
human ceiling (on fixtures whose answer is known by construction)."""

import itertools
import json
import warnings

import numpy as np
import pytest
from peerread_fixtures import manifest
from scipy import stats
from sklearn import metrics as skm

import peerbench
from peerbench.metrics import ScoreInputs
from peerbench.metrics import rating as rating_module
from peerbench.metrics import ceiling as ceiling_module
from peerbench.metrics.ceiling import HUMAN, human_ceiling, human_ceiling_for
from peerbench.metrics.rating import (
    RATING_METRICS,
    RatedInputs,
    pairwise_accuracy,
    with_ratings,
)
from peerbench.parsing import parse_decision
from peerbench.prompts import PromptTemplate
from peerbench.ratings import RATING_SCALES, parse_rating, rating_section, scale_of
from peerbench.records import Decision, Paper, Section
from peerbench.reference import card
from peerbench.reporting.scoring import bootstrap, score_samples
from peerbench.reporting.tables import render_metrics
from peerbench.task import load_task

BY_NAME = {m.name: m for m in RATING_METRICS}


# ---- the prompt family ----

@pytest.mark.fast
@pytest.mark.parametrize("name, scale", sorted(RATING_SCALES.items()))
def test_rating_prompts_are_the_card_with_one_section_added(name, scale):
    facts = card()
    template = PromptTemplate.resolve(name)
    head, tail = facts["user_template"].split("## Final Recommendation")
    assert template.system == facts["system"] and template.syntax == "format"
    assert template.user == head + rating_section(*scale) + "## Final Recommendation" + tail
    assert f"    Overall rating: <an integer from {scale[0]} (lowest) to {scale[1]} (highest)>\n" in template.user
    paper = Paper("1", "iclr_2017", "A {title}", "Abs $x", [Section("Intro", "Body {body} text.")])
    user = template.messages(paper, "BODY")[1]["content"]
    assert user.endswith("Title: A {title}\nAbstract: Abs $x\nPaper content:\nBODY\n")
    assert scale_of(name) == scale and scale_of(name + "+custom") == scale and scale_of("reference") is None


@pytest.mark.fast
def test_rating_tasks_load_and_name_their_scale():
    iclr, acl = load_task("peerread-iclr2017-rating"), load_task("peerread-acl2017-rating")
    assert (iclr.prompt, iclr.label_rule, iclr.label_rules()) == ("reference-rating-1-10", "decision",
                                                                  ["decision", "recommendation>=4"])
    assert (acl.prompt, acl.label_rule) == ("reference-rating-1-5", "recommendation>=4")
    iclr2022 = load_task("openreview-iclr2022-rating")
    assert (iclr2022.prompt, iclr2022.label_rule, iclr2022.dataset.args()) == (
        "reference-rating-1-10", "decision", {"venues": ["ICLR.cc/2022/Conference"]})
    assert scale_of(iclr.prompt_template().name) == (1, 10) and scale_of(acl.prompt_template().name) == (1, 5)
    assert iclr.fingerprint() != load_task("peerread-iclr2017").fingerprint()


# ---- the parser ----

REVIEW = ("## Summary\nThe paper proposes X.\n\n## Overall Rating\nSolid work.\nOverall rating: 7\n\n"
          "## Final Recommendation\nI recommend this paper for ACCEPTANCE.")


@pytest.mark.fast
@pytest.mark.parametrize("text, scale, expected", [
    ("Overall rating: 7", (1, 10), 7.0),
    ("Overall rating: 4\nmore\nOverall rating: 6-7", (1, 10), None),  # the last line is a range: no fallback
    ("Overall rating: 6,5", (1, 10), None),
    ("Overall rating: 1e1", (1, 10), None),
    ("Overall rating: 7.5", (1, 10), 7.5),
    ("Overall rating: 8.", (1, 10), 8.0),
    ("Overall rating: 6\nOverall rating: 1-10", (1, 10), 6.0),  # the instruction echoed last is skipped
    ("**Overall rating:** 8", (1, 10), 8.0),
    ("- overall RATING: 6 (marginally above acceptance threshold)", (1, 10), 6.0),
    ("Overall rating: 7/10.", (1, 10), 7.0),
    ("Overall rating: 4 out of 5", (1, 5), 4.0),
    ("Overall rating: 6.5", (1, 10), 6.5),
    ("Overall rating: 3/5", (1, 10), None),           # another scale's denominator
    ("Overall rating: 11", (1, 10), None),            # off the scale
    ("Overall rating: 0", (1, 5), None),
    ("Overall rating: 1-10", (1, 10), None),          # the instruction echoed, not a rating
    ("Overall rating: 1 to 10", (1, 10), None),
    ("Overall rating: <an integer from 1 (lowest) to 10 (highest)>", (1, 10), None),
    ("Overall rating: <an integer from 1 (lowest) to 10 (highest)>\n...\nOverall rating: 5", (1, 10), 5.0),
    ("Overall rating: 3\nOn reflection:\nOverall rating: 6", (1, 10), 6.0),  # the last line wins
    ("Overall rating: 6\nOverall rating: 1-10", (1, 10), 6.0),  # an echo after it is skipped
    ("My overall rating: 7", (1, 10), None),          # not a rating line
    ("Rating: 7", (1, 10), None),
    ("", (1, 10), None),
    (None, (1, 10), None),
])
def test_parse_rating(text, scale, expected):
    assert parse_rating(text, scale) == expected


@pytest.mark.fast
def test_the_rating_section_leaves_the_decision_to_the_reference_parser():
    assert parse_rating(REVIEW, (1, 10)) == 7.0
    assert parse_decision(REVIEW) is Decision.ACCEPT
    both = REVIEW.replace("ACCEPTANCE.", "ACCEPTANCE.\nI recommend this paper for REJECTION.")
    assert parse_decision(both) is Decision.AMBIGUOUS and parse_rating(both, (1, 10)) == 7.0


# ---- the metrics, against scipy and scikit-learn ----

def rated_inputs(seed=3, n=60):
    """Integer ratings with ties, some papers without a model rating or without a human one."""
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 11, n).astype(float) + rng.choice([0, 1 / 3, 2 / 3], n)
    model = np.clip(np.round(human + rng.normal(0, 2, n)), 1, 10)
    y_true = human + rng.normal(0, 1.5, n) > 6
    model[rng.choice(n, 6, replace=False)] = np.nan
    human[rng.choice(n, 4, replace=False)] = np.nan
    base = ScoreInputs(y_true, y_true.copy(), np.full(n, np.nan), np.zeros(n, dtype=bool))
    rows = [{"rating": None if np.isnan(m) else m, "mean_recommendation": None if np.isnan(h) else h}
            for m, h in zip(model, human)]
    return with_ratings(base, rows), human, model, y_true


def brute_pairwise(human, model):
    right = ties = total = 0
    for i, j in itertools.combinations(range(len(human)), 2):
        if human[i] == human[j]:
            continue
        total += 1
        if model[i] == model[j]:
            ties += 1
        elif (model[i] > model[j]) == (human[i] > human[j]):
            right += 1
    return (right + ties / 2) / total


@pytest.mark.fast
def test_each_rating_metric_matches_scipy_and_sklearn():
    inputs, human, model, y_true = rated_inputs()
    both = ~np.isnan(human) & ~np.isnan(model)
    h, m = human[both], model[both]
    assert isinstance(inputs, RatedInputs)
    assert BY_NAME["rating_spearman"].compute(inputs) == pytest.approx(stats.spearmanr(h, m).statistic, abs=1e-12)
    assert BY_NAME["rating_kendall"].compute(inputs) == pytest.approx(stats.kendalltau(h, m).statistic, abs=1e-12)
    assert BY_NAME["rating_mae"].compute(inputs) == pytest.approx(skm.mean_absolute_error(h, m), abs=1e-12)
    pairwise = BY_NAME["rating_pairwise_accuracy"].compute(inputs)
    assert pairwise == pytest.approx(brute_pairwise(h, m), abs=1e-12)
    assert pairwise == pytest.approx((1 + stats.somersd(h, m).statistic) / 2, abs=1e-12)
    rated = ~np.isnan(model)  # AUROC needs the model's rating and the gold label, not a human rating
    assert BY_NAME["rating_auroc"].compute(inputs) == pytest.approx(
        skm.roc_auc_score(y_true[rated], model[rated]), abs=1e-12)


@pytest.mark.fast
def test_pairwise_accuracy_edges_and_two_levels_is_the_auroc():
    assert pairwise_accuracy([1, 1, 1], [1, 2, 3]) is None          # no pair the humans order
    assert pairwise_accuracy([1, 2, 3], [5, 5, 5]) == 0.5            # a constant model: every pair a tie
    gold, score = np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.8, 0.9])
    assert pairwise_accuracy(gold, score) == pytest.approx(skm.roc_auc_score(gold, score))


@pytest.mark.fast
@pytest.mark.parametrize("limit", [400, 10])  # the pair matrices, and scipy on each row above the limit
def test_each_resample_equals_the_metric_on_that_resample(monkeypatch, limit):
    monkeypatch.setattr(rating_module, "PAIR_MATRIX_LIMIT", limit)
    inputs, *_ = rated_inputs(seed=5, n=40)
    index = np.random.default_rng(0).integers(0, 40, size=(25, 40))
    for metric in RATING_METRICS:
        fast = metric.from_resamples(inputs, index)
        slow = [metric.compute(inputs.subset(row)) for row in index]
        slow = np.array([np.nan if v is None else v for v in slow], dtype=float)
        np.testing.assert_allclose(fast, slow, atol=1e-12, err_msg=metric.name)


@pytest.mark.fast
def test_decision_only_inputs_give_no_rating_metric():
    inputs = ScoreInputs(np.array([True, False]), np.array([True, False]), np.full(2, np.nan), np.zeros(2, bool))
    assert with_ratings(inputs, [{"rating": None, "mean_recommendation": 4.0}] * 2) is inputs
    index = np.zeros((3, 2), dtype=int)
    for metric in RATING_METRICS:
        assert metric.compute(inputs) is None and np.isnan(metric.from_resamples(inputs, index)).all()
    assert bootstrap(inputs, RATING_METRICS, resamples=50, seed=0, confidence=0.95) == {}


# ---- the human ceiling, on fixtures whose answer is known by construction ----

# Paper A (rejected) has ratings 2, 2; B (accepted) 1, 3; C (accepted) 5, 5. Whichever reviewer of B is
# held out, the held-out ratings rank (A, B, C) as (2, 1, 3) or (1, 2, 3) and the others' means the other
# way round: every draw gives Spearman 1 - 6*2/(3*8) = 0.5, Kendall (2-1)/3, pairwise accuracy 2/3 and
# MAE (0 + 2 + 0)/3. Against the decision, B's held-out reviewer beats A half the time and C always:
# AUROC (0.5 + 1)/2 = 0.75; at threshold 3 every A rating rejects and B's accept half the time: balanced
# accuracy (1 + (0.5 + 1)/2)/2 = 0.875, the best of the thresholds 1, 2, 3, 5 (0.5, 0.375, 0.875, 0.75).
CONSTRUCTED = [[2, 2], [1, 3], [5, 5]]
CONSTRUCTED_GOLD = [False, True, True]


@pytest.mark.fast
@pytest.mark.parametrize("limit", [400, 2])
def test_human_ceiling_on_a_fixture_known_by_construction(monkeypatch, limit):
    monkeypatch.setattr(rating_module, "PAIR_MATRIX_LIMIT", limit)
    ceiling = human_ceiling(CONSTRUCTED, CONSTRUCTED_GOLD, seed=11)
    assert ceiling == pytest.approx({"n": 3, "draws": 200, "rating_spearman": 0.5, "rating_kendall": 1 / 3,
                                     "rating_pairwise_accuracy": 2 / 3, "rating_mae": 2 / 3, "rating_auroc": 0.75,
                                     "balanced_accuracy": 0.875, "balanced_accuracy_threshold": 3.0}, abs=1e-12)


@pytest.mark.fast
def test_reviewers_who_always_agree_are_a_perfect_ceiling_and_single_reviews_are_left_out():
    ratings = [[3, 3, 3], [5, 5], [8, 8, 8, 8], [9], [6, 6]]
    ceiling = human_ceiling(ratings, [False, False, True, True, True])
    assert ceiling["n"] == 4  # the paper with one review has no other reviewer to predict
    for name in ("rating_spearman", "rating_kendall", "rating_pairwise_accuracy", "rating_auroc",
                 "balanced_accuracy"):
        assert ceiling[name] == 1.0, name
    assert ceiling["rating_mae"] == 0.0 and ceiling["balanced_accuracy_threshold"] == 6.0
    assert human_ceiling([[4, 5], [7]]) == {}  # fewer than two papers with two ratings


@pytest.mark.fast
def test_the_decision_ceiling_is_the_exact_mean_over_every_choice_of_reviewer():
    ratings = [[2, 5, 6], [4, 4], [7, 3], [8, 6, 5], [1, 3]]
    gold = [False, False, True, True, False]
    ceiling = human_ceiling(ratings, gold)
    aurocs, balanced = [], {t: [] for t in (3.0, 5.0)}
    for choice in itertools.product(*ratings):  # every way of picking one reviewer per paper
        aurocs.append(skm.roc_auc_score(gold, choice))
        for t, values in balanced.items():
            values.append(skm.balanced_accuracy_score(gold, np.array(choice) >= t))
    assert ceiling["rating_auroc"] == pytest.approx(np.mean(aurocs), abs=1e-12)
    best = ceiling["balanced_accuracy_threshold"]
    assert best in balanced and ceiling["balanced_accuracy"] == pytest.approx(np.mean(balanced[best]), abs=1e-12)


def sample_row(venue, recs, gold, rating=None, paper="p"):
    return {"id": f"{venue}/{paper}", "venue": venue, "gold": {"decision": gold, "recommendation>=4": gold},
            "decision": "ACCEPT", "recommendations": recs, "mean_recommendation": float(np.mean(recs)),
            "rating": rating, "rating_scale": [1, 10] if rating is not None else None}


@pytest.mark.fast
def test_ceiling_rules_decision_only_under_decision_and_one_venue_at_a_time(monkeypatch):
    monkeypatch.setattr(ceiling_module, "CEILING_MIN_PAPERS", 2)  # the constructed fixture's 3 papers
    rows = [sample_row("v1", r, g, paper=str(i)) for i, (r, g) in enumerate(zip(CONSTRUCTED, CONSTRUCTED_GOLD))]
    assert human_ceiling_for(rows, "decision", 0)["rating_auroc"] == 0.75
    under_scores = human_ceiling_for(rows, "recommendation>=4", 0)  # the rule holds the held-out rating itself
    assert under_scores["rating_spearman"] == 0.5 and "rating_auroc" not in under_scores
    assert "balanced_accuracy" not in under_scores
    mixed = rows + [sample_row("v2", [1, 5], True, paper="x"), sample_row("v2", [2, 2], False, paper="y")]
    assert human_ceiling_for(mixed, "decision", 0) == {}  # two venues' scales are never pooled
    result = score_samples(mixed, label_rules=["decision"], metrics=RATING_METRICS, resamples=20)
    entry = result["label_rules"]["decision"]
    assert HUMAN not in entry["baselines"]
    assert entry["per_venue"]["v1"]["human_ceiling"]["rating_auroc"] == 0.75
    assert entry["per_venue"]["v2"]["human_ceiling"]["n"] == 2


# ---- scoring and a whole run ----

@pytest.mark.fast
def test_score_samples_scores_ratings_with_intervals_and_counts_the_rated():
    rows = [sample_row("v1", [r, r + 1], r > 4, rating=float(min(10, r + (i % 3))), paper=str(i))
            for i, r in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 5, 7])]
    rows[0]["rating"] = None  # asked, not given
    result = score_samples(rows, label_rules=["decision"], metrics=RATING_METRICS, resamples=200, seed=1)
    overall = result["label_rules"]["decision"]["overall"]
    assert overall["n"] == 12 and overall["n_with_rating"] == 11
    h = np.array([r["mean_recommendation"] for r in rows[1:]])
    m = np.array([r["rating"] for r in rows[1:]])
    assert overall["metrics"]["rating_spearman"]["value"] == pytest.approx(stats.spearmanr(h, m).statistic)
    for name in BY_NAME:
        low, high = overall["metrics"][name]["ci"]
        assert low <= overall["metrics"][name]["value"] <= high, name
    assert result["label_rules"]["decision"]["baselines"][HUMAN]["n"] == 11  # the papers the model rated


def replay_with_ratings(path, venue="iclr_2017"):
    facts = [f for f in manifest() if f["venue"] == venue]
    with path.open("w") as handle:
        for i, fact in enumerate(facts):
            line = "Overall rating: <an integer>" if i == 0 else f"Overall rating: {1 + i % 10}"
            verdict = "ACCEPTANCE" if i % 2 else "REJECTION"
            handle.write(json.dumps({"id": f"{venue}/{fact['split']}/{fact['id']}", "completion":
                                     f"## Overall Rating\nOk.\n{line}\n\n## Final Recommendation\n"
                                     f"I recommend this paper for {verdict}."}) + "\n")
    return path


def test_a_rating_run_stores_ratings_and_shows_the_human_column(peerread_root, tmp_path):
    replay = replay_with_ratings(tmp_path / "r.jsonl")
    result = peerbench.run(task="peerread-iclr2017-rating", backend="replay", model=str(replay),
                           data_dir=peerread_root, out=tmp_path / "run", resamples=100)
    lines = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    by_rating = sorted(s["rating"] for s in lines if s["rating"] is not None)
    assert len(lines) == 78 and len(by_rating) == 77 and all(s["rating_scale"] == [1, 10] for s in lines)
    assert all(len(s["recommendations"]) >= 1 for s in lines)
    assert result.metrics["ratings"] == {"asked": 78, "given": 77, "scale": [1, 10]}
    entry = result.metrics["label_rules"]["decision"]
    assert entry["overall"]["n_with_rating"] == 77 and "rating_kendall" in entry["overall"]["metrics"]
    assert set(entry["baselines"][HUMAN]) >= {"rating_spearman", "rating_auroc", "balanced_accuracy"}
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(render_metrics(result.metrics))
    text = console.export_text()
    assert HUMAN in text and "rating_spearman (n=77 rated)" in text and "77 of 78 reviews gave" in text
    threshold = entry["baselines"][HUMAN]["balanced_accuracy_threshold"]
    assert f"{HUMAN} (leave one out, the 77 papers with 2+ ratings the model rated)" in text
    assert f"balanced accuracy at the best threshold on these papers (rating >= {threshold:g})" in text


def test_a_decision_run_stores_no_rating_but_still_gets_the_human_ceiling(peerread_root, tmp_path):
    replay = replay_with_ratings(tmp_path / "r.jsonl")
    result = peerbench.run(task="peerread-iclr2017", backend="replay", model=str(replay),
                           data_dir=peerread_root, out=tmp_path / "run", resamples=50)
    line = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert "rating" not in line and "rating_scale" not in line and "ratings" not in result.metrics
    entry = result.metrics["label_rules"]["decision"]
    assert "n_with_rating" not in entry["overall"] and not any(k.startswith("rating_") for k in entry["overall"]["metrics"])
    assert entry["baselines"][HUMAN]["balanced_accuracy"] > 0.5


@pytest.mark.fast
def test_one_rated_paper_gives_only_its_error_and_no_warning():
    rows = [sample_row("v1", [3, 4], True, rating=5.0, paper="a"), sample_row("v1", [5, 6], False, paper="b")]
    rows[1]["rating_scale"] = [1, 10]  # asked, not given
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = score_samples(rows, label_rules=["decision"], metrics=RATING_METRICS, resamples=50)
    overall = result["label_rules"]["decision"]["overall"]
    assert overall["n_with_rating"] == 1 and set(overall["metrics"]) == {"rating_mae"}
    assert overall["metrics"]["rating_mae"]["value"] == 1.5


def test_the_decision_ceiling_equals_scikit_learn_with_review_weights():
    """numpy, not scikit-learn, at run time; the same numbers as scikit-learn's weighted scores."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from peerbench.metrics.ceiling import _decision_ceiling

    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(3, 30))
        recs = [list(rng.integers(1, 6, size=int(rng.integers(1, 5))).astype(float)) for _ in range(n)]
        gold = rng.random(n) < 0.5
        got = _decision_ceiling(recs, gold)
        if len(set(gold)) < 2:
            assert got == {}
            continue
        ratings = np.concatenate(recs)
        weights = np.concatenate([np.full(len(r), 1 / len(r)) for r in recs])
        labels = np.repeat(gold, [len(r) for r in recs])
        scores = {float(t): balanced_accuracy_score(labels, ratings >= t, sample_weight=weights)
                  for t in np.unique(ratings)}
        best = max(scores, key=lambda t: (round(scores[t], 12), -t))
        assert got["rating_auroc"] == pytest.approx(roc_auc_score(labels, ratings, sample_weight=weights), abs=1e-12)
        assert (got["balanced_accuracy_threshold"], got["balanced_accuracy"]) == (best, pytest.approx(scores[best],
                                                                                                     abs=1e-12))


def test_average_ranks_are_scipys_rankdata_with_nan_omitted():
    import numpy as np
    from scipy.stats import rankdata

    from peerbench.metrics.rating import average_ranks

    rng = np.random.default_rng(0)
    for _ in range(300):
        values = rng.integers(0, 5, size=(int(rng.integers(1, 6)), int(rng.integers(1, 15)))).astype(float)
        values[rng.random(values.shape) < 0.2] = np.nan
        np.testing.assert_array_equal(average_ranks(values), rankdata(values, axis=1, nan_policy="omit"))


@pytest.mark.fast
def test_the_ceiling_needs_ten_papers_and_sits_on_the_papers_the_model_rated():
    rng = np.random.default_rng(3)
    recs = [list(rng.integers(1, 11, size=3).astype(float)) for _ in range(12)]
    gold = [bool(g) for g in rng.random(12) < 0.5]
    rows = [sample_row("v1", r, g, rating=5.0, paper=str(i)) for i, (r, g) in enumerate(zip(recs, gold))]
    assert human_ceiling_for(rows, "decision", 0)["n"] == 12
    assert human_ceiling_for(rows[:9], "decision", 0) == {}  # 9 papers: too few for a number without interval
    for row in rows[:2]:
        row["rating"] = None  # the model gave no rating line for these two
    on_rated = human_ceiling_for(rows, "decision", 0)
    assert on_rated.pop("on_model_rated") is True
    assert on_rated["n"] == 10 and on_rated == human_ceiling([r for r in recs[2:]], gold[2:], seed=0)


@pytest.mark.fast
def test_ratings_are_never_pooled_against_humans_across_venues_and_auroc_counts_its_own_papers():
    rows = [sample_row(venue, [r, r + 1], r > 3, rating=float(r), paper=f"{venue}{i}")
            for venue, scale in (("v1", 10), ("v2", 5)) for i, r in enumerate(range(1, scale))]
    rows[0]["mean_recommendation"] = None  # a paper with no human rating: in rating_auroc, not against humans
    result = score_samples(rows, label_rules=["decision"], metrics=RATING_METRICS, resamples=20)
    entry = result["label_rules"]["decision"]
    overall = entry["overall"]
    assert set(overall["metrics"]) == {"rating_auroc"} and "rating scales differ" in overall["rating_note"]
    assert (overall["n_model_rated"], overall["n_with_rating"]) == (13, 12)
    assert {"rating_spearman", "rating_mae"} <= set(entry["per_venue"]["v2"]["metrics"])
