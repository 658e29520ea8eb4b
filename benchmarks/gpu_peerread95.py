"""peerread95-shaped generation speed on one GPU, with no hub access: random weights, real shape.

Builds a model with a Gemma-class ~4B architecture (Gemma 3 4B's text dimensions: hidden 2560,
34 layers, 8 query / 4 key-value heads of 256, intermediate 10240, vocabulary 262,144) and random
bf16 weights, then generates exactly 1,400 tokens (EOS ignored) for each of 95 prompts whose
lengths follow peerread95's shape after truncation to the 12,288-token context (most papers are
longer than the 10,856-token prompt budget, so most prompts sit at it). Prints papers/s, tokens/s
and peak GPU memory for each engine asked for. Published figure: about 2 s per paper on vLLM;
target: 95 papers in under 60 s on one H100-class GPU.

    python benchmarks/gpu_peerread95.py --engine vllm --engine hf
    python benchmarks/gpu_peerread95.py --tiny --engine vllm   # the code path on a CPU, in seconds

Prompts are token ids (no tokenizer needed), so the figures measure the engines, not the prompt.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

PAPERS = 95
CONTEXT = 12288
MAX_NEW = 1400
BUDGET = CONTEXT - MAX_NEW - 32

GEMMA_CLASS_4B = dict(hidden_size=2560, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4,
                      head_dim=256, intermediate_size=10240, vocab_size=262144, sliding_window=1024,
                      max_position_embeddings=131072)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=32,
            intermediate_size=128, vocab_size=512, sliding_window=64, max_position_embeddings=4096)


def prompt_lengths(n: int, budget: int, seed: int = 0) -> list[int]:
    """Lognormal paper lengths (median ~11.5K tokens), cut to the prompt budget as peerbench cuts them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=np.log(11500), sigma=0.35, size=n)
    return [int(min(max(x, 2000), budget)) for x in raw]


def build_model(folder: Path, dims: dict, dtype: str) -> Path:
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(**dims, torch_dtype=dtype, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Gemma3ForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    del model
    return folder


def run_vllm(folder: Path, prompts: list[list[int]], max_new: int, context: int, tiny: bool) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    kwargs = dict(model=str(folder), skip_tokenizer_init=True, max_model_len=context, max_num_seqs=16,
                  enable_prefix_caching=True, dtype="float32" if tiny else "bfloat16")
    if not tiny:
        kwargs["gpu_memory_utilization"] = 0.88
    else:
        kwargs["enforce_eager"] = True
    llm = LLM(**kwargs)
    params = SamplingParams(max_tokens=max_new, min_tokens=max_new, ignore_eos=True, temperature=0.2, top_p=0.9,
                            detokenize=False)
    started = time.perf_counter()
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    generated = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"engine": "vllm", "seconds": elapsed, "generated_tokens": generated}


def run_hf(folder: Path, prompts: list[list[int]], max_new: int, batch: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = model.to(device).eval()
    generated = 0
    started = time.perf_counter()
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        width = max(map(len, chunk))
        ids = torch.tensor([[0] * (width - len(p)) + p for p in chunk], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=max_new,
                                 do_sample=True, temperature=0.2, top_p=0.9, pad_token_id=0)
        generated += (out.shape[1] - width) * len(chunk)
    return {"engine": "hf", "seconds": time.perf_counter() - started, "generated_tokens": generated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", choices=["vllm", "hf"], help="repeatable (default: vllm)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and short prompts: the code path on CPU")
    parser.add_argument("--hf-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    import torch

    dims = TINY if args.tiny else GEMMA_CLASS_4B
    papers, max_new, context = (8, 16, 1024) if args.tiny else (PAPERS, MAX_NEW, CONTEXT)
    lengths = prompt_lengths(papers, context - max_new - 32 if args.tiny else BUDGET)
    if args.tiny:
        lengths = [min(n // 20, context - max_new - 32) for n in lengths]
    import random

    rng = random.Random(0)
    prompts = [[rng.randrange(3, dims["vocab_size"]) for _ in range(n)] for n in lengths]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "model", dims, "float32" if args.tiny else "bfloat16")
        for engine in args.engine or ["vllm"]:
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            result = run_vllm(folder, prompts, max_new, context, args.tiny) if engine == "vllm" else \
                run_hf(folder, prompts, max_new, args.hf_batch)
            result.update(papers=papers, papers_per_s=papers / result["seconds"],
                          tokens_per_s=result["generated_tokens"] / result["seconds"],
                          s_per_paper=result["seconds"] / papers, median_prompt_tokens=sorted(lengths)[papers // 2],
                          device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                          peak_gpu_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
                          else None)
            results.append(result)
            print(json.dumps(result), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
