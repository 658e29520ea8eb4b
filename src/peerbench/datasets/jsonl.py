"""Your own papers as JSON Lines: one paper per line, validated field by field.

    {"id": "p1", "title": "...", "abstract": "...", "sections": [{"heading": "1 Intro", "text": "..."}],
     "accepted": true, "recommendations": [4, 3.5], "venue": "myconf_2025", "split": "test"}

``body`` (one string) may stand in for ``sections``. A task names the file with
``dataset: {name: jsonl, path: papers.jsonl}``; a relative path is resolved from the task file's
folder and may not leave it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from peerbench.datasets import MAX_FILE_BYTES, Dataset
from peerbench.errors import DataError
from peerbench.hookspecs import hookimpl
from peerbench.json_text import TooDeep, lone_surrogate, parse_json
from peerbench.records import Paper, Section

MAX_BODY_BYTES = MAX_FILE_BYTES
SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")


class SectionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    heading: str | None = None
    text: str = ""


class PaperRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int
    title: str = Field(min_length=1)
    abstract: str = ""
    sections: list[SectionRecord] | None = None
    body: str | None = None
    accepted: bool | None = None
    recommendations: list[float] = Field(default_factory=list)
    venue: str = "custom"
    split: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("recommendations")
    @classmethod
    def _finite(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in values):
            raise ValueError("scores must be finite numbers, not NaN or infinity")
        return values

    def to_paper(self) -> Paper:
        sections = [Section(s.heading, s.text) for s in self.sections or []]
        if self.body is not None:
            sections.append(Section(None, self.body))
        return Paper(str(self.id), self.venue, self.title, self.abstract, sections, split=self.split,
                     accepted=self.accepted, recommendations=list(self.recommendations), meta=dict(self.meta))


class JsonlArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    ids: list[str] | None = None
    base_dir: str | None = Field(None, description="set by the task loader: the task file's folder")


def record_problems(line: bytes, where: str) -> tuple[PaperRecord | None, list[str]]:
    """The record on one line, or every problem with it (field by field)."""
    if len(line) > MAX_BODY_BYTES:
        return None, [f"{where}: the line is {len(line) / 2**20:.1f} MiB, over the {MAX_BODY_BYTES // 2**20} MiB limit"]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{where}: not UTF-8 (byte {exc.start})"]
    try:
        data = parse_json(text)
    except TooDeep:
        return None, [f"{where}: not valid JSON (nested too deeply)"]
    except json.JSONDecodeError as exc:
        return None, [f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"]
    bad = lone_surrogate(data)
    if bad is not None:
        return None, [f"{where}: field {bad!r} holds a lone surrogate (an escape such as \\udc00 that is not text)"]
    if not isinstance(data, dict):
        return None, [f"{where}: expected a JSON object"]
    try:
        record = PaperRecord(**data)
    except ValidationError as exc:
        return None, [f"{where}: field {'.'.join(str(p) for p in e['loc'])!r}: {e['msg']}" for e in exc.errors()]
    problems = []
    if record.sections is not None and record.body is not None:
        problems.append(f"{where}: give 'sections' or 'body', not both")
    if not any((s.text or "").strip() for s in record.sections or []) and not (record.body or "").strip():
        problems.append(f"{where}: field 'sections'/'body': the paper has no body text")
    return (record if not problems else None), problems


def resolve_path(args: JsonlArgs) -> Path:
    path = Path(args.path).expanduser()
    if args.base_dir is not None and not path.is_absolute():
        base = Path(args.base_dir).resolve()
        path = (base / path).resolve()
        if base not in path.parents:
            raise DataError(f"dataset field 'path': {args.path} points outside the task's folder {base}")
    return path


class JsonlDataset(Dataset):
    name = "jsonl"
    Args = JsonlArgs

    def size(self, args: JsonlArgs) -> int | None:
        path = resolve_path(args)
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())

    def load(self, args: JsonlArgs, *, progress: bool = True) -> list[Paper]:
        return list(self.iter_papers(args, progress=progress))

    def iter_papers(self, args: JsonlArgs, *, progress: bool = True) -> Iterator[Paper]:
        """Line by line: a bad line is an error naming it (and its line number) when the stream
        reaches it; an --ids id that no line has, when the stream ends."""
        path = resolve_path(args)
        if not path.is_file():
            raise DataError(f"{path}: no such file (dataset field 'path')")
        wanted = set(args.ids) if args.ids is not None else None
        seen, found = set(), set()
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                paper = self._paper(line.rstrip(b"\r\n"), path, number)
                if paper.key in seen:
                    raise DataError(f"{path}:{number}: field 'id': {paper.id!r} repeats an earlier paper of "
                                    f"{paper.venue}{'/' + paper.split if paper.split else ''}")
                seen.add(paper.key)
                if wanted is None or paper.id in wanted:
                    found.add(paper.id)
                    yield paper
        if wanted is not None and wanted - found:
            raise DataError(f"--ids: no such paper in {path}: {', '.join(sorted(wanted - found))}")

    @staticmethod
    def _paper(line: bytes, path: Path, number: int) -> Paper:
        record, problems = record_problems(line, f"{path}:{number}")
        if problems:
            more = f" (and {len(problems) - 1} more problems; peerbench validate-data {path})" \
                if len(problems) > 1 else ""
            raise DataError(problems[0] + more)
        return record.to_paper()

    @classmethod
    def claims(cls, path: Path) -> bool:
        """A file named *.jsonl (or .ndjson), or any file whose first non-blank byte opens a JSON object."""
        if not path.is_file():
            return False
        if path.suffix.lower() in SUFFIXES:
            return True
        with path.open("rb") as handle:
            return handle.read(4096).lstrip()[:1] == b"{"

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """Every problem of every line (not just the first, as ``load`` stops at), and repeated ids."""
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        problems, checked, seen = [], 0, {}
        with path.open("rb") as handle:  # line by line: a corpus of any size in little memory
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                checked += 1
                record, found = record_problems(line.rstrip(b"\r\n"), f"{path}:{number}")
                problems.extend(found)
                if record is not None:
                    key = (record.venue, record.split, str(record.id))
                    if key in seen:
                        problems.append(f"{path}:{number}: field 'id': {record.id!r} repeats line {seen[key]}")
                    seen.setdefault(key, number)
        if not checked:
            problems.append(f"{path}: no papers (the file has no non-blank line)")
        return checked, problems


@hookimpl
def register_datasets(register):
    register("jsonl", JsonlDataset, description="your own papers, one JSON object per line (dataset: {path: ...})")
