"""Stage 2, teacher: one review per pooled paper from any backend, as an ordinary peerbench run
(W/teacher/) with the prompts stored, so it resumes, caches and reports like every run."""

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
