"""The ``peerbench`` command: thin click wrappers over the library, one line per error (exit 2).

Each module holds a few commands and registers them on the group in ``common``; plugins add
theirs through the ``register_commands`` hook when the command line is built.
"""

from __future__ import annotations

import click

from peerbench.cli import cache, data, interop, judge, listing, results, run  # noqa: F401  (they register the commands)
from peerbench.cli.common import cli, friendly_errors, parse_backend_args

__all__ = ["build_cli", "cli", "friendly_errors", "main", "parse_backend_args"]


def build_cli() -> click.Group:
    """The group with every plugin's commands added (once). A plugin whose hook raises is recorded
    by ``call_each`` and listed by ``peerbench plugins``; it never breaks ``--help``."""
    if not getattr(cli, "_plugins_added", False):
        from peerbench import plugins as plugin_module

        plugin_module.call_each("register_commands", lambda plugin: {"cli": cli})
        cli._plugins_added = True  # type: ignore[attr-defined]
    return cli


def main() -> None:
    """The console script. On the way out the heap is frozen: the interpreter's last collection
    then skips it (0.4 s less between a run's last table and the prompt). Only here, never in the
    library: a sweep or a notebook runs many times in one process and must collect its garbage."""
    import gc

    try:
        build_cli()(prog_name="peerbench")
    finally:
        gc.freeze()
