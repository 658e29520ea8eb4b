"""Built-in datasets. A dataset plugin registers a factory returning a :class:`Dataset`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from peerbench.errors import ConfigError, DataError
from peerbench.records import Paper


def select_ids(papers: list[Paper], ids: list[str] | None, where: str) -> list[Paper]:
    """The papers whose id --ids names (all when it names none); an id not found is an error."""
    if ids is None:
        return papers
    wanted = set(ids)
    chosen = [p for p in papers if p.id in wanted]
    missing = wanted - {p.id for p in chosen}
    if missing:
        raise DataError(f"--ids: no such paper in {where}: {', '.join(sorted(missing))}")
    return chosen


class Dataset(ABC):
    """Yields Papers for a selection (venues, splits, ids...) that its ``Args`` model validates."""

    name: ClassVar[str]

    class Args(BaseModel):
        pass

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = Path(data_dir) if data_dir else None

    def parse_args(self, args: dict[str, Any], where: str) -> BaseModel:
        try:
            return self.Args(**args)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{where}: dataset field {loc!r}: {err['msg']}") from None

    @abstractmethod
    def size(self, args: BaseModel) -> int | None:
        """Number of papers the selection holds, without downloading, where known."""

    @abstractmethod
    def load(self, args: BaseModel, *, progress: bool = True) -> list[Paper]:
        """The selected papers, fetching what is missing first."""
