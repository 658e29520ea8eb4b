"""`serve-check`, `export` and `import`: peerbench beside servers and other evaluation tools."""

from __future__ import annotations


import click

from peerbench.cli.common import (cli, data_dir_option, friendly_errors,
                                  include_path_option, resamples_option, seed_option)


@cli.command("serve-check")
@click.option("--base-url", required=True, help="The server's OpenAI-compatible URL, e.g. http://localhost:8000/v1.")
@click.option("-m", "--model", default=None, help="The model to check (default: the only one served).")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, metavar="NAME")
@click.option("-t", "--task", default=None, help="Also check the served context against this task's max_model_len.")
@include_path_option
@friendly_errors
def serve_check(base_url, model, api_key_env, task, include_path) -> None:
    """Check an OpenAI-compatible server before a long run: reachable, key accepted, model served."""
    import asyncio

    from peerbench.backends import env_name, no_credentials
    from peerbench.backends.serve_check import check_server
    from peerbench.errors import ConfigError, scrub
    from peerbench.task import load_task

    try:
        no_credentials(base_url)
    except ValueError as exc:
        raise ConfigError(f"--base-url: {exc}") from None
    try:
        env_name(api_key_env)
    except ValueError as exc:
        raise ConfigError(f"--api-key-env: {exc}") from None
    task_obj = load_task(task, include_path) if task else None
    for line in asyncio.run(check_server(base_url, model, api_key_env, task_obj)):
        click.echo(scrub(line))


@cli.group("export")
def export_group() -> None:
    """Write a peerbench task for another evaluation tool."""


@export_group.command("lm-eval")
@click.option("-t", "--task", default="peerread95", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the lm-eval task.")
@click.option("--name", default=None, help="Task name inside lm-eval (default: the peerbench name, '-' -> '_').")
@data_dir_option
@include_path_option
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


@export_group.command("hf")
@click.option("-t", "--task", default="peerread95", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the saved DatasetDict.")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Add this run's reviews, decisions and P(accept) (a run of the same task).")
@data_dir_option
@include_path_option
@click.option("--limit", type=int, default=None)
@friendly_errors
def export_hf_command(task, out, run_dir, data_dir, include_path, limit) -> None:
    """The task's papers, prompts and gold labels as a Hugging Face DatasetDict (save_to_disk); never pushed."""
    from peerbench.interop.hf_export import export_hf

    done = export_hf(task, out, run_dir=run_dir, data_dir=data_dir, include_paths=include_path, limit=limit)
    sizes = ", ".join(f"{name} {n} papers" for name, n in done["splits"].items())
    click.echo(f"DatasetDict written to {done['out']} ({sizes}); datasets.load_from_disk reads it.\n"
               f"Run it through the hf dataset: peerbench run --include-path {done['out']} --task {done['task']} "
               f"...\nPush it to the Hub yourself:\n{done['push']}")
    if done["warning"]:
        click.echo(done["warning"], err=True)


@cli.group("import")
def import_group() -> None:
    """Turn another tool's results into a peerbench run directory."""


@import_group.command("lm-eval")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The new peerbench run directory.")
@resamples_option()
@friendly_errors
def import_lm_eval(results_dir, out, resamples) -> None:
    """An lm-eval --output_path folder (made with --log_samples on an exported task) -> a run directory."""
    from peerbench.interop.lm_eval import import_results

    for item in import_results(results_dir, out, resamples=resamples)["imported"]:
        click.echo(f"{item['task']}: {item['samples']} samples -> {item['run_dir']} (peerbench report / compare "
                   "work on it)")


@import_group.command("aiscientist")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False))
@click.option("-t", "--task", required=True,
              help="aiscientist-iclr2022 (decision = the review's Decision) or aiscientist-iclr2022-overall6.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="The run directory (default: under "
              "peerbench-runs/, named by task, file and identity).")
@data_dir_option
@include_path_option
@resamples_option()
@seed_option
@friendly_errors
def import_aiscientist(csv_file, task, out, data_dir, include_path, resamples, seed) -> None:
    """One of the AI Scientist's reviewer CSVs (review_iclr_bench/llm_reviews) -> a run directory,
    each row's review parsed by the task's parser; `report` (and its HTML page) and `compare` work on it."""
    from peerbench.cli.run import _exit_if_incomplete
    from peerbench.interop.aiscientist import import_reviews
    from peerbench.reporting.tables import print_metrics

    result = import_reviews(csv_file, task, out=out, data_dir=data_dir, include_paths=include_path,
                            resamples=resamples, seed=seed)
    print_metrics(result.metrics)
    click.echo(f"run directory: {result.run_dir}")
    _exit_if_incomplete(result.metrics)
