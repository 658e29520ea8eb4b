"""`peerbench cache info | clear | prune`: the response cache that every run on this machine shares."""

from __future__ import annotations

import time

import click

from peerbench.cli.common import cli, console, friendly_errors


def _open_cache():
    from peerbench.paths import cache_root
    from peerbench.pipeline.store import ResponseCache

    return ResponseCache(cache_root() / "responses.sqlite")


@cli.group()
def cache() -> None:
    """Inspect and clear the response cache."""


@cache.command("info")
@friendly_errors
def cache_info() -> None:
    """Entries per model, with their ages, and where the cache lives."""
    from peerbench.reporting.fit import Table

    store = _open_cache()
    try:
        rows = store.summary()
    finally:
        store.close()
    table = Table(title="response cache, per model", title_justify="left")  # the path below: a title would break it
    for column in ("model", "entries", "oldest", "newest"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, count, oldest, newest in rows:
        table.add_row(model or "(not recorded)", str(count), _when(oldest), _when(newest))
    console().print(table)
    click.echo(f"{sum(row[1] for row in rows)} entries, {store.path.stat().st_size / 1e6:.1f} MB in {store.path}")


@cache.command("clear")
@click.option("--model", default=None, help="Only this model's entries (as `cache info` lists it: backend:model).")
@friendly_errors
def cache_clear(model) -> None:
    """Remove every entry, or one model's."""
    store = _open_cache()
    try:
        removed = store.delete(model=model)
    finally:
        store.close()
    click.echo(f"removed {removed} entries" + (f" of {model}" if model else ""))


@cache.command("prune")
@click.option("--older-than", "days", required=True, type=click.FloatRange(min=0, min_open=True), metavar="DAYS",
              help="Remove entries created more than DAYS days ago.")
@friendly_errors
def cache_prune(days) -> None:
    """Remove entries older than a number of days."""
    store = _open_cache()
    try:
        removed = store.delete(older_than=time.time() - days * 86400)
    finally:
        store.close()
    click.echo(f"removed {removed} entries older than {days:g} days")


def _when(timestamp: float | None) -> str:
    return "—" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
