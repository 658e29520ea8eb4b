"""``peerbench import aiscientist FILE.csv``: one of the AI Scientist's published reviewer CSVs
(``review_iclr_bench/llm_reviews/*.csv``) as an ordinary run directory.

Each row is one paper's review, its 16 fields in columns (lists as Python literals, as pandas
wrote them). The row becomes the JSON review their reviewer returned, fenced as their prompt asks
(```` ```json ... ``` ````), and that text is the sample's completion: the task's own parser
(:mod:`peerbench.json_review`) reads it, so an imported run is scored exactly as a run made here.
The rows go through the ``replay`` backend from a JSONL derived from the CSV, stored in the cache
under the CSV's sha256: the CSV's content decides the run's identity, as a replayed file's does.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError

# Their llm_cols (review_iclr_bench/iclr_analysis.py), less paper_id.
REVIEW_FIELDS = ("Summary", "Questions", "Limitations", "Ethical Concerns", "Soundness", "Presentation",
                 "Contribution", "Overall", "Confidence", "Strengths", "Weaknesses", "Originality", "Quality",
                 "Clarity", "Significance", "Decision")
SCORE_FIELDS = frozenset({"Soundness", "Presentation", "Contribution", "Overall", "Confidence", "Originality",
                          "Quality", "Clarity", "Significance"})
LIST_FIELDS = frozenset({"Questions", "Limitations", "Strengths", "Weaknesses"})
CONVERSION = "v1"  # bumped when a row's completion is written otherwise: a new JSONL, hence a new run identity


def _score(cell: str) -> Any:
    """A score cell as the number it was ('6', '6.0' -> 6); a cell that is no number stays text."""
    try:
        value = float(cell)
    except ValueError:
        return cell
    if not math.isfinite(value):
        return cell
    return int(value) if value.is_integer() else value


def _list(cell: str) -> Any:
    """A Python-literal list ("['a', 'b']"), as pandas wrote the review's list; else the text as it is."""
    if not cell.startswith("["):
        return cell
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return cell
    return value if isinstance(value, list) else cell


def review_of(row: dict[str, str]) -> dict[str, Any]:
    """The JSON review a CSV row stores, each field back to its JSON type."""
    review: dict[str, Any] = {}
    for field in REVIEW_FIELDS:
        cell = row[field]
        if field in SCORE_FIELDS:
            review[field] = _score(cell)
        elif field in LIST_FIELDS:
            review[field] = _list(cell)
        elif field == "Ethical Concerns" and cell in ("True", "False"):
            review[field] = cell == "True"
        else:
            review[field] = cell
    return review


def completion_of(review: dict[str, Any]) -> str:
    return "REVIEW JSON:\n```json\n" + json.dumps(review, indent=4, ensure_ascii=False) + "\n```\n"


def read_reviews(path: Path) -> list[tuple[str, str]]:
    """(paper id, completion) per row; a file that is not such a CSV is one line naming file:line and column."""
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
    csv.field_size_limit(1 << 26)
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = reader.fieldnames or []
        missing = [name for name in ("paper_id", *REVIEW_FIELDS) if name not in header]
        if missing:
            raise ConfigError(f"{path}:1: column(s) {', '.join(repr(m) for m in missing)} missing (an AI Scientist "
                              "llm_reviews CSV has paper_id and the 16 review fields)")
        rows, seen, end = [], {}, reader.line_num
        for row in reader:
            line, end = end + 1, reader.line_num  # the row's first line (a cell may hold newlines)
            if None in row or any(value is None for value in row.values()):
                raise ConfigError(f"{path}:{line}: {len(header)} columns expected")
            paper_id = row["paper_id"].strip()
            if not paper_id:
                raise ConfigError(f"{path}:{line}: column 'paper_id' is empty")
            if paper_id in seen:
                raise ConfigError(f"{path}:{line}: column 'paper_id': {paper_id!r} repeats line {seen[paper_id]}")
            seen[paper_id] = line
            rows.append((paper_id, completion_of(review_of(row))))
    except csv.Error as exc:
        raise ConfigError(f"{path}:{reader.line_num}: not a valid CSV ({exc})") from None
    if not rows:
        raise ConfigError(f"{path}: no review rows")
    return rows


def replay_file(csv_path: Path) -> Path:
    """The JSONL the replay backend reads, made once per CSV content (its sha256 and the conversion's
    version name the folder)."""
    from peerbench.paths import cache_root

    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    target = cache_root() / "aiscientist" / "imports" / f"{digest}-{CONVERSION}" / f"{csv_path.stem}.jsonl"
    if not target.is_file():
        lines = [json.dumps({"id": paper_id, "completion": text}, ensure_ascii=False)
                 for paper_id, text in read_reviews(csv_path)]
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        part.write_text("\n".join(lines) + "\n", encoding="utf-8")
        part.replace(target)
    return target


def import_reviews(csv_path: str | Path, task: str, *, out: str | Path | None = None,
                   data_dir: str | Path | None = None, include_paths: tuple[str, ...] = (),
                   resamples: int | None = None, seed: int | None = None, progress: bool = False) -> Any:
    """Score a published CSV under ``task`` (an ``aiscientist-*`` task); returns the run's RunResult."""
    from peerbench.pipeline.execute import execute, plan_run
    from peerbench.task import load_task

    path = Path(csv_path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    task_obj = load_task(task, include_paths)
    if task_obj.dataset.name != "aiscientist":
        raise ConfigError(f"--task {task}: its dataset is {task_obj.dataset.name!r}; an AI Scientist CSV needs an "
                          "aiscientist task (aiscientist-iclr2022, aiscientist-iclr2022-overall6)")
    plan = plan_run(task_obj, "replay", str(replay_file(path)), out=out, data_dir=data_dir)
    kwargs = {k: v for k, v in (("resamples", resamples), ("seed", seed)) if v is not None}
    return execute(plan, progress=progress, **kwargs)
