"""`report`, `compare` and `sweep`: the numbers of one run, of runs side by side, of a grid of runs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from peerbench.metrics import DEFAULT_ENCODER

from peerbench.cli.common import (
    INCOMPLETE_EXIT_CODE,
    cli,
    console,
    friendly_errors,
    json_option,
    resamples_option,
    runs_seed_option,
)


encoder_option = click.option(
    "--encoder", is_flag=False, flag_value=DEFAULT_ENCODER, default=None, metavar="[MODEL]",
    help=f"Also measure embedding similarity to the human reviews with this sentence-transformers model (a hub "
         f"name or a local folder; alone: {DEFAULT_ENCODER}).")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--html", "html_path", type=click.Path(), default=None,
              help="Write one self-contained HTML page (figures embedded) here.")
@click.option("--png", "png_dir", type=click.Path(), default=None, help="Write the figures as PNG files here.")
@click.option("--label-rule", default=None, help="Gold label rule for the page (default: the task's).")
@click.option("--rank-by", default="balanced_accuracy", show_default=True,
              help="A sweep's leaderboard: the metric that picks each task's best model.")
@encoder_option
@resamples_option(the_runs_own=True)
@runs_seed_option
@json_option("the metrics")
@friendly_errors
def report(run_dir, html_path, png_dir, label_rule, rank_by, encoder, resamples, seed, as_json) -> None:
    """Score a run directory's samples (finished or interrupted): tables, and an HTML page or PNGs.
    A sweep folder gets a leaderboard page (--html) of all its runs."""
    from peerbench.reporting.leaderboard import is_sweep_dir
    from peerbench.reporting.scoring import rescore
    from peerbench.reporting.tables import print_metrics

    if is_sweep_dir(run_dir):
        _leaderboard(run_dir, html_path, png_dir, label_rule, rank_by, resamples, seed, as_json)
        return
    if html_path or png_dir:
        from peerbench.reporting.html import build_report

        metrics = build_report(run_dir, html=html_path, png_dir=png_dir, label_rule=label_rule,
                               resamples=resamples, seed=seed, review_options={"encoder": encoder})
    else:
        metrics = rescore(run_dir, resamples=resamples, seed=seed, review_options={"encoder": encoder})
    if as_json:
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print_metrics(metrics)
    for what, where in (("HTML report", html_path), ("figures", png_dir)):
        if where:
            click.echo(f"{what}: {where}", err=as_json)


def _leaderboard(sweep_dir, html_path, png_dir, label_rule, rank_by, resamples, seed, as_json) -> None:
    """`report SWEEP_DIR --html board.html`: one page for the whole sweep, each run's page beside it."""
    from peerbench.errors import ConfigError
    from peerbench.reporting.leaderboard import build_leaderboard

    if not html_path or png_dir:
        raise ConfigError(f"{sweep_dir}: a sweep folder makes a leaderboard page: give --html FILE (not --png)")
    board = build_leaderboard(sweep_dir, html=html_path, label_rule=label_rule, rank_by=rank_by,
                              resamples=resamples, seed=seed)
    if as_json:
        click.echo(json.dumps(board, indent=2, sort_keys=True))
    for task in board["tasks"]:
        best = next((row for row in task["rows"] if row["best"]), None)
        if best is None:
            click.echo(f"{task['task']}: {len(task['rows'])} models, none complete: no best marked", err=as_json)
            continue
        click.echo(f"{task['task']}: {len(task['rows'])} models, best by {rank_by}: {best['model']} "
                   f"({best['metrics'][rank_by]['value']:.3f})", err=as_json)
    for run in board["left_off"]:
        click.echo(f"not on the board: {run['name']}: {run['why']}", err=True)
    click.echo(f"leaderboard: {html_path}", err=as_json)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--label-rule", default=None, help="Gold label rule (default: the first run's).")
@encoder_option
@resamples_option(minimum=1, the_runs_own=True)
@runs_seed_option
@json_option("the comparison")
@friendly_errors
def compare(run_dirs, label_rule, encoder, resamples, seed, as_json) -> None:
    """Compare runs of one task: metrics side by side, paired bootstrap, McNemar, kappa, disagreements."""
    from peerbench.reporting.comparison import compare as compare_runs

    result = compare_runs(run_dirs, label_rule=label_rule, resamples=resamples, seed=seed,
                          review_options={"encoder": encoder})
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    from peerbench.reporting.tables import render_comparison

    console().print(render_comparison(result))


@cli.command("sweep")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Sweep folder (default: peerbench-sweeps/<name>).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster: auto, ray://host:10001 (default: start one here).")
@click.option("--max-parallel", type=click.IntRange(min=1), default=4, show_default=True,
              help="Local executor: HTTP-backend runs at once.")
@click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Ray: retries of a run whose worker died (it resumes from its samples).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Compare the runs of each task at the end.")
@click.option("-q", "--quiet", is_flag=True)
@json_option("the summary")
@friendly_errors
def sweep_command(spec, out, executor, address, max_parallel, max_retries, compare, quiet, as_json) -> None:
    """Run models x tasks from a sweep YAML; finished runs are skipped, each pair is a run directory."""
    from peerbench.pipeline.sweep import sweep
    from peerbench.reporting.tables import render_sweep

    summary = sweep(spec, out=out, executor=executor, address=address, max_parallel=max_parallel,
                    max_retries=max_retries, progress=not quiet)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        screen = console()
        screen.print(render_sweep(summary))
        if compare:
            _compare_each_task(summary, screen)
    unfinished = [run["name"] for run in summary["runs"] if run.get("error") or run.get("complete") is False]
    if unfinished:
        click.echo(f"INCOMPLETE: {len(unfinished)} of {len(summary['runs'])} runs failed or have failed papers "
                   f"({', '.join(unfinished[:5])}{', ...' if len(unfinished) > 5 else ''}); rerun the sweep to "
                   "finish them", err=True)
        sys.exit(INCOMPLETE_EXIT_CODE)


def _compare_each_task(summary: dict[str, Any], screen: Any) -> None:
    """The finished runs of each task, side by side."""
    from peerbench.reporting.comparison import compare as compare_runs
    from peerbench.reporting.tables import render_comparison

    by_task: dict[str, list[str]] = {}
    for run in summary["runs"]:
        if not run.get("error"):
            by_task.setdefault(run["task"], []).append(run["run_dir"])
    for runs in by_task.values():
        if len(runs) > 1:
            screen.print(render_comparison(compare_runs(runs, resamples=500)))
