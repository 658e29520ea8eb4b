"""peerbench <-> lm-evaluation-harness: export a task, run the real `lm_eval` on it against a chat
server on 127.0.0.1, import its samples, and check that both tools score the same completions
the same way (and saw the same prompts)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, cli_env, run_cli
from hypothesis import given
from hypothesis import strategies as st
from openai_server import OpenAIChatServer

import peerbench
from peerbench.interop import lm_eval_utils
from peerbench.parsing import parse_decision

LM_EVAL = Path(os.environ.get("PEERBENCH_LM_EVAL") or REPO / ".venv-lmeval" / "bin" / "lm_eval")
needs_lm_eval = pytest.mark.skipif(not LM_EVAL.exists(), reason=(
    f"lm_eval not found at {LM_EVAL}: .ci/run builds .venv-lmeval from requirements/lm-eval.txt, "
    "or set PEERBENCH_LM_EVAL"))
SCORED = ("f1", "accuracy", "balanced_accuracy", "pred_accept_rate", "parse_failure_rate")


@given(st.lists(st.sampled_from(["I recommend this paper for ", "ACCEPTANCE", "REJECTION", "ACCEPT", "REJECT", ".",
                                 "**", "_", "`", " ", "\n", "\n\n", "## Final Recommendation\n",
                                 "i RECOMMEND this PAPER for ", "acceptance", "x"]), max_size=14),
       st.sampled_from(["reference", "lenient"]))
def test_the_exported_parser_is_peerbench_s_parser(pieces, parser):
    text = "".join(pieces)
    assert lm_eval_utils.parse_decision(text, parser) == parse_decision(text, parser).value


def test_the_exported_reference_regex_is_the_cards():
    from peerbench.reference import card

    assert lm_eval_utils.REFERENCE_RE.pattern == card()["decision_regex"]


@needs_lm_eval
def test_round_trip_through_the_real_lm_eval(peerread_root, tmp_path, isolated_home):
    env = cli_env(isolated_home)
    exported = run_cli(["export", "lm-eval", "--task", "peerread95", "--out", str(tmp_path / "task"),
                        "--data-dir", str(peerread_root)], env)
    assert exported.returncode == 0, exported.stderr
    with OpenAIChatServer() as server:
        done = subprocess.run([str(LM_EVAL), "--include_path", str(tmp_path / "task"), "--tasks", "peerread95",
                               "--model", "local-chat-completions", "--model_args",
                               f"model={server.model},base_url={server.base_url}/chat/completions,num_concurrent=8,"
                               "max_retries=2,tokenized_requests=False,tokenizer_backend=None",
                               "--apply_chat_template", "--log_samples", "--output_path", str(tmp_path / "lm-out")],
                              capture_output=True, text=True, timeout=600,
                              env={**env, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
        lm_eval_bodies = {b["messages"][1]["content"]: b for b in server.bodies}
        ours = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "ours",
                             backend_options={"base_url": server.base_url, "tokenizer": "chars"}, store_prompts=True,
                             resamples=50)
    # Same prompts, message for message, and the task's generation settings.
    assert len(lm_eval_bodies) == 95
    for sample in ours.samples:
        body = lm_eval_bodies[sample["messages"][1]["content"]]
        assert body["messages"] == sample["messages"]
        assert (body["max_tokens"], body["temperature"], body["top_p"]) == (1400, 0.2, 0.9)

    imported = run_cli(["import", "lm-eval", str(tmp_path / "lm-out"), "--out", str(tmp_path / "imported"),
                        "--resamples", "50"], env)
    assert imported.returncode == 0, imported.stderr
    results_file = next((tmp_path / "lm-out").rglob("results_*.json"))
    lm_values = json.loads(results_file.read_text())["results"]["peerread95"]
    metrics = json.loads((tmp_path / "imported" / "metrics.json").read_text())
    overall = metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]
    for name in SCORED:
        assert lm_values[f"{name},none"] == pytest.approx(overall[name]["value"], abs=1e-12), name
        assert overall[name]["value"] == pytest.approx(ours.metrics["label_rules"]["recommendation>=4"]["overall"][
            "metrics"][name]["value"], abs=1e-12), name
    config = json.loads((tmp_path / "imported" / "config.json").read_text())
    assert config["backend"] == "lm-eval" and config["model"] == "local-chat-completions"
    compared = peerbench.compare([tmp_path / "ours", tmp_path / "imported"], resamples=50)
    assert compared["pairs"][0]["agreement"] == 1.0 and compared["n_papers"] == 95
    assert run_cli(["report", str(tmp_path / "imported")], env).returncode == 0
