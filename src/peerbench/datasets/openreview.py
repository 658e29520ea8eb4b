"""OpenReview ICLR 2018-2025 through openreview-py, the venue's own client (API v1 to 2023, v2 after).

Submissions come page by page, sorted by number, with their direct replies; each page and each PDF
is written to the cache as it arrives, so an interrupted pull resumes where it stopped and fetches
nothing twice. Gold is the real decision, read where each year keeps it (openreview_fields.py);
withdrawn and desk-rejected papers are counted from where they really are (their own invitations
in API v1, the note's venueid in v2) and left out. Official review ratings ("8: accept, good paper"
-> 8) are kept as the paper's recommendations. Reviews, meta-reviews, decisions and comments never
reach the prompt: only title, abstract and the PDF's body do. Credentials (OPENREVIEW_USERNAME and
OPENREVIEW_PASSWORD, or OPENREVIEW_TOKEN) are optional and never stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from peerbench.datasets import Dataset, InfoRow, folder_bytes, select_ids
from peerbench.datasets.openreview_api import Connection
from peerbench.datasets.openreview_cache import venue_folders, venue_problems, venue_slug, venue_summary
from peerbench.datasets.openreview_fields import (
    Verdict,
    YearShape,
    content_value,
    judge,
    rating_of,
    review_texts,
    shape_of,
)
from peerbench.errors import DataError
from peerbench.hookspecs import hookimpl
from peerbench.records import Paper

__all__ = ["OpenReview", "OpenReviewArgs", "judge", "rating_of", "shape_of"]
REASONS = ("withdrawn", "desk rejected", "no decision", "unrecognised decision", "conflicting decisions")
RARE = {"unrecognised decision": "with an unrecognised decision", "conflicting decisions": "whose reply and venueid "
        "disagree"}  # printed only when some paper has them


class OpenReviewArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    venues: list[str] = Field(min_length=1)
    limit: int | None = Field(None, ge=1, description="first N submissions (by number) of each venue")
    ids: list[str] | None = None


def _number(note: dict[str, Any]) -> int:
    number = note.get("number")
    return number if isinstance(number, int) else 1 << 62


class OpenReview(Dataset):
    name = "openreview"
    Args = OpenReviewArgs
    page_size = 1000

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        self.min_interval = float(os.environ.get("PEERBENCH_OPENREVIEW_MIN_INTERVAL", "0.5"))
        self._connections: dict[int, Connection] = {}
        self.counts: dict[str, dict[str, int]] = {}

    @property
    def root(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        from peerbench.paths import cache_root

        return cache_root() / "openreview"

    def connection(self, api: int) -> Connection:
        if api not in self._connections:
            self._connections[api] = Connection(api, self.min_interval)
        return self._connections[api]

    def submissions(self, venue: str, limit: int | None) -> list[tuple[dict[str, Any], str | None]]:
        """(note, the reason its listing leaves it out, or None) for the first ``limit`` submissions by
        number, counting API v1's withdrawn and desk-rejected invitations with the listed ones."""
        shape = shape_of(venue)
        connection, folder = self.connection(shape.api), self.root / venue_slug(venue)
        apart: dict[str, tuple[dict[str, Any], str | None]] = {}
        for reason, invitation in shape.exclusion_listings(venue).items():
            for note in connection.listing(folder / reason.replace(" ", "_"), invitation, self.page_size,
                                           required=False):
                apart[note["id"]] = (note, reason)

        def enough(notes: list[dict[str, Any]]) -> bool:
            last = _number(notes[-1])
            known = {n["id"] for n in notes} | {i for i, (n, _) in apart.items() if _number(n) < last}
            return limit is not None and len(known) >= limit

        listed = connection.listing(folder / "pages", shape.submissions(venue), self.page_size, required=True,
                                    enough=enough)
        merged = {note["id"]: (note, None) for note in listed}
        merged.update(apart)
        ordered = sorted(merged.values(), key=lambda item: _number(item[0]))
        return ordered[:limit] if limit is not None else ordered

    def pdf(self, venue: str, note_id: str) -> bytes | None:
        """The submission PDF (cached), or None when OpenReview has none for this note."""
        path = self.root / venue_slug(venue) / "pdfs" / f"{note_id}.pdf"
        if path.is_file():
            return path.read_bytes()
        if (path.parent / f"{note_id}.missing").is_file():
            return None
        data = self.connection(shape_of(venue).api).pdf(note_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            (path.parent / f"{note_id}.missing").write_text("no PDF on OpenReview\n")
            return None
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return data

    def size(self, args: OpenReviewArgs) -> int | None:
        return None  # known only after the submissions are listed

    def pull(self, args: OpenReviewArgs, *, progress: bool = True) -> list[Paper]:
        return self.load(args, progress=progress)

    def load(self, args: OpenReviewArgs, *, progress: bool = True) -> list[Paper]:
        for venue in args.venues:  # every venue refused or accepted before any request
            shape_of(venue)
        wanted = set(args.ids) if args.ids is not None else None
        papers: list[Paper] = []
        for venue in args.venues:
            papers.extend(self._venue_papers(venue, args.limit, wanted, progress))
        return select_ids(papers, args.ids, f"the usable papers of {', '.join(args.venues)}")

    def _venue_papers(self, venue: str, limit: int | None, wanted: set[str] | None, progress: bool) -> list[Paper]:
        from peerbench.progress import progress_bar

        shape = shape_of(venue)
        counts = dict.fromkeys(("submissions", *REASONS, "no pdf", "unread ratings", "papers"), 0)
        listed = self.submissions(venue, limit)
        counts["submissions"] = len(listed)
        kept: list[tuple[dict[str, Any], Verdict]] = []
        for note, reason in listed:
            if wanted is not None and note["id"] not in wanted:
                continue
            verdict = Verdict(reason) if reason else judge(note, shape, venue)
            if verdict.reason:
                counts[verdict.reason] += 1
            else:
                kept.append((note, verdict))
        papers = []
        with progress_bar(f"OpenReview {venue} PDFs", total=len(kept), enabled=progress, unit="PDFs") as advance:
            for note, verdict in kept:
                data = self.pdf(venue, note["id"])
                advance(1)
                if data is None:
                    counts["no pdf"] += 1
                    continue
                papers.append(_paper(note, verdict, shape, data))
                counts["unread ratings"] += verdict.unread_ratings
        counts["papers"] = len(papers)
        self.counts[venue] = counts
        return papers

    def describe_pull(self, pulled: list[Paper]) -> list[str]:
        """What each venue's submissions became: the papers kept and why the others were left out."""
        lines = []
        for venue, c in self.counts.items():
            extra = "".join(f", {c[reason]} {phrase}" for reason, phrase in RARE.items() if c[reason])
            lines.append(f"{venue}: {c['papers']} papers with a decision of {c['submissions']} submissions "
                         f"({c['withdrawn']} withdrawn, {c['desk rejected']} desk rejected, {c['no decision']} "
                         f"without a decision{extra}, {c['no pdf']} without a PDF left out)")
            if c["unread ratings"]:
                lines.append(f"{venue}: {c['unread ratings']} official reviews whose rating could not be read are "
                             "left out of their papers' ratings (each paper's meta.unread_ratings)")
        return [*lines, f"{len(pulled)} papers cached in {self.root}"]

    def info(self) -> list[InfoRow]:
        """One row per cached venue: its listed submissions and downloaded PDFs."""
        rows = []
        for folder in venue_folders(self.root):
            how_many, files = venue_summary(folder)
            rows.append(InfoRow(folder.name.replace("_", "/"), str(folder), how_many, folder_bytes(files)))
        return rows

    @classmethod
    def claims(cls, path: Path) -> bool:
        """peerbench's OpenReview cache, or one venue's folder of it (pages/offset-*.json)."""
        return path.is_dir() and bool(venue_folders(path))

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """Every cached page of submissions and every cached PDF, as :meth:`load` would read them."""
        folders = venue_folders(path)
        if not folders:
            return 0, [f"{path}: no <venue>/pages/offset-*.json files; is this peerbench's OpenReview cache?"]
        checked, problems = 0, []
        for folder in folders:
            count, found = venue_problems(folder)
            checked += count
            problems.extend(found)
        return checked, problems


def _paper(note: dict[str, Any], verdict: Verdict, shape: YearShape, pdf: bytes) -> Paper:
    """A kept submission as a Paper: the real decision, each official rating, the raw decision text."""
    from peerbench.datasets.pdf_sections import pdf_sections
    from peerbench.datasets.review_numbers import openreview_numbers

    content = note.get("content") or {}
    if verdict.accepted is None:  # judge() keeps only papers whose decision it could read
        raise DataError(f"OpenReview note {note['id']}: kept without a decision")
    return Paper(id=note["id"], venue=f"iclr_{shape.year}", split="",
                 title=str(content_value(content.get("title")) or "").strip(),
                 abstract=str(content_value(content.get("abstract")) or "").strip(),
                 sections=pdf_sections(pdf, f"OpenReview PDF of {note['id']}"), accepted=verdict.accepted,
                 recommendations=list(verdict.ratings),
                 meta={"decision": verdict.decision, "decision_from": verdict.source, "number": note.get("number"),
                       "forum": note.get("forum"), "unread_ratings": verdict.unread_ratings,
                       "human_reviews": review_texts(note, shape),
                       "human_review_ratings": openreview_numbers(note, shape)})


@hookimpl
def register_datasets(register):
    register("openreview", OpenReview, description="OpenReview ICLR 2018-2025 with real decisions and reviewer "
                                                   "ratings (openreview-py, API v1 and v2)")
