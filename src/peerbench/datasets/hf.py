"""Papers from a Hugging Face ``datasets`` dataset: a folder ``save_to_disk`` wrote, or a Hub id.

    dataset: {name: hf, path: you/reviews, split: test,
              fields: {title: paper_title, body: full_text, accepted: accepted}}

``fields`` maps a paper field to the dataset's column. A field not named there is read from the
column of its own name where the dataset has one (``id``, ``venue``, ``split``, ``sections``,
``recommendations`` ...), so a folder written by ``peerbench export hf`` needs no ``fields`` at all.
Each row goes through the JSONL dataset's validation (one line naming the split, row and field),
because a Hub dataset is somebody else's file like any other. A relative local path starts at the
task file's folder and may not leave it; a path that is not a folder there is taken as a Hub id.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from peerbench.datasets import Dataset, select_ids
from peerbench.datasets.jsonl import record_problems
from peerbench.errors import DataError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.records import Paper

PAPER_FIELDS = ("id", "title", "abstract", "sections", "body", "accepted", "recommendations", "venue", "split")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk leaves in its folder


class FieldMap(BaseModel):
    """Paper field -> the dataset's column; unset fields fall back to a column of the same name."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    title: str | None = None
    abstract: str | None = None
    sections: str | None = None
    body: str | None = None
    accepted: str | None = None
    recommendations: str | None = None
    venue: str | None = None
    split: str | None = None


class HFArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="a folder written by save_to_disk, or a Hub dataset id")
    split: str = "test"
    splits: list[str] | None = Field(None, min_length=1, description="several splits (run --split); overrides split")
    subset: str | None = Field(None, description="the Hub dataset's configuration name")
    revision: str | None = Field(None, description="a Hub commit, branch or tag to pin")
    fields: FieldMap = Field(default_factory=FieldMap)
    accept_values: list[str] | None = Field(None, description="values of the accepted column that mean accept")
    reject_values: list[str] | None = Field(None, validate_default=True,
                                            description="... and those that mean reject; others: unknown")
    ids: list[str] | None = None
    base_dir: str | None = Field(None, description="set by the task loader: the task file's folder")

    @field_validator("reject_values")
    @classmethod
    def _with_accept_values(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if (value is None) != (info.data.get("accept_values") is None):
            raise ValueError("give accept_values and reject_values together (a value in neither is unknown)")
        return value

    def chosen_splits(self) -> list[str]:
        return list(self.splits or [self.split])


def load_datasets_library() -> Any:
    """``datasets``, imported only when papers are read or written (it takes a second), progress bars off."""
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", "datasets") from None
    datasets.disable_progress_bars()
    return datasets


def local_folder(args: HFArgs) -> Path | None:
    """The local folder the path names, or None for a Hub id; a relative path may not leave the task's folder."""
    raw = Path(args.path).expanduser()
    relative = not raw.is_absolute() and args.base_dir is not None
    path = (Path(args.base_dir) / raw).resolve() if relative else raw.resolve()
    if path.exists():
        base = Path(args.base_dir).resolve() if relative else None
        if base is not None and path != base and base not in path.parents:
            raise DataError(f"dataset field 'path': {args.path} points outside the task's folder {base}")
        if not path.is_dir() or not any((path / marker).is_file() for marker in SAVED_MARKERS):
            raise DataError(f"{path}: not a folder written by datasets' save_to_disk (dataset field 'path')")
        return path
    if args.path.startswith((".", "/", "~")) or not HUB_ID_RE.match(args.path):
        raise DataError(f"{path}: no such folder (dataset field 'path')")
    return None


def open_splits(args: HFArgs) -> dict[str, Any]:
    """split name -> ``datasets.Dataset``, for the splits the selection names."""
    datasets = load_datasets_library()
    folder = local_folder(args)
    wanted = args.chosen_splits()
    if folder is None:
        try:
            return {name: datasets.load_dataset(args.path, args.subset, split=name, revision=args.revision)
                    for name in wanted}
        except Exception as exc:  # network, auth, unknown id or split: all one line naming the path
            raise DataError(f"{args.path}: cannot load split(s) {', '.join(wanted)} from the Hugging Face Hub "
                            f"({' '.join(str(exc).split())[:200]}); for a local folder, check dataset field "
                            "'path'") from None
    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.Dataset):  # one split saved on its own: it is whichever split was asked for
        if len(wanted) > 1:
            raise DataError(f"{folder}: holds one split, not {', '.join(wanted)} (dataset field 'split')")
        return {wanted[0]: loaded}
    missing = [name for name in wanted if name not in loaded]
    if missing:
        raise DataError(f"{folder}: no split {missing[0]!r} (it has {', '.join(loaded)}; dataset field 'split')")
    return {name: loaded[name] for name in wanted}


def column_map(args: HFArgs, columns: list[str], where: str) -> dict[str, str]:
    """Paper field -> column: every named column must exist; a default is used where it does."""
    named = args.fields.model_dump(exclude_none=True)
    for field, column in named.items():
        if column not in columns:
            raise DataError(f"{where}: dataset field 'fields.{field}': no column {column!r} "
                            f"(columns: {', '.join(columns)})")
    defaults = {field: field for field in PAPER_FIELDS if field not in named and field in columns}
    if "body" in named:
        defaults.pop("sections", None)
    if "sections" in named:
        defaults.pop("body", None)
    return {**defaults, **named}


def accepted_value(value: Any, args: HFArgs) -> Any:
    """The accepted column as a bool (or None): through accept_values/reject_values when given."""
    if args.accept_values is None or value is None:
        return value
    text = str(value)
    return True if text in args.accept_values else False if text in args.reject_values else None


def row_record(row: dict[str, Any], columns: dict[str, str], args: HFArgs, split: str, index: int,
               venue: str) -> dict[str, Any]:
    """One row in the JSONL record's shape: empty columns dropped, a single score made a list."""
    data = {field: row[column] for field, column in columns.items() if row[column] is not None}
    data.setdefault("id", str(index))
    data.setdefault("venue", venue)
    data.setdefault("split", split)
    data["accepted"] = accepted_value(data.get("accepted"), args)
    scores = data.get("recommendations")
    if isinstance(scores, (int, float)) and not isinstance(scores, bool):
        data["recommendations"] = [scores]
    return data


def venue_name(args: HFArgs) -> str:
    """What the papers' venue is when no column says: the folder's or the Hub dataset's name."""
    return Path(args.path.rstrip("/")).name or "hf"


def split_problems(name: str, table: Any, args: HFArgs, where: str, papers: list[Paper],
                   seen: dict[str, str]) -> list[str]:
    """Every problem of one split's rows (papers read are appended); a repeated paper key is one too."""
    columns = column_map(args, list(table.column_names), f"{where} split {name}")
    problems = []
    for index, row in enumerate(table):
        at = f"{where} split {name} row {index}"
        data = row_record(row, columns, args, name, index, venue_name(args))
        record, found = record_problems(json.dumps(data, ensure_ascii=False, default=str).encode(), at)
        problems.extend(found)
        if record is None:
            continue
        paper = record.to_paper()
        if paper.key in seen:
            problems.append(f"{at}: field 'id': {paper.id!r} repeats {seen[paper.key]}")
            continue
        seen[paper.key] = at
        papers.append(paper)
    return problems


class HFDataset(Dataset):
    name = "hf"
    Args = HFArgs
    license: str | None = None  # the loaded dataset's own license field, for `peerbench export hf`

    def size(self, args: HFArgs) -> int | None:
        if local_folder(args) is None:
            return None  # a Hub dataset's size is not known without fetching it
        return sum(table.num_rows for table in open_splits(args).values())

    def load(self, args: HFArgs, *, progress: bool = True) -> list[Paper]:
        where = str(local_folder(args) or args.path)
        papers: list[Paper] = []
        seen: dict[str, str] = {}
        for name, table in open_splits(args).items():
            self.license = self.license or (table.info.license or None)
            problems = split_problems(name, table, args, where, papers, seen)
            if problems:
                more = f" (and {len(problems) - 1} more problems; peerbench validate-data {where})" \
                    if len(problems) > 1 else ""
                raise DataError(problems[0] + more)
        return select_ids(papers, args.ids, where)

    @classmethod
    def claims(cls, path: Path) -> bool:
        """A folder datasets' save_to_disk wrote (a DatasetDict, or one Dataset)."""
        return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """Every row of every split, read with the default columns (a task's ``fields`` are not known here)."""
        datasets = load_datasets_library()
        args = HFArgs(path=str(path))
        local_folder(args)
        loaded = datasets.load_from_disk(str(path))
        tables = {"(one split)": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
        problems: list[str] = []
        seen: dict[str, str] = {}
        checked = 0
        for name, table in tables.items():
            papers: list[Paper] = []
            problems.extend(split_problems(name, table, args, str(path), papers, seen))
            checked += table.num_rows
        return checked, problems


@hookimpl
def register_datasets(register):
    register("hf", HFDataset, description="a Hugging Face datasets folder (save_to_disk) or Hub id "
             "(dataset: {path: ..., split: ..., fields: {...}})")
