"""`data pull`, `data info` and `validate-data`: datasets on disk.

Thin and generic: every fact about a dataset (what to fetch, what it printed, what is cached,
what its files must look like) comes from the dataset's class, so a plugin's dataset gets these
commands exactly as the built-ins do.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

import click

from peerbench.cli.common import cli, console, data_dir_option, friendly_errors, json_option, parse_backend_args


@cli.command("validate-data")
@click.argument("path", type=click.Path())
@click.option("--dataset", default=None, help="The dataset whose files PATH holds (default: the one that claims it).")
@friendly_errors
def validate_data(path, dataset) -> None:
    """Check a dataset's files; print every problem with its file and field.

    The registered dataset that recognises PATH checks it (`--dataset` names one instead).
    """
    from peerbench.datasets.validation import validate_path

    name, checked, problems = validate_path(path, dataset)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {checked} paper(s)", err=True)
        sys.exit(2)
    click.echo(f"ok: {checked} paper(s) checked in {path} ({name})")


@cli.group()
def data() -> None:
    """Download and inspect datasets."""


# Shorthands for the selection keys most datasets share; each maps onto `-s KEY=VALUE`.
CONVENIENCE_FLAGS = {"venues": "--venues", "splits": "--splits", "limit": "--limit"}


def _is_list_field(model: type, key: str) -> bool:
    """Whether the Args field takes a list (``list[str]``, ``list[str] | None``...)."""
    field = getattr(model, "model_fields", {}).get(key)
    if field is None:
        return False
    kinds = [field.annotation, *typing.get_args(field.annotation)]
    return any(kind is list or typing.get_origin(kind) is list for kind in kinds)


def _as_list(value: Any, text: str) -> list[Any]:
    """A list field's value: a YAML list as given (numbers as text, so ``[37, 94]`` are ids), else ``a,b`` split."""
    if isinstance(value, list):
        return [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return [part.strip() for part in text.split(",") if part.strip()]


def selection(items: list[str], model: type) -> dict[str, Any]:
    """``KEY=VALUE`` items as dataset args: values as YAML (like ``-o``); a list field also takes
    ``a,b`` and repeats (``-s venues=a -s venues=b``)."""
    raw: dict[str, Any] = {}
    for item in items:
        try:
            ((key, value),) = parse_backend_args((item,)).items()
        except click.BadParameter as exc:
            exc.param_hint = "--select"
            raise
        if _is_list_field(model, key) and value not in (None, ""):
            value = _as_list(value, item.partition("=")[2])
            value = raw[key] + value if isinstance(raw.get(key), list) else value
        raw[key] = value
    return raw


def convenience_items(name: str, model: type, given: dict[str, tuple[str, ...]]) -> list[str]:
    """``--venues/--splits/--limit`` as ``KEY=VALUE`` items, for a dataset whose Args has that field."""
    from peerbench.errors import ConfigError

    fields = getattr(model, "model_fields", {})
    items = []
    for key, values in given.items():
        if not values:
            continue
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ConfigError(f"{CONVENIENCE_FLAGS[key]}: dataset {name!r} has no field {key!r} "
                              f"(its fields: {known}; use -s KEY=VALUE)")
        items.extend(f"{key}={value}" for value in values)
    return items


@data.command("pull")
@click.argument("name", metavar="DATASET")
@click.option("-s", "--select", "select", multiple=True, metavar="KEY=VALUE",
              help="A field of the dataset's selection, repeatable; lists as a,b or [a, b] "
                   "(-s venues=a,b -s limit=10).")
@click.option("--venues", "--venue", "venues", multiple=True, help="Shorthand for -s venues=... (repeatable).")
@click.option("--splits", multiple=True, help="Shorthand for -s splits=... (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Shorthand for -s limit=N.")
@data_dir_option
@friendly_errors
def data_pull(name, select, venues, splits, limit, data_dir) -> None:
    """Fetch a registered dataset's files into the cache (resumable); `peerbench data info` shows them."""
    from peerbench.registry import registries

    dataset = registries().datasets.get(name).value(data_dir)
    model = dataset.Args
    items = [*select, *convenience_items(name, model, {"venues": venues, "splits": splits,
                                                         "limit": (limit,) if limit is not None else ()})]
    args = dataset.parse_args(selection(items, model), f"peerbench data pull {name}")
    for line in dataset.describe_pull(dataset.pull(args)):
        click.echo(line)


def _info_rows() -> list[dict[str, Any]]:
    """Every registered dataset's rows; a dataset with none gets one saying so."""
    from peerbench.registry import registries

    rows = []
    for entry in registries().datasets.entries():
        found = entry.value().info()
        rows.extend({"dataset": entry.name, "what": r.what, "where": r.where, "how_many": r.how_many,
                     "size_bytes": r.size_bytes} for r in found)
        if not found:
            rows.append({"dataset": entry.name, "what": None, "where": None, "how_many": None, "size_bytes": 0})
    return rows


@data.command("info")
@json_option("the rows")
@friendly_errors
def data_info(as_json) -> None:
    """Show what each registered dataset has on disk, and the response cache."""
    import json

    from peerbench.reporting.fit import Table

    from peerbench.paths import cache_root

    rows = _info_rows()
    cache = cache_root() / "responses.sqlite"
    cache_bytes = cache.stat().st_size if cache.is_file() else None
    if as_json:
        click.echo(json.dumps({"datasets": rows, "response_cache": {"path": str(cache), "size_bytes": cache_bytes}},
                              indent=2))
        return
    table = Table(title="datasets on disk", title_justify="left")
    for column, justify in (("dataset", "left"), ("what", "left"), ("how many", "left"), ("MB", "right"),
                            ("where", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "where")
    for row in rows:
        table.add_row(row["dataset"], row["what"] or "(nothing on disk known)", row["how_many"] or "",
                      f"{row['size_bytes'] / 1e6:.1f}" if row["what"] is not None else "", row["where"] or "")
    screen = console()
    screen.print(table)
    size = "empty" if cache_bytes is None else f"{cache_bytes / 1e6:.1f} MB"
    click.echo(f"response cache: {cache} ({size})")  # not wrapped: a path broken in two cannot be copied
