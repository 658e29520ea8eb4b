"""`peerbench sweep`: models x tasks (x seeds), each pair one ordinary run directory.

peerbench grows no scheduler of its own. ``--executor local`` runs the runs in this process: a
few at a time for backends that declare they hold no model here (``Backend.in_process`` False:
HTTP backends, baselines), one after another for the rest; ``--executor ray`` makes each run a Ray
task reserving the GPUs its backend declares (``Backend.gpus()``) on a local or remote Ray cluster.
This module names no backend: everything it knows about one comes from those declared facts.
Either way a run writes to the sweep folder as it goes, so a run whose worker dies is retried and
resumes from its samples.jsonl, and a finished run is skipped on the next call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from peerbench.errors import ConfigError, first_problem, mask_secrets, scrub
from peerbench.pipeline.store import write_file
from peerbench.yaml_files import load_yaml

DONE_FILE = "done.json"
SUMMARY_METRICS = ("f1", "accuracy", "balanced_accuracy", "mcc", "pred_accept_rate", "auroc")


class SweepModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    backend: str
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    generation: dict[str, Any] = Field(default_factory=dict)
    samples: int = Field(1, ge=1)
    protocol: str = "single"  # a reviewer protocol (docs/protocols.md) and its options
    protocol_options: dict[str, Any] = Field(default_factory=dict)
    gpus: float | None = Field(None, ge=0, description="GPUs per run on Ray (default: from the backend)")

    def label(self) -> str:
        return self.name or f"{self.backend}-{Path(self.model).name if self.model else 'default'}"


class SweepJudge(BaseModel):
    """A judge that grades every run of the sweep once it is done (peerbench.judging)."""

    model_config = ConfigDict(extra="forbid")
    backend: str
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    rubric: str = Field("all", pattern="^(points|aspects|all)$")
    agreement: int = Field(10, ge=0)
    generation: dict[str, Any] = Field(default_factory=dict)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "sweep"
    judge: SweepJudge | None = None
    models: list[SweepModel] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    seeds: list[Annotated[int, Field(ge=0, le=2**63 - 1)] | None] = Field(default_factory=lambda: [None])
    data_dir: str | None = None
    limit: int | None = Field(None, ge=1)
    max_model_len: int | None = None
    include_paths: list[str] = Field(default_factory=list)


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the sweep file ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with 'models' and 'tasks'")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        field, message, _ = first_problem(exc)
        raise ConfigError(f"{path}: field {field!r}: {message}") from None


def run_entries(spec: SweepSpec, root: Path) -> list[dict[str, Any]]:
    """One entry per (model, task, seed): everything a worker needs to do the run, as plain data."""
    labels = [m.label() for m in spec.models]
    if len(set(labels)) != len(labels):
        raise ConfigError("sweep models need distinct names (give each a 'name')")
    entries = []
    for model in spec.models:
        for task in spec.tasks:
            for seed in spec.seeds:
                name = f"{task}__{model.label()}" + (f"__seed{seed}" if seed is not None else "")
                generation = {**model.generation, **({"seed": seed} if seed is not None else {})}
                entries.append({"name": name, "task": task, "backend": model.backend, "model": model.model,
                                "options": model.options, "generation": generation, "samples": model.samples,
                                "protocol": model.protocol, "protocol_options": model.protocol_options,
                                "gpus": model.gpus, "out": str(root / name), "data_dir": spec.data_dir,
                                "limit": spec.limit, "max_model_len": spec.max_model_len,
                                "include_paths": [str(Path(p).resolve()) for p in spec.include_paths],
                                "judge": spec.judge.model_dump() if spec.judge else None})
    return entries


def is_done(entry: dict[str, Any]) -> bool:
    """Done: the run is complete, and so is its judgement where the sweep names a judge."""
    path = Path(entry["out"]) / DONE_FILE
    return path.is_file() and (not entry.get("judge") or "judge" in json.loads(path.read_text()))


def plan_entry(entry: dict[str, Any]) -> Any:
    """The run an entry stands for, every setting validated (peerbench.pipeline.execute.plan_run)."""
    from peerbench.pipeline.plan import plan_run

    return plan_run(entry["task"], entry["backend"], entry["model"], backend_options=entry["options"],
                    out=entry["out"], data_dir=entry["data_dir"], limit=entry["limit"],
                    max_model_len=entry["max_model_len"], include_paths=entry["include_paths"],
                    generation=entry["generation"] or None, samples=entry["samples"],
                    protocol=entry.get("protocol"), protocol_options=entry.get("protocol_options"))


def planned(entry: dict[str, Any], spec_path: str | Path) -> Any:
    """plan_entry, with a refusal naming the sweep file and the entry (model x task) it came from."""
    from peerbench.errors import PeerbenchError

    try:
        return plan_entry(entry)
    except PeerbenchError as exc:
        message = str(exc).removeprefix("--backend-arg ")
        raise ConfigError(f"{spec_path}: run {entry['name']} (backend {entry['backend']}, task {entry['task']}): "
                        f"{message}") from None


def execute_entry(entry: dict[str, Any], progress: bool = False) -> dict[str, Any]:
    """Do (or resume) one run and mark it done; returns its summary. Runs in a worker on Ray."""
    import os

    from peerbench.pipeline.execute import execute

    Path(entry["out"]).mkdir(parents=True, exist_ok=True)
    (Path(entry["out"]) / "worker.pid").write_text(str(os.getpid()))
    result = execute(plan_entry(entry), progress=progress, resamples=200)
    summary = summarize(entry, result.metrics)
    if entry.get("judge"):
        from peerbench.judging.in_sweep import judge_entry

        summary = judge_entry(entry, summary, progress=progress)
    if summary["complete"]:  # an incomplete run is not done: the next sweep resumes it
        write_file(Path(entry["out"]) / DONE_FILE, json.dumps(mask_secrets(summary), indent=2))
    return summary


def summarize(entry: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    rule = metrics["primary_label_rule"]
    overall = (metrics["label_rules"].get(rule) or {}).get("overall") or {}
    values = {k: v["value"] for k, v in (overall.get("metrics") or {}).items() if k in SUMMARY_METRICS}
    return {"name": entry["name"], "task": entry["task"], "backend": entry["backend"], "model": entry["model"],
            "run_dir": entry["out"], "label_rule": rule, "n": overall.get("n"), "n_failed": metrics.get("n_failed"),
            "complete": metrics.get("complete", True),
            "metrics": values}


def failed(entry: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The summary of a run that raised: its name and the reason, on one line."""
    return {"name": entry["name"], "task": entry["task"], "run_dir": entry["out"],
            "error": scrub(" ".join(str(exc).split()))[:300]}


def with_facts(entry: dict[str, Any], backend: Any) -> dict[str, Any]:
    """The entry plus what the executors need from its backend's declared facts: whether it holds
    its model in this process, and the GPUs a run needs (a model entry's ``gpus:`` overrides)."""
    gpus = entry["gpus"] if entry["gpus"] is not None else backend.gpus()
    return {**entry, "in_process": bool(backend.in_process), "num_gpus": float(gpus)}


def run_local(entries: list[dict[str, Any]], *, max_parallel: int, on_done: Callable[[dict], None]) -> None:
    def one(entry: dict[str, Any]) -> None:
        try:
            on_done(execute_entry(entry))
        except Exception as exc:  # one failed run must not stop the sweep
            on_done(failed(entry, exc))

    # Only runs that wait on I/O gain from overlapping; models held in this process run one at a time.
    parallel = [e for e in entries if not e["in_process"]]
    serial = [e for e in entries if e["in_process"]]
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        list(pool.map(one, parallel))
    for entry in serial:
        one(entry)


def run_ray(entries: list[dict[str, Any]], *, address: str | None, max_retries: int,
            on_done: Callable[[dict], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'peerbench[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    remote = ray.remote(execute_entry)
    pending = {}
    for entry in entries:
        gpus = entry["num_gpus"]
        if gpus and not cluster_gpus:
            gpus = 0.0  # a CPU-only cluster may still run it on CPU; the backend's own check says if not
        ref = remote.options(num_gpus=gpus, num_cpus=1, max_retries=max_retries, retry_exceptions=False,
                             name=entry["name"]).remote(entry)
        pending[ref] = entry
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        entry = pending.pop(done[0])
        try:
            on_done(ray.get(done[0]))
        except Exception as exc:  # the run failed even after its retries
            on_done(failed(entry, exc))


def sweep(spec_path: str | Path, *, out: str | Path | None = None, executor: str = "local",
          address: str | None = None, max_parallel: int = 4, max_retries: int = 3,
          progress: bool = True) -> dict[str, Any]:
    """Run every (model, task, seed) of the sweep file that is not done yet; returns the summary."""
    from peerbench.progress import progress_bar

    spec = load_spec(spec_path)
    root = Path(out) if out is not None else Path("peerbench-sweeps") / spec.name
    root.mkdir(parents=True, exist_ok=True)
    # Validate every run before starting any; its plan's backend declares what the executors need.
    entries = [with_facts(entry, planned(entry, spec_path).backend) for entry in run_entries(spec, root)]
    if spec.judge is not None:
        from peerbench.judging.in_sweep import check_judge

        check_judge(spec.judge.model_dump(), spec_path)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for entry in entries:
        if is_done(entry):
            results[entry["name"]] = {**json.loads((Path(entry["out"]) / DONE_FILE).read_text()), "skipped": True}
        else:
            todo.append(entry)
    started = time.perf_counter()
    with progress_bar(f"sweep {spec.name} ({executor})", total=len(entries), enabled=progress, unit="runs") as advance:
        advance(len(entries) - len(todo))

        def on_done(summary: dict[str, Any]) -> None:
            results[summary["name"]] = summary
            advance(1)

        if executor == "ray":
            run_ray(todo, address=address, max_retries=max_retries, on_done=on_done)
        elif executor == "local":
            run_local(todo, max_parallel=max_parallel, on_done=on_done)
        else:
            raise ConfigError(f"--executor {executor}: choose local or ray")
    summary = {"name": spec.name, "executor": executor, "sweep_dir": str(root),
               "wall_s": round(time.perf_counter() - started, 3),
               "runs": [results[e["name"]] for e in entries]}
    write_file(root / "sweep.json", json.dumps(mask_secrets(summary), indent=2))
    return summary
