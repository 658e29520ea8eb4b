"""Hugging Face datasets both ways: `peerbench export hf` and the `hf` dataset plugin, on datasets
built here (Dataset.from_dict / save_to_disk; nothing is downloaded)."""

import pytest
import yaml
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer
from peerread_fixtures import manifest

import peerbench
from peerbench.errors import ConfigError, DataError

datasets = pytest.importorskip("datasets", reason="datasets is part of the test install; without it nothing here runs")


@pytest.fixture
def exported(peerread_root, tmp_path, isolated_home):
    """peerread95 exported through the real command, as a user would."""
    out = tmp_path / "peerread95-hf"
    done = run_cli(["export", "hf", "--task", "peerread95", "--out", str(out), "--data-dir", str(peerread_root)],
                   cli_env(isolated_home))
    assert done.returncode == 0, done.stderr
    return out, done


def test_export_writes_a_dataset_dict_with_the_license_warning(exported):
    out, done = exported
    loaded = datasets.load_from_disk(str(out))
    assert {name: loaded[name].num_rows for name in loaded} == {"test": 95, "train": 26}
    test = loaded["test"]
    facts = {f"{f['venue']}/{f['split']}/{f['id']}": f for f in manifest()}
    assert sorted(test["key"]) == sorted(facts)
    gold = test["gold"]
    assert sum(g["recommendation>=4"] for g in gold) == 80  # the published 80/95
    assert [g["decision"] for g in gold] == [facts[k]["accepted"] for k in test["key"]]
    assert sum(g["decision"] is True for g in gold) == 33 and sum(g["decision"] is None for g in gold) == 17
    assert all(p.startswith("Title: ") or "Title: " in p for p in test["user_prompt"])
    assert "LEAKMARKER" not in "".join(test["user_prompt"])  # no review or decision text in a prompt
    assert test.info.license == "other"
    warning = [line for line in done.stderr.splitlines() if line.startswith("LICENSE:")]
    assert len(warning) == 1 and "PeerRead" in warning[0] and "ships no license that allows redistribution" in warning[0]
    card = (out / "README.md").read_text()
    assert f"**{warning[0]}**" in card and "license: other" in card and "push_to_hub('YOU/peerread95', private=True)" in card
    assert warning[0] in test.info.description
    assert "peerbench run --include-path" in done.stdout and "push_to_hub" in done.stdout


def test_round_trip_gives_the_same_metrics(exported, peerread_root, tmp_path):
    """export -> load_from_disk -> a task on the `hf` dataset: the same prompts and the same numbers."""
    out, _ = exported
    task = yaml.safe_load((out / "peerread95-hf.yaml").read_text())
    assert task["dataset"] == {"name": "hf", "path": ".", "split": "test"} and task["train"] == {"split": "train"}
    with OpenAIChatServer() as server:
        options = {"base_url": server.base_url, "retry_backoff": 0.01}
        for backend, model, extra in (("openai", server.model, options), ("baseline", "tfidf-lr", {})):
            original = peerbench.run("peerread95", backend, model, data_dir=peerread_root, backend_options=extra,
                                     out=tmp_path / f"{model}-original", resamples=200)
            again = peerbench.run("peerread95-hf", backend, model, include_paths=[out], backend_options=extra,
                                  out=tmp_path / f"{model}-hf", resamples=200)
            assert again.metrics["label_rules"] == original.metrics["label_rules"], backend
            assert {s["id"]: s["prompt_hash"] for s in again.samples} == \
                {s["id"]: s["prompt_hash"] for s in original.samples}
            assert again.metrics["n_papers"] == 95 and again.config["dataset"]["name"] == "hf"
    assert original.metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]["auroc"]["value"] is not None


def test_export_with_a_run_carries_its_reviews(peerread_root, tmp_path, isolated_home):
    run = peerbench.run("peerread95", "baseline", "tfidf-lr", data_dir=peerread_root, out=tmp_path / "run",
                        resamples=10)
    from peerbench.interop.hf_export import export_hf

    export_hf("peerread95", tmp_path / "out", run_dir=run.run_dir, data_dir=peerread_root)
    test = datasets.load_from_disk(str(tmp_path / "out"))["test"]
    by_id = {s["id"]: s for s in run.samples}
    assert test["decision"] == [by_id[k]["decision"] for k in test["key"]]
    assert test["review"] == [by_id[k]["completion"] for k in test["key"]]
    assert test["p_accept"] == [by_id[k]["p_accept"] for k in test["key"]]
    assert all(test["prompt_matches_run"])  # a baseline renders by characters, as the export does
    other = peerbench.run("peerread-iclr2017", "baseline", "always-accept", data_dir=peerread_root,
                          out=tmp_path / "iclr", resamples=10)
    done = run_cli(["export", "hf", "--task", "peerread95", "--out", str(tmp_path / "x"), "--data-dir",
                    str(peerread_root), "--run", str(other.run_dir)], cli_env(isolated_home))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        (f"Error: --run {other.run_dir}: a run of task 'peerread-iclr2017' as defined there, not of 'peerread95' as "
         "exported now (prompt, labels or data differ)")]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    busy = run_cli(["export", "hf", "--out", str(tmp_path / "busy"), "--data-dir", str(peerread_root)],
                   cli_env(isolated_home))
    assert busy.returncode == 2 and busy.stderr == \
        f"Error: --out {tmp_path / 'busy'}: exists and holds something other than an earlier export\n"


HUB_STYLE = {"paper_title": ["Sparse things", "Dense things", "Odd things", "Late things"],
             "abstract": ["We sparsify.", "We densify.", "We oddify.", "We are late."],
             "full_text": ["Body one.", "Body two.", "Body three.", "Body four."],
             "verdict": ["Accept (Poster)", "Reject", "Accept (Oral)", "Withdrawn"],
             "rating": [6.5, 3.0, 8.0, 5.0]}


def hub_style_task(tmp_path, **dataset):
    folder = tmp_path / "tasks"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(HUB_STYLE)}).save_to_disk(str(folder / "reviews"))
    spec = {"name": "hf", "path": "reviews", "split": "test",
            "fields": {"title": "paper_title", "body": "full_text", "accepted": "verdict", "recommendations": "rating"},
            "accept_values": ["Accept (Poster)", "Accept (Oral)"], "reject_values": ["Reject"], **dataset}
    (folder / "mine.yaml").write_text(yaml.safe_dump({"task": "mine", "version": 1, "dataset": spec,
                                                      "label_rule": "recommendation>=6"}))
    return folder


def test_a_hub_style_dataset_becomes_a_task_by_yaml(tmp_path):
    folder = hub_style_task(tmp_path)
    task = peerbench.load_task("mine", [folder])
    dataset = peerbench.get_dataset("hf")
    papers = dataset.load(dataset.parse_args({**task.dataset.args(), "base_dir": str(folder)}, "t"))
    assert [(p.id, p.venue, p.split, p.title, p.accepted, p.recommendations) for p in papers] == [
        ("0", "reviews", "test", "Sparse things", True, [6.5]), ("1", "reviews", "test", "Dense things", False, [3.0]),
        ("2", "reviews", "test", "Odd things", True, [8.0]), ("3", "reviews", "test", "Late things", None, [5.0])]
    assert [s.text for s in papers[0].sections] == ["Body one."]
    result = peerbench.run("mine", "baseline", "always-accept", include_paths=[folder], out=tmp_path / "run",
                           resamples=10)
    overall = result.metrics["label_rules"]["recommendation>=6"]["overall"]
    assert overall["n"] == 4 and overall["metrics"]["f1"]["value"] == pytest.approx(2 * 2 / (2 * 2 + 2))
    decision = result.metrics["label_rules"]["decision"]
    assert decision["overall"]["n"] == 3 and decision["n_unknown_gold"] == 1  # Withdrawn: neither list


@pytest.mark.parametrize("change, message", [
    ({"fields": {"title": "headline"}}, ("{where} split test: dataset field 'fields.title': no column 'headline' "
                                         "(columns: paper_title, abstract, full_text, verdict, rating)")),
    ({"split": "validation"}, "{where}: no split 'validation' (it has test; dataset field 'split')"),
    ({"path": "../elsewhere"}, "dataset field 'path': ../elsewhere points outside the task's folder {tasks}"),
    ({"path": "./missing"}, "{tasks}/missing: no such folder (dataset field 'path')"),
    ({"reject_values": None}, ("task mine: dataset field 'reject_values': give accept_values and reject_values "
                               "together (a value in neither is unknown)")),
])
def test_bad_selections_are_one_line(tmp_path, change, message):
    folder = hub_style_task(tmp_path, **change)
    (tmp_path / "elsewhere").mkdir()
    where = str(folder / "reviews")
    expected = message.format(where=where, tasks=folder)
    with pytest.raises((ConfigError, DataError)) as caught:
        peerbench.run("mine", "baseline", "always-accept", include_paths=[folder], out=tmp_path / "run")
    assert str(caught.value) == expected


def test_every_bad_row_is_named_and_validate_data_lists_them(tmp_path, isolated_home):
    rows = {"id": ["a", "b", "a", "c"], "title": ["One", "", "Three", "Four"], "abstract": ["x"] * 4,
            "body": ["text", "text", "text", " "], "accepted": [True, False, None, True]}
    folder = tmp_path / "bad"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(folder))
    dataset = peerbench.get_dataset("hf")
    with pytest.raises(DataError) as caught:
        dataset.load(dataset.parse_args({"path": str(folder)}, "t"))
    assert str(caught.value) == (f"{folder} split test row 1: field 'title': String should have at least 1 character "
                                 f"(and 2 more problems; peerbench validate-data {folder})")
    done = run_cli(["validate-data", str(folder)], cli_env(isolated_home))
    assert done.returncode == 2 and done.stdout.splitlines() == [
        f"{folder} split test row 1: field 'title': String should have at least 1 character",
        f"{folder} split test row 2: field 'id': 'a' repeats {folder} split test row 0",
        f"{folder} split test row 3: field 'sections'/'body': the paper has no body text"]
    good = tmp_path / "good"
    datasets.Dataset.from_dict({"title": ["T"], "body": ["text"]}).save_to_disk(str(good))  # one split on its own
    assert run_cli(["validate-data", str(good)], cli_env(isolated_home)).stdout == \
        f"ok: 1 paper(s) checked in {good} (hf)\n"


def test_a_hub_id_that_cannot_be_fetched_is_one_line(tmp_path, isolated_home):
    env = cli_env(isolated_home, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = run_cli(["data", "pull", "hf", "-s", "path=someone/reviews"], env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: someone/reviews: cannot load split(s) test from the Hugging Face Hub (")
    assert lines[0].endswith("; for a local folder, check dataset field 'path'")
