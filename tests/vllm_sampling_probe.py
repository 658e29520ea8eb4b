"""Run by tests/test_sampling_parity.py in the vLLM environment: the sampling parameters one
peerbench request gets from `vllm serve` (vLLM's own OpenAI-server code, fed the exact JSON body
that `--backend openai` sends) and from `--backend vllm` in-process (the backend's own code, with
an engine stand-in that records what it is asked), printed as JSON. No engine starts."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
          "max_tokens", "seed", "logprobs")


def served(model_config, request) -> dict:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.serve.utils.api_utils import get_max_tokens

    from peerbench.backends.openai_compat import OpenAIBackend

    body = OpenAIBackend(model_config.model, check_server=False)._payload(request, logprobs=True)
    defaults = model_config.get_diff_sampling_param()  # as OpenAIServingChat.__init__ computes them
    max_tokens = get_max_tokens(model_config.max_model_len, body["max_tokens"], 100, defaults)
    params = ChatCompletionRequest(**body).to_sampling_params(max_tokens, defaults)
    return {f: getattr(params, f) for f in FIELDS}


def in_process(model_config, request) -> dict:
    from peerbench.backends.vllm import VLLMBackend

    asked = []

    class Engine:  # what VLLMBackend reads from vllm.LLM, and nothing more
        def __init__(self):
            self.model_config = model_config

        def get_tokenizer(self):
            return None

        def chat(self, messages, params, **kwargs):
            asked.extend(params)
            return [SimpleNamespace(prompt_token_ids=[0], outputs=[SimpleNamespace(
                text="x", token_ids=[1], logprobs=None, finish_reason="stop")]) for _ in messages]

    backend = VLLMBackend(model_config.model)
    backend._llm = Engine()
    backend._generate_batch([request])
    return {f: getattr(asked[0], f) for f in FIELDS}


def main(model_dir: str) -> None:
    from vllm.config import ModelConfig

    from peerbench.records import ChatRequest, GenerationConfig

    model_config = ModelConfig(model=model_dir, max_model_len=2048)  # --generation-config auto, the default
    generation = GenerationConfig(max_tokens=1400, temperature=0.2, top_p=0.9)
    request = ChatRequest(id="p1", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                          generation=generation, logprobs=True)
    print(json.dumps({"generation_config": model_config.generation_config, "served": served(model_config, request),
                      "in_process": in_process(model_config, request)}))


if __name__ == "__main__":
    main(sys.argv[1])
