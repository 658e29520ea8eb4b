"""Every setting of the pipeline in one validated model: defaults are the published recipe.

The first command on a workdir writes the resolved settings to ``W/config.json``; later commands
read them back, so every stage of one workdir uses the same settings. ``--config FILE.yaml`` and
``--set key=value`` change them, and the change is saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from peerbench import ConfigError

CONFIG_FILE = "config.json"


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # prompts: the pool the teacher reviews
    eval_task: str = "peerread95"
    pool_size: int = Field(434, ge=1)
    # Each source is a registered dataset and its selection arguments.
    pool_sources: list[dict[str, Any]] = Field(default_factory=lambda: [
        {"dataset": "peerread", "venues": ["iclr_2017"], "splits": ["train"]},
        {"dataset": "openreview", "venues": ["ICLR.cc/2019/Conference", "ICLR.cc/2020/Conference",
                                             "ICLR.cc/2021/Conference"]}])
    pool_seed: int = 42
    data_dir: str | None = None
    max_model_len: int | None = Field(None, ge=256, description="context the pool's prompts are cut to; default: "
                                      "the smaller of the eval task's and max_length, so every pair fits training")
    # teacher. Its output cap is teacher_max_tokens plus the thinking budget (thinking counts
    # against Gemini's max_output_tokens); a reply cut at the cap is a failed paper, not a review.
    teacher_backend: str = "vertex"
    teacher_model: str = "gemini-3.1-pro-preview"
    teacher_options: dict[str, Any] = Field(default_factory=lambda: {"thinking_budget": 1024})
    teacher_temperature: float = Field(0.3, ge=0)
    teacher_concurrency: int | None = Field(None, ge=1)
    teacher_max_tokens: int | None = Field(None, ge=1, description="default: the eval task's max_tokens")
    # filter
    val_size: int = Field(100, ge=1)
    split_seed: int = 42
    # train: the published LoRA SFT recipe
    base_model: str = "unsloth/gemma-4-E4B-it"
    engine: str = Field("auto", pattern="^(auto|unsloth|trl)$")
    lora_r: int = Field(32, ge=1)
    lora_alpha: int = Field(64, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    epochs: float = Field(5, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    per_device_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(8, ge=1)
    max_length: int = Field(8192, ge=16)
    optim: str = "adamw_8bit"
    bf16: bool = True
    seed: int = 42
    max_steps: int = -1
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(1, ge=1)
    # register
    preset_name: str | None = None
    preset_backend: str = Field("vllm", pattern="^(vllm|hf)$")

    def preset(self) -> str:
        return self.preset_name or "distilled-" + self.base_model.rstrip("/").split("/")[-1].lower()


def parse_sets(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def resolve_config(workdir: Path, config_file: str | None = None, sets: dict[str, Any] | None = None) -> DistillConfig:
    """Saved settings of this workdir, then the YAML file, then --set; validated and saved back."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    saved = workdir / CONFIG_FILE
    data: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {path}: expected a mapping of setting -> value")
        data.update(loaded)
    data.update(sets or {})
    try:
        config = DistillConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"distill setting {field}: {err['msg']}") from None
    tmp = saved.with_name(CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True))
    tmp.replace(saved)
    return config
