"""peerbench's OpenReview cache on disk: what ``data info`` shows and ``validate-data`` checks.

One folder per venue (``ICLR.cc_2020_Conference``) holding the listings (``pages/`` for the
submissions; ``withdrawn/`` and ``desk_rejected/`` for API v1's separate invitations), each as
``offset-*.json`` pages, and ``pdfs/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peerbench.datasets.openreview_fields import VENUE_RE, content_value

LISTINGS = ("pages", "withdrawn", "desk_rejected")


def venue_slug(venue: str) -> str:
    return venue.replace("/", "_")


def venue_folders(path: Path) -> list[Path]:
    """The venue folders (each with pages/) at ``path``: the folder itself or those right under it."""
    if (path / "pages").is_dir():
        return [path]
    return sorted({page.parent.parent for page in path.glob("*/pages/offset-*.json")})


def listing_pages(folder: Path) -> list[Path]:
    """Every cached page of every listing of one venue folder."""
    return [page for name in LISTINGS for page in sorted((folder / name).glob("offset-*.json"))]


def page_notes(page: Path) -> list[Any] | None:
    """The notes of one cached page, or None when it is not a JSON list."""
    try:
        notes = json.loads(page.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return notes if isinstance(notes, list) else None


def note_problem(note: Any, page: Path, index: int) -> str | None:
    """The first problem of one cached submission note that the loader would trip over."""
    if not isinstance(note, dict) or not isinstance(note.get("id"), str) or not note["id"]:
        return f"{page}: field '{index}.id': missing or not a string"
    if not isinstance(note.get("content"), dict):
        return f"{page}: field '{index}.content': missing or not an object"
    if not str(content_value(note["content"].get("title")) or "").strip():
        return f"{page}: field '{index}.content.title': missing or empty"
    return None


def venue_problems(folder: Path) -> tuple[int, list[str]]:
    """(submissions checked, problems) of one venue folder: its name, its pages, its PDFs."""
    problems = []
    if not VENUE_RE.match(folder.name.replace("_", "/")):
        problems.append(f"{folder}: the folder name is no OpenReview venue id (like ICLR.cc_2020_Conference)")
    ids: set[str] = set()
    checked = 0
    for page in listing_pages(folder):
        notes = page_notes(page)
        if notes is None:
            problems.append(f"{page}: not a JSON list of submissions")
            continue
        for index, note in enumerate(notes):
            checked += 1
            problem = note_problem(note, page, index)
            if problem:
                problems.append(problem)
            if isinstance(note, dict) and isinstance(note.get("id"), str):
                ids.add(note["id"])
    for pdf in sorted((folder / "pdfs").glob("*.pdf")):
        with pdf.open("rb") as handle:
            if handle.read(4) != b"%PDF":
                problems.append(f"{pdf}: not a PDF (it does not start with %PDF)")
        if pdf.stem not in ids:
            problems.append(f"{pdf}: no submission with this id in {folder}'s listings")
    return checked, problems


def venue_summary(folder: Path) -> tuple[str, list[Path]]:
    """(what ``data info`` says of one venue folder, the files it counts)."""
    pages = listing_pages(folder)
    pdfs = sorted((folder / "pdfs").glob("*.pdf"))
    missing = len(list((folder / "pdfs").glob("*.missing")))
    notes = sum(len(page_notes(page) or []) for page in pages)
    manifests = [folder / name / "listing.json" for name in LISTINGS if (folder / name / "listing.json").is_file()]
    return f"{notes} submissions, {len(pdfs)} PDFs, {missing} without a PDF", [*pages, *manifests, *pdfs]
