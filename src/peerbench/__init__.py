"""peerbench: evaluate AI paper reviewers.

The public API, and everything a plugin needs: a plugin imports ``peerbench`` and nothing
below it, so the modules behind these names can move without breaking plugins. Importing it is
cheap (no pydantic, numpy, rich or click): classes and helpers that need them load on first use
through :func:`__getattr__`.
"""

from __future__ import annotations

import typing as _typing
from importlib import import_module as _import_module

__version__ = "0.1.0"

from peerbench.errors import BackendError, ConfigError, DataError, MissingDependency, PeerbenchError
from peerbench.hookspecs import hookimpl
from peerbench.records import ChatRequest, Completion, Decision, GenerationConfig, Paper, Sample, Section

if _typing.TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from pathlib import Path
    from typing import Any

    from peerbench.backends import Backend, BackendOptions, Failure, RetryPolicy, RunContext
    from peerbench.cli.common import friendly_errors
    from peerbench.datasets import Dataset
    from peerbench.labels import LabelRule, get_label_rule
    from peerbench.metrics import Metric, ScoreInputs
    from peerbench.metrics.review import ReviewInput, ReviewMeasure
    from peerbench.metrics.review_format import ReviewFormat
    from peerbench.parsing import decision_line, parse_decision
    from peerbench.pipeline.plan import RunResult
    from peerbench.pipeline.store import read_run
    from peerbench.presets import save_preset
    from peerbench.protocols import CallFailed, PaperPrompt, Protocol, ProtocolOptions, Review
    from peerbench.reporting.plots import figure_png, pyplot
    from peerbench.reporting.scoring import score_run, score_samples
    from peerbench.reporting.tables import render_comparison
    from peerbench.task import DatasetSpec, Task

# name -> the module that defines it, imported the first time the name is used.
_LAZY = {
    "Backend": "peerbench.backends", "BackendOptions": "peerbench.backends", "RunContext": "peerbench.backends",
    "Failure": "peerbench.backends", "RetryPolicy": "peerbench.backends",
    "Dataset": "peerbench.datasets",
    "DatasetSpec": "peerbench.task", "Task": "peerbench.task",
    "LabelRule": "peerbench.labels", "get_label_rule": "peerbench.labels",
    "Metric": "peerbench.metrics", "ScoreInputs": "peerbench.metrics",
    "ReviewInput": "peerbench.metrics.review", "ReviewMeasure": "peerbench.metrics.review",
    "ReviewFormat": "peerbench.metrics.review_format",
    "decision_line": "peerbench.parsing", "parse_decision": "peerbench.parsing",
    "RunResult": "peerbench.pipeline.plan",
    "read_run": "peerbench.pipeline.store",
    "score_run": "peerbench.reporting.scoring", "score_samples": "peerbench.reporting.scoring",
    "render_comparison": "peerbench.reporting.tables",
    "figure_png": "peerbench.reporting.plots", "pyplot": "peerbench.reporting.plots",
    "save_preset": "peerbench.presets",
    "Protocol": "peerbench.protocols", "ProtocolOptions": "peerbench.protocols", "PaperPrompt": "peerbench.protocols",
    "Review": "peerbench.protocols", "CallFailed": "peerbench.protocols",
    "friendly_errors": "peerbench.cli.common",
}

__all__ = [
    # records
    "ChatRequest", "Completion", "Decision", "GenerationConfig", "Paper", "RunResult", "Sample", "Section",
    # what plugins subclass or build
    "Backend", "BackendOptions", "Dataset", "DatasetSpec", "Failure", "LabelRule", "Metric", "RetryPolicy", "RunContext",
    "ReviewFormat", "ReviewInput", "ReviewMeasure", "ScoreInputs", "Task", "Protocol", "ProtocolOptions",
    "PaperPrompt", "Review", "CallFailed",
    # errors
    "BackendError", "ConfigError", "DataError", "MissingDependency", "PeerbenchError",
    # plugin system and registry lookups
    "get_backend", "get_dataset", "get_label_rule", "get_metric", "hookimpl", "list_backends", "list_datasets",
    "list_label_rules", "list_metrics", "list_models", "list_protocols", "list_tasks", "load_task",
    # running, reading and scoring
    "compare", "decision_line", "judge", "parse_decision", "read_run", "report", "run", "score_run", "score_samples",
    # output helpers for plugins' own commands
    "figure_png", "friendly_errors", "pyplot", "render_comparison", "save_preset",
    "__version__",
]


def run(task: str | Task = "peerread95", backend: str | None = None, model: str | None = None,
        **kwargs: Any) -> RunResult:
    """Run a task on a backend (default: baseline, or the one a model preset names); returns ``RunResult(run_dir, metrics, samples, config)``."""
    from peerbench.pipeline.execute import run as _run

    return _run(task, backend, model, **kwargs)


def judge(run_dir: str | Path, backend: str | None = None, model: str | None = None, **kwargs: Any) -> Any:
    """Grade a run's stored reviews with a judge backend (its own server, model and key; the reviewer
    is never asked): points against the human reviews, 1-5 aspects, and the judge's own checks.
    Returns ``JudgeResult(judge_dir, metrics, lines, config)``; see docs/judge.md."""
    from peerbench.judging.stage import judge as _judge

    return _judge(run_dir, backend, model, **kwargs)


def compare(run_dirs: list[str | Path], **kwargs: Any) -> dict[str, Any]:
    """Runs of one task side by side: metrics, paired bootstrap differences, McNemar, kappa, disagreements."""
    from peerbench.reporting.comparison import compare as _compare

    return _compare(run_dirs, **kwargs)


def report(run_dir: str | Path, *, html: str | Path | None = None, png_dir: str | Path | None = None,
           **kwargs: Any) -> dict[str, Any]:
    """Rescore a run directory; with ``html`` / ``png_dir``, also write the HTML page / the figures.
    A sweep folder with ``html``: its leaderboard page (returns the board's numbers)."""
    from peerbench.reporting.leaderboard import is_sweep_dir

    if is_sweep_dir(run_dir) and html is not None and png_dir is None:
        from peerbench.reporting.leaderboard import build_leaderboard

        return build_leaderboard(run_dir, html=html, **kwargs)
    if html is None and png_dir is None:
        from peerbench.reporting.scoring import rescore

        return rescore(run_dir, **kwargs)
    from peerbench.reporting.html import build_report

    return build_report(run_dir, html=html, png_dir=png_dir, **kwargs)


def load_task(name: str, include_paths: tuple[str | Path, ...] | list[str | Path] = ()) -> Task:
    """A registered task by name (or one from YAML files under ``include_paths``)."""
    from peerbench.task import load_task as _load

    return _load(name, include_paths)


def get_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    """A registered backend, built with its options validated (nothing is loaded until ``setup``)."""
    from peerbench.backends import create_backend

    return create_backend(name, model, options)


def get_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """A registered dataset; ``data_dir`` points it at an existing copy of its files."""
    return _entry("datasets", name).value(data_dir)


def get_metric(name: str) -> Metric:
    return _entry("metrics", name).value


def _entry(kind: str, name: str) -> Any:
    from peerbench.registry import registries

    return getattr(registries(), kind).get(name)


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


def list_protocols() -> list[str]:
    """Reviewer protocols: ``single``, ``self-consistency``, ``aiscientist`` and the plugins'."""
    return _names("protocols")


def list_models() -> list[str]:
    """Model presets: built-in, from plugins, and the user's own (``peerbench distill register``)."""
    return _names("models")


def __getattr__(name: str) -> Any:
    """Load a lazily exported name on first use, then keep it as an ordinary module attribute."""
    if name not in _LAZY:
        raise AttributeError(f"module 'peerbench' has no attribute {name!r}")
    value = getattr(_import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
