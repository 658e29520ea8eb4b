"""A sweep's judge: its entry validated before any run starts, and each finished run judged
(pipeline.sweep calls these; the judge itself is peerbench.judging.stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError


def check_judge(spec: dict[str, Any], where: str | Path) -> None:
    """A sweep's judge entry, validated before any run starts (its backend and options)."""
    from peerbench.backends import create_backend
    from peerbench.errors import PeerbenchError
    from peerbench.pipeline.plan import resolve_model

    try:
        create_backend(*resolve_model(spec["backend"], spec["model"], dict(spec["options"])))
    except PeerbenchError as exc:
        raise ConfigError(f"{where}: judge (backend {spec['backend']}): {exc}") from None


def judge_entry(entry: dict[str, Any], summary: dict[str, Any], *, progress: bool = False) -> dict[str, Any]:
    """A sweep run's summary after its judge has graded it; the run is complete only with its judgement."""
    from peerbench.judging.stage import judge

    spec = entry["judge"]
    if not summary["complete"]:
        return summary  # judged once its own answers are all in (the next sweep)
    result = judge(entry["out"], spec["backend"], spec["model"], backend_options=dict(spec["options"]),
                   rubric=spec["rubric"], agreement=spec["agreement"], generation=spec["generation"] or None,
                   data_dir=entry["data_dir"], progress=progress, resamples=200)
    metrics = result.metrics
    figures = {name: entry_["value"] for part in ("points", "aspects") for name, entry_ in
               ((metrics.get(part) or {}).get("measures") or {}).items()}
    return {**summary, "complete": metrics["complete"],
            "judge": {"judge_id": metrics["judge"]["judge_id"], "complete": metrics["complete"],
                      "flags": metrics["flags"], "figures": figures}}
