"""The loop of one run, as stages: plan (pipeline.plan) -> load and check the papers -> prepare
(prompts, truncation, cache keys) -> split what the cache serves -> dispatch (async, bounded) ->
collect (merge k samples) -> store (append to samples.jsonl) -> score (reporting.scoring).

Everything the user can get wrong is checked in the plan, before the first request; every answer
is stored the moment it arrives, so a killed run resumes with the same command and redoes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from peerbench.backends import RunContext
from peerbench.errors import BackendError, ConfigError
from peerbench.labels import get_label_rule, no_gold_label
from peerbench.pipeline.collect import Collector
from peerbench.pipeline.dispatch import dispatch, split_cached
from peerbench.pipeline.plan import RunPlan, RunResult, plan_run
from peerbench.pipeline.prepare import prepare
from peerbench.pipeline.lines import StoredSamples, for_scoring
from peerbench.pipeline.store import RunDir, SampleRecorder, open_cache
from peerbench.pipeline.stream import PaperStream, scan, stream_requests
from peerbench.records import Paper
from peerbench.reporting.scoring import DEFAULT_RESAMPLES, is_answered, score_run
from peerbench.task import Task
from peerbench.thinking import (  # noqa: F401  (the replies' checks, kept importable from here)
    MAX_CHARS_PER_TOKEN,
    as_failure_if_empty,
    as_failure_if_oversized,
    settle_reply,
)

EARLY_STOP_FAILURES = 8  # a run whose first this-many requests all fail stops, keeping them
# Imported while the requests wait on the server (pipeline.dispatch.WarmUp), not after the last reply.
AFTER_THE_REPLIES = ("numpy", "numpy.random", "peerbench.reporting.tables")

__all__ = ["MAX_CHARS_PER_TOKEN", "RunPlan", "RunResult", "as_failure_if_empty", "as_failure_if_oversized",
           "check_gold", "execute", "plan_run", "run"]


async def generate(plan: RunPlan, papers: Iterable[Paper], run_dir: RunDir, *, concurrency: int | None,
                   use_cache: bool, progress: bool, selection: Iterable[Paper] = (),
                   early_stop: bool = True, paper_hashes: dict[str, str] | None = None,
                   total: int | None = None) -> list[dict[str, Any]]:
    """Set up the backend, then prepare -> split cached -> dispatch -> collect -> store, for
    ``papers`` (any iterable: a stream of ``total`` papers is prepared a chunk at a time, see
    pipeline.stream). Returns the new samples as scoring holds them (store.for_scoring)."""
    from peerbench.paths import cache_root
    from peerbench.progress import progress_bar

    task, backend = plan.task, plan.backend
    total = len(papers) if total is None else total  # type: ignore[arg-type]
    rules = {name: get_label_rule(name) for name in task.label_rules()}
    backend.decision_parser = task.parser  # P(accept) is read where this parser reads the decision
    try:
        context = RunContext(task, plan.dataset, plan.dataset_args, selection or papers, plan.task_args)
        await backend.setup(context)
        if plan.protocol is not None:
            await plan.protocol.setup(context)
        counter = backend.token_counter()
    except BaseException:
        await backend.aclose()  # a half-set-up backend may hold connections or an engine
        raise

    def prepare_chunk(chunk: list[Paper]) -> list[Any]:
        return prepare(task, backend, chunk, counter, rules, plan.samples_per_paper, paper_hashes,
                       plan.config.get("weights"), plan.body_insert)

    cache = open_cache(cache_root() / "responses.sqlite") if (use_cache and backend.cacheable) else None
    # A backend that answers locally (replay, baselines) fails per paper, never as a broken server.
    stop_after = EARLY_STOP_FAILURES if early_stop and backend.cacheable else None
    recorder = SampleRecorder(run_dir, cache, papers=total, early_stop=stop_after)
    collector = Collector(plan.samples_per_paper, task.parser, plan.config.get("store_prompts", False),
                          recorder.record)
    try:
        if plan.protocol is not None:
            await run_protocol_stage(plan, papers, prepare_chunk, cache, recorder, concurrency=concurrency,
                                     progress=progress, total=total)
            return recorder.samples
        with progress_bar(f"{task.task} · {backend.name}", total=total * plan.samples_per_paper,
                          enabled=progress) as advance:
            def on_result(item, completion, latency, cached) -> None:
                completion = settle_reply(completion, item.request.generation.max_tokens)
                advance(1)
                collector.add(item, completion, latency, cached)  # stored first: a failing cache loses nothing
                recorder.cache_answer(item.key, completion, cached, f"{backend.name}:{backend.model}")

            async def send(items: list[Any], first: bool) -> None:
                pending = split_cached(items, cache, on_result)
                await dispatch(backend, pending, concurrency=concurrency, on_result=on_result,
                               warm_up=AFTER_THE_REPLIES if first else ())

            await stream_requests(papers, prepare_chunk, send)
    finally:
        if cache is not None:
            cache.close()
        await backend.aclose()
    return recorder.samples


async def run_protocol_stage(plan: RunPlan, papers: Iterable[Paper], prepare_chunk: Any, cache: Any,
                             recorder: SampleRecorder, *, concurrency: int | None, progress: bool, total: int) -> None:
    """A multi-call protocol's papers (:mod:`peerbench.pipeline.calls`), prepared a chunk at a time,
    each sample stored as it ends."""
    from peerbench.pipeline.calls import CallHarness, run_protocol
    from peerbench.progress import progress_bar

    backend, weights = plan.backend, plan.config.get("weights")
    described = {**backend.identity(), "weights": weights} if weights else backend.identity()
    harness = CallHarness(backend, cache, described, concurrency)
    label = f"{plan.task.task} · {backend.name} · {plan.protocol.name}"
    with progress_bar(label, total=total, enabled=progress) as advance:
        def on_sample(sample: Any) -> None:
            recorder.record(sample)
            advance(1)

        async def send(items: list[Any], first: bool) -> None:
            await run_protocol(plan.protocol, harness, items, plan.task.parser,
                               plan.config.get("store_prompts", False), on_sample)

        await stream_requests(papers, prepare_chunk, send)


def execute(plan: RunPlan, *, concurrency: int | None = None, use_cache: bool = True, progress: bool = True,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0, retry_failed: bool = True,
            redo_changed: bool = False) -> RunResult:
    """Generate what the run directory lacks, failed papers included, then score.

    A failed request is not an answer, so a plain rerun of the same command requests exactly the
    papers that have none (``retry_failed`` is kept for callers of the old flag; it changes nothing).
    A stored answer to a paper whose content has changed since is refused, or with ``redo_changed``
    requested again: a run directory never mixes answers to two versions of its data.
    """
    if not 0 <= seed < 2**63:  # numpy refuses it, but only after every request: refused before the first
        raise ConfigError(f"--seed: must be from 0 to 2**63-1, got {seed}")
    stream = PaperStream(plan, progress=progress)
    entries = scan(stream, plan.task, plan.limit, labels_of)  # every paper checked before any request
    keys = [entry.key for entry in entries]
    plan.config["n_papers"] = len(entries)
    with RunDir(plan.run_dir) as run_dir:
        run_dir.claim(plan.config, keys)  # the keys: what `peerbench report` scores again (paper_keys.txt)
        stored = run_dir.read_samples(for_scoring)  # one pass; the reviews' text is not kept
        hashes = {entry.key: entry.content_hash for entry in entries}
        changed = changed_papers(entries, stored, hashes)
        if changed and not redo_changed:
            raise ConfigError(f"{plan.run_dir}: {len(changed)} of the {len(entries)} papers were answered for other "
                              f"content than the data holds now (first: {changed[0]}); use another --out, or "
                              "--redo-changed to request them again")
        todo = {e.key for e in entries if e.key not in stored or not is_answered(stored[e.key]) or e.key in changed}
        relabelled = [e.key for e in entries if e.key not in changed and e.key in stored
                      and is_answered(stored[e.key]) and stored_labels(stored[e.key]) != e.labels]
        if relabelled and not redo_changed:
            raise ConfigError(f"{plan.run_dir}: {len(relabelled)} of the {len(entries)} papers have other gold labels "
                              f"or human ratings in the data now than when they were answered ("
                              f"{_first_few(relabelled)}); use another --out, or --redo-changed to score them "
                              "against the data as it is now (their reviews are kept: no request)")
        if relabelled:
            labels = {entry.key: entry.labels for entry in entries}
            for key, sample in run_dir.read_full(set(relabelled)).items():
                line = with_labels(sample, labels[key])
                run_dir.append(line)
                stored[key] = for_scoring(line)
        try:
            if todo:
                # Stopping at the first failures guards against a broken server, so never once the run has answers.
                answered = any(is_answered(sample) for sample in stored.values())
                papers = stream.only(todo)  # the dataset read again, streamed, up to the last paper to do
                new = asyncio.run(generate(plan, papers, run_dir, concurrency=concurrency, use_cache=use_cache,
                                           progress=progress, selection=stream, early_stop=not answered,
                                           paper_hashes=hashes, total=len(todo)))
                stored.update((sample["id"], sample) for sample in new)
        except BackendError:
            # The stopped run's failures are stored: score what is there, so metrics.json is never stale.
            _score(plan, keys, run_dir, run_dir.read_samples(for_scoring), resamples=resamples, seed=seed)
            raise
        metrics = _score(plan, keys, run_dir, stored, resamples=resamples, seed=seed)
    return RunResult(plan.run_dir, metrics, StoredSamples(plan.run_dir, keys), plan.config)


def _score(plan: RunPlan, keys: Sequence[str], run_dir: RunDir, stored: dict[str, dict[str, Any]], *,
           resamples: int, seed: int) -> dict[str, Any]:
    """Score the selection's stored samples and write metrics.json."""
    samples = [stored[key] for key in keys if key in stored]
    metrics = score_run(samples, plan.config, plan.metric_objects, resamples=resamples, seed=seed,
                        full_lines=run_dir.read_full)
    run_dir.write_metrics(metrics)
    return metrics


def changed_papers(papers: Sequence[Any], stored: dict[str, dict[str, Any]], hashes: dict[str, str]) -> list[str]:
    """Keys of papers (anything with a ``key``: Papers, stream entries) whose stored answer was made
    for other content (a sample without a content hash cannot be checked, and counts as changed)."""
    return [paper.key for paper in papers
            if paper.key in stored and is_answered(stored[paper.key])
            and stored[paper.key].get("paper_hash") != hashes[paper.key]]


# What scoring takes from the data rather than from the review: a stored sample keeps its copy, so
# a change in the data (an edited reviews file) is caught on the next run instead of scored stale.
LABEL_FIELDS = ("gold", "accepted", "mean_recommendation", "recommendations")


def labels_of(paper: Paper, task: Task) -> dict[str, Any]:
    """The paper's label inputs as a sample stores them (gold under every rule the task reports)."""
    return {"gold": {name: get_label_rule(name).label(paper) for name in task.label_rules()},
            "accepted": paper.accepted, "mean_recommendation": paper.mean_recommendation,
            "recommendations": list(paper.recommendations) or None}


def stored_labels(sample: dict[str, Any]) -> dict[str, Any]:
    return {name: sample.get(name) or None if name == "recommendations" else sample.get(name)
            for name in LABEL_FIELDS}


def with_labels(sample: dict[str, Any], labels: dict[str, Any]) -> dict[str, Any]:
    """The stored sample with these label inputs (labels_of); its review and decision untouched."""
    updated = {**sample, **labels}
    if labels["recommendations"] is None:
        updated.pop("recommendations", None)
    return updated


def _first_few(keys: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def check_gold(task: Task, papers: Sequence[Paper]) -> None:
    """Every paper must have a gold label under the task's primary rule: one that has none is an
    error naming it, never a paper scored against a label borrowed from another rule."""
    rule = get_label_rule(task.label_rule)
    if not rule.required:
        return
    unknown = [paper for paper in papers if rule.label(paper) is None]
    if unknown:
        raise no_gold_label(rule, unknown[0], len(unknown))


def run(task: str | Task = "peerread95", backend: str | None = None, model: str | None = None, *,
        concurrency: int | None = None, use_cache: bool = True, progress: bool = False,
        resamples: int = DEFAULT_RESAMPLES, seed: int = 0, retry_failed: bool = True, redo_changed: bool = False,
        **plan_kwargs: Any) -> RunResult:
    """Run one task on one backend and return its metrics and samples (the Python API)."""
    plan = plan_run(task, backend, model, **plan_kwargs)
    return execute(plan, concurrency=concurrency, use_cache=use_cache, progress=progress,
                   resamples=resamples, seed=seed, retry_failed=retry_failed, redo_changed=redo_changed)
