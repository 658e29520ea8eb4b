"""OpenReview ICLR venues (API v1, 2018-2023) through openreview-py, the venue's own client.

Submissions come from ``<venue>/-/Blind_Submission`` with their direct replies, in pages of
``page_size``; each page, and each PDF, is written to the cache as it arrives, so an interrupted
pull resumes where it stopped and fetches nothing twice. Gold is the real decision (any
"Accept ..." is accept; 2019 has it as the meta-review's recommendation); withdrawn and
desk-rejected papers are left out and counted. Official review ratings ("6: Marginally above
acceptance threshold" -> 6) are kept as the paper's recommendations, for a second label rule.
Reviews, meta-reviews, decisions and comments never reach the prompt: only title, abstract and
the PDF's body do. Credentials (OPENREVIEW_USERNAME / OPENREVIEW_PASSWORD) are optional and
never stored.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from peerbench.datasets import Dataset, InfoRow, folder_bytes, select_ids
from peerbench.errors import DataError, MissingDependency
from peerbench.hookspecs import hookimpl
from peerbench.records import Paper

DEFAULT_BASE_URL = "https://api.openreview.net"
VENUE_RE = re.compile(r"^[A-Za-z0-9.\-]+/\d{4}/Conference$")
RATING_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)")


class OpenReviewArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    venues: list[str] = Field(min_length=1)
    limit: int | None = Field(None, ge=1, description="first N submissions of each venue")
    ids: list[str] | None = None


def venue_slug(venue: str) -> str:
    return venue.replace("/", "_")


def rating_of(value: Any) -> float | None:
    match = RATING_RE.match(str(value or ""))
    return float(match.group(1)) if match else None


def _content_value(value: Any) -> Any:
    """API v1 content values are plain; API v2 wraps them in {"value": ...}."""
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def outcome(note: dict[str, Any]) -> tuple[str | None, list[float]]:
    """(decision text or None, official ratings) from a submission's direct replies."""
    decision, ratings = None, []
    for reply in (note.get("details") or {}).get("directReplies") or []:
        invitation = str(reply.get("invitation") or "")
        content = reply.get("content") or {}
        if invitation.endswith("/Decision"):
            decision = str(_content_value(content.get("decision")) or "") or decision
        elif invitation.endswith("/Meta_Review") and decision is None:
            decision = str(_content_value(content.get("recommendation")) or "") or None
        elif invitation.endswith("/Official_Review"):
            rating = rating_of(_content_value(content.get("rating")))
            if rating is not None:
                ratings.append(rating)
    return decision, ratings


def excluded(note: dict[str, Any], decision: str | None) -> str | None:
    venue_text = " ".join(str(_content_value((note.get("content") or {}).get(k)) or "") for k in ("venue", "venueid"))
    for text in (decision or "", venue_text, str(note.get("invitation") or "")):
        lowered = text.lower()
        if "withdraw" in lowered:
            return "withdrawn"
        if "desk reject" in lowered or "desk_reject" in lowered:
            return "desk rejected"
    return None if decision else "no decision"


class OpenReview(Dataset):
    name = "openreview"
    Args = OpenReviewArgs
    page_size = 1000

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        self.base_url = os.environ.get("PEERBENCH_OPENREVIEW_URL", DEFAULT_BASE_URL)
        self.min_interval = float(os.environ.get("PEERBENCH_OPENREVIEW_MIN_INTERVAL", "0.5"))
        self._client: Any = None
        self._last_request = 0.0
        self.counts: dict[str, dict[str, int]] = {}

    @property
    def root(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        from peerbench.paths import cache_root

        return cache_root() / "openreview"

    def client(self) -> Any:
        if self._client is None:
            try:
                import openreview
            except ImportError:
                raise MissingDependency("openreview-py", "openreview") from None
            # Anonymous unless the user set credentials; the client reads them from the environment.
            self._client = openreview.Client(baseurl=self.base_url)
        return self._client

    def _throttle(self) -> None:
        """At most one request per min_interval: the API rate-limits, and 429s cost more than waiting."""
        wait = self._last_request + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()

    def _call(self, what: str, func, *args, **kwargs):
        self._throttle()
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # the client raises OpenReviewException or requests errors after its retries
            raise DataError(f"OpenReview {what}: {' '.join(str(exc).split())[:300]}; rerun to resume") from None

    def _venue_dir(self, venue: str) -> Path:
        if not VENUE_RE.match(venue):
            raise DataError(f"dataset field 'venues': {venue!r} is not an OpenReview venue id like "
                            "ICLR.cc/2020/Conference")
        return self.root / venue_slug(venue)

    def submissions(self, venue: str, limit: int | None, *, progress: bool = True) -> list[dict[str, Any]]:
        """All submission notes with direct replies, page by page from the cache or the API."""
        folder = self._venue_dir(venue) / "pages"
        folder.mkdir(parents=True, exist_ok=True)
        notes: list[dict[str, Any]] = []
        offset = 0
        while limit is None or len(notes) < limit:
            page_file = folder / f"offset-{offset:06d}.json"
            if page_file.is_file():
                page = json.loads(page_file.read_text())
            else:
                found = self._call(f"notes of {venue} at offset {offset}", self.client().get_notes,
                                   invitation=f"{venue}/-/Blind_Submission", details="directReplies",
                                   offset=offset, limit=self.page_size)
                page = [{**note.to_json(), "details": note.details} for note in found]
                tmp = page_file.with_name(page_file.name + ".part")
                tmp.write_text(json.dumps(page))
                tmp.replace(page_file)
            notes.extend(page)
            if len(page) < self.page_size:
                break
            offset += self.page_size
        return notes[:limit] if limit is not None else notes

    def pdf(self, venue: str, note_id: str) -> bytes | None:
        """The submission PDF (cached), or None when OpenReview has none for this note."""
        path = self._venue_dir(venue) / "pdfs" / f"{note_id}.pdf"
        if path.is_file():
            return path.read_bytes()
        if (path.parent / f"{note_id}.missing").is_file():
            return None
        self._throttle()
        try:
            data = self.client().get_pdf(note_id)
        except Exception as exc:
            details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            if details.get("name") == "NotFoundError" or details.get("status") == 404:
                path.parent.mkdir(parents=True, exist_ok=True)
                (path.parent / f"{note_id}.missing").write_text("no PDF on OpenReview\n")
                return None
            raise DataError(f"OpenReview PDF of {note_id}: {' '.join(str(exc).split())[:300]}; rerun to resume") \
                from None
        if not data.startswith(b"%PDF"):
            raise DataError(f"OpenReview PDF of {note_id}: the reply is not a PDF; rerun to resume")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return data

    def size(self, args: OpenReviewArgs) -> int | None:
        return None  # known only after the submissions are listed

    def pull(self, args: OpenReviewArgs, *, progress: bool = True) -> list[Paper]:
        return self.load(args, progress=progress)

    def load(self, args: OpenReviewArgs, *, progress: bool = True) -> list[Paper]:
        from peerbench.datasets.pdf_sections import pdf_sections
        from peerbench.progress import progress_bar

        papers: list[Paper] = []
        wanted = set(args.ids) if args.ids is not None else None
        for venue in args.venues:
            counts = {"submissions": 0, "withdrawn": 0, "desk rejected": 0, "no decision": 0, "no pdf": 0,
                      "papers": 0}
            notes = self.submissions(venue, args.limit, progress=progress)
            counts["submissions"] = len(notes)
            kept = []
            for note in notes:
                if wanted is not None and note["id"] not in wanted:
                    continue
                decision, ratings = outcome(note)
                reason = excluded(note, decision)
                if reason:
                    counts[reason] += 1
                    continue
                kept.append((note, decision, ratings))
            year = venue.split("/")[1]
            with progress_bar(f"OpenReview {venue} PDFs", total=len(kept), enabled=progress, unit="PDFs") as advance:
                for note, decision, ratings in kept:
                    content = note.get("content") or {}
                    data = self.pdf(venue, note["id"])
                    advance(1)
                    if data is None:
                        counts["no pdf"] += 1
                        continue
                    sections = pdf_sections(data, f"OpenReview PDF of {note['id']}")
                    papers.append(Paper(
                        id=note["id"], venue=f"iclr_{year}", split="", title=str(_content_value(content.get("title"))
                                                                                or "").strip(),
                        abstract=str(_content_value(content.get("abstract")) or "").strip(), sections=sections,
                        accepted=decision.lower().startswith("accept"), recommendations=ratings,
                        meta={"decision": decision, "number": note.get("number"), "forum": note.get("forum")}))
            counts["papers"] = len(kept) - counts["no pdf"]
            self.counts[venue] = counts
        return select_ids(papers, args.ids, f"the usable papers of {', '.join(args.venues)}")

    def describe_pull(self, pulled: list[Paper]) -> list[str]:
        """What each venue's submissions became: the papers kept and why the others were left out."""
        lines = [f"{venue}: {c['papers']} papers with a decision of {c['submissions']} submissions "
                 f"({c['withdrawn']} withdrawn, {c['desk rejected']} desk rejected, {c['no decision']} without a "
                 f"decision, {c['no pdf']} without a PDF left out)" for venue, c in self.counts.items()]
        return [*lines, f"{len(pulled)} papers cached in {self.root}"]

    def info(self) -> list[InfoRow]:
        """One row per cached venue: its listed submissions and downloaded PDFs."""
        rows = []
        for folder in _venue_folders(self.root):
            pages = sorted((folder / "pages").glob("offset-*.json"))
            pdfs = sorted((folder / "pdfs").glob("*.pdf"))
            missing = len(list((folder / "pdfs").glob("*.missing")))
            notes = sum(len(_page_notes(page) or []) for page in pages)
            rows.append(InfoRow(folder.name.replace("_", "/"), str(folder),
                                f"{notes} submissions, {len(pdfs)} PDFs, {missing} without a PDF",
                                folder_bytes([*pages, *pdfs])))
        return rows

    @classmethod
    def claims(cls, path: Path) -> bool:
        """peerbench's OpenReview cache, or one venue's folder of it (pages/offset-*.json)."""
        return path.is_dir() and bool(_venue_folders(path))

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """Every cached page of submissions and every cached PDF, as :meth:`load` would read them."""
        folders = _venue_folders(path)
        if not folders:
            return 0, [f"{path}: no <venue>/pages/offset-*.json files; is this peerbench's OpenReview cache?"]
        checked, problems = 0, []
        for folder in folders:
            count, found = _venue_problems(folder)
            checked += count
            problems.extend(found)
        return checked, problems


def _venue_folders(path: Path) -> list[Path]:
    """The venue folders (each with pages/) at ``path``: the folder itself or those right under it."""
    if (path / "pages").is_dir():
        return [path]
    return sorted({page.parent.parent for page in path.glob("*/pages/offset-*.json")})


def _page_notes(page: Path) -> list[Any] | None:
    """The notes of one cached page, or None when it is not a JSON list."""
    try:
        notes = json.loads(page.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return notes if isinstance(notes, list) else None


def _note_problem(note: Any, page: Path, index: int) -> str | None:
    """The first problem of one cached submission note that :meth:`OpenReview.load` would trip over."""
    if not isinstance(note, dict) or not isinstance(note.get("id"), str) or not note["id"]:
        return f"{page}: field '{index}.id': missing or not a string"
    if not isinstance(note.get("content"), dict):
        return f"{page}: field '{index}.content': missing or not an object"
    if not str(_content_value(note["content"].get("title")) or "").strip():
        return f"{page}: field '{index}.content.title': missing or empty"
    return None


def _venue_problems(folder: Path) -> tuple[int, list[str]]:
    """(submissions checked, problems) of one venue folder: its name, its pages, its PDFs."""
    problems = []
    if not VENUE_RE.match(folder.name.replace("_", "/")):
        problems.append(f"{folder}: the folder name is no OpenReview venue id (like ICLR.cc_2020_Conference)")
    ids: set[str] = set()
    checked = 0
    for page in sorted((folder / "pages").glob("offset-*.json")):
        notes = _page_notes(page)
        if notes is None:
            problems.append(f"{page}: not a JSON list of submissions")
            continue
        for index, note in enumerate(notes):
            checked += 1
            problem = _note_problem(note, page, index)
            if problem:
                problems.append(problem)
            if isinstance(note, dict) and isinstance(note.get("id"), str):
                ids.add(note["id"])
    for pdf in sorted((folder / "pdfs").glob("*.pdf")):
        with pdf.open("rb") as handle:
            if handle.read(4) != b"%PDF":
                problems.append(f"{pdf}: not a PDF (it does not start with %PDF)")
        if pdf.stem not in ids:
            problems.append(f"{pdf}: no submission with this id in {folder / 'pages'}")
    return checked, problems


@hookimpl
def register_datasets(register):
    register("openreview", OpenReview, description="OpenReview ICLR venues with real decisions (openreview-py, API v1)")
