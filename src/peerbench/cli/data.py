"""`data pull`, `data info` and `validate-data`: datasets on disk."""

from __future__ import annotations

import sys
from typing import Any

import click

from peerbench.cli.common import (cli, console, data_dir_option, friendly_errors)


@cli.command("validate-data")
@click.argument("path", type=click.Path())
@friendly_errors
def validate_data(path) -> None:
    """Check a PeerRead-style folder or a JSONL dataset; print every problem with its file and field."""
    from peerbench.datasets.validation import validate_path

    checked, problems = validate_path(path)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {checked} paper(s)", err=True)
        sys.exit(2)
    click.echo(f"ok: {checked} paper(s) checked in {path}")


@cli.group()
def data() -> None:
    """Download and inspect datasets."""


@data.command("pull")
@click.argument("dataset", type=click.Choice(["peerread", "openreview"]))
@click.option("--venues", "--venue", "venues", multiple=True,
              help="PeerRead venues (default: all three), or OpenReview venue ids (ICLR.cc/2020/Conference).")
@click.option("--splits", multiple=True, help="PeerRead splits (default: dev and test).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="OpenReview: first N submissions per venue.")
@data_dir_option
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
    screen = console()
    screen.print(table)
    cache = cache_root() / "responses.sqlite"
    screen.print(f"response cache: {cache} ({cache.stat().st_size / 1e6:.1f} MB)" if cache.is_file()
                 else f"response cache: {cache} (empty)")
