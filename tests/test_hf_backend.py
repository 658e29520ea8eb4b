"""The hf backend: transformers generate on CPU with a tiny model built here (no hub)."""

import asyncio
import json
import math

import pytest
from conftest import cli_env, run_cli

import peerbench
from peerbench.backends.hf import HFBackend, TopLogprobRecorder
from peerbench.errors import BackendError


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with larger random weights. At its default scale every prompt gives the same
    run of newlines: outputs that never change cannot show that batching changes nothing, and a
    review of whitespace only is no answer."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("sharp") / "model"
    shutil.copytree(tiny_model_dir, out)
    model = AutoModelForCausalLM.from_pretrained(out)
    torch.manual_seed(1)
    with torch.no_grad():
        for weight in (p for p in model.parameters() if p.dim() == 2):
            weight.normal_(0, 0.3)
    model.save_pretrained(out)
    return out


def test_hf_run_end_to_end_to_metrics(sharp_model_dir, peerread_root, tmp_path, isolated_home):
    out = tmp_path / "run"
    done = run_cli(["run", "--backend", "hf", "--model", str(sharp_model_dir), "--data-dir", str(peerread_root),
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
    assert config["options"]["batch_size"] == 2 and config["model"] == str(sharp_model_dir)


def test_greedy_generation_is_reproducible_and_batch_independent(sharp_model_dir, peerread_root, tmp_path):
    model = str(sharp_model_dir)
    greedy = peerbench.GenerationConfig(max_tokens=6, temperature=0.0)
    texts = ["Review the following paper.", "Title: Attention\nAbstract: " + "We study parsing. " * 40, "## Summary"]
    requests = [peerbench.ChatRequest(str(i), [{"role": "user", "content": t}], greedy) for i, t in enumerate(texts)]
    backend = HFBackend(model)
    batched = asyncio.run(backend.generate(requests))  # one left-padded batch of three prompt lengths
    alone = [asyncio.run(backend.generate([request]))[0] for request in requests]
    outputs = [c.text for c in batched]
    assert len({c.prompt_tokens for c in batched}) == 3  # the batch really was padded
    assert len(set(outputs)) == 3 and all(o.strip() for o in outputs), outputs  # prompt-dependent, never empty
    assert outputs == [c.text for c in alone] == [c.text for c in asyncio.run(backend.generate(requests))]

    kwargs = dict(data_dir=peerread_root, limit=3, resamples=10, generation={"max_tokens": 6, "temperature": 0.0},
                  max_model_len=2048, use_cache=False)
    one = peerbench.run("peerread95", "hf", model, out=tmp_path / "a", backend_options={"batch_size": 1}, **kwargs)
    three = peerbench.run("peerread95", "hf", model, out=tmp_path / "b", backend_options={"batch_size": 3}, **kwargs)
    texts = [s["completion"] for s in one.samples]
    assert len(texts) == 3 and all(text.strip() for text in texts), texts
    assert texts == [s["completion"] for s in three.samples]


def test_each_request_of_a_batch_is_generated_with_its_own_settings(sharp_model_dir):
    """k samples of one paper share a batch but differ in seed: each must come out as it would alone."""
    backend = HFBackend(str(sharp_model_dir))
    prompt = [{"role": "user", "content": "Review the following paper."}]
    requests = [peerbench.ChatRequest(str(seed), prompt, peerbench.GenerationConfig(max_tokens=8, temperature=1.0,
                                                                                   top_p=1.0, seed=seed))
                for seed in (1, 2, 3)]
    batched = [c.text for c in asyncio.run(backend.generate(requests))]
    alone = [asyncio.run(backend.generate([request]))[0].text for request in requests]
    assert batched == alone and len(set(alone)) > 1, alone  # the seeds really differ, and each was honoured


@pytest.mark.parametrize("kind", ["byte-level", "sentencepiece"])
def test_p_accept_is_read_at_the_decision_token_by_id(kind):
    """The recorder's per-step top-k, read by token id through the tokenizer, for a byte-level and
    a SentencePiece-style tokenizer: the same P(accept), " a" and "R" beside changing nothing."""
    import torch
    from local_tokenizers import as_transformers, scenario, train

    tok = train(kind)
    case = scenario(tok)  # quotes ACCEPTANCE, decides REJECTION: 0.45 against 0.05
    backend = HFBackend("unused")
    backend._tokenizer = as_transformers(tok)
    recorder = TopLogprobRecorder(torch, 4)
    for step, token in enumerate(case.ids):
        at = sorted(case.logprobs[step].items(), key=lambda kv: -kv[1]) + [(tok.token_to_id("<|end|>"), -30.0)] * 4
        recorder.top.append((torch.tensor([[lp for _, lp in at[:4]]]), torch.tensor([[t for t, _ in at[:4]]])))
        recorder.chosen.append(torch.tensor([case.logprobs[step][token]]))
    found = backend._decision_probability(recorder, 0, case.ids)
    assert found.p_accept == pytest.approx(0.1, rel=1e-6) and found.mass == pytest.approx(0.5, rel=1e-6)
    assert found.token_index == case.decision_index


def test_processed_logprobs_are_those_of_the_distribution_sampled_from(tiny_model_dir):
    """transformers' own temperature and top-p warpers, applied to a copy: recorded log-probabilities
    are exact, and the scores handed on to generate() are untouched."""
    import torch

    from peerbench.backends.hf import sampling_warpers

    backend = HFBackend(str(tiny_model_dir))
    asyncio.run(backend.setup())
    recorder, kind = backend._recorder(torch, {"do_sample": True, "temperature": 0.5, "top_p": 0.9})
    assert kind == "processed_logprobs"
    assert [type(w).__name__ for w in recorder.warpers] == ["TemperatureLogitsWarper", "TopKLogitsWarper",
                                                            "TopPLogitsWarper"]  # generate()'s default top_k 50
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0] + [-50.0] * 60])
    recorder.k = 3
    assert torch.equal(recorder(torch.tensor([[1]]), scores.clone()), scores)
    values = recorder.top[0][0][0].tolist()
    # temperature 0.5: 4, 2, 0, ...; top-p 0.9 keeps the first two (0.865 + 0.117); renormalised
    assert values[:2] == pytest.approx([math.log(math.e ** 4 / (math.e ** 4 + math.e ** 2)),
                                        math.log(math.e ** 2 / (math.e ** 4 + math.e ** 2))], rel=1e-5)
    assert values[2] == float("-inf")
    raw, raw_kind = HFBackend(str(tiny_model_dir), logprobs_mode="raw_logprobs"), None
    raw._model = backend._model
    recorder, raw_kind = raw._recorder(torch, {"do_sample": True, "temperature": 0.5, "top_p": 0.9})
    assert raw_kind == "raw_logprobs" and recorder.warpers == []
    greedy, greedy_kind = backend._recorder(torch, {"do_sample": False})
    assert greedy_kind == "processed_logprobs" and greedy.warpers == []  # no warper: the scores as they reach it
    config = backend._model.generation_config
    config.typical_p = 0.5
    try:
        assert sampling_warpers(config) is None  # a warper not rebuilt here: recorded raw, and said so
    finally:
        config.typical_p = 1.0


def test_sampling_is_the_same_whichever_logprobs_are_recorded(sharp_model_dir):
    prompt = [{"role": "user", "content": "Review the following paper."}]
    request = peerbench.ChatRequest("a", prompt, peerbench.GenerationConfig(max_tokens=8, temperature=0.7, top_p=0.9,
                                                                          seed=3), logprobs=True)
    texts, kinds = [], []
    for mode in ("processed_logprobs", "raw_logprobs"):
        completion = asyncio.run(HFBackend(str(sharp_model_dir), logprobs_mode=mode).generate([request]))[0]
        texts.append(completion.text)
        kinds.append(completion.extra["logprobs_mode"])
    assert texts[0] == texts[1] and kinds == ["processed_logprobs", "raw_logprobs"]


def test_a_gpu_that_is_not_there_is_one_line(tiny_model_dir):
    backend = HFBackend(str(tiny_model_dir), device="cuda")
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
