"""Stage 1, plan: resolve and validate everything a run needs before any work starts.

The plan fixes the run's identity: a hash of everything that reaches a request (the task's
fingerprint, the backend's identity, the generation settings, k samples, a probe), so that a run
directory made under another identity is never resumed silently.
"""

from __future__ import annotations

import datetime as dt
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peerbench.backends import Backend, create_backend
from peerbench.errors import ConfigError
from peerbench.labels import get_label_rule
from peerbench.pipeline.store import stable_hash
from peerbench.prompts import TRUNCATION_RULE
from peerbench.task import Task, load_task

RECORDED_PACKAGES = ("peerbench", "numpy", "scikit-learn", "pydantic", "httpx", "torch", "transformers", "vllm",
                     "peft", "openai", "google-genai")
SMALL_FILE_BYTES = 1 << 20        # config, tokenizer and index files are hashed whole
HEADER_BYTES = 1 << 16            # of a weights file, only the start (safetensors: its header) is hashed


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    samples: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunPlan:
    """Everything resolved and validated before any work starts."""

    task: Task
    backend: Backend
    dataset: Any
    dataset_args: Any
    limit: int | None
    run_dir: Path
    config: dict[str, Any]
    metric_objects: list[Any]
    samples_per_paper: int = 1
    paper_transform: Any = None  # a robustness probe's change to every paper (peerbench.pipeline.probes)
    task_args: dict[str, Any] = field(default_factory=dict)  # the task's selection before --split/--ids
    body_insert: Any = None  # a probe's text put into the kept body after truncation (peerbench.prompts.render)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name if "/" in text and Path(text).exists() else text)[:60]


def _package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> dict[str, Any] | None:
    """peerbench's own commit (and whether the checkout has uncommitted changes) when it runs from a
    source checkout, so a number can be traced to the exact code; None for an installed wheel."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": head, "dirty": bool(status.strip())}


def resolve_model(backend: str | None, model: str | None, options: dict[str, Any]) -> tuple[str, str | None, dict]:
    """A registered model preset names its backend, model path and options; flags still override."""
    from peerbench.registry import registries

    presets = registries().models
    if model and model in presets:
        preset = presets.get(model).value
        if backend and backend != preset["backend"]:
            others = preset.get("backends") or {}
            if backend not in others:
                allowed = ", ".join(sorted({preset["backend"], *others}))
                raise ConfigError(f"--model {model}: this preset runs on backend(s) {allowed}, not {backend!r}")
            return backend, preset["model"], {**others[backend], **options}
        return preset["backend"], preset["model"], {**preset["options"], **options}
    return backend or _backend_declaring(model), model, options


def _backend_declaring(model: str | None) -> str:
    """Without --backend, the one backend whose class declares ``model`` among its fixed models
    (baseline's always-accept, say); no built-in is a default."""
    from peerbench.registry import registries

    backends = registries().backends
    owners = [name for name in backends.names() if model in (getattr(backends.get(name).value, "models", None) or ())]
    if len(owners) == 1:
        return owners[0]
    what = f"--model {model} is declared by {', '.join(owners)}" if owners else (
        f"--model {model} is no preset and no backend's fixed model" if model else "no --model was given")
    raise ConfigError(f"--backend: required ({what}); see `peerbench backends` and `peerbench models`")


def choices_of(task: Task) -> dict[str, Any]:
    """The choices that decide a number but that the reference's card does not state, by name."""
    template = task.prompt_template()
    return {"prompt": template.name, "template_syntax": template.syntax, "parser": task.parser,
            "unparsed": task.unparsed, "body": template.body_rule, "truncation": TRUNCATION_RULE}


def _task_with_overrides(task: str | Task, include_paths: Sequence[str | Path], max_model_len: int | None,
                         generation: dict[str, Any] | None) -> Task:
    task_obj = task if isinstance(task, Task) else load_task(task, include_paths)
    changes: dict[str, Any] = {}
    if max_model_len is not None:
        changes["max_model_len"] = max_model_len
    if generation:
        changes["generation"] = _validated_generation(task_obj, generation)
    task_obj = task_obj.with_overrides(**changes)
    for rule in task_obj.label_rules():
        get_label_rule(rule)
    return task_obj


def _validated_generation(task: Task, overrides: dict[str, Any]) -> Any:
    """The task's generation settings with the run's overrides, validated like a task file's (a
    temperature of -5 or a top_p of 7 from a sweep file never reaches a server)."""
    from pydantic import ValidationError

    from peerbench.errors import first_problem
    from peerbench.task import GenerationSpec

    merged = {**task.generation.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return GenerationSpec(**merged)
    except ValidationError as exc:
        field, message, _ = first_problem(exc)
        raise ConfigError(f"generation.{field}: {message}") from None


def _dataset_and_args(task: Task, data_dir: str | Path | None, split: Sequence[str] | None,
                      ids: Sequence[str] | None) -> tuple[Any, dict[str, Any], Any]:
    """The task's dataset plugin, the task's own selection, and the run's: narrowed by --split and --ids."""
    from peerbench.registry import registries

    dataset = registries().datasets.get(task.dataset.name).value(data_dir)
    task_args = task.dataset.args()
    if "base_dir" in dataset.Args.model_fields and task.source:
        task_args.setdefault("base_dir", str(Path(task.source).parent))  # relative paths start at the task file
    raw_args = dict(task_args)
    if ids is not None and not ids:
        raise ConfigError("--ids: names no paper id; leave it out for every paper")
    if split:
        raw_args["splits"] = list(split)
    if ids:
        raw_args["ids"] = list(ids)
    return dataset, task_args, dataset.parse_args(raw_args, f"task {task.task}")


def local_weights(backend: Backend) -> dict[str, str]:
    """A fingerprint of every local file or folder the backend's model and options name (weights, a
    LoRA adapter): a student retrained at the same path is another run, never the old one's answers."""
    candidates = [backend.model, *(v for v in backend.options.model_dump().values() if isinstance(v, str))]
    return {value: path_fingerprint(Path(value)) for value in candidates
            if value and len(value) < 4096 and Path(value).exists()}


def path_fingerprint(path: Path) -> str:
    """Cheap but content-aware: each file's name, size and mtime, small files hashed whole, large
    ones by their first 64 KiB (a safetensors header lists every tensor's name, shape and offset)."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path) if file != path else file.name}|{stat.st_size}|"
                      f"{stat.st_mtime_ns}|".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(SMALL_FILE_BYTES if stat.st_size <= SMALL_FILE_BYTES else HEADER_BYTES))
    return digest.hexdigest()[:16]


def run_identity(task: Task, fingerprint: str, backend: Backend, samples: int, probe: dict[str, Any] | None,
                 weights: dict[str, str] | None = None) -> str:
    """The hash of everything that reaches a request; two runs share a directory only if it matches."""
    parts: dict[str, Any] = {"task": fingerprint, "backend": backend.identity(),
                             "generation": task.generation_config().to_dict()}
    if weights:
        parts["weights"] = weights
    if samples > 1:
        parts["samples_per_paper"] = samples
    if probe:
        parts["probe"] = probe
    return stable_hash(parts)[:10]


def plan_run(task: str | Task, backend: str | None = None, model: str | None = None, *,
             backend_options: dict[str, Any] | None = None, include_paths: Sequence[str | Path] = (),
             out: str | Path | None = None, limit: int | None = None, ids: Sequence[str] | None = None,
             split: Sequence[str] | None = None, data_dir: str | Path | None = None,
             metrics: Sequence[str] | None = None, max_model_len: int | None = None,
             generation: dict[str, Any] | None = None, samples: int = 1, store_prompts: bool = False,
             paper_transform: Any = None, probe: dict[str, Any] | None = None, body_insert: Any = None) -> RunPlan:
    """Resolve task, backend, dataset and metrics, validating every option; nothing is loaded or sent."""
    from peerbench.registry import registries

    task_obj = _task_with_overrides(task, include_paths, max_model_len, generation)
    regs = registries()
    metric_names = list(metrics or task_obj.metrics or regs.metrics.names())
    metric_objects = [regs.metrics.get(name).value for name in metric_names]
    if limit is not None and limit <= 0:
        raise ConfigError(f"--limit: must be a positive number, got {limit}")
    if samples < 1:
        raise ConfigError(f"--samples: must be at least 1, got {samples}")
    backend_name, model, options = resolve_model(backend, model, dict(backend_options or {}))
    backend_obj = create_backend(backend_name, model, options)
    dataset, task_args, dataset_args = _dataset_and_args(task_obj, data_dir, split, ids)
    fingerprint = task_obj.fingerprint()  # resolves the prompt template: done once per run
    weights = local_weights(backend_obj)
    identity = run_identity(task_obj, fingerprint, backend_obj, samples, probe, weights)
    config = _config(task_obj, fingerprint, backend_obj, dataset_args, identity, metric_names,
                     {"samples_per_paper": samples, "store_prompts": store_prompts, "probe": probe, "limit": limit,
                      "weights": weights, "data_dir": str(dataset.data_dir) if dataset.data_dir else None})
    if out is None:
        out = Path("peerbench-runs") / f"{task_obj.task}__{backend_obj.name}__{_slug(backend_obj.model)}__{identity}"
    return RunPlan(task_obj, backend_obj, dataset, dataset_args, limit, Path(out), config, metric_objects, samples,
                   paper_transform, task_args, body_insert)


def _config(task: Task, fingerprint: str, backend: Backend, dataset_args: Any, identity: str, metric_names: list[str],
            run_settings: dict[str, Any]) -> dict[str, Any]:
    """config.json: what the run is, every choice behind its numbers, and the software; no secrets."""
    from peerbench import __version__

    return {
        "peerbench_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_identity": identity,
        "task": task.task,
        "task_version": task.version,
        "task_fingerprint": fingerprint,
        "task_definition": task.model_dump(mode="json"),
        "dataset": {"name": task.dataset.name, **dataset_args.model_dump(mode="json")},
        "label_rules": task.label_rules(),
        "primary_label_rule": task.label_rule,
        "choices": choices_of(task),
        **backend.describe(),
        "generation": task.generation_config().to_dict(),
        "max_model_len": task.max_model_len,
        **run_settings,
        "metrics": metric_names,
        "python": platform.python_version(),
        "packages": _package_versions(),
        "peerbench_git": git_revision(),
    }
