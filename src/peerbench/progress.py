"""One rich progress bar shape for downloads and runs: count, rate, elapsed, ETA, on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True,
                 unit: str = "papers") -> Iterator[Callable[..., None]]:
    if not enabled:
        yield lambda n=1, failed=0: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("[red]{task.fields[failed]}"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task_id = progress.add_task(description, total=total, rate="", failed="")
        failures = 0

        def advance(n: int = 1, *, failed: int = 0) -> None:
            """``n`` more done; ``failed`` more that failed, shown apart and never counted as done."""
            nonlocal failures
            progress.advance(task_id, n)
            if failed:
                failures += failed
                progress.update(task_id, failed=f"{failures} failed")
            task = progress.tasks[0]
            speed = task.speed
            progress.update(task_id, rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield advance
