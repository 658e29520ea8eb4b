"""`peerbench distill ...`: each stage reads and writes files in the workdir, skips what is done,
and can be rerun after a crash; `run` does them all in order."""

from __future__ import annotations

import json
from pathlib import Path

import click

from peerbench import friendly_errors

STAGES = ("prompts", "teacher", "filter", "train", "merge", "register")


def _common(func):
    func = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                        help="Change a setting (repeatable), e.g. --set lora_r=16; saved in W/config.json.")(func)
    func = click.option("--config", "config_file", type=click.Path(), default=None,
                        help="A YAML file of settings (see docs/distill.md).")(func)
    func = click.option("--force", is_flag=True, help="Redo the stage even if its output exists.")(func)
    return click.option("-w", "--workdir", required=True, type=click.Path(file_okay=False),
                        help="The pipeline's folder; every stage reads and writes files here.")(func)


def _config(workdir: str, config_file: str | None, sets: tuple[str, ...]):
    from peerbench_distill.config import parse_sets, resolve_config

    return Path(workdir), resolve_config(Path(workdir), config_file, parse_sets(sets))


def run_stage(stage: str, workdir: Path, config, force: bool = False) -> None:
    say = click.echo
    if stage == "prompts":
        from peerbench_distill.pool import POOL_FILE, build_pool

        if (workdir / POOL_FILE).is_file() and not force:
            return say(f"prompts: done ({workdir / POOL_FILE})")
        pool = build_pool(workdir, config)
        note = "" if len(pool["keys"]) == pool["requested"] else f" (asked for {pool['requested']}; that is all there is)"
        sources = "; ".join(f"{json.loads(k)['dataset']} {n}" for k, n in pool["per_source"].items())
        say(f"prompts: {len(pool['keys'])} papers ({sources}){note}; "
            f"none of the {pool['eval_papers_checked']} papers of {pool['eval_task']}")
    elif stage == "teacher":
        from peerbench_distill.teacher import run_teacher, teacher_summary

        say(teacher_summary(run_teacher(workdir, config), config))
    elif stage == "filter":
        from peerbench_distill.filtering import STATS_FILE, filter_pairs

        if (workdir / STATS_FILE).is_file() and not force:
            stats = json.loads((workdir / STATS_FILE).read_text())
            return say(f"filter: done ({stats['train']} train / {stats['val']} val)")
        stats = filter_pairs(workdir, config)
        say(f"filter: kept {stats['kept']} of {stats['teacher_samples']} (dropped {stats['dropped']}); "
            f"train {stats['train']} ({stats['train_accept_share']:.1%} accept), "
            f"val {stats['val']} ({stats['val_accept_share']:.1%} accept)")
    elif stage == "train":
        from peerbench_distill.training import SUMMARY_FILE, train

        if (workdir / SUMMARY_FILE).is_file() and not force:
            return say(f"train: done ({workdir / SUMMARY_FILE})")
        summary = train(workdir, config, say=say)
        say(f"train: {summary['global_step']} steps, train loss {summary['train_loss']:.4f}, adapter in "
            f"{workdir / 'adapter'}, loss curve in {workdir / 'loss.png'}")
    elif stage == "merge":
        from peerbench_distill.publish import MERGED_DIR, merge

        if (workdir / MERGED_DIR / "config.json").is_file() and not force:
            return say(f"merge: done ({workdir / MERGED_DIR})")
        say(f"merge: 16-bit weights in {merge(workdir, config)} (adapter kept in {workdir / 'adapter'})")
    elif stage == "register":
        from peerbench_distill.publish import register

        record = register(workdir, config)
        say(f"register: model preset {record['name']!r} ({record['backend']}, also {', '.join(record['also'])}) "
            f"in {record['presets_file']}; run it with: peerbench run --backend {record['backend']} "
            f"--model {record['name']}")


@click.group()
def distill() -> None:
    """Distil a teacher reviewer into a LoRA student and register it (peerbench-distill)."""


@distill.command("run")
@_common
@friendly_errors
def run_all(workdir, force, config_file, sets) -> None:
    """Every stage in order: prompts, teacher, filter, train, merge, register."""
    path, config = _config(workdir, config_file, sets)
    for stage in STAGES:
        run_stage(stage, path, config, force)


def _stage_command(stage: str, help_text: str) -> None:
    @distill.command(stage, help=help_text)
    @_common
    @friendly_errors
    def command(workdir, force, config_file, sets) -> None:
        path, config = _config(workdir, config_file, sets)
        run_stage(stage, path, config, force)


for _stage, _help in zip(STAGES, (
        "Choose the prompt pool (never a paper of the evaluation task).",
        "One teacher review per prompt, through any backend and the response cache.",
        "Keep reviews with a decision line, dedupe, split train/val, report accept shares.",
        "LoRA SFT (Unsloth on a CUDA GPU, else TRL + PEFT); resumes from the last checkpoint.",
        "Merge the adapter into 16-bit weights (the adapter is kept).",
        "Register the merged model as a peerbench model preset.")):
    _stage_command(_stage, _help)


@distill.command("eval")
@click.option("-w", "--workdir", required=True, type=click.Path(file_okay=False))
@click.option("-t", "--task", default=None, help="Task (default: the pipeline's eval_task).")
@click.option("-b", "--backend", default=None, help="hf or vllm (default: the preset's).")
@click.option("--limit", type=int, default=None)
@click.option("--data-dir", envvar="PEERBENCH_DATA", type=click.Path(), default=None)
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--max-model-len", type=click.IntRange(min=256), default=None)
@click.option("--resamples", type=click.IntRange(min=1), default=1000, show_default=True)
@friendly_errors
def evaluate(workdir, task, backend, limit, data_dir, max_tokens, max_model_len, resamples) -> None:
    """Run the student and its base model on a task; print both side by side with a paired test."""
    from rich.console import Console

    import peerbench

    path, config = _config(workdir, None, ())
    task = task or config.eval_task
    backend = backend or config.preset_backend
    runs = []
    for label, model in (("base", config.base_model), ("student", config.preset())):
        result = peerbench.run(task, backend, model, out=path / "eval" / f"{task}__{label}__{backend}", limit=limit,
                               data_dir=data_dir or config.data_dir, resamples=resamples, progress=True,
                               generation={"max_tokens": max_tokens}, max_model_len=max_model_len)
        runs.append(result.run_dir)
    Console().print(peerbench.render_comparison(peerbench.compare(runs, resamples=resamples)))
