import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import cli_env, run_cli
from peerread_fixtures import manifest

import peerbench
from peerbench.errors import BackendError, ConfigError
from peerbench.pipeline.store import RunDir


def test_python_api_runs_tfidf_on_the_train_split(peerread_root, tmp_path):
    result = peerbench.run(task="peerread95", backend="baseline", model="tfidf-lr", data_dir=peerread_root,
                           out=tmp_path / "run", resamples=200)
    assert len(result.samples) == 95 and result.run_dir == tmp_path / "run"
    for name in ("config.json", "samples.jsonl", "metrics.json"):
        assert (result.run_dir / name).is_file()
    rule = result.metrics["label_rules"]["recommendation>=4"]
    assert rule["overall"]["n"] == 95 and set(rule["per_venue"]) == {"acl_2017", "conll_2016", "iclr_2017"}
    assert rule["baselines"]["always-accept"]["f1"] == pytest.approx(160 / 175)
    assert "auroc" in rule["overall"]["metrics"]  # tfidf-lr gives a P(accept)
    assert result.metrics["label_rules"]["decision"]["overall"]["n"] == 78
    sample = result.samples[0]
    assert {"id", "gold", "prompt_hash", "truncation", "completion", "decision", "p_accept", "latency_s"} <= set(sample)
    assert result.metrics["truncation"]["papers_truncated"] == 1  # the fixture's over-long body


def published_replay(path):
    """Per-paper decisions that give the published confusion counts TP 74, FP 12, FN 6, TN 3."""
    facts = manifest()
    pos = [f for f in facts if f["label"]]
    neg = [f for f in facts if not f["label"]]
    rows = []
    for i, fact in enumerate(pos):
        rows.append((fact, i >= 6))   # 6 false negatives
    for i, fact in enumerate(neg):
        rows.append((fact, i >= 3))   # 3 true negatives, 12 false positives
    with path.open("w") as handle:
        for fact, accept in rows:
            verdict = "ACCEPTANCE" if accept else "REJECTION"
            handle.write(json.dumps({"id": f"{fact['venue']}/{fact['split']}/{fact['id']}",
                                     "completion": f"Review.\n**I recommend this paper for {verdict}.**"}) + "\n")
    return path


def test_replay_reproduces_the_published_peerread95_numbers(peerread_root, tmp_path):
    replay = published_replay(tmp_path / "published.jsonl")
    result = peerbench.run(task="peerread95", backend="replay", model=str(replay), data_dir=peerread_root,
                           out=tmp_path / "run", resamples=100)
    overall = result.metrics["label_rules"]["recommendation>=4"]["overall"]
    assert overall["confusion"] == {"tp": 74, "fp": 12, "fn": 6, "tn": 3, "unparsed": 0, "ambiguous": 0}
    assert result.metrics["complete"] and result.metrics["n_answered"] == result.metrics["n_papers"] == 95
    values = {k: round(v["value"], 3) for k, v in overall["metrics"].items()}
    assert (values["f1"], values["accuracy"], values["precision"], values["recall"], values["pred_accept_rate"]) == (
        0.892, 0.811, 0.860, 0.925, 0.905)


def test_every_request_failing_stops_early_with_one_line(peerread_root, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(BackendError, match="every request failed so far.*no row with id"):
        peerbench.run(task="peerread95", backend="replay", model=str(empty), data_dir=peerread_root,
                      out=tmp_path / "run")
    # the failures are stored, not lost
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) >= 8


def test_unparsed_reviews_are_counted_not_rejected(peerread_root, tmp_path, echo_plugin):
    result = peerbench.run(task="peerread-conll2016", backend="echo", data_dir=peerread_root, out=tmp_path / "r",
                           backend_options={"decision": "none"}, resamples=50)
    overall = result.metrics["label_rules"]["recommendation>=4"]["overall"]
    assert overall["confusion"]["unparsed"] == 3 and overall["metrics"]["parse_failure_rate"]["value"] == 1.0
    assert overall["metrics"]["accuracy"]["value"] == 0.0  # policy 'wrong'
    assert result.metrics["decisions"]["UNPARSED"] == 3


def test_response_cache_serves_a_second_run_dir(peerread_root, tmp_path, echo_plugin):
    first = peerbench.run(task="peerread-acl2017", backend="echo", data_dir=peerread_root, out=tmp_path / "a",
                          resamples=10)
    assert not any(s["cached"] for s in first.samples)
    second = peerbench.run(task="peerread-acl2017", backend="echo", data_dir=peerread_root, out=tmp_path / "b",
                           resamples=10)
    assert all(s["cached"] for s in second.samples)
    assert [s["completion"] for s in first.samples] == [s["completion"] for s in second.samples]
    # token-aware truncation through the backend's declared counter
    assert {s["truncation"]["method"] for s in first.samples} == {"tokens"}


def test_model_preset_from_a_plugin(peerread_root, tmp_path, echo_plugin):
    result = peerbench.run(task="peerread-conll2016", backend=None, model="echo-reject", data_dir=peerread_root,
                           out=tmp_path / "p", resamples=10)
    assert result.config["backend"] == "echo" and result.config["options"]["decision"] == "reject"
    assert result.metrics["decisions"]["REJECT"] == 3
    with pytest.raises(ConfigError, match=r"this preset runs on backend\(s\) echo, not 'baseline'"):
        peerbench.run(task="peerread-conll2016", backend="baseline", model="echo-reject", data_dir=peerread_root)


def test_user_presets_file_registers_models_for_several_backends(peerread_root, tmp_path, isolated_home):
    from peerbench import registry
    from peerbench.presets import presets_path, save_preset

    path = save_preset("my-student", backend="baseline", model="always-reject", options={"seed": 3},
                       backends={"replay": {}}, description="a test preset")
    assert path == presets_path() == isolated_home / "models.yaml"
    registry.reset()
    result = peerbench.run(task="peerread-conll2016", model="my-student", data_dir=peerread_root,
                           out=tmp_path / "p", resamples=10)
    assert result.config["backend"] == "baseline" and result.config["options"]["seed"] == 3
    with pytest.raises(ConfigError, match=r"runs on backend\(s\) baseline, replay, not 'hf'"):
        peerbench.run(task="peerread-conll2016", backend="hf", model="my-student", data_dir=peerread_root)
    listed = run_cli(["models"], cli_env(isolated_home))
    assert "my-student" in listed.stdout and "always-reject" in listed.stdout and "replay" in listed.stdout
    path.write_text("my-student: [1, 2]\n")
    registry.reset()
    with pytest.raises(ConfigError, match="models.yaml: expected a mapping of preset name -> settings"):
        peerbench.list_backends()
    registry.reset()


def test_a_run_dir_with_other_settings_is_refused(peerread_root, tmp_path):
    peerbench.run(task="peerread-conll2016", model="always-accept", data_dir=peerread_root, out=tmp_path / "r",
                  resamples=10)
    with pytest.raises(ConfigError, match="holds a run with different settings"):
        peerbench.run(task="peerread-conll2016", model="always-reject", data_dir=peerread_root, out=tmp_path / "r")


def test_concurrent_runs_into_one_dir_are_refused(peerread_root, tmp_path):
    with RunDir(tmp_path / "r"):
        with pytest.raises(ConfigError, match="another peerbench run is writing"):
            peerbench.run(task="peerread-conll2016", data_dir=peerread_root, out=tmp_path / "r",
                          model="always-accept")


def test_torn_last_line_is_repaired_on_resume(peerread_root, tmp_path):
    out = tmp_path / "r"
    peerbench.run(task="peerread-acl2017", model="always-accept", data_dir=peerread_root, out=out, resamples=10)
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:5]) + lines[5][:40])  # crash mid-write
    result = peerbench.run(task="peerread-acl2017", model="always-accept", data_dir=peerread_root, out=out,
                           resamples=10)
    ids = [json.loads(line)["id"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(ids) == 14 == len(set(ids)) and len(result.samples) == 14


def test_sigkill_mid_run_then_rerun_completes_each_paper_once(peerread_root, tmp_path, echo_site, isolated_home):
    out = tmp_path / "run"
    env = cli_env(isolated_home, PYTHONPATH=str(echo_site))
    args = [sys.executable, "-m", "peerbench.cli", "run", "--backend", "echo", "-o", "delay=0.05", "--concurrency",
            "2", "--data-dir", str(peerread_root), "--out", str(out), "-q", "--resamples", "10"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = out / "samples.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not samples.exists() or len(samples.read_text().splitlines()) < 10):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(samples.read_text().splitlines())
    assert 10 <= done_before < 95
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert len(ids) == 95 == len(set(ids))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 95


def test_no_secret_reaches_the_run_dir_or_cache(peerread_root, tmp_path, isolated_home, echo_site):
    secret = "sk-test-SECRET-4242"
    env = cli_env(isolated_home, PYTHONPATH=str(echo_site), OPENAI_API_KEY=secret, GEMINI_API_KEY=secret,
                  HF_TOKEN=secret)
    result = subprocess.run([sys.executable, "-m", "peerbench.cli", "run", "--backend", "echo", "--task",
                             "peerread-acl2017", "--data-dir", str(peerread_root), "--out", str(tmp_path / "r"),
                             "-q", "--resamples", "10"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for folder in (tmp_path / "r", isolated_home):
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.stdout + result.stderr


def test_a_corrupt_line_inside_samples_is_an_error_not_a_truncation(peerread_root, tmp_path):
    out = tmp_path / "r"
    peerbench.run(task="peerread-conll2016", model="always-accept", data_dir=peerread_root, out=out, resamples=10)
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text(lines[0] + "{garbage\n" + "".join(lines[1:]))
    with pytest.raises(ConfigError, match="samples.jsonl:2: not valid JSON"):
        peerbench.run(task="peerread-conll2016", model="always-accept", data_dir=peerread_root, out=out)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4  # nothing thrown away


def test_ambiguous_and_unparsed_reviews_are_counted_apart_and_never_predicted_accepts(peerread_root, tmp_path):
    facts = [f for f in manifest() if f["venue"] == "acl_2017"]
    echoed = ("## Final Recommendation\nEnd with EXACTLY ONE line:\n    I recommend this paper for ACCEPTANCE.\n"
              "    I recommend this paper for REJECTION.\n")
    kinds = ["ambiguous"] * 3 + ["unparsed"] * 2 + ["accept"] * 5 + ["reject"] * 4
    texts = {"ambiguous": echoed, "unparsed": "I recommend this paper for acceptance.",  # lower case: not the card's
             "accept": "Fine.\nI recommend this paper for ACCEPTANCE.", "reject": "I recommend this paper for REJECTION."}
    replay = tmp_path / "mixed.jsonl"
    replay.write_text("".join(json.dumps({"id": f"{f['venue']}/{f['split']}/{f['id']}", "completion": texts[k]}) + "\n"
                              for f, k in zip(facts, kinds)))
    result = peerbench.run(task="peerread-acl2017", backend="replay", model=str(replay), data_dir=peerread_root,
                           out=tmp_path / "run", resamples=50)
    overall = result.metrics["label_rules"]["recommendation>=4"]["overall"]
    assert overall["n"] == 14 and (overall["confusion"]["ambiguous"], overall["confusion"]["unparsed"]) == (3, 2)
    assert result.metrics["decisions"] == {"ACCEPT": 5, "REJECT": 4, "AMBIGUOUS": 3, "UNPARSED": 2, "FAILED": 0}
    assert overall["metrics"]["pred_accept_rate"]["value"] == pytest.approx(5 / 14)
    assert overall["metrics"]["parse_failure_rate"]["value"] == pytest.approx(5 / 14)
    low, high = overall["metrics"]["pred_accept_rate"]["ci"]
    assert low <= 5 / 14 <= high and high < 0.8
    # policy 'wrong': a review without a decision counts as the opposite of gold, so on a gold-reject paper it is
    # a false positive, though it never counts as a predicted accept
    gold = {f"{f['venue']}/{f['split']}/{f['id']}": f["label"] for f in facts}
    said = [s for s in result.samples if s["decision"] == "ACCEPT"]
    expected_fp = sum(not gold[s["id"]] for s in said) + sum(
        gold[s["id"]] is False for s in result.samples if s["decision"] in ("AMBIGUOUS", "UNPARSED"))
    assert overall["confusion"]["fp"] == expected_fp
    assert result.config["choices"]["parser"] == "reference" and result.config["choices"]["unparsed"] == "wrong"


def test_the_score_rule_never_falls_back_to_the_decision_and_a_paper_without_gold_is_refused():
    from peerbench.errors import DataError
    from peerbench.labels import get_label_rule
    from peerbench.records import Paper
    from peerbench.pipeline.execute import check_gold
    from peerbench.task import load_task

    unscored = Paper("9", "iclr_2017", "T", "A", [], split="dev", accepted=True,
                     meta={"reviews_path": "iclr_2017/dev/reviews/9.json"})
    assert get_label_rule("recommendation>=4").label(unscored) is None
    assert get_label_rule("decision").label(unscored) is True
    with pytest.raises(DataError, match=r"^iclr_2017/dev/reviews/9.json: paper iclr_2017/dev/9 has no gold label "
                                        r"under recommendation>=4"):
        check_gold(load_task("peerread95"), [unscored])
    check_gold(load_task("peerread-iclr2017"), [unscored])  # its primary rule is the decision
