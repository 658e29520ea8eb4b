"""Built-in datasets. A dataset plugin registers a factory returning a :class:`Dataset`.

Facts about a dataset live on its class, so the CLI names none of them: ``peerbench data pull
NAME`` calls :meth:`Dataset.pull` then prints :meth:`Dataset.describe_pull`, ``data info`` prints
every dataset's :meth:`Dataset.info` rows, and ``validate-data PATH`` asks each dataset whether it
:meth:`Dataset.claims` the path and lets that one :meth:`Dataset.validate` it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from peerbench.errors import ConfigError, DataError, first_problem
from peerbench.records import Paper

MAX_FILE_BYTES = 10 * 1024 * 1024  # one data file (or JSONL line) larger than this is refused, not parsed


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


@dataclass(frozen=True)
class InfoRow:
    """One line of ``peerbench data info``: a part of a dataset that is on disk."""

    what: str            # the part, in the dataset's own words ("acl_2017/dev", "ICLR.cc/2020/Conference")
    where: str           # the folder or file holding it
    how_many: str        # what it holds ("14 papers, 14 parsed PDFs")
    size_bytes: int      # bytes on disk


def folder_bytes(paths: list[Path]) -> int:
    """Total size of the files given (those that vanished meanwhile count nothing)."""
    return sum(p.stat().st_size for p in paths if p.is_file())


class Dataset(ABC):
    """Yields Papers for a selection (venues, splits, ids...) that its ``Args`` model validates.

    Subclasses implement :meth:`size` and :meth:`load`; the other methods have defaults that a
    dataset with something to download, describe or check overrides.
    """

    name: ClassVar[str]
    InfoRow: ClassVar[type[InfoRow]] = InfoRow  # so a plugin builds its rows as self.InfoRow(...)

    class Args(BaseModel):
        pass

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = Path(data_dir) if data_dir else None

    def parse_args(self, args: dict[str, Any], where: str) -> BaseModel:
        try:
            return self.Args(**args)
        except ValidationError as exc:
            field, message, _ = first_problem(exc)
            raise ConfigError(f"{where}: dataset field {field!r}: {message}") from None

    @abstractmethod
    def size(self, args: BaseModel) -> int | None:
        """Number of papers the selection holds, without downloading, where known."""

    @abstractmethod
    def load(self, args: BaseModel, *, progress: bool = True) -> list[Paper]:
        """The selected papers, fetching what is missing first."""

    def iter_papers(self, args: BaseModel, *, progress: bool = True) -> Iterator[Paper]:
        """The selected papers one at a time, in :meth:`load`'s order: what a run reads, so that a
        large corpus is never held whole. The default yields from :meth:`load`; a dataset that can
        read its papers one by one (``jsonl`` does) overrides it, raising the same errors as
        :meth:`load` (a bad record, a repeated id, an --ids id not found) before the stream ends."""
        yield from self.load(args, progress=progress)

    def pull(self, args: BaseModel, *, progress: bool = True) -> Any:
        """Fetch the selection into the cache ahead of a run (``peerbench data pull``).

        The default loads the papers, which fetches whatever :meth:`load` fetches; the return
        value is only ever handed back to :meth:`describe_pull`.
        """
        return self.load(args, progress=progress)

    def describe_pull(self, pulled: Any) -> list[str]:
        """The lines ``data pull`` prints about what :meth:`pull` returned; the dataset knows its counters."""
        if isinstance(pulled, list):
            return [f"{self.name}: {len(pulled)} papers ready"]
        return [f"{self.name}: pulled ({pulled})"]

    def info(self) -> list[InfoRow]:
        """What of this dataset is on disk, for ``peerbench data info``; by default nothing is known."""
        return []

    @classmethod
    def claims(cls, path: Path) -> bool:
        """Whether ``path`` looks like this dataset's files, cheaply (a glance, not a validation).

        ``peerbench validate-data PATH`` asks every registered dataset and lets the one that
        claims the path validate it; by default a dataset claims nothing.
        """
        return False

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """(papers checked, every problem as one line naming its file and field) for the files at ``path``."""
        raise ConfigError(f"{path}: dataset {self.name!r} cannot validate files (it defines no validate())")
