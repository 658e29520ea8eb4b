"""`peerbench validate-data`: every problem in a dataset, each with its file and field, before a
run trips over the first one. Knows PeerRead-style folders and the JSONL dataset format."""

from __future__ import annotations

import json
from pathlib import Path

from peerbench.datasets.jsonl import MAX_BODY_BYTES as MAX_FILE_BYTES
from peerbench.errors import ConfigError, DataError


def validate_jsonl(path: Path) -> tuple[int, list[str]]:
    from peerbench.datasets.jsonl import record_problems

    problems, checked, seen = [], 0, {}
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        checked += 1
        record, found = record_problems(line, f"{path}:{number}")
        problems.extend(found)
        if record is not None:
            key = (record.venue, record.split, str(record.id))
            if key in seen:
                problems.append(f"{path}:{number}: field 'id': {record.id!r} repeats line {seen[key]}")
            seen.setdefault(key, number)
    return checked, problems


def validate_peerread(root: Path) -> tuple[int, list[str]]:
    """A folder laid out like PeerRead's data/: <venue>/<split>/reviews/<id>.json + parsed_pdfs/<id>.pdf.json."""
    from peerbench.datasets.peerread import check_against_manifest, paper_from_files, validate_file

    problems, checked = [], 0
    reviews_files = sorted(root.glob("*/*/reviews/*.json"))
    if not reviews_files:
        return 0, [f"{root}: no <venue>/<split>/reviews/*.json files; is this PeerRead's data/ folder?"]
    for reviews_path in reviews_files:
        checked += 1
        venue, split = reviews_path.parts[-4], reviews_path.parts[-3]
        paper_id = reviews_path.stem
        parsed_path = reviews_path.parent.parent / "parsed_pdfs" / f"{paper_id}.pdf.json"
        contents = {}
        for path in (reviews_path, parsed_path):
            rel = str(path.relative_to(root))
            if not path.is_file():
                problems.append(f"{path}: missing (every review file needs its parsed_pdfs file)")
                continue
            data = path.read_bytes()
            if len(data) > MAX_FILE_BYTES:
                problems.append(f"{path}: {len(data) / 2**20:.1f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit")
                continue
            try:
                validate_file(rel, data)
            except DataError as exc:
                problems.append(f"{root}/{exc}")
                continue
            contents[path] = json.loads(data)
        if len(contents) < 2:
            continue
        try:
            paper = paper_from_files(venue, split, paper_id, contents[reviews_path], contents[parsed_path])
            check_against_manifest(paper)
        except DataError as exc:
            problems.append(f"{root}/{exc}" if not str(exc).startswith("/") else str(exc))
            continue
        if not any(s.text.strip() for s in paper.sections):
            problems.append(f"{parsed_path}: field 'metadata.sections': the paper has no body text")
    for parsed_path in sorted(root.glob("*/*/parsed_pdfs/*.pdf.json")):
        if not (parsed_path.parent.parent / "reviews" / parsed_path.name.replace(".pdf.json", ".json")).is_file():
            problems.append(f"{parsed_path}: no matching reviews file")
    return checked, problems


def validate_path(path: str | Path) -> tuple[int, list[str]]:
    path = Path(path)
    if path.is_dir():
        return validate_peerread(path)
    if path.is_file():
        return validate_jsonl(path)
    raise ConfigError(f"{path}: no such file or folder")
