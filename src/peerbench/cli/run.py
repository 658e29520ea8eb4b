"""`peerbench run`: one task on one backend, scored."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from peerbench.cli.backend_flags import WithBackendFlags, options_from_flags
from peerbench.cli.common import (
    INCOMPLETE_EXIT_CODE,
    cli,
    console,
    data_dir_option,
    friendly_errors,
    include_path_option,
    json_option,
    parse_backend_args,
    resamples_option,
    seed_option,
)


@cli.command(cls=WithBackendFlags)
@click.option("-t", "--task", default="peerread95", show_default=True, help="Task name (see `peerbench tasks`).")
@click.option("-b", "--backend", envvar="PEERBENCH_BACKEND", default=None,
              help="Backend (see `peerbench backends`); needed unless --model names a preset or a model that "
                   "one backend declares (always-accept, tfidf-lr...).")
@click.option("-m", "--model", default=None, help="Model for the backend, or a registered model preset.")
@click.option("-o", "--backend-arg", "backend_args", multiple=True, metavar="KEY=VALUE",
              help="Backend option, repeatable; validated before any work starts.")
@include_path_option
@click.option("--out", type=click.Path(), default=None, help="Run directory (default: peerbench-runs/<run>).")
@click.option("--limit", type=int, default=None, help="Only the first N papers.")
@click.option("--ids", default=None, help="Comma-separated paper ids.")
@click.option("--split", "splits", multiple=True, help="Override the task's splits (repeatable).")
@data_dir_option
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Requests in flight at once.")
@click.option("--max-tokens", type=click.IntRange(min=1, max=1_000_000), default=None)
@click.option("--temperature", type=click.FloatRange(min=0, max=2), default=None)
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=None)
@click.option("--max-model-len", type=click.IntRange(min=1, max=10_000_000), default=None)
@click.option("--samples", "samples_per_paper", type=click.IntRange(min=1), default=1, show_default=True,
              help="Generations per paper; with more than 1, P(accept) is the share of ACCEPTANCE among them.")
@click.option("--probe", "probes", multiple=True, metavar="NAME",
              help="Robustness probe, repeatable: injection, perturbations, shuffle-sections, drop-results, "
                   "abstract-only, replace-title. Runs the clean task and each probe arm; see docs/robustness.md.")
@click.option("--probe-position", "probe_positions", multiple=True,
              type=click.Choice(["start", "middle", "end", "all"]), help="Where injected text goes (default: end).")
@click.option("--probe-text", type=click.Path(), default=None, help="A file with your own injected instruction.")
@click.option("--store-prompts", is_flag=True, help="Keep each paper's prompt messages in samples.jsonl.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the response cache.")
@click.option("--redo-changed", is_flag=True,
              help="Request again the papers whose content changed since the run directory answered them, and "
                   "score against the data's current labels those whose gold labels or ratings changed.")
@click.option("--retry-failed", is_flag=True,
              help="Kept for old scripts: every rerun already requests again the papers whose request failed.")
@resamples_option()
@seed_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@json_option("metrics.json, instead of the tables,")
@friendly_errors
def run(task, backend, model, backend_args, include_path, out, limit, ids, splits, data_dir,
        concurrency, max_tokens, temperature, top_p, max_model_len, samples_per_paper, probes, probe_positions,
        probe_text, store_prompts, no_cache, redo_changed, retry_failed,
        resamples, seed, quiet, as_json, **backend_flags) -> None:
    """Run a reviewer (backend + model) on a task and score it.

    Backend flags (--base-url, --lora, ...) come from the registered backends' options."""
    from peerbench.pipeline.execute import execute, plan_run

    options = {**parse_backend_args(backend_args), **options_from_flags(backend_flags)}
    plan_kwargs = dict(backend_options=options, include_paths=include_path, out=out, limit=limit,
                       ids=paper_ids(ids),
                       split=list(splits) or None, data_dir=data_dir, max_model_len=max_model_len,
                       generation={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p},
                       samples=samples_per_paper, store_prompts=store_prompts)
    execute_kwargs = dict(concurrency=concurrency, use_cache=not no_cache, redo_changed=redo_changed)
    if probes:
        from peerbench.pipeline.probes import POSITIONS, run_probes
        from peerbench.reporting.tables import render_probes

        positions = POSITIONS if "all" in probe_positions else (tuple(probe_positions) or ("end",))
        report = run_probes(task, backend, model, probes=probes, positions=positions, probe_text_file=probe_text,
                            resamples=resamples, seed=seed, progress=not quiet, execute_kwargs=execute_kwargs,
                            **plan_kwargs)
        if as_json:
            click.echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            console().print(render_probes(report))
            click.echo(f"probe directory: {report['probe_dir']}")
        if report["incomplete_arms"]:
            click.echo(f"INCOMPLETE: arms {', '.join(report['incomplete_arms'])} have failed or unrequested papers "
                       "(left out of the comparison); rerun the same command to finish them", err=True)
            sys.exit(INCOMPLETE_EXIT_CODE)
        return
    result = execute(plan_run(task, backend, model, **plan_kwargs), progress=not quiet, resamples=resamples,
                     seed=seed, **execute_kwargs)
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2, sort_keys=True))
    else:
        from peerbench.reporting.tables import print_metrics

        print_metrics(result.metrics)
        click.echo(f"run directory: {result.run_dir}")
    _exit_if_incomplete(result.metrics)


def paper_ids(ids: str | None) -> list[str] | None:
    """The ids --ids names; one that names none ("" or ",,,") is refused rather than read as every paper."""
    if ids is None:
        return None
    found = [i.strip() for i in ids.split(",") if i.strip()]
    if not found:
        raise click.BadParameter(f"{ids!r} names no paper id; give comma-separated ids, or leave --ids out for "
                                 "every paper", param_hint="--ids")
    return found


def _exit_if_incomplete(metrics: dict[str, Any]) -> None:
    """An incomplete run (failed or unrequested papers) exits with code 3, after its numbers are saved."""
    from peerbench.reporting.tables import answered_line

    if not metrics.get("complete", True):
        click.echo(answered_line(metrics), err=True)
        sys.exit(INCOMPLETE_EXIT_CODE)
