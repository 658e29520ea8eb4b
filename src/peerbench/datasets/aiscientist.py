"""The AI Scientist's reviewer benchmark (Lu et al. 2024): 500 ICLR 2022 papers, their real
decisions and every reviewer's rating, from SakanaAI/AI-Scientist at a pinned commit.

Fetched file by file into the user cache (never redistributed): ``review_iclr_bench/ratings_subset.tsv``,
the 500 papers' Markdown texts ``review_iclr_bench/iclr_parsed/<id>.txt`` and the one-shot example
``ai_scientist/fewshot_examples/132_automated_relational.{txt,json}``; ``--data-dir`` reads a
checkout or copy of the repository instead (the files at their repository paths beneath it), and
``PEERBENCH_AISCIENTIST_URL`` replaces the base URL (everything up to and including the commit).

As their ``iclr_analysis.py`` reads the TSV: a paper is accepted when its decision is
``Accept (Oral)``, ``Accept (Poster)`` or ``Accept (Spotlight)``; its ratings are the columns
``0``..``6`` that are not empty (their ``nanmean`` is the mean of these); ``Unknown`` decisions are
left out. The paper's text is read as their script reads it (``open(path).read()``: UTF-8, newlines
made ``\\n``) and reaches the prompt unchanged. Ids are OpenReview forum ids; some begin with ``-``
or ``_``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from peerbench.datasets import MAX_FILE_BYTES, Dataset, InfoRow, folder_bytes, select_ids
from peerbench.errors import DataError
from peerbench.hookspecs import hookimpl
from peerbench.records import Paper, Section

AISCIENTIST_COMMIT = "9dffdc445c2596ffa871b5588377e9f12558febc"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/SakanaAI/AI-Scientist/{AISCIENTIST_COMMIT}"
RATINGS_REL = "review_iclr_bench/ratings_subset.tsv"
PAPERS_DIR = "review_iclr_bench/iclr_parsed"
FEWSHOT_RELS = ("ai_scientist/fewshot_examples/132_automated_relational.txt",
                "ai_scientist/fewshot_examples/132_automated_relational.json")
HEADER = ["paper_id", "0", "1", "2", "3", "4", "5", "6", "decision"]
ACCEPTED = ("Accept (Oral)", "Accept (Poster)", "Accept (Spotlight)")
DECISIONS = (*ACCEPTED, "Reject")
VENUE = "iclr_2022"


class AIScientistArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = None


def paper_rel(paper_id: str) -> str:
    return f"{PAPERS_DIR}/{paper_id}.txt"


def _rating(value: str, where: str) -> float | None:
    if value.strip() == "":
        return None
    try:
        rating = float(value)
    except ValueError:
        rating = math.nan
    if not math.isfinite(rating):
        raise DataError(f"{where}: not a number: {value!r}")
    return rating


def read_ratings(content: bytes, where: str) -> list[dict[str, Any]]:
    """The TSV's rows as {id, ratings, decision}; every problem names ``where:line`` and the column."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = next(reader, None)
    if header != HEADER:
        raise DataError(f"{where}:1: header must be {' '.join(HEADER)} (tab-separated), got {header!r}")
    rows, seen = [], set()
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(HEADER):
            raise DataError(f"{where}:{line}: {len(row)} columns, expected {len(HEADER)}")
        paper_id, decision = row[0].strip(), row[-1].strip()
        if not paper_id or "/" in paper_id or paper_id in (".", ".."):
            raise DataError(f"{where}:{line}: column 'paper_id': not a paper id: {row[0]!r}")
        if paper_id in seen:
            raise DataError(f"{where}:{line}: column 'paper_id': {paper_id!r} repeats an earlier row")
        seen.add(paper_id)
        if decision == "Unknown":  # left out by their prep_open_review_data
            continue
        if decision not in DECISIONS:
            raise DataError(f"{where}:{line}: column 'decision': {decision!r} is none of {', '.join(DECISIONS)}")
        ratings = [_rating(value, f"{where}:{line}: column {HEADER[i + 1]!r}") for i, value in enumerate(row[1:-1])]
        rows.append({"id": paper_id, "ratings": [r for r in ratings if r is not None], "decision": decision})
    if not rows:
        raise DataError(f"{where}: no paper rows")
    return rows


def read_text(content: bytes, where: str) -> str:
    """A paper's text as ``open(path).read()`` gives it: UTF-8, universal newlines."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 (byte {exc.start})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{where}: the paper has no text")
    return text


def validate_file(rel: str, content: bytes) -> None:
    """A fetched file counts only once it reads as the loader will read it."""
    if rel == RATINGS_REL:
        read_ratings(content, rel)
    elif rel.endswith(".json"):
        try:
            data = json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{rel}: not valid JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict) or "review" not in data:
            raise DataError(f"{rel}: field 'review' missing")
    else:
        read_text(content, rel)


def _title(text: str, paper_id: str) -> str:
    """The text's first Markdown heading, for tables; never part of the prompt."""
    for line in text.splitlines()[:40]:
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return paper_id


def paper_of(row: dict[str, Any], text: str) -> Paper:
    return Paper(id=row["id"], venue=VENUE, title=_title(text, row["id"]), abstract="",
                 sections=[Section(None, text)], accepted=row["decision"] in ACCEPTED,
                 recommendations=list(row["ratings"]), meta={"decision": row["decision"]})


class AIScientist(Dataset):
    name = "aiscientist"
    Args = AIScientistArgs

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        self.base_url = os.environ.get("PEERBENCH_AISCIENTIST_URL", DEFAULT_BASE_URL).rstrip("/")

    @property
    def root(self) -> Path:
        """The folder laid out like the repository."""
        if self.data_dir is not None:
            return self.data_dir
        from peerbench.paths import cache_root

        return cache_root() / "aiscientist" / AISCIENTIST_COMMIT

    @property
    def downloads(self) -> bool:
        return self.data_dir is None

    def _bytes(self, rel: str) -> bytes:
        path = self.root / rel
        if not path.is_file():
            where = "the copy given by --data-dir" if not self.downloads else "the cache (peerbench data pull aiscientist)"
            raise DataError(f"{path}: missing from {where}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"{path}: over the {MAX_FILE_BYTES // 2**20} MiB limit")
        return path.read_bytes()

    def rows(self, args: AIScientistArgs) -> list[dict[str, Any]]:
        """The selected rows of the TSV (fetched first where it is missing)."""
        if self.downloads:
            self._fetch([RATINGS_REL], progress=False)
        rows = read_ratings(self._bytes(RATINGS_REL), str(self.root / RATINGS_REL))
        if args.ids is None:
            return rows
        wanted = set(args.ids)
        missing = wanted - {row["id"] for row in rows}
        if missing:
            raise DataError(f"--ids: no such paper in {self.root / RATINGS_REL}: {', '.join(sorted(missing))}")
        return [row for row in rows if row["id"] in wanted]

    def _fetch(self, rels: list[str], *, progress: bool) -> int:
        from peerbench.datasets.download import fetch_files

        return fetch_files(self.base_url, rels, self.root, validate_file, progress=progress,
                           description="AI Scientist files", mirror_env="PEERBENCH_AISCIENTIST_URL")

    def size(self, args: AIScientistArgs) -> int | None:
        if self.downloads and not (self.root / RATINGS_REL).is_file():
            return len(args.ids) if args.ids is not None else None
        try:
            return len(self.rows(args))
        except DataError:
            return None

    def pull(self, args: AIScientistArgs, *, progress: bool = True) -> int:
        """Files fetched (the TSV first: it names the papers); 0 where all were there or a copy was given."""
        fetched = self._fetch([RATINGS_REL], progress=False) if self.downloads else 0
        rows = self.rows(args)
        rels = [*(paper_rel(row["id"]) for row in rows), *FEWSHOT_RELS]
        if not self.downloads:
            missing = [rel for rel in rels if not (self.root / rel).is_file()]
            if missing:
                raise DataError(f"{self.root / missing[0]}: missing from the copy given by --data-dir"
                                + (f" (and {len(missing) - 1} more files)" if len(missing) > 1 else ""))
            return 0
        return fetched + self._fetch(rels, progress=progress)

    def load(self, args: AIScientistArgs, *, progress: bool = True) -> list[Paper]:
        self.pull(args, progress=progress)
        papers = []
        for row in self.rows(args):
            rel = paper_rel(row["id"])
            papers.append(paper_of(row, read_text(self._bytes(rel), str(self.root / rel))))
        return select_ids(papers, args.ids, str(self.root / RATINGS_REL))

    def describe_pull(self, pulled: int) -> list[str]:
        return [f"{pulled} files fetched; the AI Scientist's files are in {self.root}"]

    def info(self) -> list[InfoRow]:
        papers = list((self.root / PAPERS_DIR).glob("*.txt"))
        tsv = self.root / RATINGS_REL
        return [InfoRow(f"ICLR 2022 @ {AISCIENTIST_COMMIT[:7]}", str(self.root),
                        f"{'ratings TSV, ' if tsv.is_file() else 'no ratings TSV, '}{len(papers)} paper texts",
                        folder_bytes([tsv, *papers]))]

    @classmethod
    def claims(cls, path: Path) -> bool:
        return (path / RATINGS_REL).is_file()

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """The TSV, and every paper it names read as :meth:`load` reads it."""
        try:
            rows = read_ratings((path / RATINGS_REL).read_bytes(), str(path / RATINGS_REL))
        except (DataError, OSError) as exc:
            return 0, [str(exc)]
        problems = []
        for row in rows:
            file = path / paper_rel(row["id"])
            try:
                read_text(file.read_bytes(), str(file))
            except FileNotFoundError:
                problems.append(f"{file}: missing (every paper of the TSV needs its text)")
            except (DataError, OSError) as exc:
                problems.append(str(exc))
        return len(rows), problems


@hookimpl
def register_datasets(register):
    register("aiscientist", AIScientist,
             description="the AI Scientist's 500 ICLR 2022 papers, decisions and ratings (pinned commit)")
