"""Exact answers for the survivors of the seed-28 mutation sample (docs/testing.md), and the bounds
of the stored-line schema. In-process, so that mutmut sees which test calls which function.

This file is first in [tool.mutmut]'s test selection on purpose: mutmut charges the calls made
while the test modules are imported (the BUILTIN_METRICS table, built by decision._counted) to the
first test that runs, so that test pins the whole table (the confusion-count metrics of
decision._counted and _point, the P(accept) metrics of decision._proba_metric)."""

import asyncio
import json
import sqlite3
import time
from types import SimpleNamespace

import filelock
import numpy as np
import pytest
from openai_server import OpenAIChatServer

import peerbench
import peerbench.pipeline.store as store_module
from peerbench.backends.replay import ReplayBackend
from peerbench.errors import BackendError, ConfigError
from peerbench.metrics import ScoreInputs
from peerbench.metrics.decision import BUILTIN_METRICS
from peerbench.pipeline.execute import execute
from peerbench.pipeline.plan import plan_run
from peerbench.pipeline.probes import compare_arm, net_of_control
from peerbench.pipeline.store import ResponseCache, RunDir, SampleRecorder, check_sample
from peerbench.prompts import PromptTemplate, render
from peerbench.records import Paper, Section
from peerbench.reporting.comparison import compare
from peerbench.reporting.scoring import score_run, score_samples

COUNTED = {  # name: (description, value on tp=3 fp=1 fn=2 tn=4)
    "f1": ("F1 of the accept class", 2 * 3 / (2 * 3 + 1 + 2)),
    "accuracy": ("share of correct decisions", 7 / 10),
    "precision": ("of the papers predicted accept, the share gold-accept", 3 / 4),
    "recall": ("of the gold-accept papers, the share predicted accept", 3 / 5),
    "specificity": ("of the gold-reject papers, the share predicted reject", 4 / 5),
    "balanced_accuracy": ("mean of recall and specificity", (3 / 5 + 4 / 5) / 2),
    "mcc": ("Matthews correlation coefficient", (3 * 4 - 1 * 2) / np.sqrt(4 * 5 * 5 * 6)),
}


def test_the_confusion_count_metrics_built_at_import_are_exactly_the_table():
    counted = [m for m in BUILTIN_METRICS if m.name in COUNTED]
    assert [m.name for m in counted] == list(COUNTED)
    y_true = np.array([True] * 5 + [False] * 5)
    y_pred = np.array([True, True, True, False, False, True, False, False, False, False])
    inputs = ScoreInputs(y_true, y_pred, np.full(10, np.nan), np.zeros(10, dtype=bool))
    for metric in counted:
        description, value = COUNTED[metric.name]
        assert metric.description == description
        assert (metric.higher_is_better, metric.needs_proba) == (True, False)
        assert metric.compute(inputs) == pytest.approx(value, abs=1e-12)
        assert float(metric.from_counts(3, 1, 2, 4, 0)) == pytest.approx(value, abs=1e-12)
    # The P(accept) metrics are built at import too (decision._proba_metric): point, resamples, None.
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.array([True, True, False, False, True, False])
    p = np.array([0.9, 0.4, 0.35, 0.1, np.nan, 0.8])
    inputs = ScoreInputs(y, y, p, np.zeros(6, dtype=bool))
    index = np.array([[0, 1, 2, 3, 4, 5], [0, 0, 1, 2, 3, 5], [1, 1, 2, 3, 4, 4]])
    rows = [[i for i in row if not np.isnan(p[i])] for row in index]  # a paper without P(accept) weighs nothing
    gold_only = ScoreInputs(y, y, np.where(y, 0.7, np.nan), np.zeros(6, dtype=bool))
    by_name = {m.name: m for m in BUILTIN_METRICS}
    for name, plain, one_class in (("auroc", roc_auc_score, None), ("average_precision", average_precision_score, 1.0),
                                   ("brier", brier_score_loss, 0.09)):
        metric = by_name[name]
        assert metric.needs_proba and metric.from_resamples.leaves_out_missing_p is True
        assert metric.compute(inputs) == pytest.approx(plain(y[rows[0]], p[rows[0]]), abs=1e-12)
        assert list(metric.from_resamples(inputs, index)) == pytest.approx([plain(y[r], p[r]) for r in rows], abs=1e-12)
        assert metric.compute(gold_only) == (None if one_class is None else pytest.approx(one_class, abs=1e-12))


@pytest.mark.fast
def test_the_rates_of_no_papers_are_zero():
    nothing = np.zeros(0, dtype=bool)
    inputs = ScoreInputs(nothing, nothing, np.zeros(0), nothing)
    rates = {m.name: m.compute(inputs) for m in BUILTIN_METRICS
             if m.name in ("pred_accept_rate", "gold_accept_rate", "parse_failure_rate")}
    assert rates == {"pred_accept_rate": 0.0, "gold_accept_rate": 0.0, "parse_failure_rate": 0.0}


# --- replay ------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_a_byte_order_mark_is_read_on_the_first_line_only(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "1", "completion": "x"}\n{"id": "2", "completion": "y"}\n')
    assert list(ReplayBackend(str(path))._read()) == [(1, {"id": "1", "completion": "x"}),
                                                      (2, {"id": "2", "completion": "y"})]
    path.write_bytes(b'{"id": "1", "completion": "x"}\n\xef\xbb\xbf{"id": "2", "completion": "y"}\n')
    with pytest.raises(ConfigError) as caught:
        list(ReplayBackend(str(path))._read())
    assert str(caught.value) == f"{path}:2: not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig))"


@pytest.mark.fast
def test_replay_generate_before_setup_says_what_must_run_first(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"id": "1", "completion": "x"}\n')
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(ReplayBackend(str(path)).generate([]))
    assert str(caught.value) == "ReplayBackend.setup(context) must run first: it matches rows to papers"


# --- execute -----------------------------------------------------------------------------------------


def test_execute_bootstraps_with_seed_0_unless_told(peerread_root, tmp_path):
    plan = plan_run("peerread95", "baseline", data_dir=peerread_root, out=tmp_path / "run", limit=6)
    result = execute(plan, resamples=10, progress=False)
    assert result.metrics["bootstrap"] == {"resamples": 10, "seed": 0, "confidence": 0.95}


def test_local_weights_are_part_of_the_cache_key(peerread_root, tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "adapter.safetensors").write_bytes(b"v1")
    with OpenAIChatServer(model=str(student)) as server:
        def go(out):
            peerbench.run("peerread95", "openai", str(student), data_dir=peerread_root, out=tmp_path / out,
                          backend_options={"base_url": server.base_url}, resamples=0, progress=False, limit=3)
            return server.hits["POST /v1/chat/completions"]

        assert go("a") == 3
        assert go("b") == 3  # same weights: served by the cache
        (student / "adapter.safetensors").write_bytes(b"v2 retrained")
        assert go("c") == 6  # retrained at the same path: every paper requested again


# --- probes ------------------------------------------------------------------------------------------


def _sample(decision, completion):
    return {"decision": decision, "p_accept": None, "error": None, "completion": completion, "truncation": {}}


@pytest.mark.fast
def test_review_changed_counts_the_papers_whose_text_moved():
    clean = {"a": _sample("REJECT", "same"), "b": _sample("REJECT", "old"), "c": _sample("ACCEPT", "x"),
             "d": _sample("ACCEPT", None)}
    changed = {"a": _sample("REJECT", "same"), "b": _sample("REJECT", "new"), "c": _sample("ACCEPT", "x"),
               "d": _sample("ACCEPT", None)}
    arm = compare_arm(clean, changed, resamples=10, seed=0)
    assert (arm["review_changed"], arm["decision_changed"]) == (0.25, 0.0)


@pytest.mark.fast
def test_net_of_control_without_clean_rejections_is_an_empty_answer():
    accepted = {"a": _sample("ACCEPT", "x")}
    assert net_of_control(accepted, accepted, accepted, resamples=10, seed=0) == \
        {"n": 0, "difference": None, "ci": None, "p_value": None}


# --- store -------------------------------------------------------------------------------------------


class _FlakyConnection:
    """A sqlite connection whose first ``fails`` statements raise ``message`` (another process holding
    the file while the cache switches to WAL)."""

    def __init__(self, real, fails, message):
        self.real, self.fails, self.message, self.calls = real, fails, message, 0

    def execute(self, *args):
        self.calls += 1
        if self.calls <= self.fails:
            raise sqlite3.OperationalError(self.message)
        return self.real.execute(*args)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.fast
def test_a_locked_cache_is_tried_again_and_another_error_is_not(tmp_path, monkeypatch):
    made = []
    real_connect = sqlite3.connect

    def connect(path, fails, message):
        made.append(_FlakyConnection(real_connect(path, timeout=30), fails, message))
        return made[-1]

    monkeypatch.setattr(store_module.sqlite3, "connect", lambda path, timeout: connect(path, 2, "database is locked"))
    cache = ResponseCache(tmp_path / "a.sqlite")
    cache.put("k", {"text": "x"})
    assert cache.get("k") == {"text": "x"}
    assert made[0].calls > 2  # two refusals, then the schema
    monkeypatch.setattr(store_module.sqlite3, "connect", lambda path, timeout: connect(path, 1, "disk I/O error"))
    with pytest.raises(ConfigError) as caught:
        ResponseCache(tmp_path / "b.sqlite")
    assert str(caught.value).startswith(f"{tmp_path / 'b.sqlite'}: the response cache is unusable (disk I/O error)")
    assert made[1].calls == 1


@pytest.mark.fast
def test_cache_delete_older_than_removes_exactly_the_older_entries(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    for key, model in (("old-a", "a"), ("old-b", "b"), ("new-a", "a")):
        cache.put(key, {"text": key}, model)
    cache._db.execute("UPDATE responses SET created = 100.0 WHERE key LIKE 'old-%'")
    cache._db.commit()
    assert cache.delete(older_than=time.time() + 3600, model="b") == 1
    assert cache.delete(older_than=1000.0) == 1
    assert (cache.get("old-a"), cache.get("old-b"), cache.get("new-a")) == (None, None, {"text": "new-a"})


@pytest.mark.fast
def test_a_locked_run_directory_is_refused_at_once(tmp_path, monkeypatch):
    timeouts = []
    acquire = filelock.FileLock.acquire

    def spy(self, timeout=None, *args, **kwargs):
        timeouts.append(timeout)
        return acquire(self, timeout, *args, **kwargs)

    monkeypatch.setattr(filelock.FileLock, "acquire", spy)
    with RunDir(tmp_path / "run"):
        with pytest.raises(ConfigError) as caught:
            with RunDir(tmp_path / "run"):
                pass
    assert str(caught.value) == f"{tmp_path / 'run'}: another peerbench run is writing to this run directory"
    assert timeouts == [0, 0]


@pytest.mark.fast
def test_a_run_stopped_early_quotes_the_first_error(tmp_path):
    def failure(n):
        return SimpleNamespace(error=f"error {n}", to_json=lambda: {"id": str(n), "error": f"error {n}"})

    with RunDir(tmp_path / "run") as run_dir:
        recorder = SampleRecorder(run_dir, None, papers=3, early_stop=3)
        recorder.record(failure(1))
        recorder.record(failure(2))
        with pytest.raises(BackendError) as caught:
            recorder.record(failure(3))
    assert str(caught.value) == "every request failed so far (3); first error: error 1"


LINE = {"id": "1", "venue": "v", "decision": "ACCEPT", "gold": {"decision": True}, "p_accept": None, "error": None,
        "completion": "x", "truncation": {}}


@pytest.mark.fast
@pytest.mark.parametrize("field, value, problem", [
    ("p_accept", -0.01, "field 'p_accept': Input should be greater than or equal to 0"),
    ("p_accept", 1.01, "field 'p_accept': Input should be less than or equal to 1"),
    ("p_accept", float("nan"), "field 'p_accept': Input should be a finite number"),
    ("p_accept", float("inf"), "field 'p_accept': Input should be a finite number"),
    ("truncation", {"cut_chars": -1}, "field 'truncation.cut_chars': Input should be greater than or equal to 0"),
    ("truncation", {"method": 3}, "field 'truncation.method': Input should be a valid string"),
    ("truncation", {"cost_usd": float("nan")}, "field 'truncation.cost_usd': Input should be a finite number"),
    ("truncation", None, "field 'truncation': Input should be a valid dictionary or instance of Counts"),
    ("extra", {"cut_chars": -1}, "field 'extra.cut_chars': Input should be greater than or equal to 0"),
    ("extra", {"cost_usd": float("inf")}, "field 'extra.cost_usd': Input should be a finite number"),
    ("extra", {"thinking_tokens": "a"},
     "field 'extra.thinking_tokens': Input should be a valid integer, unable to parse string as an integer"),
    ("latency_s", float("inf"), "field 'latency_s': Input should be a finite number"),
    ("rating", float("nan"), "field 'rating': Input should be a finite number"),
    ("mean_recommendation", float("-inf"), "field 'mean_recommendation': Input should be a finite number"),
    ("cached", 1, "field 'cached': Input should be a valid boolean"),
    ("gold", {"decision": "yes"}, "field 'gold.decision': Input should be a valid boolean"),
    ("decision", "MAYBE",
     "field 'decision': Input should be 'ACCEPT', 'REJECT', 'AMBIGUOUS', 'UNPARSED' or 'FAILED'"),
    ("id", 1, "field 'id': Input should be a valid string"),
    ("venue", None, "field 'venue': Input should be a valid string"),
    ("error", 3, "field 'error': Input should be a valid string"),
    ("prompt_tokens", 1.5,
     "field 'prompt_tokens': Input should be a valid integer, got a number with a fractional part"),
    ("recommendations", [1, "x"],
     "field 'recommendations.1': Input should be a valid number, unable to parse string as a number"),
])
def test_the_stored_line_schema_refuses_each_impossible_value(field, value, problem):
    with pytest.raises(ConfigError) as caught:
        check_sample({**LINE, field: value}, "samples.jsonl:4")
    assert str(caught.value) == f"samples.jsonl:4: {problem}; fix or remove that line"


@pytest.mark.fast
@pytest.mark.parametrize("field", ["id", "venue", "decision", "gold", "p_accept", "error", "completion", "truncation"])
def test_the_stored_line_schema_requires_each_field_scoring_reads(field):
    with pytest.raises(ConfigError) as caught:
        check_sample({k: v for k, v in LINE.items() if k != field}, "samples.jsonl:4")
    assert str(caught.value) == f"samples.jsonl:4: field {field!r}: Field required; fix or remove that line"


@pytest.mark.fast
@pytest.mark.parametrize("field, value", [
    ("p_accept", 0.0), ("p_accept", 1.0), ("truncation", {"cut_chars": 0, "method": "chars", "char_budget": 9}),
    ("extra", {"cut_chars": 0, "cost_usd": 0.5, "thinking_tokens": 3}), ("latency_s", 0.0), ("cached", True),
    ("gold", {"decision": None}), ("completion", None), ("thinking", "kept as is"), ("rating", -2.0),
])
def test_the_stored_line_schema_accepts_the_bounds_and_returns_the_line_untouched(field, value):
    line = {**LINE, field: value}
    assert check_sample(line, "samples.jsonl:4") is line
    assert line == {**LINE, field: value}


# --- prompts, comparison, scoring --------------------------------------------------------------------


@pytest.mark.fast
def test_a_context_without_room_for_the_paper_says_how_many_tokens_are_left():
    paper = Paper("1", "v", "T", "A", [Section("Body", "word " * 2000)])
    with pytest.raises(ConfigError) as caught:
        render(paper, PromptTemplate.resolve(), max_model_len=300, max_tokens=200)
    assert str(caught.value).endswith("more than the 68 left after max_tokens 200")


def _write_run(path, policy, decisions):
    path.mkdir()
    config = {"task": "t", "task_fingerprint": "f", "primary_label_rule": "decision", "label_rules": ["decision"],
              "task_definition": {"unparsed": policy}, "backend": "replay", "model": str(path)}
    (path / "config.json").write_text(json.dumps(config))
    lines = [{**LINE, "id": str(i), "decision": d, "gold": {"decision": gold}}
             for i, (d, gold) in enumerate(decisions)]
    (path / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_compare_scores_unparsed_reviews_under_the_tasks_policy(tmp_path):
    decisions = [("ACCEPT", True), ("UNPARSED", False), ("UNPARSED", False), ("REJECT", False)]
    _write_run(tmp_path / "a", "reject", decisions)
    _write_run(tmp_path / "b", "reject", [("ACCEPT", gold) for _, gold in decisions])
    result = compare([tmp_path / "a", tmp_path / "b"], resamples=10, seed=0)
    assert result["runs"][0]["metrics"]["accuracy"]["value"] == 1.0  # under 'wrong' it would be 0.5
    assert result["runs"][1]["metrics"]["accuracy"]["value"] == 0.25


@pytest.mark.fast
@pytest.mark.parametrize("definition, gold, policy, accuracy", [
    ({"task_definition": {"unparsed": "reject"}}, False, "reject", 1.0),  # the task's own policy
    ({}, True, "wrong", 0.0)])  # a config that names none: the default, an unparsed review is wrong
def test_score_run_scores_under_the_tasks_unparsed_policy(definition, gold, policy, accuracy):
    rows = [{**LINE, "decision": "UNPARSED", "gold": {"decision": gold}}]
    config = {"label_rules": ["decision"], "task": "t", "backend": "b", "model": "m", **definition}
    metrics = [m for m in BUILTIN_METRICS if m.name == "accuracy"]
    scored = score_run(rows, config, metrics, resamples=0, seed=0)
    assert scored["unparsed_policy"] == policy
    assert scored["label_rules"]["decision"]["overall"]["metrics"]["accuracy"]["value"] == accuracy


@pytest.mark.fast
def test_excluded_and_unknown_gold_papers_are_counted_apart():
    rows = [{**LINE, "id": "1", "decision": "UNPARSED"}, {**LINE, "id": "2", "decision": "AMBIGUOUS"},
            {**LINE, "id": "3", "gold": {"decision": None}}, {**LINE, "id": "4"}, {**LINE, "id": "5"}]
    accuracy = [m for m in BUILTIN_METRICS if m.name == "accuracy"]
    entry = score_samples(rows, label_rules=["decision"], metrics=accuracy, unparsed_policy="exclude",
                          resamples=0, seed=0)["label_rules"]["decision"]
    assert (entry["n_unknown_gold"], entry["n_excluded_unparsed"]) == (1, 2)
