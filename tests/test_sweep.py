"""`peerbench sweep`: local executor, a real local Ray cluster with a worker killed mid-run, and the
backends' declared facts it schedules by."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer

import peerbench
from peerbench.errors import ConfigError
from peerbench.pipeline.sweep import sweep


def write_spec(path, data_dir, server=None, **extra):
    models = [{"name": "accept", "backend": "baseline", "model": "always-accept"},
              {"name": "tfidf", "backend": "baseline", "model": "tfidf-lr"}]
    if server is not None:
        models[1] = {"name": "scripted", "backend": "openai", "model": server.model,
                     "options": {"base_url": server.base_url, "retry_backoff": 0.01}}
    path.write_text(yaml.safe_dump({"name": "t", "models": models, "tasks": ["peerread95", "peerread-iclr2017"],
                                    "data_dir": str(data_dir), **extra}))
    return path


def samples_once(run_dir, expected):
    ids = [json.loads(line)["id"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return len(ids) == len(set(ids)) == expected


def test_local_sweep_skips_finished_runs_and_compares(peerread_root, tmp_path, isolated_home):
    spec = write_spec(tmp_path / "sweep.yaml", peerread_root)
    first = sweep(spec, out=tmp_path / "s", progress=False)
    assert [r["name"] for r in first["runs"]] == ["peerread95__accept", "peerread-iclr2017__accept",
                                                 "peerread95__tfidf", "peerread-iclr2017__tfidf"]
    assert all(not r.get("skipped") for r in first["runs"]) and first["runs"][0]["metrics"]["f1"] == pytest.approx(
        160 / 175)
    again = run_cli(["sweep", str(spec), "--out", str(tmp_path / "s"), "-q"], cli_env(isolated_home))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" skipped ") == 4 and "McNemar exact" in again.stdout
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["executor"] == "local"
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: []\ntasks: [peerread95]\n")
    with pytest.raises(ConfigError, match="field 'models': List should have at least 1 item"):
        sweep(bad, out=tmp_path / "b", progress=False)


def test_ray_sweep_survives_a_killed_worker(peerread_root, tmp_path, isolated_home):
    ray = pytest.importorskip("ray", reason="ray is part of the test install; without it this test cannot run")
    with OpenAIChatServer(latency=0.4) as server:
        spec = write_spec(tmp_path / "sweep.yaml", peerread_root, server)
        outcome = {}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
        try:
            thread = threading.Thread(target=lambda: outcome.update(sweep(spec, out=tmp_path / "s", executor="ray",
                                                                          progress=False)))
            thread.start()
            victim = tmp_path / "s" / "peerread95__scripted"
            deadline = time.monotonic() + 240
            while not ((victim / "samples.jsonl").is_file()
                       and len((victim / "samples.jsonl").read_text().splitlines()) >= 16):
                assert time.monotonic() < deadline and thread.is_alive(), "the run never got going"
                time.sleep(0.05)
            killed_pid = int((victim / "worker.pid").read_text())
            os.kill(killed_pid, signal.SIGKILL)
            thread.join(timeout=300)
        finally:
            ray.shutdown()
    assert not thread.is_alive() and outcome, "the sweep did not finish"
    runs = {r["name"]: r for r in outcome["runs"]}
    assert all(not r.get("error") for r in runs.values()), runs
    assert int((victim / "worker.pid").read_text()) != killed_pid  # a new worker resumed the run
    expected = {"peerread95": 95, "peerread-iclr2017": 78}
    for name, run in runs.items():
        assert samples_once(tmp_path / "s" / name, expected[run["task"]]), name
    assert runs["peerread95__scripted"]["n"] == 95


@pytest.mark.parametrize("backend, model, options, in_process, gpus", [
    ("vllm", "m", {}, True, 1.0),
    ("vllm", "m", {"tensor_parallel_size": 2, "pipeline_parallel_size": 2, "data_parallel_size": 3}, True, 12.0),
    ("hf", "m", {}, True, 1.0),  # device=auto takes CUDA where there is one
    ("hf", "m", {"device": "cuda:1"}, True, 1.0),
    ("hf", "m", {"device": "cpu"}, True, 0.0),
    ("openai", "m", {"base_url": "http://h:1/v1"}, False, 0.0),
    ("gemini", "m", {}, False, 0.0),
    ("baseline", "always-accept", {}, False, 0.0),
])
def test_built_in_backends_declare_the_facts_a_sweep_schedules_by(backend, model, options, in_process, gpus):
    """sweep names no backend: local parallelism and Ray's GPUs come from these declarations."""
    from peerbench.pipeline.sweep import with_facts

    made = peerbench.get_backend(backend, model, **options)
    assert (made.in_process, made.gpus()) == (in_process, gpus)
    entry = with_facts({"gpus": None}, made)
    assert (entry["in_process"], entry["num_gpus"]) == (in_process, gpus)
    assert with_facts({"gpus": 0.5}, made)["num_gpus"] == 0.5  # a model entry's gpus: overrides


def test_sweep_names_no_backend():
    from peerbench.pipeline import sweep as module

    source = Path(module.__file__).read_text()
    for name in peerbench.list_backends():
        assert f'"{name}"' not in source and f"'{name}'" not in source, name


def test_a_bad_entry_is_refused_before_any_run_naming_the_file_and_the_run(peerread_root, tmp_path, isolated_home):
    spec = write_spec(tmp_path / "sweep.yaml", peerread_root)
    data = yaml.safe_load(spec.read_text())
    data["models"].append({"name": "typo", "backend": "baseline", "model": "always-accept", "options": {"bogus": 1}})
    spec.write_text(yaml.safe_dump(data))
    done = run_cli(["sweep", str(spec), "--out", str(tmp_path / "s"), "-q"], cli_env(isolated_home))
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"Error: {spec}: run peerread95__typo (backend baseline, task peerread95): bogus: Extra inputs are not "
        "permitted (backend 'baseline' takes: max_features, C, seed)"]
    assert not (tmp_path / "s" / "peerread95__accept").exists()  # nothing started


def test_a_sweep_model_may_name_a_protocol(peerread_root, tmp_path, isolated_home):
    spec = write_spec(tmp_path / "sweep.yaml", peerread_root)
    data = yaml.safe_load(spec.read_text())
    data["models"] = [{"name": "sc", "backend": "baseline", "model": "always-accept", "protocol": "self-consistency",
                       "protocol_options": {"samples": 2}}]
    data["tasks"] = ["peerread-conll2016"]
    spec.write_text(yaml.safe_dump(data))
    done = sweep(spec, out=tmp_path / "s", progress=False)
    config = json.loads((tmp_path / "s" / "peerread-conll2016__sc" / "config.json").read_text())
    assert config["samples_per_paper"] == 2 and done["runs"][0]["metrics"]["f1"] is not None
    data["models"][0].update(protocol="aiscientist", protocol_options={})
    spec.write_text(yaml.safe_dump(data))
    refused = run_cli(["sweep", str(spec), "--out", str(tmp_path / "t"), "-q"], cli_env(isolated_home))
    assert refused.returncode == 2 and "--protocol aiscientist: task 'peerread-conll2016' has prompt" in refused.stderr
