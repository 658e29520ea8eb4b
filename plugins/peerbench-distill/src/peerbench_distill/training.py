"""Stage 4, train: LoRA SFT on the filtered pairs, loss on the assistant turn only.

Unsloth on a CUDA GPU when it is installed (``engine=auto``); TRL's SFTTrainer + PEFT everywhere
else, with the same settings. Checkpoints go to W/train/ every ``save_steps`` optimizer steps and
a rerun resumes from the newest one. The adapter lands in W/adapter/, the loss curve in
W/loss.png, a summary in W/train.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peerbench import ConfigError, DataError, MissingDependency, figure_png, pyplot
from peerbench_distill.config import DistillConfig
from peerbench_distill.filtering import TRAIN_FILE, VAL_FILE

TRAIN_DIR, ADAPTER_DIR, SUMMARY_FILE, LOSS_PNG = "train", "adapter", "train.json", "loss.png"


def unsloth_status() -> tuple[bool, str]:
    """Whether Unsloth can be used here. Importing it raises (not only ImportError) without a GPU."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU"
    try:
        import unsloth  # noqa: F401
    except Exception as exc:  # ImportError, NotImplementedError, RuntimeError on unsupported setups
        return False, f"unsloth cannot be imported ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
    return True, "CUDA GPU and unsloth available"


def _require_train_libraries() -> None:
    for module, package in (("torch", "torch"), ("trl", "trl"), ("peft", "peft"), ("datasets", "datasets")):
        try:
            __import__(module)
        except ImportError:
            raise MissingDependency(package, "train") from None


def _latest_checkpoint(folder: Path, say=print) -> Path | None:
    """The newest complete checkpoint. The Trainer writes trainer_state.json last, so a checkpoint
    without a readable one was cut short by a crash: it is removed rather than resumed from."""
    import shutil

    complete = []
    for checkpoint in sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            complete.append(checkpoint)
        except (OSError, ValueError):
            say(f"removing {checkpoint}: written only in part when training stopped")
            shutil.rmtree(checkpoint, ignore_errors=True)
    return complete[-1] if complete else None


def train(workdir: Path, config: DistillConfig, *, say=print) -> dict[str, Any]:
    _require_train_libraries()
    import torch
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    for name in (TRAIN_FILE, VAL_FILE):
        if not (workdir / name).is_file():
            raise DataError(f"{workdir / name}: missing; run `peerbench distill filter --workdir {workdir}` first")
    use_unsloth, why = unsloth_status()
    if config.engine == "unsloth" and not use_unsloth:
        raise ConfigError(f"engine=unsloth: {why}; use engine=trl (or auto)")
    use_unsloth = use_unsloth and config.engine != "trl"
    say(f"training with {'Unsloth' if use_unsloth else 'TRL + PEFT'} ({why})")

    cuda = torch.cuda.is_available()
    bf16 = config.bf16 and (cuda and torch.cuda.is_bf16_supported())
    if config.bf16 and not bf16:
        say("bf16 needs a GPU that supports it; training in float32 here")
    optim = config.optim
    if "8bit" in optim and not cuda:
        say(f"optim={optim} needs bitsandbytes on a CUDA GPU; using adamw_torch here")
        optim = "adamw_torch"

    data_files = {"train": str(workdir / TRAIN_FILE), "validation": str(workdir / VAL_FILE)}
    data = load_dataset("json", data_files=data_files).select_columns(["prompt", "completion"])
    model, tokenizer, peft_config = _load_model(config, use_unsloth, bf16)
    data, too_long = _drop_too_long(data, tokenizer, config.max_length)
    if too_long:
        say(f"left out {too_long} pair(s) longer than max_length={config.max_length} tokens: truncating them would "
            "cut the review, the only part trained on")
    if len(data["train"]) == 0:
        raise DataError(f"no training pair fits max_length={config.max_length}; raise it or lower max_model_len")

    output_dir = workdir / TRAIN_DIR
    # transformers 5 folds warmup_ratio into warmup_steps (a float below 1 is a ratio).
    warmup = {"warmup_ratio": config.warmup_ratio} if "warmup_ratio" in SFTConfig.__dataclass_fields__ \
        else {"warmup_steps": config.warmup_ratio}
    args = SFTConfig(
        output_dir=str(output_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, **warmup,
        per_device_train_batch_size=config.per_device_batch_size, per_device_eval_batch_size=1,
        gradient_accumulation_steps=config.gradient_accumulation_steps, max_length=config.max_length,
        optim=optim, bf16=bf16, fp16=False, seed=config.seed, data_seed=config.seed,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, logging_steps=config.logging_steps,
        eval_strategy="epoch", report_to="none", completion_only_loss=True, use_cpu=not cuda,
        dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                         processing_class=tokenizer, peft_config=peft_config)
    resume = _latest_checkpoint(output_dir, say)
    if resume is not None:
        say(f"resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(workdir / ADAPTER_DIR))
    tokenizer.save_pretrained(str(workdir / ADAPTER_DIR))
    history = trainer.state.log_history
    _plot_loss(history, workdir / LOSS_PNG)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    summary = {"engine": "unsloth" if use_unsloth else "trl+peft", "base_model": config.base_model,
               "global_step": trainer.state.global_step, "resumed_from": str(resume) if resume else None,
               "train_loss": result.training_loss, "final_eval_loss": evals[-1] if evals else None,
               "train_rows": len(data["train"]), "val_rows": len(data["validation"]),
               "runtime_s": result.metrics.get("train_runtime"), "bf16": bf16, "optim": optim}
    (workdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def _drop_too_long(data: Any, tokenizer: Any, max_length: int) -> tuple[Any, int]:
    def fits(row: dict[str, Any]) -> bool:
        ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids) <= max_length

    before = sum(len(split) for split in data.values())
    data = data.filter(fits)
    return data, before - sum(len(split) for split in data.values())


def _load_model(config: DistillConfig, use_unsloth: bool, bf16: bool) -> tuple[Any, Any, Any]:
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    if use_unsloth:
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(config.base_model, max_seq_length=config.max_length,
                                                             dtype=dtype, load_in_4bit=False)
        targets = config.target_modules if isinstance(config.target_modules, list) else \
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = FastLanguageModel.get_peft_model(model, r=config.lora_r, lora_alpha=config.lora_alpha,
                                                 lora_dropout=config.lora_dropout, target_modules=targets,
                                                 use_gradient_checkpointing="unsloth", random_state=config.seed)
        return model, tokenizer, None
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype)
    peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                             target_modules=config.target_modules, task_type="CAUSAL_LM")
    return model, tokenizer, peft_config


def _plot_loss(history: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("LoRA SFT loss")
    ax.legend()
    path.write_bytes(figure_png(fig))
