"""One shareable page for a sweep folder: models x tasks, each number with its interval.

Per task, every model's run is scored afresh with its own bootstrap (``build_report``, which also
writes the run's own page, linked from its row), the best model under the ranking metric is
marked, and every other model carries its difference to the best from ``compare`` (paired
bootstrap on the same papers, McNemar's exact test). The trivial baselines stand below the models,
as on every peerbench table, and the human ceiling where metrics.json carries one. Nothing on the
page is computed here that scoring or compare did not compute; it only gathers and renders.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError, MissingDependency, scrub
from peerbench.reporting.comparison import PAIRED_METRICS

RANK_DEFAULT = "balanced_accuracy"  # F1 rewards always-accept on a skewed set (0.914 on peerread95)
BOARD_COLUMNS = ("f1", "accuracy", "balanced_accuracy", "mcc", "auroc", "ece", "pred_accept_rate")
REVIEW_COLUMNS = ("structure_full", "grounding_in_given", "grounding_only_cut", "grounding_nowhere",
                  "similarity_rouge_l", "similarity_embedding")


def review_board(runs: list[BoardRun]) -> dict[str, Any]:
    """The review measures' columns some run has, and the human ceiling's values (from the first run
    that has one: the humans are the same on every run of a task)."""
    measures = [((run.metrics.get("review") or {}).get("overall") or {}).get("measures") or {} for run in runs]
    columns = [name for name in REVIEW_COLUMNS if any(name in m for m in measures)]
    ceiling = {name: m[name]["human"]["value"] for m in reversed(measures) for name in columns
               if name in m and "human" in m[name]}
    return {"review_columns": columns, "review_ceiling": ceiling}
SWEEP_FILE = "sweep.json"
JUDGED_COLUMNS = (("points_model_matched", "model's points raised by a human"),
                  ("points_human_raised", "humans' points raised by the model"), ("aspect_mean", "aspects (1-5)"),
                  ("length_words", "words"))


def is_sweep_dir(path: str | Path) -> bool:
    """A folder ``peerbench sweep`` wrote (its sweep.json), as opposed to one run directory."""
    return (Path(path) / SWEEP_FILE).is_file()


@dataclass
class BoardRun:
    """One run of the sweep as the board shows it."""

    name: str
    label: str           # the sweep's model name (and seed), without the task
    task: str
    run_dir: Path
    page: str            # the run's own page, relative to the board
    metrics: dict[str, Any]
    rule: str

    @property
    def overall(self) -> dict[str, Any]:
        return self.metrics["label_rules"][self.rule]["overall"]

    def value(self, metric: str) -> float | None:
        found = self.overall["metrics"].get(metric)
        return None if found is None else found["value"]


def sweep_runs(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(the runs to put on the board, the runs left off with the reason). A run's folder is looked
    for in the sweep folder itself, so a moved or copied sweep folder still works."""
    try:
        summary = json.loads((sweep_dir / SWEEP_FILE).read_text())
        runs = summary["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{sweep_dir / SWEEP_FILE}: not a sweep summary ({' '.join(str(exc).split())[:120]})") \
            from None
    kept, left_off = [], []
    for run in runs:
        folder = sweep_dir / run["name"]
        if run.get("error"):
            left_off.append({"name": run["name"], "why": f"the run failed: {run['error']}"})
        elif not (folder / "config.json").is_file():
            left_off.append({"name": run["name"], "why": f"no run directory at {folder}"})
        else:
            kept.append({**run, "run_dir": folder})
    return kept, left_off


def score_runs(runs: list[dict[str, Any]], pages: Path, board_dir: Path, label_rule: str | None,
               resamples: int | None, seed: int | None, left_off: list[dict[str, str]]) -> list[BoardRun]:
    """Each run's metrics, from the same call that writes its own page (scored once); a run that
    cannot be scored (no answer yet, no gold label) is left off with the reason."""
    from peerbench.reporting.html import build_report

    scored = []
    for run in runs:
        page = pages / f"{run['name']}.html"
        try:
            metrics = build_report(run["run_dir"], html=page, label_rule=label_rule, resamples=resamples, seed=seed)
        except ConfigError as exc:
            left_off.append({"name": run["name"], "why": str(exc)})
            continue
        rule = label_rule or metrics["primary_label_rule"]
        scored.append(BoardRun(run["name"], run["name"].removeprefix(f"{run['task']}__"), run["task"],
                               Path(run["run_dir"]), page.relative_to(board_dir).as_posix(), metrics, rule))
    return scored


def paired_to_best(best: BoardRun, other: BoardRun, rank_by: str, resamples: int | None,
                   seed: int | None) -> dict[str, Any]:
    """The other model minus the best, on the papers both answered: compare's paired bootstrap and McNemar.
    Where compare refuses the pair (runs of the task under other settings, such as a sweep's seeds),
    the row says so instead of a difference."""
    from peerbench.reporting.comparison import compare

    try:
        result = compare([best.run_dir, other.run_dir], label_rule=best.rule, resamples=resamples, seed=seed)
    except ConfigError as exc:
        return {"refused": str(exc)}
    pair = result["pairs"][0]
    return {**pair["differences"][rank_by], "mcnemar_p": pair["mcnemar"]["p_value"], "n_papers": result["n_papers"],
            "resamples": result["bootstrap"]["resamples"]}


def pvalue(p: float, resamples: int) -> str:
    """A bootstrap p-value: 0 means below what the resamples can resolve, and is shown so."""
    return f"p<{1 / max(resamples, 1):.2g}" if p == 0 else f"p={p:.2g}"


def ceiling_of(entry: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(its name, its values): the human ceiling (one reviewer against the others) that scoring puts
    beside the trivial baselines, where the task's papers carry two or more ratings each."""
    from peerbench.metrics.ceiling import HUMAN

    return HUMAN, (entry.get("baselines") or {}).get(HUMAN) or None


def task_figures(runs: list[BoardRun]) -> dict[str, str]:
    """Reliability curves of every model with P(accept) overlaid, and predicted vs gold accept rate
    per model; base64 PNGs for the page."""
    from peerbench.pipeline.store import read_run
    from peerbench.reporting import plots
    from peerbench.reporting.html import proba_pairs
    from peerbench.reporting.scoring import is_answered, selected

    curves = {}
    for run in runs:
        config, samples = read_run(run.run_dir)
        y, p = proba_pairs([s for s in selected(config, samples) if is_answered(s)], run.rule)
        if y:
            curves[run.label] = (y, p)
    figures = {"accept_rates": plots.accept_rates_plot({run.label: run.overall for run in runs})}
    if curves:
        figures["reliability"] = plots.reliability_overlay(curves)
    return {name: base64.b64encode(data).decode("ascii") for name, data in figures.items()}


def judged_rows(runs: list[BoardRun]) -> list[dict[str, Any]]:
    """Each model's judgements (peerbench.judging): its judged figures, the human's beside them."""
    from peerbench.judging.tables import judge_lines

    rows = []
    for run in runs:
        for judged in run.metrics.get("judgements") or []:
            figures = {**((judged.get("points") or {}).get("measures") or {}),
                       **((judged.get("aspects") or {}).get("measures") or {})}
            rows.append({"label": run.label, "judge": judged["judge"]["judge_id"], "figures": figures,
                         "checks": "; ".join(judge_lines(judged)[1:])})
    return rows


def task_board(task: str, runs: list[BoardRun], rank_by: str, resamples: int | None,
               seed: int | None) -> dict[str, Any]:
    """The rows of one task's table, best model first, and its figures."""
    from peerbench.reporting.tables import ceiling_note

    rule = runs[0].rule

    def by_value(run: BoardRun) -> float:
        value = run.value(rank_by)
        return -(value if value is not None else float("-inf"))

    # An incomplete run is scored on the papers it answered: it is listed, never crowned, and the
    # baselines and the human ceiling come from a complete run (the task's whole selection).
    complete = sorted((r for r in runs if r.metrics.get("complete", True)), key=by_value)
    ordered = complete + sorted((r for r in runs if not r.metrics.get("complete", True)), key=by_value)
    best = complete[0] if complete else None
    rows = []
    for run in ordered:
        rows.append({"run": run, "best": run is best, "n": run.overall["n"],
                     "n_with_p": run.overall["n_with_p_accept"], "complete": run.metrics.get("complete", True),
                     "n_failed": run.metrics.get("n_failed") or 0,
                     "vs_best": None if best is None or run is best
                     else paired_to_best(best, run, rank_by, resamples, seed)})
    reference = best or max(runs, key=lambda r: r.overall["n"])
    entry = reference.metrics["label_rules"][rule]
    human, ceiling = ceiling_of(entry)
    baselines = {name: values for name, values in (entry.get("baselines") or {}).items() if name != human}
    return {"task": task, "rule": rule, "description": entry["description"], "rows": rows,
            "baselines": baselines, "ceiling": ceiling, "ceiling_note": ceiling_note(entry).strip(),
            "confidence": round(reference.metrics["bootstrap"]["confidence"] * 100), "has_best": best is not None,
            "figures": task_figures(ordered), **review_board(ordered), "judged": judged_rows(ordered)}


def build_leaderboard(sweep_dir: str | Path, *, html: str | Path, label_rule: str | None = None,
                      rank_by: str = RANK_DEFAULT, resamples: int | None = None,
                      seed: int | None = None) -> dict[str, Any]:
    """Write the board (and each run's own page beside it, in ``<board>-runs/``); returns its numbers."""
    if rank_by not in PAIRED_METRICS:
        raise ConfigError(f"--rank-by {rank_by}: choose one of {', '.join(PAIRED_METRICS)} (the paired metrics)")
    sweep_dir, html = Path(sweep_dir), Path(html)
    runs, left_off = sweep_runs(sweep_dir)
    board_dir = html.parent
    scored = score_runs(runs, board_dir / f"{html.stem}-runs", board_dir, label_rule, resamples, seed, left_off)
    if not scored:
        raise ConfigError(f"{sweep_dir}: no run to put on a board"
                          + (f" ({left_off[0]['name']}: {left_off[0]['why']})" if left_off else ""))
    by_task: dict[str, list[BoardRun]] = {}
    for run in scored:
        by_task.setdefault(run.task, []).append(run)
    tasks = [task_board(task, task_runs, rank_by, resamples, seed) for task, task_runs in by_task.items()]
    render(html, sweep_dir, tasks, left_off, rank_by)
    return summary(sweep_dir, tasks, left_off, rank_by)


def summary(sweep_dir: Path, tasks: list[dict[str, Any]], left_off: list[dict[str, str]],
            rank_by: str) -> dict[str, Any]:
    """The board's numbers as plain data (``--json``)."""
    out = []
    for board in tasks:
        rows = [{"name": row["run"].name, "model": row["run"].label, "best": row["best"], "n": row["n"],
                 "complete": row["complete"], "page": row["run"].page,
                 "metrics": {k: v for k, v in row["run"].overall["metrics"].items() if k in BOARD_COLUMNS},
                 "review": {k: v for k, v in (((row["run"].metrics.get("review") or {}).get("overall") or {})
                                              .get("measures") or {}).items() if k in REVIEW_COLUMNS},
                 "vs_best": row["vs_best"]} for row in board["rows"]]
        out.append({"task": board["task"], "label_rule": board["rule"], "rows": rows,
                    "baselines": board["baselines"], "human_ceiling": board["ceiling"],
                    "review_human_ceiling": board["review_ceiling"]})
    return {"sweep_dir": str(sweep_dir), "rank_by": rank_by, "tasks": out, "left_off": left_off}


def render(html: Path, sweep_dir: Path, tasks: list[dict[str, Any]], left_off: list[dict[str, str]],
           rank_by: str) -> None:
    from peerbench.reporting.tables import fmt_ci, fmt_value

    try:
        import jinja2
    except ImportError:
        raise MissingDependency("jinja2", "report") from None
    environment = jinja2.Environment(loader=jinja2.PackageLoader("peerbench", "reporting/templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    models = sorted({row["run"].label for board in tasks for row in board["rows"]})
    matrix = {(board["task"], row["run"].label): row for board in tasks for row in board["rows"]}
    page = environment.get_template("leaderboard.html.j2").render(
        sweep_dir=str(sweep_dir), tasks=tasks, left_off=left_off, rank_by=rank_by, columns=BOARD_COLUMNS,
        models=models, matrix=matrix, fmt=fmt_value, ci=fmt_ci, pvalue=pvalue, judged_columns=JUDGED_COLUMNS)
    html.parent.mkdir(parents=True, exist_ok=True)
    from peerbench.pipeline.store import write_file

    write_file(html, scrub(page))  # a full disk names the page
