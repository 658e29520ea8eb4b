"""Other tools' formats, in and out: lm-evaluation-harness, Hugging Face datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def exported_selection(task_name: str, *, data_dir: str | Path | None = None, include_paths: Any = (),
                       max_model_len: int | None = None, limit: int | None = None) -> tuple[Any, list[Any], dict]:
    """(the plan, its papers, label rule name -> rule) of a task to export: planned as a run would be
    (no backend is involved, so a baseline stands in), and every paper checked for its gold label
    as `peerbench run` checks it, so that no exported paper lacks one."""
    from peerbench.labels import get_label_rule
    from peerbench.pipeline.execute import check_gold
    from peerbench.pipeline.plan import plan_run

    plan = plan_run(task_name, "baseline", "always-accept", include_paths=include_paths, data_dir=data_dir,
                    max_model_len=max_model_len, limit=limit)
    papers = plan.dataset.load(plan.dataset_args, progress=True)[:limit]
    check_gold(plan.task, papers)
    return plan, papers, {rule: get_label_rule(rule) for rule in plan.task.label_rules()}
