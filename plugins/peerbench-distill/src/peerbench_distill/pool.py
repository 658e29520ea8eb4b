"""Stage 1, prompts: which papers the teacher reviews, from any registered datasets (PeerRead's
ICLR 2017 train split and OpenReview ICLR 2019-2021 by default). The chosen papers are written
as a JSONL dataset (W/pool.jsonl), so the teacher stage is one ordinary run whatever the sources.
Never a paper of the evaluation task: the pool is checked against it by paper key and by
normalised title, and any overlap stops the stage."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from peerbench import DataError, DatasetSpec, get_dataset, load_task
from peerbench_distill.config import DistillConfig

POOL_FILE, POOL_PAPERS = "pool.json", "pool.jsonl"


def _norm_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (title or "").lower()).strip()


def pool_task(config: DistillConfig, workdir: Path) -> Any:
    """The evaluation task's prompt and settings, on the pool's papers instead of its own."""
    task = load_task(config.eval_task)
    generation = task.generation.model_copy(update={"max_tokens": config.teacher_max_tokens or
                                                    task.generation.max_tokens})
    # The teacher only generates: its papers need no gold label (a pool paper may have no ratings).
    return task.model_copy(update={"task": f"distill-pool-{config.eval_task}", "label_rule": "none",
                                   "report_label_rules": [],
                                   "max_model_len": config.max_model_len or min(task.max_model_len, config.max_length),
                                   "generation": generation, "train": None,
                                   "dataset": DatasetSpec(name="jsonl", path=str((workdir / POOL_PAPERS).resolve())),
                                   "description": f"teacher prompts for distillation (prompt of {config.eval_task})"})


def _load(dataset_name: str, args: dict[str, Any], data_dir: str | None, where: str) -> list[Any]:
    dataset = get_dataset(dataset_name, data_dir)
    return dataset.load(dataset.parse_args(args, where), progress=True)


def _record(paper: Any) -> dict[str, Any]:
    """A paper in the JSONL dataset's format: text and labels only, never reviews."""
    return {"id": paper.id, "venue": paper.venue, "split": paper.split, "title": paper.title,
            "abstract": paper.abstract, "sections": [{"heading": s.heading, "text": s.text} for s in paper.sections],
            "accepted": paper.accepted, "recommendations": paper.recommendations}


def build_pool(workdir: Path, config: DistillConfig) -> dict[str, Any]:
    eval_task = load_task(config.eval_task)
    evaluation = _load(eval_task.dataset.name, eval_task.dataset.args(), config.data_dir, f"task {config.eval_task}")
    eval_keys = {p.key for p in evaluation} | {f"{p.venue}/{p.id}" for p in evaluation}
    eval_titles = {_norm_title(p.title) for p in evaluation if _norm_title(p.title)}
    candidates, per_source = [], {}
    for source in config.pool_sources:
        args = {k: v for k, v in source.items() if k != "dataset"}
        papers = _load(source["dataset"], args, config.data_dir if source["dataset"] == "peerread" else None,
                       f"distill setting pool_sources ({source['dataset']})")
        per_source[json.dumps(source, sort_keys=True)] = len(papers)
        candidates.extend(papers)
    overlap = [p.key for p in candidates if p.key in eval_keys or f"{p.venue}/{p.id}" in eval_keys
               or _norm_title(p.title) in eval_titles]
    if overlap:
        raise DataError(f"prompt pool overlaps the evaluation task {config.eval_task!r} on {len(overlap)} paper(s), "
                        f"first {overlap[0]}; change pool_sources")
    seen_titles: set[str] = set()
    unique = []
    for paper in sorted(candidates, key=lambda p: p.key):
        title = _norm_title(paper.title)
        if title and title in seen_titles:
            continue
        seen_titles.add(title)
        unique.append(paper)
    random.Random(config.pool_seed).shuffle(unique)
    chosen = sorted(unique[: config.pool_size], key=lambda p: p.key)
    tmp = workdir / (POOL_PAPERS + ".tmp")
    tmp.write_text("".join(json.dumps(_record(p), ensure_ascii=False) + "\n" for p in chosen))
    tmp.replace(workdir / POOL_PAPERS)
    pool = {"eval_task": config.eval_task, "sources": config.pool_sources, "per_source": per_source,
            "keys": [p.key for p in chosen], "candidates": len(candidates), "unique": len(unique),
            "requested": config.pool_size, "eval_papers_checked": len(evaluation)}
    (workdir / POOL_FILE).write_text(json.dumps(pool, indent=2))
    return pool


def read_pool(workdir: Path) -> dict[str, Any]:
    path = workdir / POOL_FILE
    if not path.is_file() or not (workdir / POOL_PAPERS).is_file():
        raise DataError(f"{path}: no prompt pool yet; run `peerbench distill prompts --workdir {workdir}` first")
    return json.loads(path.read_text())
