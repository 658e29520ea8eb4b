"""The entry point peerbench loads: adds the `distill` command group (imports stay lazy)."""

from __future__ import annotations

from peerbench import hookimpl


@hookimpl
def register_commands(cli):
    from peerbench_distill.cli import distill

    cli.add_command(distill)
