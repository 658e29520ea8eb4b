"""Stage 1, prompts: which papers the teacher reviews. Never a paper of the evaluation task: the
pool is checked against it by paper key and by normalised title, and any overlap stops the stage."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from peerbench.errors import DataError
from peerbench_distill.config import DistillConfig

POOL_FILE = "pool.json"


def _norm_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (title or "").lower()).strip()


def pool_task(config: DistillConfig, ids: list[str] | None = None) -> Any:
    """The evaluation task's prompt and settings, on the pool's papers instead of its own."""
    from peerbench.task import DatasetSpec, load_task

    task = load_task(config.eval_task)
    args = {**task.dataset.args(), "venues": config.pool_venues, "splits": config.pool_splits}
    args.pop("ids", None)
    if ids is not None:
        args["ids"] = ids
    generation = task.generation.model_copy(update={"max_tokens": config.teacher_max_tokens or
                                                    task.generation.max_tokens})
    return task.model_copy(update={"task": f"distill-pool-{config.eval_task}",
                                   "max_model_len": config.max_model_len or min(task.max_model_len, config.max_length),
                                   "generation": generation,
                                   "dataset": DatasetSpec(name=task.dataset.name, **args), "train": None,
                                   "description": f"teacher prompts for distillation (prompt of {config.eval_task})"})


def _load(task: Any, data_dir: str | None) -> list[Any]:
    from peerbench.registry import registries

    dataset = registries().datasets.get(task.dataset.name).value(data_dir)
    args = dataset.parse_args(task.dataset.args(), f"task {task.task}")
    return dataset.load(args, progress=True)


def build_pool(workdir: Path, config: DistillConfig) -> dict[str, Any]:
    from peerbench.task import load_task

    candidates = _load(pool_task(config), config.data_dir)
    evaluation = _load(load_task(config.eval_task), config.data_dir)
    eval_keys = {p.key for p in evaluation} | {f"{p.venue}/{p.id}" for p in evaluation}
    eval_titles = {_norm_title(p.title) for p in evaluation if _norm_title(p.title)}
    overlap = [p.key for p in candidates if p.key in eval_keys or f"{p.venue}/{p.id}" in eval_keys
               or _norm_title(p.title) in eval_titles]
    if overlap:
        raise DataError(f"prompt pool overlaps the evaluation task {config.eval_task!r} on {len(overlap)} paper(s), "
                        f"first {overlap[0]}; choose other pool_splits/pool_venues")
    seen_titles: set[str] = set()
    unique = []
    for paper in sorted(candidates, key=lambda p: p.key):
        title = _norm_title(paper.title)
        if title and title in seen_titles:
            continue
        seen_titles.add(title)
        unique.append(paper)
    random.Random(config.pool_seed).shuffle(unique)
    chosen = unique[: config.pool_size]
    pool = {"eval_task": config.eval_task, "venues": config.pool_venues, "splits": config.pool_splits,
            "ids": sorted(p.id for p in chosen), "keys": sorted(p.key for p in chosen),
            "candidates": len(candidates), "unique": len(unique), "requested": config.pool_size,
            "eval_papers_checked": len(evaluation)}
    (workdir / POOL_FILE).write_text(json.dumps(pool, indent=2))
    return pool


def read_pool(workdir: Path) -> dict[str, Any]:
    path = workdir / POOL_FILE
    if not path.is_file():
        raise DataError(f"{path}: no prompt pool yet; run `peerbench distill prompts --workdir {workdir}` first")
    return json.loads(path.read_text())
