"""`peerbench judge`: a judge backend grades the stored reviews of a run (see docs/judge.md)."""

from __future__ import annotations

import json
import sys

import click

from peerbench.cli.backend_flags import WithBackendFlags, options_from_flags
from peerbench.cli.common import (
    INCOMPLETE_EXIT_CODE,
    cli,
    console,
    data_dir_option,
    friendly_errors,
    json_option,
    parse_backend_args,
    resamples_option,
    seed_option,
)


@cli.command("judge", cls=WithBackendFlags)
@click.argument("run_dir", type=click.Path(), required=False)
@click.option("-b", "--backend", default=None, help="The judge's backend (its own, not the run's).")
@click.option("-m", "--model", default=None, help="The judge's model, or a registered model preset.")
@click.option("-o", "--backend-arg", "backend_args", multiple=True, metavar="KEY=VALUE",
              help="Judge backend option, repeatable; validated before any request.")
@click.option("--rubric", type=click.Choice(["points", "aspects", "all"]), default="all", show_default=True,
              help="points: key criticisms matched against the human reviews; aspects: 1-5 grades; all: both.")
@click.option("--agreement", type=click.IntRange(min=0), default=10, show_default=True,
              help="Papers whose model review is graded twice (another seed): the judge's self-agreement.")
@click.option("--max-points", type=click.IntRange(min=1), default=10, show_default=True,
              help="At most this many criticisms taken from a review.")
@click.option("--paper-chars", type=click.IntRange(min=1), default=40000, show_default=True,
              help="Characters of the paper text the rubric request shows.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Judge generation (default 1024).")
@click.option("--temperature", type=click.FloatRange(min=0), default=None, help="Judge generation (default 0).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N answered reviews.")
@data_dir_option
@click.option("--out", type=click.Path(), default=None,
              help="Judgement directory (default: RUN_DIR/judgements/<judge id>).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Judge requests in flight at once.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the response cache.")
@click.option("--show-prompts", is_flag=True, help="Print the judge's prompts (as packaged) and exit.")
@resamples_option()
@seed_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@json_option("the judgement's metrics.json, instead of the tables,")
@friendly_errors
def judge_command(run_dir, backend, model, backend_args, rubric, agreement, max_points, paper_chars, max_tokens,
                  temperature, limit, data_dir, out, concurrency, no_cache, show_prompts, resamples, seed, quiet,
                  as_json, **backend_flags) -> None:
    """Grade the stored reviews of RUN_DIR with a judge (any backend; the reviewer is never asked).

    Backend flags (--base-url, ...) set the judge backend's options. A rerun resumes; a judgement
    with failed requests exits 3 and the same command asks for exactly those."""
    if show_prompts:
        from peerbench.judging.prompts import show

        click.echo(show(), nl=False)
        return
    if run_dir is None:
        raise click.UsageError("RUN_DIR is required (or --show-prompts)")
    from peerbench.judging.stage import judge, incomplete_line

    options = {**parse_backend_args(backend_args), **options_from_flags(backend_flags)}
    result = judge(run_dir, backend, model, backend_options=options, rubric=rubric, data_dir=data_dir, limit=limit,
                   concurrency=concurrency, use_cache=not no_cache, progress=not quiet, max_points=max_points,
                   paper_chars=paper_chars, agreement=agreement, out=out, resamples=resamples, seed=seed,
                   generation={"max_tokens": max_tokens, "temperature": temperature})
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2, sort_keys=True))
    else:
        from peerbench.judging.tables import render_judgement

        console().print(render_judgement(result.metrics))
        click.echo(f"judgement directory: {result.judge_dir}")
    if not result.metrics["complete"]:
        if as_json:
            click.echo(incomplete_line(result.metrics), err=True)
        sys.exit(INCOMPLETE_EXIT_CODE)
