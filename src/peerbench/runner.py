"""The loop of one run: papers -> prompts -> backend -> parse -> samples.jsonl -> metrics.json.

Everything the user can get wrong is checked before the first request; every answer is stored
the moment it arrives, so a killed run resumes with the same command and redoes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import platform
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peerbench.backends import Backend, RunContext, create_backend
from peerbench.errors import BackendError, ConfigError, DataError
from peerbench.labels import get_label_rule
from peerbench.parsing import DEFAULT_PARSER, parse_decision
from peerbench.prompts import BODY_RULE, TRUNCATION_RULE, render
from peerbench.records import ChatRequest, Completion, Decision, Paper
from peerbench.sampling import combine_generations
from peerbench.scoring import is_answered
from peerbench.store import RunDir, ResponseCache, stable_hash
from peerbench.task import Task, load_task

EARLY_STOP_FAILURES = 8


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
    paper_transform: Any = None  # a robustness probe's change to every paper (peerbench.probes)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name if "/" in text and Path(text).exists() else text)[:60]


def _package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for name in ("peerbench", "numpy", "scikit-learn", "pydantic", "httpx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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
    return backend or "baseline", model, options


def plan_run(task: str | Task, backend: str | None = None, model: str | None = None, *,
             backend_options: dict[str, Any] | None = None, include_paths: Sequence[str | Path] = (),
             out: str | Path | None = None, limit: int | None = None, ids: Sequence[str] | None = None,
             split: Sequence[str] | None = None, data_dir: str | Path | None = None,
             metrics: Sequence[str] | None = None, max_model_len: int | None = None,
             generation: dict[str, Any] | None = None, samples: int = 1, store_prompts: bool = False,
             paper_transform: Any = None, probe: dict[str, Any] | None = None) -> RunPlan:
    from peerbench.registry import registries

    regs = registries()
    task_obj = task if isinstance(task, Task) else load_task(task, include_paths)
    changes: dict[str, Any] = {}
    if max_model_len is not None:
        changes["max_model_len"] = max_model_len
    if generation:
        changes["generation"] = task_obj.generation.model_copy(update={k: v for k, v in generation.items()
                                                                       if v is not None})
    task_obj = task_obj.with_overrides(**changes)
    for rule in task_obj.label_rules():
        get_label_rule(rule)
    metric_names = list(metrics or task_obj.metrics or regs.metrics.names())
    metric_objects = [regs.metrics.get(name).value for name in metric_names]
    if limit is not None and limit <= 0:
        raise ConfigError(f"--limit: must be a positive number, got {limit}")
    if samples < 1:
        raise ConfigError(f"--samples: must be at least 1, got {samples}")

    backend_name, model, options = resolve_model(backend, model, dict(backend_options or {}))
    backend_obj = create_backend(backend_name, model, options)

    dataset_entry = regs.datasets.get(task_obj.dataset.name)
    dataset = dataset_entry.value(data_dir)
    raw_args = task_obj.dataset.args()
    if "base_dir" in getattr(dataset, "Args").model_fields and task_obj.source:
        raw_args.setdefault("base_dir", str(Path(task_obj.source).parent))  # relative paths start at the task file
    if split:
        raw_args["splits"] = list(split)
    if ids:
        raw_args["ids"] = list(ids)
    dataset_args = dataset.parse_args(raw_args, f"task {task_obj.task}")

    generation_config = task_obj.generation_config()
    identity_parts = {"task": task_obj.fingerprint(), "backend": backend_obj.identity(),
                      "generation": generation_config.to_dict()}
    if samples > 1:
        identity_parts["samples_per_paper"] = samples
    if probe:
        identity_parts["probe"] = probe
    identity = stable_hash(identity_parts)[:10]
    from peerbench import __version__

    config = {
        "peerbench_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_identity": identity,
        "task": task_obj.task,
        "task_version": task_obj.version,
        "task_fingerprint": task_obj.fingerprint(),
        "task_definition": task_obj.model_dump(mode="json"),
        "dataset": {"name": task_obj.dataset.name, **dataset_args.model_dump(mode="json")},
        "label_rules": task_obj.label_rules(),
        "primary_label_rule": task_obj.label_rule,
        "choices": choices_of(task_obj),
        **backend_obj.describe(),
        "generation": generation_config.to_dict(),
        "max_model_len": task_obj.max_model_len,
        "samples_per_paper": samples,
        "store_prompts": store_prompts,
        "probe": probe,
        "limit": limit,
        "metrics": metric_names,
        "python": platform.python_version(),
        "packages": _package_versions(),
    }
    if out is None:
        out = Path("peerbench-runs") / f"{task_obj.task}__{backend_obj.name}__{_slug(backend_obj.model)}__{identity}"
    return RunPlan(task_obj, backend_obj, dataset, dataset_args, limit, Path(out), config, metric_objects, samples,
                   paper_transform)


def choices_of(task: Task) -> dict[str, Any]:
    """The choices that decide a number but that the reference's card does not state, by name."""
    template = task.prompt_template()
    return {"prompt": template.name, "template_syntax": template.syntax, "parser": task.parser,
            "unparsed": task.unparsed, "body": BODY_RULE, "truncation": TRUNCATION_RULE}


def build_sample(paper: Paper, golds: dict[str, bool | None], prompt_hash: str,
                 truncation: dict[str, Any], completion: Completion, latency: float, cached: bool,
                 parser: str = DEFAULT_PARSER) -> dict[str, Any]:
    decision = Decision.FAILED if completion.error else parse_decision(completion.text, parser)
    return {
        "id": paper.key, "paper_id": paper.id, "venue": paper.venue, "split": paper.split, "title": paper.title,
        "gold": golds, "accepted": paper.accepted, "mean_recommendation": paper.mean_recommendation,
        "prompt_hash": prompt_hash, "truncation": truncation,
        "completion": completion.text, "decision": decision.value, "p_accept": completion.p_accept,
        "error": completion.error, "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
        "latency_s": round(latency, 6), "cached": cached,
        **({"extra": completion.extra} if completion.extra else {}),
    }


@dataclass
class _Item:
    """One request to send: a paper's prompt, and which of its k generations this is."""

    paper: Paper
    request: ChatRequest
    rendered: Any
    golds: dict[str, bool | None]
    key: str
    prompt_hash: str
    index: int = 0


def _prepare(plan: RunPlan, papers: list[Paper], counter: Any, rules: dict[str, Any]) -> list[_Item]:
    """Render every prompt (token-aware when the backend counts) and key it for the cache."""
    task, backend = plan.task, plan.backend
    template = task.prompt_template()
    generation = task.generation_config()
    described = backend.identity()
    k = plan.samples_per_paper
    prepared = []
    for paper in papers:
        rendered = render(paper, template, max_model_len=task.max_model_len, max_tokens=generation.max_tokens,
                          count_tokens=counter)
        golds = {name: rule.label(paper) for name, rule in rules.items()}
        # Hashed here, not as each reply lands: on a 50 KB prompt that is CPU the reply path can spare.
        prompt_hash = stable_hash(rendered.messages)[:16]
        for index in range(k):
            # Each of k generations gets its own seed, so they differ and each has its own cache entry.
            config = generation if k == 1 else dataclasses.replace(generation, seed=(generation.seed or 0) + index)
            request = ChatRequest(paper.key, rendered.messages, config, logprobs=backend.supports_logprobs,
                                  meta={"paper_id": paper.id, "venue": paper.venue, "sample_index": index},
                                  paper=paper)
            key = stable_hash({"backend": described, "generation": config.to_dict(), "messages": rendered.messages})
            prepared.append(_Item(paper, request, rendered, golds, key, prompt_hash, index))
    return prepared


async def _generate_all(plan: RunPlan, papers: list[Paper], run_dir: RunDir, *, concurrency: int | None,
                        use_cache: bool, progress: bool, selection: Sequence[Paper] = ()) -> list[dict[str, Any]]:
    from peerbench.paths import cache_root
    from peerbench.progress import progress_bar

    task, backend = plan.task, plan.backend
    template = task.prompt_template()
    generation = task.generation_config()
    rules = {name: get_label_rule(name) for name in task.label_rules()}

    def user_text(paper: Paper) -> str:
        rendered = render(paper, template, max_model_len=task.max_model_len,
                          max_tokens=generation.max_tokens, count_tokens=None)
        return rendered.messages[-1]["content"]

    def load_train() -> list[Paper]:
        if task.train is None:
            raise ConfigError(f"task {task.task!r} declares no train split, which backend {backend.name!r} needs")
        raw = {**task.dataset.args(), **task.train}
        raw.pop("ids", None)
        args = plan.dataset.parse_args(raw, f"task {task.task} train")
        return plan.dataset.load(args, progress=progress)

    try:
        await backend.setup(RunContext(task, load_train, rules[task.label_rule].label, user_text,
                                       selection or papers))
        prepared = _prepare(plan, papers, backend.token_counter(), rules)
    except BaseException:
        await backend.aclose()  # a half-set-up backend may hold connections or an engine
        raise
    cache = ResponseCache(cache_root() / "responses.sqlite") if (use_cache and backend.cacheable) else None
    new_samples: list[dict[str, Any]] = []
    failures = successes = 0

    semaphore = asyncio.Semaphore(max(1, concurrency or backend.max_concurrency))
    try:
        with progress_bar(f"{task.task} · {backend.name}", total=len(prepared), enabled=progress) as advance:
            k = plan.samples_per_paper
            partial: dict[str, list[tuple[int, Completion, float, bool]]] = {}

            def store(item: _Item, completion: Completion, latency: float, cached: bool) -> None:
                nonlocal failures, successes
                if cache is not None and not cached and not completion.error:
                    cache.put(item.key, completion.to_dict())
                advance(1)
                if k > 1:
                    got = partial.setdefault(item.paper.key, [])
                    got.append((item.index, completion, latency, cached))
                    if len(got) < k:
                        return
                    got.sort(key=lambda entry: entry[0])
                    completion = combine_generations([entry[1] for entry in got], task.parser)
                    latency = sum(entry[2] for entry in got) / k
                    cached = all(entry[3] for entry in got)
                    del partial[item.paper.key]
                sample = build_sample(item.paper, item.golds, item.prompt_hash, item.rendered.truncation, completion,
                                      latency, cached, task.parser)
                if plan.config.get("store_prompts"):
                    sample["messages"] = item.request.messages
                run_dir.append(sample)
                new_samples.append(sample)
                if completion.error:
                    failures += 1
                else:
                    successes += 1
                if successes == 0 and failures >= min(EARLY_STOP_FAILURES, len(prepared) // k):
                    raise BackendError(f"every request failed so far ({failures}); first error: "
                                       f"{new_samples[0]['error']}")

            pending = []
            for item in prepared:
                hit = cache.get(item.key) if cache is not None else None
                if hit is not None:
                    store(item, Completion.from_dict(hit), 0.0, True)
                else:
                    pending.append(item)

            async def run_batch(batch) -> None:
                async with semaphore:
                    started = time.perf_counter()
                    completions = await backend.generate([item.request for item in batch])
                    latency = (time.perf_counter() - started) / max(1, len(batch))
                if len(completions) != len(batch):
                    raise BackendError(f"backend {backend.name!r} returned {len(completions)} completions "
                                       f"for {len(batch)} requests")
                for item, completion in zip(batch, completions):
                    store(item, completion, latency, False)

            size = max(1, backend.batch_size)
            batches = [pending[i:i + size] for i in range(0, len(pending), size)]
            tasks = [asyncio.ensure_future(run_batch(b)) for b in batches]
            try:
                for finished in asyncio.as_completed(tasks):
                    await finished
            finally:
                for t in tasks:
                    t.cancel()
    finally:
        if cache is not None:
            cache.close()
        await backend.aclose()
    return new_samples


def execute(plan: RunPlan, *, concurrency: int | None = None, use_cache: bool = True, progress: bool = True,
            resamples: int = 1000, seed: int = 0, retry_failed: bool = True) -> RunResult:
    """Generate what the run directory lacks, failed papers included, then score.

    A failed request is not an answer, so a plain rerun of the same command requests exactly the
    papers that have none (``retry_failed`` is kept for callers of the old flag; it changes nothing).
    """
    task_papers = load_papers(plan, progress=progress)
    papers = task_papers[: plan.limit] if plan.limit is not None else task_papers
    check_gold(plan.task, papers)
    plan.config["n_papers"] = len(papers)
    with RunDir(plan.run_dir) as run_dir:
        run_dir.claim(plan.config)
        stored = run_dir.read_samples()
        todo = [p for p in papers if p.key not in stored or not is_answered(stored[p.key])]
        if todo:
            new = asyncio.run(_generate_all(plan, todo, run_dir, concurrency=concurrency, use_cache=use_cache,
                                            progress=progress, selection=task_papers))
            stored.update((sample["id"], sample) for sample in new)
        samples = [stored[p.key] for p in papers if p.key in stored]
        metrics = score_run(samples, plan.config, plan.metric_objects, resamples=resamples, seed=seed)
        run_dir.write_metrics(metrics)
    return RunResult(plan.run_dir, metrics, samples, plan.config)


def load_papers(plan: RunPlan, *, progress: bool) -> list[Paper]:
    """The task's papers (before --limit, so that a replay file is matched against all of them),
    each changed by the run's probe if it is a probe arm."""
    papers = plan.dataset.load(plan.dataset_args, progress=progress)
    if plan.paper_transform is not None:
        papers = [plan.paper_transform(paper) for paper in papers]
    if not papers:
        raise ConfigError(f"task {plan.task.task!r}: the selection holds no papers")
    return papers


def check_gold(task: Task, papers: Sequence[Paper]) -> None:
    """Every paper must have a gold label under the task's primary rule: one that has none is an
    error naming it, never a paper scored against a label borrowed from another rule."""
    rule = get_label_rule(task.label_rule)
    unknown = [paper for paper in papers if rule.label(paper) is None]
    if unknown:
        first = unknown[0]
        where = first.meta.get("reviews_path") or first.key
        more = f" (and {len(unknown) - 1} more papers)" if len(unknown) > 1 else ""
        raise DataError(f"{where}: paper {first.key} has no gold label under {rule.name} "
                        f"({rule.description}){more}; pick papers with --ids or another label rule")


def score_run(samples: Sequence[dict[str, Any]], config: dict[str, Any], metric_objects: Sequence[Any], *,
              resamples: int, seed: int) -> dict[str, Any]:
    """metrics.json for a run: every label rule its config names, plus the run's summary."""
    from peerbench.scoring import score_samples

    policy = (config.get("task_definition") or {}).get("unparsed", "wrong")
    metrics = score_samples(samples, label_rules=config["label_rules"], metrics=metric_objects,
                            unparsed_policy=policy, resamples=resamples, seed=seed, n_papers=config.get("n_papers"))
    metrics.update(summary_of(samples))
    metrics["task"], metrics["backend"], metrics["model"] = config["task"], config["backend"], config["model"]
    metrics["choices"] = config.get("choices")
    return metrics


def summary_of(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Truncation, latency and token totals, for the table under the metrics."""
    cut = [s["truncation"].get("cut_chars", 0) for s in samples if s.get("truncation")]
    methods = sorted({s["truncation"].get("method") for s in samples if s.get("truncation")})
    latencies = [s["latency_s"] for s in samples if not s.get("cached") and s.get("latency_s") is not None]
    errors = Counter(s["error"] for s in samples if s.get("error"))
    costs = [s["extra"]["cost_usd"] for s in samples if (s.get("extra") or {}).get("cost_usd") is not None]
    return {
        "failures": {"count": sum(errors.values()),
                     "most_common": [{"error": e, "papers": n} for e, n in errors.most_common(3)]},
        "truncation": {"method": ",".join(m for m in methods if m), "papers_truncated": sum(1 for c in cut if c > 0),
                       "mean_cut_chars": (sum(cut) / len(cut)) if cut else 0.0, "max_cut_chars": max(cut, default=0)},
        "timing": {"mean_latency_s": (sum(latencies) / len(latencies)) if latencies else None,
                   "cached_samples": sum(1 for s in samples if s.get("cached"))},
        "tokens": {"prompt": sum(s.get("prompt_tokens") or 0 for s in samples),
                   "completion": sum(s.get("completion_tokens") or 0 for s in samples),
                   "thinking": sum((s.get("extra") or {}).get("thinking_tokens") or 0 for s in samples)},
        "cost_usd": round(sum(costs), 6) if costs else None,
        "decisions": {d.value: sum(1 for s in samples if s.get("decision") == d.value) for d in Decision},
    }


def run(task: str | Task = "peerread95", backend: str | None = None, model: str | None = None, *,
        concurrency: int | None = None, use_cache: bool = True, progress: bool = False, resamples: int = 1000,
        seed: int = 0, retry_failed: bool = True, **plan_kwargs: Any) -> RunResult:
    """Run one task on one backend and return its metrics and samples (the Python API)."""
    plan = plan_run(task, backend, model, **plan_kwargs)
    return execute(plan, concurrency=concurrency, use_cache=use_cache, progress=progress,
                   resamples=resamples, seed=seed, retry_failed=retry_failed)
