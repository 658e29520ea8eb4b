"""The hf backend: transformers generate on CPU with a tiny model built here (no hub)."""

import json
import math

import pytest
from conftest import cli_env, run_cli

import peerbench
from peerbench.backends.hf import HFBackend, TopLogprobRecorder
from peerbench.errors import BackendError


def test_hf_run_end_to_end_to_metrics(tiny_model_dir, peerread_root, tmp_path, isolated_home):
    out = tmp_path / "run"
    done = run_cli(["run", "--backend", "hf", "--model", str(tiny_model_dir), "--data-dir", str(peerread_root),
                    "--limit", "5", "--max-tokens", "8", "--max-model-len", "2048", "-o", "batch_size=2", "-q",
                    "--resamples", "20", "--out", str(out)], cli_env(isolated_home, HF_HUB_OFFLINE="1"), timeout=600)
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 and all(s["error"] is None for s in samples)
    assert {s["truncation"]["method"] for s in samples} == {"transformers"}
    assert all(s["prompt_tokens"] <= 2048 - 8 and 0 < s["completion_tokens"] <= 8 for s in samples)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "hf" and metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 5
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["batch_size"] == 2 and config["model"] == str(tiny_model_dir)


def test_greedy_generation_is_reproducible_and_batch_independent(tiny_model_dir, peerread_root, tmp_path):
    kwargs = dict(data_dir=peerread_root, limit=3, resamples=10, generation={"max_tokens": 6, "temperature": 0.0},
                  max_model_len=2048, use_cache=False)
    one = peerbench.run("peerread95", "hf", str(tiny_model_dir), out=tmp_path / "a",
                        backend_options={"batch_size": 1}, **kwargs)
    three = peerbench.run("peerread95", "hf", str(tiny_model_dir), out=tmp_path / "b",
                          backend_options={"batch_size": 3}, **kwargs)
    assert [s["completion"] for s in one.samples] == [s["completion"] for s in three.samples]


def test_p_accept_is_read_at_the_decision_token_with_the_real_tokenizer(tiny_model_dir):
    """The recorder's per-step top-k, mapped back through the model's own tokenizer."""
    import torch
    from transformers import AutoTokenizer

    backend = HFBackend(str(tiny_model_dir))
    backend._tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok = backend._tokenizer
    ids = tok("## Final Recommendation\nI recommend this paper for ACCEPTANCE.", add_special_tokens=False)["input_ids"]
    accept_ids = tok(" ACCEPTANCE", add_special_tokens=False)["input_ids"]
    reject_ids = tok(" REJECTION", add_special_tokens=False)["input_ids"]
    index = next(i for i in range(len(ids)) if ids[i:i + len(accept_ids)] == accept_ids)
    recorder = TopLogprobRecorder(torch, 3)
    for step in range(len(ids)):
        values = torch.tensor([[math.log(0.6), math.log(0.3), math.log(0.05)]])
        top = torch.tensor([[accept_ids[0], reject_ids[0], tok.eos_token_id]]) if step == index else \
            torch.tensor([[ids[step], tok.eos_token_id, tok.pad_token_id]])
        recorder.top.append((values, top))
        recorder.chosen.append(torch.tensor([math.log(0.6)]))
    p_accept, mass = backend._decision_probability(recorder, 0, ids)
    assert p_accept == pytest.approx(0.6 / 0.9) and mass == pytest.approx(0.9)


def test_a_gpu_that_is_not_there_is_one_line(tiny_model_dir):
    backend = HFBackend(str(tiny_model_dir), device="cuda")
    import asyncio

    with pytest.raises(BackendError, match=r"^--backend-arg device=cuda: no CUDA device is available"):
        asyncio.run(backend.setup())


def test_gpu_benchmark_code_path_runs_tiny_on_cpu(tmp_path):
    """benchmarks/gpu_peerread95.py --tiny: the GPU benchmark's hf path, so the script cannot rot."""
    import subprocess
    import sys

    from conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_peerread95.py"), "--tiny", "--engine", "hf",
                           "--out", str(tmp_path / "result.json")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())[0]
    assert result["engine"] == "hf" and result["generated_tokens"] == 8 * 16 and result["papers_per_s"] > 0
