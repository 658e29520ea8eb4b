"""`backends`, `tasks`, `models`, `metrics`, `plugins`: what is registered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


from peerbench.cli.common import (cli, console, friendly_errors,
                                  include_path_option)


def _listing(kind: str, title: str, describe: Callable[[Any], list[str]], columns: list[str]) -> None:
    from peerbench.reporting.fit import Table

    from peerbench.registry import registries

    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, no_wrap=index == 0)  # a name cut in two cannot be copied
    for entry in getattr(registries(), kind).entries():
        table.add_row(*describe(entry))
    console().print(table)


@cli.command()
@friendly_errors
def backends() -> None:
    """List the registered backends."""
    _listing("backends", "backends", lambda e: [e.name, e.plugin, e.extra or "", e.description],
             ["name", "plugin", "extra", "description"])


@cli.command()
@include_path_option
@friendly_errors
def tasks(include_path) -> None:
    """List the tasks with their size and gold label rule."""
    from peerbench.reporting.fit import Table

    from peerbench.registry import registries
    from peerbench.task import tasks_from_path

    regs = registries()
    found = [e.value for e in regs.tasks.entries()] + [t for p in include_path for t in tasks_from_path(p)]
    table = Table(title="tasks", title_justify="left")
    for column in ("name", "papers", "gold label"):
        table.add_column(column, no_wrap=column == "name")
    table.add_column("description")
    for task in found:
        size = None
        if task.dataset.name in regs.datasets:
            dataset = regs.datasets.get(task.dataset.name).value()
            args = task.dataset.args()
            if "base_dir" in dataset.Args.model_fields and task.source:  # as a run resolves a relative path
                args.setdefault("base_dir", str(Path(task.source).parent))
            size = dataset.size(dataset.parse_args(args, f"task {task.task}"))
        also = [rule for rule in task.report_label_rules if rule != task.label_rule]
        table.add_row(task.task, "?" if size is None else str(size),
                      task.label_rule + (f"\nalso: {', '.join(also)}" if also else ""), task.description)
    console().print(table)


@cli.command()
@friendly_errors
def models() -> None:
    """List model presets (from plugins and from your models.yaml)."""
    from peerbench.presets import presets_path

    _listing("models", "model presets", _preset_row, ["name", "backend", "model", "description (from)"])
    path = presets_path()
    console().print(f"user presets file: {path}" + ("" if path.is_file() else " (none yet)"), highlight=False)
    console().print("More presets: `peerbench distill register` writes one (plugin: pip install -e "
                    "plugins/peerbench-distill), or add your own to that file as NAME: {backend: B, model: M, "
                    "options: {...}}; an installed plugin may register some.", highlight=False)


def _preset_row(entry: Any) -> list[str]:
    """Four columns, so that a long model path still leaves room at 80 columns."""
    others = ", ".join(sorted(entry.value.get("backends") or {}))
    return [entry.name, entry.value["backend"] + (f"\nalso: {others}" if others else ""), entry.value["model"],
            f"{entry.description}\n({entry.plugin})".strip()]


@cli.command()
@friendly_errors
def metrics() -> None:
    """List the registered metrics."""
    _listing("metrics", "metrics", lambda e: [e.name, e.plugin, e.description], ["name", "plugin", "description"])


@cli.command()
@friendly_errors
def plugins() -> None:
    """List plugins, their hooks and versions, and any that failed to load."""
    from peerbench.reporting.fit import Table

    from peerbench import plugins as plugin_module
    from peerbench.registry import registries

    registries()
    table = Table(title="plugins", title_justify="left")
    for column in ("name", "version", "hooks", "kind"):
        table.add_column(column)
    for info in plugin_module.plugin_infos():
        table.add_row(info.name, info.version or "", ", ".join(info.hooks), "built-in" if info.builtin else "installed")
    screen = console()
    screen.print(table)
    for failure in plugin_module.failures:
        screen.print(f"[red]failed[/red] {failure.name} ({failure.stage}): {failure.error}", markup=True,
                     highlight=False)
