"""What every command shares: the group, one-line errors (exit 2), options declared once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from peerbench import __version__
from peerbench.metrics import DEFAULT_RESAMPLES

INCOMPLETE_EXIT_CODE = 3


def console():
    from rich.console import Console

    return Console()


def friendly_errors(func: Callable) -> Callable:
    """PeerbenchError or a file-system failure -> one line on stderr (secrets masked) and exit 2;
    Ctrl-C -> how to resume."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from peerbench.errors import PeerbenchError, environment_message, scrub

        try:
            return func(*args, **kwargs)
        except PeerbenchError as exc:
            click.echo(scrub(f"Error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # a bad environment (read-only, full, a file for a folder): one line, not a traceback
            click.echo(scrub(f"Error: {environment_message(exc)}"), err=True)
            sys.exit(2)
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


# Commands that a plugin shipped in this repository adds: their absence says how to install it.
PLUGIN_COMMANDS = {"distill": ("peerbench-distill", "pip install -e plugins/peerbench-distill (in a clone of "
                                                    "peerbench; see docs/distill.md)")}


class PeerbenchGroup(click.Group):
    """click's group, except that a plugin's command, asked for without its plugin, names the install."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in PLUGIN_COMMANDS and self.get_command(ctx, name) is None:
            plugin, install = PLUGIN_COMMANDS[name]
            ctx.fail(f"'{name}' comes with the {plugin} plugin, which is not installed: {install}")
        return super().resolve_command(ctx, args)


@click.group(cls=PeerbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="peerbench")
def cli() -> None:
    """Evaluate AI paper reviewers on real peer-review data.

    \b
    Quick start:
      peerbench run --backend baseline --task peerread95
      peerbench report peerbench-runs/<run>
    """


def resamples_option(minimum: int = 0, *, the_runs_own: bool = False) -> Callable:
    """--resamples; for commands that rescore a run, the default is the run's own (its metrics.json)."""
    if the_runs_own:
        return click.option("--resamples", type=click.IntRange(min=minimum), default=None,
                            help=f"Bootstrap resamples (default: the run's own, else {DEFAULT_RESAMPLES}).")
    return click.option("--resamples", type=click.IntRange(min=minimum), default=DEFAULT_RESAMPLES, show_default=True,
                        help="Bootstrap resamples for the intervals.")


# numpy's generators take seeds from 0; checked here, before any request rather than after the last one.
SEED_RANGE = click.IntRange(min=0, max=2**63 - 1)
seed_option = click.option("--seed", type=SEED_RANGE, default=0, show_default=True, help="Bootstrap seed.")
runs_seed_option = click.option("--seed", type=SEED_RANGE, default=None,
                                help="Bootstrap seed (default: the run's own).")
include_path_option = click.option("--include-path", multiple=True, type=click.Path(),
                                   help="Folder or file of extra task YAML.")
data_dir_option = click.option("--data-dir", envvar="PEERBENCH_DATA", type=click.Path(), default=None,
                               help="An existing copy of the dataset's files (see docs/datasets.md).")


def json_option(what: str) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")
