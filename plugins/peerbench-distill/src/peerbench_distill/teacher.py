"""Stage 2, teacher: one review per pooled paper from any backend, as an ordinary peerbench run
(W/teacher/) with the prompts stored, so it resumes, caches and reports like every run.

A reply the teacher did not finish (cut at its output cap, stopped for recitation or safety) is a
failed paper with its reason, not a review: it is never cached, a rerun of the stage asks for it
again, and the filter never sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peerbench_distill.config import DistillConfig
from peerbench_distill.pool import pool_task, read_pool

TEACHER_DIR = "teacher"


def run_teacher(workdir: Path, config: DistillConfig, *, progress: bool = True) -> Any:
    import peerbench

    read_pool(workdir)
    task = pool_task(config, workdir)
    return peerbench.run(task, config.teacher_backend, config.teacher_model, out=workdir / TEACHER_DIR,
                         backend_options=dict(config.teacher_options), data_dir=config.data_dir,
                         generation={"temperature": config.teacher_temperature}, concurrency=config.teacher_concurrency,
                         store_prompts=True, progress=progress, resamples=200)


def teacher_summary(result: Any, config: DistillConfig) -> str:
    """One line: reviews, failures and the most common reason, tokens (thinking is billed) and cost."""
    metrics = result.metrics
    common = (metrics.get("failures") or {}).get("most_common") or []
    why = f"; {common[0]['papers']} of them: {common[0]['error']}" if common else ""
    line = (f"teacher: {len(result.samples)} reviews from {config.teacher_backend}:{config.teacher_model} "
            f"({metrics['n_failed']} failed{why}) in {result.run_dir}")
    tokens = metrics.get("tokens") or {}
    line += (f"; tokens: prompt {tokens.get('prompt', 0)}, review {tokens.get('completion', 0)}, "
             f"thinking {tokens.get('thinking', 0)}")
    if metrics.get("cost_usd") is not None:
        line += f"; estimated cost ${metrics['cost_usd']:.2f}"
    return line
