"""`peerbench validate-data`: every problem in a dataset's files, each with its file and field,
before a run trips over the first one. Names no dataset: each registered dataset says whether it
:meth:`~peerbench.datasets.Dataset.claims` a path, and the one that does validates it."""

from __future__ import annotations

from pathlib import Path

from peerbench.datasets import Dataset
from peerbench.errors import ConfigError


def dataset_for(path: Path, name: str | None = None) -> tuple[str, Dataset]:
    """(name, dataset): the one named (``--dataset``), else the one registered dataset that claims ``path``.

    One class registered under two names (a plugin re-registering a built-in) claims once.
    """
    from peerbench.registry import registries

    registry = registries().datasets
    if name is not None:
        return name, registry.get(name).value()
    claimants: dict[type, tuple[str, Dataset]] = {}
    for entry in registry.entries():
        dataset = entry.value()
        if type(dataset) not in claimants and dataset.claims(path):
            claimants[type(dataset)] = (entry.name, dataset)
    kind = "folder" if path.is_dir() else "file"
    if not claimants:
        asked = ", ".join(registry.names())
        raise ConfigError(f"{path}: no dataset recognises this {kind} (asked: {asked}); name one with --dataset")
    if len(claimants) > 1:
        both = " and ".join(repr(n) for n, _ in claimants.values())
        raise ConfigError(f"{path}: this {kind} looks like {both}; name one with --dataset")
    return next(iter(claimants.values()))


def validate_path(path: str | Path, dataset: str | None = None) -> tuple[str, int, list[str]]:
    """(the name of the dataset that checked it, papers checked, every problem) for the files at ``path``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder")
    name, chosen = dataset_for(path, dataset)
    checked, problems = chosen.validate(path)
    return name, checked, problems
