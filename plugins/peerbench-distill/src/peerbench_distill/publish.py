"""Stages 5 and 6: merge the adapter into 16-bit weights (the adapter is kept too), then register
the merged model as a peerbench model preset that runs on vllm and hf."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peerbench import DataError, save_preset
from peerbench_distill.config import DistillConfig
from peerbench_distill.training import ADAPTER_DIR

MERGED_DIR, REGISTERED_FILE = "merged", "registered.json"


def merge(workdir: Path, config: DistillConfig) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = workdir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise DataError(f"{adapter}: no adapter yet; run `peerbench distill train --workdir {workdir}` first")
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    out = workdir / MERGED_DIR
    tmp = workdir / (MERGED_DIR + ".partial")
    merged.to(torch.bfloat16).save_pretrained(str(tmp))  # 16-bit weights, as published
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(tmp))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


def register(workdir: Path, config: DistillConfig) -> dict[str, Any]:
    merged = workdir / MERGED_DIR
    if not (merged / "config.json").is_file():
        raise DataError(f"{merged}: no merged model yet; run `peerbench distill merge --workdir {workdir}` first")
    name = config.preset()
    other = "hf" if config.preset_backend == "vllm" else "vllm"
    path = save_preset(name, backend=config.preset_backend, model=str(merged.resolve()), options={},
                       backends={other: {}}, description=f"distilled from {config.base_model} ({workdir.resolve()})")
    record = {"name": name, "backend": config.preset_backend, "also": [other], "model": str(merged.resolve()),
              "presets_file": str(path)}
    (workdir / REGISTERED_FILE).write_text(json.dumps(record, indent=2))
    return record
