"""peerbench: evaluate AI paper reviewers.

The public API. Importing it is cheap: heavy libraries load only when the plugin that needs
them runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from peerbench.hookspecs import hookimpl
from peerbench.records import ChatRequest, Completion, Decision, GenerationConfig, Paper, Sample, Section

if TYPE_CHECKING:
    from peerbench.backends import Backend
    from peerbench.pipeline.plan import RunResult
    from peerbench.task import Task

__all__ = [
    "Backend", "BackendOptions", "ChatRequest", "Completion", "Decision", "GenerationConfig", "Metric",
    "Paper", "RunContext", "RunResult", "Sample", "Section", "Task", "__version__", "compare", "get_backend",
    "hookimpl", "list_backends", "list_datasets", "list_label_rules", "list_metrics", "list_tasks", "load_task", "run",
]

def run(task: str = "peerread95", backend: str | None = None, model: str | None = None,
        **kwargs: Any) -> RunResult:
    """Run a task on a backend (default: baseline, or the one a model preset names); returns ``RunResult(run_dir, metrics, samples, config)``."""
    from peerbench.pipeline.execute import run as _run

    return _run(task, backend, model, **kwargs)


def compare(run_dirs: list[str | Path], **kwargs: Any) -> dict[str, Any]:
    """Runs of one task side by side: metrics, paired bootstrap differences, McNemar, kappa, disagreements."""
    from peerbench.reporting.comparison import compare as _compare

    return _compare(run_dirs, **kwargs)


def report(run_dir: str | Path, *, html: str | Path | None = None, png_dir: str | Path | None = None,
           **kwargs: Any) -> dict[str, Any]:
    """Rescore a run directory; with ``html`` / ``png_dir``, also write the HTML page / the figures."""
    if html is None and png_dir is None:
        from peerbench.reporting.scoring import rescore

        return rescore(run_dir, **kwargs)
    from peerbench.reporting.html import build_report

    return build_report(run_dir, html=html, png_dir=png_dir, **kwargs)


def load_task(name: str, include_paths=()) -> Task:
    from peerbench.task import load_task as _load

    return _load(name, include_paths)


def get_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    from peerbench.backends import create_backend

    return create_backend(name, model, options)


def _names(kind: str) -> list[str]:
    from peerbench.registry import registries

    return getattr(registries(), kind).names()


def list_backends() -> list[str]:
    return _names("backends")


def list_tasks() -> list[str]:
    return _names("tasks")


def list_metrics() -> list[str]:
    return _names("metrics")


def list_datasets() -> list[str]:
    return _names("datasets")


def list_label_rules() -> list[str]:
    return _names("label_rules")


def __getattr__(name: str) -> Any:
    """Classes a plugin author subclasses, loaded on first use."""
    if name in ("Backend", "BackendOptions", "RunContext"):
        import peerbench.backends as module
    elif name == "Metric":
        import peerbench.metrics as module
    elif name == "Task":
        import peerbench.task as module
    elif name == "RunResult":
        import peerbench.pipeline.plan as module
    else:
        raise AttributeError(f"module 'peerbench' has no attribute {name!r}")
    return getattr(module, name)
