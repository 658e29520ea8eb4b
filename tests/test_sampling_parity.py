"""`--backend openai` against `vllm serve` and `--backend vllm` in-process sample alike.

`vllm serve` (with its default `--generation-config auto`) fills every sampling field a request
leaves out from the model's generation_config.json (vLLM's ModelConfig.get_diff_sampling_param and
ChatCompletionRequest.to_sampling_params); the request's own max_tokens, temperature and top_p win.
The in-process backend applies the same defaults. This test runs vLLM's own server code on the exact
body `--backend openai` sends, and the in-process backend's own code, on a model whose
generation_config.json sets top_k, min_p, repetition_penalty, temperature, top_p and
max_new_tokens, and compares the SamplingParams the engine would get."""

import json
import shutil
import subprocess
from pathlib import Path

from conftest import cli_env
from test_vllm_backend import VLLM_PYTHON, needs_vllm

PROBE = Path(__file__).with_name("vllm_sampling_probe.py")


@needs_vllm
def test_served_and_in_process_vllm_get_the_same_sampling_parameters(tiny_model_dir, tmp_path, isolated_home):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    generation = json.loads((model / "generation_config.json").read_text())
    generation.update({"top_k": 7, "min_p": 0.05, "repetition_penalty": 1.3, "temperature": 0.9, "top_p": 0.5,
                       "max_new_tokens": 50})
    (model / "generation_config.json").write_text(json.dumps(generation))
    done = subprocess.run([str(VLLM_PYTHON), str(PROBE), str(model)], check=False, capture_output=True, text=True,
                          timeout=600, env=cli_env(isolated_home, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["generation_config"] == "auto"
    # the model's top_k, min_p and repetition penalty; the task's temperature, top_p and max_tokens
    expected = {"temperature": 0.2, "top_p": 0.9, "top_k": 7, "min_p": 0.05, "repetition_penalty": 1.3,
                "presence_penalty": 0.0, "frequency_penalty": 0.0, "max_tokens": 1400, "seed": None, "logprobs": 5}
    assert found["served"] == expected
    assert found["in_process"] == expected
