"""The judge stage: a run over a run. It reads a finished or interrupted run's stored reviews (the
reviewer is never asked again), sends the judge's requests through the pipeline's own dispatch
(retries, one bound per connection, the response cache), and writes the judgement to
``RUN_DIR/judgements/<judge id>/``:

- ``config.json``: the judge's identity (backend, model, options, its prompts' hashes, generation
  settings, rubric), no secrets; a judgement made under another identity is never resumed;
- ``answers.jsonl``: every judge answer, appended as it lands (a killed judgement asks none again);
- ``samples.jsonl``: one line per paper, appended as the paper's last answer lands;
- ``metrics.json``: the figures (:mod:`peerbench.judging.figures`).

A failed judge request is no answer: the paper's line lists it, the judgement is INCOMPLETE, and
a plain rerun asks for exactly the failed (and not yet askable) requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError
from peerbench.judging import prompts
from peerbench.judging.requests import RequestMaker
from peerbench.judging.work import Judged, PaperWork
from peerbench.pipeline.store import RunDir, stable_hash

JUDGEMENTS = "judgements"
ANSWERS_FILE = "answers.jsonl"
RUBRICS = {"points": {"points"}, "aspects": {"aspects"}, "all": {"points", "aspects"}}
DEFAULT_GENERATION = {"max_tokens": 1024, "temperature": 0.0, "top_p": 1.0, "seed": 0}


@dataclass
class JudgeResult:
    judge_dir: Path
    metrics: dict[str, Any]
    lines: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class JudgePlan:
    """Everything the judgement needs, resolved and validated before any request."""

    run_dir: Path
    backend: Any
    maker: RequestMaker
    rubric: set[str]
    agreement: int
    judge_dir: Path
    config: dict[str, Any]


class JudgementDir(RunDir):
    """A run directory for a judgement: the same lock, claim and metrics, plus the answers log."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._answers = None

    def __exit__(self, *exc: object) -> None:
        if self._answers is not None:
            self._answers.close()
            self._answers = None
        super().__exit__(*exc)

    def append_answer(self, record: dict[str, Any]) -> None:
        """One judge answer, secrets masked (as samples.jsonl's lines are), flushed."""
        from peerbench.errors import mask_secrets

        if self._answers is None:
            self._answers = (self.path / ANSWERS_FILE).open("a", encoding="utf-8")
        self._answers.write(json.dumps(mask_secrets(record), ensure_ascii=False) + "\n")
        self._answers.flush()

    def read_lines(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines of one of its files; a torn last line (a kill mid-write) is cut off."""
        return read_jsonl(self.path / name, repair=True)


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The JSON lines of a file; a torn last line is left out (and, with ``repair``, cut off the file:
    only the judgement holding the directory's lock repairs)."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    rows, offset = [], 0
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("torn")
            rows.append(json.loads(line))
        except ValueError:
            if offset + len(line) == len(data):
                if repair:
                    with path.open("r+b") as handle:
                        handle.truncate(offset)
                break
            raise ConfigError(f"{path}:{number}: not valid JSON; fix or remove that line") from None
        offset += len(line)
    return rows


def judge_identity(backend: Any, generation: dict[str, Any], rubric: str, max_points: int, paper_chars: int,
                   agreement: int) -> str:
    """The hash of everything that decides the judge's answers and which requests it makes."""
    return stable_hash({"backend": backend.identity(), "generation": generation, "prompts": prompts.prompt_hashes(),
                        "prompts_version": prompts.PROMPTS_VERSION, "rubric": rubric, "max_points": max_points,
                        "paper_chars": paper_chars, "agreement": agreement})[:10]


def judge_generation(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The judge's generation settings (its defaults, then the overrides), validated like a task's."""
    from pydantic import ValidationError

    from peerbench.errors import first_problem
    from peerbench.task import GenerationSpec

    settings = {**DEFAULT_GENERATION, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        return GenerationSpec(**settings).model_dump()
    except ValidationError as exc:
        field, message, _ = first_problem(exc)
        raise ConfigError(f"judge generation.{field}: {message}") from None


def plan_judge(run_dir: str | Path, backend: str | None = None, model: str | None = None, *,
               backend_options: dict[str, Any] | None = None, rubric: str = "all", max_points: int = 10,
               paper_chars: int = 40000, agreement: int = 10, generation: dict[str, Any] | None = None,
               out: str | Path | None = None) -> JudgePlan:
    """Resolve the judge backend and settings (validated; nothing sent) and where its judgement goes."""
    from peerbench import __version__
    from peerbench.backends import create_backend
    from peerbench.pipeline.plan import _slug, resolve_model
    from peerbench.records import GenerationConfig

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a peerbench run directory (no config.json)")
    if rubric not in RUBRICS:
        raise ConfigError(f"--rubric: one of {', '.join(RUBRICS)}, not {rubric!r}")
    for name, value, low in (("--max-points", max_points, 1), ("--paper-chars", paper_chars, 1),
                             ("--agreement", agreement, 0)):
        if value < low:
            raise ConfigError(f"{name}: must be at least {low}, got {value}")
    settings = judge_generation(generation)
    backend_name, model, options = resolve_model(backend, model, dict(backend_options or {}))
    backend_obj = create_backend(backend_name, model, options)
    identity = judge_identity(backend_obj, settings, rubric, max_points, paper_chars, agreement)
    judge_dir = Path(out) if out else run_dir / JUDGEMENTS / f"{backend_obj.name}__{_slug(backend_obj.model)}__{identity}"
    config = {"peerbench_version": __version__, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "run_identity": identity, "judge_id": judge_dir.name, **backend_obj.describe(), "generation": settings,
              "rubric": rubric, "max_points": max_points, "paper_chars": paper_chars, "agreement_papers": agreement,
              "prompts": {"version": prompts.PROMPTS_VERSION, "sha256": prompts.prompt_hashes()}}
    maker = RequestMaker(backend_obj.identity(), GenerationConfig(**settings), max_points, paper_chars)
    return JudgePlan(run_dir, backend_obj, maker, RUBRICS[rubric], agreement, judge_dir, config)


def paper_works(run_dir: Path, agreement: int, *, data_dir: str | Path | None = None, limit: int | None = None
                ) -> tuple[list[PaperWork], dict[str, Any], dict[str, Any]]:
    """The run's answered reviews, each with its paper's text and human reviews read back from the
    dataset (the reviewer is never asked), the shuffle partners, the agreement sample; and counts."""
    from peerbench.pipeline.store import read_run
    from peerbench.reporting.review_scoring import texts_of
    from peerbench.reporting.scoring import is_answered, selected

    config, samples = read_run(run_dir)
    samples = sorted(selected(config, samples), key=lambda s: str(s["id"]))
    answered = [s for s in samples if is_answered(s)]
    n_answered = len(answered)
    if limit is not None:
        answered = answered[:limit]
    papers = run_papers(config, data_dir)
    works, changed = [], 0
    for sample in answered:
        paper = papers.get(sample["id"])
        if paper is None or (sample.get("paper_hash") and paper.content_hash() != sample["paper_hash"]):
            changed += 1
            continue
        given, _ = texts_of(paper, sample.get("truncation"))
        works.append(PaperWork(sample["id"], sample["venue"], paper.title, sample.get("completion") or "",
                               list(paper.meta.get("human_reviews") or []), paper.meta.get("human_review_ratings"),
                               paper.accepted, given))
    with_humans = [w for w in works if w.humans]
    for index, work in enumerate(with_humans):  # each paper's shuffle partner: the next one with human reviews
        if len(with_humans) > 1:
            work.partner = with_humans[(index + 1) % len(with_humans)]
    for work in sorted(works, key=lambda w: stable_hash(w.key))[:agreement]:
        work.repeat = True
    counts = {"n_run_papers": config.get("n_papers") or len(samples), "n_answered": n_answered,
              "n_judged": len(works), "n_paper_missing_or_changed": changed}
    return works, counts, config


def run_papers(config: dict[str, Any], data_dir: str | Path | None) -> dict[str, Any]:
    """The run's papers read back from its dataset (``data_dir``, else where the run read them)."""
    from peerbench.reporting.review_scoring import load_papers

    papers, why = load_papers(config, data_dir)
    if papers is None:
        raise ConfigError(f"{why}; the judge needs the papers and their human reviews: give --data-dir")
    return papers


class AnswerSink:
    """Where each judge answer goes as it lands: the answers log and the response cache, or the
    failures. A judgement whose first requests all fail stops (a broken server), keeping them."""

    def __init__(self, jdir: JudgementDir, answers: dict[str, dict[str, Any]], recorder: Any, model: str,
                 stop_after: int | None):
        self.jdir, self.answers, self.recorder, self.model, self.stop_after = jdir, answers, recorder, model, stop_after
        self.failed: dict[str, str] = {}
        self.successes = 0

    def take(self, item: Any, completion: Any, latency: float, cached: bool) -> None:
        from peerbench.errors import BackendError
        from peerbench.thinking import as_failure_if_empty

        completion = as_failure_if_empty(completion)
        if completion.error:
            self.failed[item.key] = completion.error
            if self.stop_after is not None and not self.successes and len(self.failed) >= self.stop_after:
                raise BackendError(f"every judge request failed so far ({len(self.failed)}); first error: "
                                   f"{next(iter(self.failed.values()))}")
            return
        self.successes += 1
        self.answers[item.key] = {"key": item.key, "kind": item.kind, "text": completion.text, "cached": cached,
                                  "latency_s": round(latency, 6)}
        self.jdir.append_answer(self.answers[item.key])
        self.recorder.cache_answer(item.key, completion, cached, self.model)


async def generate(plan: JudgePlan, todo: list[Judged], jdir: JudgementDir, answers: dict[str, dict[str, Any]],
                   *, concurrency: int | None, use_cache: bool, progress: bool) -> dict[str, str]:
    """Ask what the answers lack, step by step; write each paper's line as its last answer lands.
    Returns the failed requests (key -> error)."""
    from peerbench.paths import cache_root
    from peerbench.pipeline.dispatch import dispatch, split_cached
    from peerbench.pipeline.execute import EARLY_STOP_FAILURES
    from peerbench.pipeline.store import SampleRecorder, open_cache
    from peerbench.progress import progress_bar

    backend = plan.backend
    try:
        await backend.setup(None)  # a judge has no task: no context length to check, no papers to match
    except (AttributeError, TypeError):  # a backend that answers from a task's papers (replay, baselines)
        raise ConfigError(f"--backend {backend.name}: cannot judge: it answers a task's papers, not a "
                          "judge's requests; pick a backend that serves a model") from None
    cache = open_cache(cache_root() / "responses.sqlite") if (use_cache and backend.cacheable) else None
    recorder = SampleRecorder(jdir, cache, papers=len(todo), early_stop=None)
    sink = AnswerSink(jdir, answers, recorder, f"{backend.name}:{backend.model}",
                      None if answers else EARLY_STOP_FAILURES)
    written: set[str] = set()
    try:
        for step in ("first_step", "second_step"):
            last = step == "second_step" or "points" not in plan.rubric
            wanted = {j.work.key: {i.key: i for i in getattr(j, step)()} for j in todo}
            waiting = {key: {k for k in items if k not in answers} for key, items in wanted.items()}
            pending = list({k: i for items in wanted.values() for k, i in items.items() if k not in answers}.values())

            def finish_ready() -> None:
                for judged in todo:
                    if last and judged.work.key not in written and not waiting[judged.work.key]:
                        write_line(jdir, judged, sink.failed)
                        written.add(judged.work.key)

            with progress_bar(f"judge · {step.replace('_', ' ')}", total=len(pending), enabled=progress,
                              unit="requests") as advance:
                def on_result(item, completion, latency, cached) -> None:
                    advance(1)
                    sink.take(item, completion, latency, cached)
                    for paper_waiting in waiting.values():
                        paper_waiting.discard(item.key)
                    finish_ready()

                finish_ready()
                await dispatch(backend, split_cached(pending, recorder.cache, on_result), concurrency=concurrency,
                               on_result=on_result)
        for judged in todo:
            if judged.work.key not in written:
                write_line(jdir, judged, sink.failed)
    finally:
        if recorder.cache is not None:
            recorder.cache.close()
        await backend.aclose()
    return sink.failed


def write_line(jdir: JudgementDir, judged: Judged, failed: dict[str, str]) -> dict[str, Any]:
    from peerbench.errors import scrub

    line = judged.line()
    own = judged.first_step() + judged.second_step()
    line["requests"] = len(own)
    line["failed"] = [{"kind": i.kind, "error": scrub(failed[i.key])} for i in own if i.key in failed]
    line["complete"] = all(i.key in judged.answers for i in judged.needed())
    jdir.append(line)
    return line


def judge(run_dir: str | Path, backend: str | None = None, model: str | None = None, *,
          backend_options: dict[str, Any] | None = None, rubric: str = "all", data_dir: str | Path | None = None,
          limit: int | None = None, concurrency: int | None = None, use_cache: bool = True, progress: bool = False,
          max_points: int = 10, paper_chars: int = 40000, agreement: int = 10,
          generation: dict[str, Any] | None = None, out: str | Path | None = None, resamples: int = 1000,
          seed: int = 0) -> JudgeResult:
    """Grade the stored reviews of a run with a judge backend; returns the judgement's figures."""
    from peerbench.judging.figures import judge_metrics

    plan = plan_judge(run_dir, backend, model, backend_options=backend_options, rubric=rubric, max_points=max_points,
                      paper_chars=paper_chars, agreement=agreement, generation=generation, out=out)
    works, counts, run_config = paper_works(plan.run_dir, agreement, data_dir=data_dir, limit=limit)
    if not works:
        raise ConfigError(f"{plan.run_dir}: no answered review whose paper could be read back; nothing to judge")
    with JudgementDir(plan.judge_dir) as jdir:
        jdir.claim(plan.config)
        answers = {row["key"]: row for row in jdir.read_lines(ANSWERS_FILE)}
        stored = {row["id"]: row for row in jdir.read_lines("samples.jsonl")}
        judged = [Judged(work, plan.maker, plan.rubric, answers) for work in works]
        todo = [j for j in judged if not _done(stored.get(j.work.key), j.work)]
        try:
            if todo:
                asyncio.run(generate(plan, todo, jdir, answers, concurrency=concurrency, use_cache=use_cache,
                                     progress=progress))
        finally:  # a judgement stopped by a broken server still scores what it has: metrics.json is never stale
            stored = {row["id"]: row for row in jdir.read_lines("samples.jsonl")}
            lines = [stored[w.key] for w in works if w.key in stored]
            metrics = judge_metrics(lines, plan.config, {**counts, "run_task": run_config.get("task")},
                                    resamples=resamples, seed=seed)
            metrics["flags"].extend(self_preference(run_config, plan.backend))
            jdir.write_metrics(metrics)
    return JudgeResult(plan.judge_dir, metrics, lines, plan.config)


def self_preference(run_config: dict[str, Any], backend: Any) -> list[str]:
    """A flag where the judge is the very model that wrote the reviews (LLM judges favour their own text)."""
    if run_config.get("model") and run_config.get("model") == backend.model:
        return [f"self-preference: the judge ({backend.model}) wrote the reviews it grades; LLM judges favour their "
                "own text: judge with a model of another family"]
    return []


def _done(line: dict[str, Any] | None, work: PaperWork) -> bool:
    return line is not None and line.get("complete") and line.get("fingerprint") == work.fingerprint()


def read_judgements(run_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics.json of every judgement in a run directory (for report, compare, the HTML page)."""
    root = Path(run_dir) / JUDGEMENTS
    found = []
    for path in sorted(root.glob("*/metrics.json")) if root.is_dir() else []:
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def judged_samples(judge_dir: str | Path) -> list[dict[str, Any]]:
    """A judgement's per-paper lines, the last line of each paper winning."""
    rows = read_jsonl(Path(judge_dir) / "samples.jsonl")
    return list({row["id"]: row for row in rows}.values())


def incomplete_line(metrics: dict[str, Any]) -> str:
    return (f"INCOMPLETE: {metrics['n_failed_requests']} judge requests failed ({metrics['n_incomplete_papers']} "
            f"papers); rerun the same command to ask for exactly those")


__all__: Sequence[str] = ("JudgeResult", "judge", "plan_judge", "read_judgements")
