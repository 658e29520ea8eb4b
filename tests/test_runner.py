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
from peerbench.errors import ConfigError
from peerbench.pipeline.store import RunDir

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)


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


def test_a_replay_file_matching_no_paper_is_one_line_and_stores_nothing(peerread_root, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": "nowhere/dev/1", "completion": "x"}\n')
    with pytest.raises(ConfigError, match="empty.jsonl: no row matches a paper of this task"):
        peerbench.run(task="peerread95", backend="replay", model=str(empty), data_dir=peerread_root,
                      out=tmp_path / "run")
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_missing_replay_rows_are_failed_papers_and_reruns_stay_incomplete_with_fresh_metrics(peerread_root, tmp_path):
    facts = manifest()
    path = tmp_path / "part.jsonl"
    path.write_text("".join(json.dumps({"id": f"{f['venue']}/{f['split']}/{f['id']}",
                                        "completion": "I recommend this paper for ACCEPTANCE."}) + "\n"
                            for f in facts[10:]))  # the first 10 papers have no row: no early stop for local answers
    for attempt in range(2):
        result = peerbench.run(task="peerread95", backend="replay", model=str(path), data_dir=peerread_root,
                               out=tmp_path / "run", resamples=20)
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert (metrics["complete"], metrics["n_answered"], metrics["n_failed"]) == (False, 85, 10), attempt
        assert result.metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 85
    lines = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 95 + 10  # the rerun requested exactly the 10 failed papers again


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
def test_an_edited_replay_file_is_a_new_run_never_the_old_answers(peerread_root, tmp_path, isolated_home):
    from conftest import cli_env, run_cli

    path = tmp_path / "gen.jsonl"
    rows = [{"id": f"{f['venue']}/{f['split']}/{f['id']}", "completion": "I recommend this paper for ACCEPTANCE."}
            for f in manifest()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["run", "--task", "peerread95", "--backend", "replay", "--model", str(path), "--data-dir",
            str(peerread_root), "--json", "-q", "--resamples", "10"]
    env = cli_env(isolated_home)
    first = json.loads(run_cli(args, env).stdout)
    path.write_text(path.read_text().replace("ACCEPTANCE", "REJECTION"))
    second = json.loads(run_cli(args, env).stdout)  # the same command, an edited file
    assert first["decisions"]["ACCEPT"] == 95 and second["decisions"]["REJECT"] == 95
    assert len(list((tmp_path / "peerbench-runs").iterdir())) == 2
    first_dir = next(d for d in (tmp_path / "peerbench-runs").iterdir()
                     if json.loads((d / "metrics.json").read_text())["decisions"]["ACCEPT"] == 95)
    refused = run_cli([*args, "--out", str(first_dir)], env)
    assert refused.returncode == 2 and "holds a run with different settings" in refused.stderr


def test_report_scores_the_selection_the_last_run_scored(peerread_root, tmp_path):
    full = peerbench.run(task="peerread95", backend="baseline", model="always-accept", data_dir=peerread_root,
                         out=tmp_path / "r", resamples=10)
    limited = peerbench.run(task="peerread95", backend="baseline", model="always-accept", data_dir=peerread_root,
                            out=tmp_path / "r", resamples=10, limit=10)
    again = peerbench.report(tmp_path / "r", resamples=10)
    assert full.metrics["n_papers"] == 95 and limited.metrics["n_papers"] == again["n_papers"] == 10
    assert again["label_rules"]["recommendation>=4"]["overall"] == limited.metrics["label_rules"][
        "recommendation>=4"]["overall"]


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


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
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


def test_probe_comparison_leaves_out_papers_without_an_answer_in_either_arm():
    from peerbench.pipeline.probes import compare_arm

    def sample(decision, error=None):
        return {"decision": decision, "error": error, "p_accept": None, "completion": decision}

    clean = {"a": sample("REJECT"), "b": sample("REJECT"), "c": sample("ACCEPT"), "d": sample("REJECT"),
             "e": sample("FAILED", "HTTP 500")}
    probed = {"a": sample("ACCEPT"), "b": sample("FAILED", "HTTP 500"), "c": sample("ACCEPT"), "d": sample("REJECT"),
              "e": sample("ACCEPT")}
    arm = compare_arm(clean, probed, resamples=0, seed=0)
    assert (arm["n"], arm["n_unanswered"], arm["clean_rejected"]) == (3, 2, 2)
    assert arm["flip_reject_to_accept"] == 0.5 and arm["decision_changed"] == pytest.approx(1 / 3)
    assert arm["accept_rate_probed"] == pytest.approx(2 / 3)


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
def test_an_edited_abstract_is_refused_on_resume_and_redo_changed_requests_exactly_that_paper(peerread_root, tmp_path,
                                                                                              isolated_home):
    import shutil

    from conftest import cli_env, run_cli
    from openai_server import OpenAIChatServer

    data = tmp_path / "data"
    shutil.copytree(peerread_root / "acl_2017", data / "acl_2017")
    with OpenAIChatServer() as server:
        args = ["run", "--task", "peerread-acl2017", "--backend", "openai", "--model", server.model, "--base-url",
                server.base_url, "--data-dir", str(data), "--out", str(tmp_path / "run"), "--resamples", "10", "-q"]
        env = cli_env(isolated_home, OPENAI_API_KEY="unused")
        assert run_cli(args, env).returncode == 0
        assert server.hits["POST /v1/chat/completions"] == 14
        assert run_cli(args, env).returncode == 0  # nothing changed: nothing requested
        assert server.hits["POST /v1/chat/completions"] == 14
        reviews = data / "acl_2017" / "dev" / "reviews" / "37.json"
        doc = json.loads(reviews.read_text())
        doc["abstract"] += " An edited sentence."
        reviews.write_text(json.dumps(doc))
        refused = run_cli(args, env)
        assert refused.returncode == 2 and server.hits["POST /v1/chat/completions"] == 14
        assert refused.stderr.strip().endswith("1 of the 14 papers were answered for other content than the data "
                                               "holds now (first: acl_2017/dev/37); use another --out, or "
                                               "--redo-changed to request them again")
        assert run_cli(args + ["--redo-changed", "--no-cache"], env).returncode == 0
        assert server.hits["POST /v1/chat/completions"] == 15


def test_a_model_saved_again_at_the_same_path_is_another_run_and_misses_the_cache(tmp_path):
    from peerbench.pipeline.plan import plan_run
    from peerbench.pipeline.prepare import prepare

    model = tmp_path / "student"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "model.safetensors").write_bytes(b"\x10" * 100)
    paper = peerbench.Paper("1", "acl_2017", "T", "A", [peerbench.Section("H", "body")], split="dev")

    def planned():
        plan = plan_run("peerread-acl2017", "hf", str(model))  # the backend loads nothing before setup
        items = prepare(plan.task, plan.backend, [paper], None, {}, 1, weights=plan.config["weights"])
        return plan, items[0].key

    (plan_a, key_a), (plan_b, key_b) = planned(), planned()
    assert plan_a.config["run_identity"] == plan_b.config["run_identity"] and key_a == key_b
    (model / "model.safetensors").write_bytes(b"\x11" * 100)  # retrained: same size, same path
    plan_c, key_c = planned()
    assert plan_c.config["run_identity"] != plan_a.config["run_identity"] and plan_c.run_dir != plan_a.run_dir
    assert key_c != key_a and set(plan_c.config["weights"]) == {str(model)}


def test_cache_commands_list_clear_and_prune_by_model(peerread_root, tmp_path, isolated_home, echo_plugin):
    from click.testing import CliRunner

    from peerbench.cli import build_cli

    peerbench.run(task="peerread-acl2017", backend="echo", data_dir=peerread_root, out=tmp_path / "a", resamples=10)
    peerbench.run(task="peerread-conll2016", backend="echo", model="other", data_dir=peerread_root,
                  out=tmp_path / "b", resamples=10)
    runner = CliRunner()
    info = runner.invoke(build_cli(), ["cache", "info"], env={"COLUMNS": "200"})
    assert info.exit_code == 0, info.output
    assert "17 entries" in info.output and "echo:other" in info.output
    cleared = runner.invoke(build_cli(), ["cache", "clear", "--model", "echo:other"])
    assert cleared.output.strip() == "removed 3 entries of echo:other"
    pruned = runner.invoke(build_cli(), ["cache", "prune", "--older-than", "1"])
    assert pruned.output.strip() == "removed 0 entries older than 1 days"
    assert runner.invoke(build_cli(), ["cache", "clear"]).output.strip() == "removed 14 entries"


@pytest.mark.parametrize("where", ["out", "home"])
def test_a_file_where_a_folder_is_needed_is_one_line_with_exit_2(peerread_root, tmp_path, where):
    from conftest import cli_env, run_cli

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "home" if where == "home" else tmp_path / "home"
    out = blocker / "run" if where == "out" else tmp_path / "run"
    args = ["run", "--task", "peerread-conll2016", "--model", "always-accept", "--data-dir", str(peerread_root),
            "--out", str(out), "-q", "--resamples", "10"] if where == "out" else ["cache", "info"]
    result = run_cli(args, cli_env(home))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"Error: {blocker}") and "a file stands where a folder is needed" in line


def test_secrets_are_masked_in_every_message():
    from peerbench.errors import register_secret, scrub

    register_secret("sk-live-0123456789")
    register_secret("short")  # too short to mask safely: ordinary words would vanish
    text = ("401: key sk-live-0123456789 refused at http://user:pa55@host/v1?api-key=abc&x=1 and "
            "https://h/v1?token=zzz#frag; short words stay")
    assert scrub(text) == ("401: key *** refused at http://***@host/v1?api-key=***&x=1 and "
                           "https://h/v1?token=***#frag; short words stay")


def test_config_records_the_software_behind_the_numbers(peerread_root, tmp_path):
    import re

    result = peerbench.run(task="peerread-conll2016", backend="baseline", model="always-accept",
                           data_dir=peerread_root, out=tmp_path / "r", resamples=10)
    packages = result.config["packages"]
    assert {"torch", "transformers", "vllm", "openai", "google-genai", "numpy"} <= set(packages)
    assert packages["numpy"] and packages["torch"]  # installed here: recorded with their versions
    git = result.config["peerbench_git"]  # the tests run from a checkout
    assert re.fullmatch(r"[0-9a-f]{40}", git["revision"]) and isinstance(git["dirty"], bool)


@pytest.mark.parametrize("generation, message", [({"temperature": -5}, "generation.temperature: Input should be greater "
                                                  "than or equal to 0"),
                                                 ({"top_p": 7}, "generation.top_p: Input should be less than or equal "
                                                  "to 1"),
                                                 ({"max_tokens": 0}, "generation.max_tokens: Input should be greater "
                                                  "than 0")])
def test_generation_overrides_are_validated_like_a_task_file(generation, message):
    from peerbench.pipeline.plan import plan_run

    with pytest.raises(ConfigError, match=f"^{message}"):
        plan_run("peerread-conll2016", "baseline", "always-accept", generation=generation)


def test_a_context_with_no_room_for_the_paper_is_refused_without_a_tokenizer():
    from peerbench.prompts import PromptTemplate, render
    from peerbench.records import Paper, Section

    paper = Paper("1", "v", "T", "A", [Section("H", "body " * 100)])
    with pytest.raises(ConfigError, match=r"^--max-model-len 10: the prompt without any of the paper already takes"):
        render(paper, PromptTemplate.resolve(), max_model_len=10, max_tokens=1)


def test_a_stored_sample_line_reads_back_as_the_same_typed_sample(peerread_root, tmp_path):
    from peerbench.records import Sample

    peerbench.run(task="peerread-conll2016", backend="baseline", model="always-accept", data_dir=peerread_root,
                  out=tmp_path / "r", resamples=10)
    lines = [json.loads(line) for line in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    samples = [Sample.from_json(line) for line in lines]
    assert [s.to_json() for s in samples] == lines and samples[0].decision == "ACCEPT"
    newer = Sample.from_json({**lines[0], "added_later": 1})  # a line from a newer peerbench keeps what it holds
    assert newer.extra["unknown_fields"] == {"added_later": 1}
