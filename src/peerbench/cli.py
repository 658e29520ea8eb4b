"""The ``peerbench`` command: thin click wrappers over the library, one line per error (exit 2)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from peerbench import __version__


INCOMPLETE_EXIT_CODE = 3


def _console():
    from rich.console import Console

    return Console()


def friendly_errors(func: Callable) -> Callable:
    """PeerbenchError -> one line on stderr and exit 2; Ctrl-C -> how to resume."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from peerbench.errors import PeerbenchError

        try:
            return func(*args, **kwargs)
        except PeerbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: every finished paper is stored; rerun the same command to resume.", err=True)
            sys.exit(130)

    return wrapper


def parse_backend_args(values: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--backend-arg")
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = raw
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="peerbench")
def cli() -> None:
    """Evaluate AI paper reviewers on real peer-review data.

    \b
    Quick start:
      peerbench run --backend baseline --task peerread95
      peerbench report peerbench-runs/<run>
    """


@cli.command()
@click.option("-t", "--task", default="peerread95", show_default=True, help="Task name (see `peerbench tasks`).")
@click.option("-b", "--backend", envvar="PEERBENCH_BACKEND", default=None,
              help="Backend (see `peerbench backends`); defaults to 'baseline' unless --model names a preset.")
@click.option("-m", "--model", default=None, help="Model for the backend, or a registered model preset.")
@click.option("-o", "--backend-arg", "backend_args", multiple=True, metavar="KEY=VALUE",
              help="Backend option, repeatable; validated before any work starts.")
@click.option("--lora", default=None, type=click.Path(), help="A LoRA adapter folder (hf and vllm backends).")
@click.option("--base-url", default=None, help="Server URL for HTTP backends, e.g. http://localhost:8000/v1.")
@click.option("--api-key-env", default=None, metavar="NAME",
              help="Environment variable holding the API key (default OPENAI_API_KEY); keys are never stored.")
@click.option("--project", default=None, help="Google Cloud project (vertex backend).")
@click.option("--location", default=None, help="Google Cloud region, e.g. us-central1 (vertex backend).")
@click.option("--thinking-budget", type=click.IntRange(min=-1), default=None,
              help="Thinking tokens for Gemini backends (-1: the model decides).")
@click.option("--include-path", multiple=True, type=click.Path(), help="Folder or file of extra task YAML.")
@click.option("--out", type=click.Path(), default=None, help="Run directory (default: peerbench-runs/<run>).")
@click.option("--limit", type=int, default=None, help="Only the first N papers.")
@click.option("--ids", default=None, help="Comma-separated paper ids.")
@click.option("--split", "splits", multiple=True, help="Override the task's splits (repeatable).")
@click.option("--data-dir", envvar="PEERBENCH_DATA", type=click.Path(), default=None,
              help="An existing copy of the dataset's files (PeerRead: its data/ folder).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Requests in flight at once.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--temperature", type=click.FloatRange(min=0), default=None)
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=None)
@click.option("--max-model-len", type=click.IntRange(min=1), default=None)
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
@click.option("--retry-failed", is_flag=True,
              help="Kept for old scripts: every rerun already requests again the papers whose request failed.")
@click.option("--resamples", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples for the intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of the tables.")
@friendly_errors
def run(task, backend, model, backend_args, lora, base_url, api_key_env, project, location, thinking_budget,
        include_path, out, limit, ids, splits, data_dir,
        concurrency, max_tokens, temperature, top_p, max_model_len, samples_per_paper, probes, probe_positions,
        probe_text, store_prompts, no_cache, retry_failed,
        resamples, seed, quiet, as_json) -> None:
    """Run a reviewer (backend + model) on a task and score it."""
    from peerbench.runner import execute, plan_run

    options = parse_backend_args(backend_args)
    for name, value in (("base_url", base_url), ("api_key_env", api_key_env), ("lora", lora), ("project", project),
                        ("location", location), ("thinking_budget", thinking_budget)):
        if value is not None:
            options[name] = value
    plan_kwargs = dict(backend_options=options, include_paths=include_path, out=out, limit=limit,
                       ids=[i.strip() for i in ids.split(",") if i.strip()] if ids else None,
                       split=list(splits) or None, data_dir=data_dir, max_model_len=max_model_len,
                       generation={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p},
                       samples=samples_per_paper, store_prompts=store_prompts)
    execute_kwargs = dict(concurrency=concurrency, use_cache=not no_cache)
    if probes:
        from peerbench.probes import POSITIONS, run_probes
        from peerbench.tables import render_probes

        positions = POSITIONS if "all" in probe_positions else (tuple(probe_positions) or ("end",))
        report = run_probes(task, backend, model, probes=probes, positions=positions, probe_text_file=probe_text,
                            resamples=resamples, seed=seed, progress=not quiet, execute_kwargs=execute_kwargs,
                            **plan_kwargs)
        if as_json:
            click.echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            _console().print(render_probes(report))
            click.echo(f"probe directory: {report['probe_dir']}")
        return
    result = execute(plan_run(task, backend, model, **plan_kwargs), progress=not quiet, resamples=resamples,
                     seed=seed, **execute_kwargs)
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2, sort_keys=True))
    else:
        from peerbench.tables import print_metrics

        print_metrics(result.metrics)
        click.echo(f"run directory: {result.run_dir}")
    _exit_if_incomplete(result.metrics)


def _exit_if_incomplete(metrics: dict[str, Any]) -> None:
    """An incomplete run (failed or unrequested papers) exits with code 3, after its numbers are saved."""
    from peerbench.tables import answered_line

    if not metrics.get("complete", True):
        click.echo(answered_line(metrics), err=True)
        sys.exit(INCOMPLETE_EXIT_CODE)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--html", "html_path", type=click.Path(), default=None,
              help="Write one self-contained HTML page (figures embedded) here.")
@click.option("--png", "png_dir", type=click.Path(), default=None, help="Write the figures as PNG files here.")
@click.option("--label-rule", default=None, help="Gold label rule for the page (default: the task's).")
@click.option("--resamples", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@friendly_errors
def report(run_dir, html_path, png_dir, label_rule, resamples, seed, as_json) -> None:
    """Score a run directory's samples (finished or interrupted): tables, and an HTML page or PNGs."""
    from peerbench.tables import print_metrics, rescore

    if html_path or png_dir:
        from peerbench.html_report import build_report

        metrics = build_report(run_dir, html=html_path, png_dir=png_dir, label_rule=label_rule,
                               resamples=resamples, seed=seed)
    else:
        metrics = rescore(run_dir, resamples=resamples, seed=seed)
    if as_json:
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print_metrics(metrics)
    for what, where in (("HTML report", html_path), ("figures", png_dir)):
        if where:
            click.echo(f"{what}: {where}", err=as_json)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--label-rule", default=None, help="Gold label rule (default: the first run's).")
@click.option("--resamples", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@friendly_errors
def compare(run_dirs, label_rule, resamples, seed, as_json) -> None:
    """Compare runs of one task: metrics side by side, paired bootstrap, McNemar, kappa, disagreements."""
    from peerbench.comparison import compare as compare_runs

    result = compare_runs(run_dirs, label_rule=label_rule, resamples=resamples, seed=seed)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    from peerbench.tables import render_comparison

    _console().print(render_comparison(result))


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
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def sweep_command(spec, out, executor, address, max_parallel, max_retries, compare, quiet, as_json) -> None:
    """Run models x tasks from a sweep YAML; finished runs are skipped, each pair is a run directory."""
    from peerbench.sweep import sweep
    from peerbench.tables import render_sweep

    summary = sweep(spec, out=out, executor=executor, address=address, max_parallel=max_parallel,
                    max_retries=max_retries, progress=not quiet)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    console = _console()
    console.print(render_sweep(summary))
    if compare:
        from peerbench.comparison import compare as compare_runs
        from peerbench.tables import render_comparison

        by_task: dict[str, list[str]] = {}
        for run in summary["runs"]:
            if not run.get("error"):
                by_task.setdefault(run["task"], []).append(run["run_dir"])
        for runs in by_task.values():
            if len(runs) > 1:
                console.print(render_comparison(compare_runs(runs, resamples=500)))


@cli.command("validate-data")
@click.argument("path", type=click.Path())
@friendly_errors
def validate_data(path) -> None:
    """Check a PeerRead-style folder or a JSONL dataset; print every problem with its file and field."""
    from peerbench.validation import validate_path

    checked, problems = validate_path(path)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {checked} paper(s)", err=True)
        sys.exit(2)
    click.echo(f"ok: {checked} paper(s) checked in {path}")


@cli.command("serve-check")
@click.option("--base-url", required=True, help="The server's OpenAI-compatible URL, e.g. http://localhost:8000/v1.")
@click.option("-m", "--model", default=None, help="The model to check (default: the only one served).")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, metavar="NAME")
@click.option("-t", "--task", default=None, help="Also check the served context against this task's max_model_len.")
@click.option("--include-path", multiple=True, type=click.Path(), help="Folder or file of extra task YAML.")
@friendly_errors
def serve_check(base_url, model, api_key_env, task, include_path) -> None:
    """Check an OpenAI-compatible server before a long run: reachable, key accepted, model served."""
    import asyncio

    from peerbench.backends.serve_check import check_server
    from peerbench.task import load_task

    task_obj = load_task(task, include_path) if task else None
    for line in asyncio.run(check_server(base_url, model, api_key_env, task_obj)):
        click.echo(line)


@cli.group("export")
def export_group() -> None:
    """Write a peerbench task for another evaluation tool."""


@export_group.command("lm-eval")
@click.option("-t", "--task", default="peerread95", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the lm-eval task.")
@click.option("--name", default=None, help="Task name inside lm-eval (default: the peerbench name, '-' -> '_').")
@click.option("--data-dir", envvar="PEERBENCH_DATA", type=click.Path(), default=None)
@click.option("--include-path", multiple=True, type=click.Path())
@click.option("--max-model-len", type=click.IntRange(min=1), default=None)
@click.option("--limit", type=int, default=None)
@friendly_errors
def export_lm_eval(task, out, name, data_dir, include_path, max_model_len, limit) -> None:
    """A task folder that `lm_eval --include_path OUT --tasks NAME` runs as it is."""
    from peerbench.interop.lm_eval import export_task

    folder = export_task(task, out, data_dir=data_dir, include_paths=include_path, max_model_len=max_model_len,
                         limit=limit, name=name)
    lm_name = name or task.replace("-", "_")
    click.echo(f"lm-eval task {lm_name!r} written to {folder}; run it with:\n  lm_eval --include_path {folder} "
               f"--tasks {lm_name} --model local-chat-completions --model_args model=NAME,base_url=URL/v1/chat/"
               f"completions,num_concurrent=16,tokenized_requests=False --apply_chat_template --log_samples "
               f"--output_path OUT")


@cli.group("import")
def import_group() -> None:
    """Turn another tool's results into a peerbench run directory."""


@import_group.command("lm-eval")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The new peerbench run directory.")
@click.option("--resamples", type=click.IntRange(min=0), default=1000, show_default=True)
@friendly_errors
def import_lm_eval(results_dir, out, resamples) -> None:
    """An lm-eval --output_path folder (made with --log_samples on an exported task) -> a run directory."""
    from peerbench.interop.lm_eval import import_results

    for item in import_results(results_dir, out, resamples=resamples)["imported"]:
        click.echo(f"{item['task']}: {item['samples']} samples -> {item['run_dir']} (peerbench report / compare "
                   "work on it)")


def _listing(kind: str, title: str, describe: Callable[[Any], list[str]], columns: list[str]) -> None:
    from rich.table import Table

    from peerbench.registry import registries

    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, no_wrap=index == 0)  # a name cut in two cannot be copied
    for entry in getattr(registries(), kind).entries():
        table.add_row(*describe(entry))
    _console().print(table)


@cli.command()
@friendly_errors
def backends() -> None:
    """List the registered backends."""
    _listing("backends", "backends", lambda e: [e.name, e.plugin, e.extra or "", e.description],
             ["name", "plugin", "extra", "description"])


@cli.command()
@click.option("--include-path", multiple=True, type=click.Path())
@friendly_errors
def tasks(include_path) -> None:
    """List the tasks with their size and gold label rule."""
    from rich.table import Table

    from peerbench.registry import registries
    from peerbench.task import tasks_from_path

    regs = registries()
    found = [e.value for e in regs.tasks.entries()] + [t for p in include_path for t in tasks_from_path(p)]
    table = Table(title="tasks", title_justify="left")
    for column in ("name", "papers", "gold label", "also reported"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", min_width=20)
    for task in found:
        size = None
        if task.dataset.name in regs.datasets:
            dataset = regs.datasets.get(task.dataset.name).value()
            size = dataset.size(dataset.parse_args(task.dataset.args(), f"task {task.task}"))
        table.add_row(task.task, "?" if size is None else str(size), task.label_rule,
                      ", ".join(task.report_label_rules), task.description)
    _console().print(table)


@cli.command()
@friendly_errors
def models() -> None:
    """List model presets (from plugins and from your models.yaml)."""
    from peerbench.presets import presets_path

    _listing("models", "model presets", lambda e: [e.name, e.value["backend"], e.value["model"],
                                                  ", ".join(sorted(e.value.get("backends") or {})), e.plugin],
             ["name", "backend", "model", "also runs on", "from"])
    _console().print(f"user presets file: {presets_path()}", highlight=False)


@cli.command()
@friendly_errors
def metrics() -> None:
    """List the registered metrics."""
    _listing("metrics", "metrics", lambda e: [e.name, e.plugin, e.description], ["name", "plugin", "description"])


@cli.command()
@friendly_errors
def plugins() -> None:
    """List plugins, their hooks and versions, and any that failed to load."""
    from rich.table import Table

    from peerbench import plugins as plugin_module
    from peerbench.registry import registries

    registries()
    table = Table(title="plugins", title_justify="left")
    for column in ("name", "version", "hooks", "kind"):
        table.add_column(column)
    for info in plugin_module.plugin_infos():
        table.add_row(info.name, info.version or "", ", ".join(info.hooks), "built-in" if info.builtin else "installed")
    console = _console()
    console.print(table)
    for failure in plugin_module.failures:
        console.print(f"[red]failed[/red] {failure.name} ({failure.stage}): {failure.error}", markup=True,
                      highlight=False)


@cli.group()
def data() -> None:
    """Download and inspect datasets."""


@data.command("pull")
@click.argument("dataset", type=click.Choice(["peerread", "openreview"]))
@click.option("--venues", "--venue", "venues", multiple=True,
              help="PeerRead venues (default: all three), or OpenReview venue ids (ICLR.cc/2020/Conference).")
@click.option("--splits", multiple=True, help="PeerRead splits (default: dev and test).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="OpenReview: first N submissions per venue.")
@click.option("--data-dir", envvar="PEERBENCH_DATA", type=click.Path(), default=None)
@friendly_errors
def data_pull(dataset, venues, splits, limit, data_dir) -> None:
    """Fetch a dataset's files into the cache (resumable)."""
    if dataset == "openreview":
        from peerbench.datasets.openreview import OpenReview

        if not venues:
            raise click.BadParameter("name at least one venue, e.g. --venue ICLR.cc/2020/Conference",
                                     param_hint="--venue")
        ds = OpenReview(data_dir)
        papers = ds.pull(ds.parse_args({"venues": list(venues), "limit": limit}, "peerbench data pull"))
        for venue, counts in ds.counts.items():
            click.echo(f"{venue}: {counts['papers']} papers with a decision of {counts['submissions']} submissions "
                       f"({counts['withdrawn']} withdrawn, {counts['desk rejected']} desk rejected, "
                       f"{counts['no decision']} without a decision, {counts['no pdf']} without a PDF left out)")
        click.echo(f"{len(papers)} papers cached in {ds.root}")
        return
    from peerbench.datasets.peerread import PeerRead

    ds = PeerRead(data_dir)
    raw: dict[str, Any] = {}
    if venues:
        raw["venues"] = [v for item in venues for v in item.split(",") if v]
    if splits:
        raw["splits"] = [s for item in splits for s in item.split(",") if s]
    args = ds.parse_args(raw, "peerbench data pull")
    fetched = ds.pull(args)
    click.echo(f"{fetched} files fetched; PeerRead files are in {ds.root}")


@data.command("info")
@friendly_errors
def data_info() -> None:
    """Show what is cached."""
    from rich.table import Table

    from peerbench.datasets.peerread import PeerRead, SPLITS, VENUES
    from peerbench.paths import cache_root

    ds = PeerRead()
    table = Table(title=f"PeerRead cache: {ds.root}", title_justify="left")
    for column in ("venue", "split", "reviews", "parsed_pdfs", "MB"):
        table.add_column(column, justify="right")
    for venue in VENUES:
        for split in SPLITS:
            folder = ds.root / venue / split
            reviews = list((folder / "reviews").glob("*.json"))
            parsed = list((folder / "parsed_pdfs").glob("*.pdf.json"))
            size = sum(p.stat().st_size for p in [*reviews, *parsed]) / 1e6
            table.add_row(venue, split, str(len(reviews)), str(len(parsed)), f"{size:.1f}")
    console = _console()
    console.print(table)
    cache = cache_root() / "responses.sqlite"
    console.print(f"response cache: {cache} ({cache.stat().st_size / 1e6:.1f} MB)" if cache.is_file()
                  else f"response cache: {cache} (empty)")


def build_cli() -> click.Group:
    """The group with every plugin's commands added (once)."""
    if not getattr(cli, "_plugins_added", False):
        from peerbench import plugins as plugin_module

        try:
            plugin_module.call_each("register_commands", lambda plugin: {"cli": cli})
        except Exception as exc:  # never let a plugin break --help
            plugin_module.failures.append(plugin_module.PluginFailure("register_commands", str(exc)))
        cli._plugins_added = True  # type: ignore[attr-defined]
    return cli


def main() -> None:
    build_cli()(prog_name="peerbench")


if __name__ == "__main__":
    main()
