"""transformers ``generate`` in-process, on CPU or GPU: how a laptop user runs a small student.

Same prompt (the model's own chat template), same sampling and the same logprob-derived
P(accept) as the served backends. Log-probabilities are recorded step by step by a logits
processor that keeps only the top alternatives, never a (steps x vocabulary) tensor, which for a
Gemma-sized vocabulary and 1,400 new tokens would be gigabytes. generate() runs custom processors
before its temperature/top-k/top-p warpers, so for ``logprobs_mode=processed_logprobs`` the
recorder applies transformers' own warpers, in generate()'s order, to a copy of the scores: what
it records is the distribution the token was drawn from, while sampling itself is left alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import Field

from peerbench.backends import Backend, BackendOptions, RunContext
from peerbench.backends.logprobs import LOGPROBS_MODES, probability_from_ids
from peerbench.backends.token_counting import TransformersTokenCounter
from peerbench.errors import BackendError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.records import ChatRequest, Completion


class HFOptions(BackendOptions):
    device: str = Field("auto", description="auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps")
    dtype: str = Field("auto", pattern="^(auto|bfloat16|float16|float32)$")
    batch_size: int = Field(4, ge=1)
    lora: str | None = Field(None, description="a PEFT adapter folder to apply on top of the model",
                             json_schema_extra={"flag": "--lora"})
    top_logprobs: int = Field(5, ge=1, le=20)
    logprobs_mode: str = Field("processed_logprobs", pattern=f"^({'|'.join(LOGPROBS_MODES)})$",
                               description="processed: after temperature/top-k/top-p, as sampled; raw: before")
    attn_implementation: str | None = None
    trust_remote_code: bool = False


def import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependency(exc.name or "transformers", "hf") from None
    return torch, transformers


def resolve_device(torch: Any, requested: str) -> str:
    """'auto' picks CUDA, then MPS, then CPU; an explicit GPU that is not there is one clear line."""
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        raise BackendError(f"--backend-arg device={requested}: no CUDA device is available ({build}); "
                           "use device=cpu or device=auto")
    return requested


class TopLogprobRecorder:
    """A logits processor that keeps, per generated step, the top-k log-probabilities and the
    log-probability of the token that was then chosen: of the scores as they reach it (raw), or
    after ``warpers`` applied to a copy (processed)."""

    def __init__(self, torch: Any, k: int, warpers: Any = ()):
        self.torch, self.k, self.warpers = torch, k, list(warpers)
        self.top: list[tuple[Any, Any]] = []  # per step: (values [batch, k], ids [batch, k]) on CPU
        self.chosen: list[Any] = []  # per step: logprob of the chosen token [batch]
        self._previous = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        processed = scores.float()
        for warper in self.warpers:
            processed = warper(input_ids, processed.clone())
        logp = self.torch.log_softmax(processed, dim=-1)
        if self._previous is not None:
            self.chosen.append(self._previous.gather(1, input_ids[:, -1:])[:, 0].cpu())
        values, ids = logp.topk(self.k, dim=-1)
        self.top.append((values.cpu(), ids.cpu()))
        self._previous = logp
        return scores

    def finish(self, sequences: Any) -> None:
        if self._previous is not None and len(self.chosen) < len(self.top):
            self.chosen.append(self._previous.gather(1, sequences[:, -1:])[:, 0].cpu())
        self._previous = None


UNREBUILT = {"top_h": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "num_beams": 1,
             "renormalize_logits": False, "watermarking_config": None}


def sampling_warpers(generation_config: Any) -> list[Any] | None:
    """transformers' warpers for these settings, in generate()'s order (temperature, top-k, top-p,
    min-p); None when the config asks for one not rebuilt here (typical-p, beams...)."""
    from transformers.generation.logits_process import (MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    config = generation_config
    if any(getattr(config, name, default) not in (default, None) for name, default in UNREBUILT.items()):
        return None
    if not config.do_sample:
        return []
    warpers: list[Any] = []
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        warpers.append(TopKLogitsWarper(top_k=config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=config.top_p))
    if config.min_p is not None:
        warpers.append(MinPLogitsWarper(min_p=config.min_p))
    return warpers


class HFBackend(Backend):
    name = "hf"
    Options = HFOptions
    supports_logprobs = True
    cacheable = True
    max_concurrency = 1  # one batch at a time on one device
    in_process = True  # the model's weights live in this process

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.batch_size = self.options.batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"

    def gpus(self) -> float:
        """One GPU when the device option may pick CUDA (``auto`` does where there is one), else none."""
        device = self.options.device
        return 1.0 if device == "auto" or device.startswith("cuda") else 0.0

    async def setup(self, context: RunContext | None = None) -> None:
        torch, transformers = import_torch_transformers()
        opts = self.options
        self._device = resolve_device(torch, opts.device)
        dtype = "auto" if opts.dtype == "auto" else getattr(torch, opts.dtype)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": opts.trust_remote_code}
        if opts.attn_implementation:
            kwargs["attn_implementation"] = opts.attn_implementation
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.model,
                                                                         trust_remote_code=opts.trust_remote_code)
            model = transformers.AutoModelForCausalLM.from_pretrained(self.model, **kwargs)
        except OSError as exc:
            raise BackendError(f"--model {self.model}: cannot load it ({' '.join(str(exc).split())[:300]})") from None
        if opts.lora:
            model = self._apply_lora(model, opts.lora)
        self._model = model.to(self._device).eval()
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._tokenizer.padding_side = "left"

    @staticmethod
    def _apply_lora(model: Any, path: str) -> Any:
        try:
            from peft import PeftModel
        except ImportError:
            raise MissingDependency("peft", "hf") from None
        if not (Path(path) / "adapter_config.json").is_file():
            raise BackendError(f"--lora {path}: no adapter_config.json there")
        return PeftModel.from_pretrained(model, path)

    def token_counter(self):
        return TransformersTokenCounter(self._tokenizer) if self._tokenizer is not None else None

    def _prompt(self, request: ChatRequest) -> str:
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in request.messages) + "\n\n"

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        import asyncio

        if self._model is None:
            await self.setup()
        # generate() holds the GIL for long stretches; run it off the event loop so progress keeps moving.
        return await asyncio.to_thread(self._generate_batch, requests)

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        """Requests with the same generation settings go through generate() together; each other
        setting (a seed of --samples k, say) gets its own call, so every request is made as asked."""
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.generation.to_dict().items())), []).append(index)
        completions: list[Completion | None] = [None] * len(requests)
        for indices in groups.values():
            for index, completion in zip(indices, self._generate_group([requests[i] for i in indices])):
                completions[index] = completion
        return completions  # type: ignore[return-value]

    def _generate_group(self, requests: list[ChatRequest]) -> list[Completion]:
        torch, _ = import_torch_transformers()
        gen = requests[0].generation  # the same for every request of the group
        tok = self._tokenizer
        inputs = tok([self._prompt(r) for r in requests], return_tensors="pt", padding=True,
                     add_special_tokens=False).to(self._device)
        sampling = {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p} if gen.temperature > 0 \
            else {"do_sample": False}
        recorder, logprobs_mode = self._recorder(torch, sampling) if any(r.logprobs for r in requests) else (None, None)
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        with torch.inference_mode():
            output = self._model.generate(**inputs, max_new_tokens=gen.max_tokens, pad_token_id=tok.pad_token_id,
                                          logits_processor=[recorder] if recorder else None, **sampling)
        if recorder is not None:
            recorder.finish(output)
        prompt_len = inputs["input_ids"].shape[1]
        stop_ids = self._stop_ids()
        completions = []
        for row, request in enumerate(requests):
            new_ids = output[row, prompt_len:].tolist()
            ended = None
            for position, token_id in enumerate(new_ids):
                if token_id in stop_ids:
                    ended = position
                    break
            kept = new_ids if ended is None else new_ids[:ended]
            text = tok.decode(kept, skip_special_tokens=True)
            p_accept, extra = None, {}
            if recorder is not None and request.logprobs:
                found = self._decision_probability(recorder, row, kept)
                extra["logprobs_mode"] = logprobs_mode
                if found is not None:
                    p_accept, extra["decision_mass"] = found.p_accept, round(found.mass, 6)
            completions.append(Completion(text=text, p_accept=p_accept, finish_reason="stop" if ended is not None
                                          else "length", prompt_tokens=int(inputs["attention_mask"][row].sum()),
                                          completion_tokens=len(kept), extra=extra))
        return completions

    def _stop_ids(self) -> set[int]:
        ids = self._model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self._tokenizer.eos_token_id is not None:
            ids.add(self._tokenizer.eos_token_id)
        return ids

    def _recorder(self, torch: Any, sampling: dict[str, Any]) -> tuple[TopLogprobRecorder, str]:
        """The recorder for these settings, and the kind of logprobs it will record."""
        warpers = None
        if self.options.logprobs_mode == "processed_logprobs":
            warpers = sampling_warpers(self._effective_config(sampling))
        kind = "raw_logprobs" if warpers is None else "processed_logprobs"
        return TopLogprobRecorder(torch, self.options.top_logprobs, warpers or ()), kind

    def _effective_config(self, sampling: dict[str, Any]) -> Any:
        """The settings generate() will sample with: these, then the model's generation_config, then
        transformers' global defaults (top_k 50 among them), resolved by generate()'s own helper."""
        try:
            return self._model._prepare_generation_config(None, **sampling)[0]
        except (AttributeError, TypeError):  # a transformers without the helper: the model's config updated
            config = copy.deepcopy(self._model.generation_config)
            config.update(**sampling)
            return config

    def _decision_probability(self, recorder: TopLogprobRecorder, row: int, ids: list[int]):
        """By token id (logprobs.probability_from_ids): the tokenizer's own split of the two words."""
        tok = self._tokenizer

        def logprobs_at(index: int) -> dict[int, float]:
            if index >= len(recorder.top):
                return {}
            values, top_ids = recorder.top[index]
            found = dict(zip(top_ids[row].tolist(), values[row].tolist()))
            found.setdefault(ids[index], float(recorder.chosen[index][row]))
            return found

        return probability_from_ids(ids, lambda text: tok.encode(text, add_special_tokens=False),
                                    lambda prefix: tok.decode(prefix, skip_special_tokens=True), logprobs_at,
                                    self.decision_parser)

    async def aclose(self) -> None:
        self._model = None


@hookimpl
def register_backends(register):
    register("hf", HFBackend, extra="hf",
             description="transformers generate in-process, CPU or GPU (--model a hub id or a local folder)")
