"""PeerRead (Kang et al., NAACL 2018): ACL 2017, CoNLL 2016 and ICLR 2017.

The JSON files are fetched one by one at a pinned commit (never the PDFs, never redistributed)
into the user cache, or read from an existing copy of PeerRead's ``data/`` folder. Ids come from
file names, because the ids inside the files are unreliable (int, str or empty).
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from peerbench.datasets import MAX_FILE_BYTES, Dataset, InfoRow, folder_bytes
from peerbench.datasets.review_numbers import review_numbers
from peerbench.errors import DataError
from peerbench.hookspecs import hookimpl
from peerbench.json_text import TooDeep, lone_surrogate, parse_json
from peerbench.records import Paper, Section
from peerbench.reference import PEERREAD95_PATH

PEERREAD_COMMIT = "a5d0d79169b974e172186085291920a4154c433f"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/allenai/PeerRead/{PEERREAD_COMMIT}/data"
DEFAULT_LISTING_URL = "https://api.github.com/repos/allenai/PeerRead/contents"
VENUES = ("acl_2017", "conll_2016", "iclr_2017")
SPLITS = ("train", "dev", "test")
MANIFEST_PATH = PEERREAD95_PATH
LISTING_WAYS_AROUND = ("Point --data-dir (or PEERBENCH_DATA) at a copy of the files; with a mirror "
                       "(PEERBENCH_PEERREAD_URL), set PEERBENCH_PEERREAD_LISTING_URL to a server that answers "
                       "GitHub's contents API, or write the folder's file names as a JSON list to {listing}")

Venue = Literal["acl_2017", "conll_2016", "iclr_2017"]
Split = Literal["train", "dev", "test"]


class PeerReadArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    venues: list[Venue] = Field(default_factory=lambda: list(VENUES), min_length=1)
    splits: list[Split] = Field(default_factory=lambda: ["dev", "test"], min_length=1)
    ids: list[str] | None = None


def reviews_rel(venue: str, split: str, paper_id: str) -> str:
    return f"{venue}/{split}/reviews/{paper_id}.json"


def parsed_pdf_rel(venue: str, split: str, paper_id: str) -> str:
    return f"{venue}/{split}/parsed_pdfs/{paper_id}.pdf.json"


@lru_cache(maxsize=1)
def manifest() -> dict[tuple[str, str, str], dict[str, Any]]:
    """The facts about the 95 peerread95 papers: ids, labels, mean scores."""
    entries = json.loads(MANIFEST_PATH.read_text())
    return {(e["venue"], e["split"], e["id"]): e for e in entries}


def validate_file(rel: str, content: bytes) -> dict[str, Any]:
    """A fetched file counts only if it parses and has the keys the loader needs; returns it parsed,
    so that loading parses each file once."""
    try:
        data = parse_json(content)
    except (UnicodeDecodeError, json.JSONDecodeError, TooDeep) as exc:
        raise DataError(f"{rel}: not valid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    bad = lone_surrogate(data)
    if bad is not None:
        raise DataError(f"{rel}: field {bad!r} holds a lone surrogate (an escape such as \\udc00 that is not text)")
    if rel.endswith(".pdf.json"):
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
            raise DataError(f"{rel}: field 'metadata' missing or not an object")
        if not isinstance(data["metadata"].get("sections", []), (list, type(None))):
            raise DataError(f"{rel}: field 'metadata.sections' is not a list")
    else:
        if not isinstance(data, dict):
            raise DataError(f"{rel}: expected a JSON object")
        if not isinstance(data.get("reviews"), list):
            raise DataError(f"{rel}: field 'reviews' missing or not a list")
        if "title" not in data:
            raise DataError(f"{rel}: field 'title' missing")
    return data


def _score(value: Any, rel: str, index: int) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{rel}: reviews[{index}].RECOMMENDATION is not a number: {value!r}") from None
    if not math.isfinite(score):
        raise DataError(f"{rel}: reviews[{index}].RECOMMENDATION is not a number: {value!r}")
    return score


def official_scores(data: dict[str, Any], venue: str, rel: str) -> list[float]:
    """Scores of the official reviews, each reviewer counted once.

    ICLR files mix official reviews with pre-review questions, author replies, public comments
    (some carrying a score) and the committee's decision: only entries from an AnonReviewer with a
    RECOMMENDATION count, once per reviewer. ACL/CoNLL reviews are all official; exact repeats are
    dropped.
    """
    return [_score(review["RECOMMENDATION"], rel, index) for index, review in official_reviews(data, venue)]


def official_reviews(data: dict[str, Any], venue: str) -> list[tuple[int, dict[str, Any]]]:
    """(index, review) of the official scored reviews, each reviewer once (see :func:`official_scores`)."""
    found: list[tuple[int, dict[str, Any]]] = []
    seen: set[Any] = set()
    for index, review in enumerate(data.get("reviews") or []):
        if not isinstance(review, dict) or review.get("RECOMMENDATION") in (None, ""):
            continue
        if review.get("IS_META_REVIEW") or review.get("is_meta_review"):
            continue
        if venue.startswith("iclr"):
            who = str(review.get("OTHER_KEYS") or "")
            if "AnonReviewer" not in who:
                continue
            key: Any = who
        else:
            key = (str(review.get("comments")), str(review.get("RECOMMENDATION")),
                   str(review.get("REVIEWER_CONFIDENCE")))
        if key in seen:
            continue
        seen.add(key)
        found.append((index, review))
    return found


def human_review_texts(data: dict[str, Any], venue: str) -> list[str]:
    """The ``comments`` of the official reviews (non-empty ones): the human reviews the review
    measures compare with. They go into ``Paper.meta`` for scoring only, never into a prompt."""
    texts = [review.get("comments") for _, review in official_reviews(data, venue)]
    return [text for text in texts if isinstance(text, str) and text.strip()]


def _text(value: Any, where: str, *, none: bool = False) -> Any:
    """A text field as the loader needs it: a string ("" for null), or null kept where null means something."""
    if value is None:
        return None if none else ""
    if not isinstance(value, str):
        raise DataError(f"{where} is not a string: {str(value)[:40]!r}")
    return value


def paper_from_files(venue: str, split: str, paper_id: str, reviews: dict[str, Any], parsed: dict[str, Any]) -> Paper:
    rel, parsed_rel = reviews_rel(venue, split, paper_id), parsed_pdf_rel(venue, split, paper_id)
    meta = parsed.get("metadata") or {}
    sections = []
    for index, section in enumerate(meta.get("sections") or []):
        where = f"{parsed_rel}: metadata.sections[{index}]"
        if not isinstance(section, dict):
            raise DataError(f"{where} is not an object")
        sections.append(Section(_text(section.get("heading"), f"{where}.heading", none=True),
                                _text(section.get("text"), f"{where}.text")))
    accepted = reviews.get("accepted") if venue.startswith("iclr") else None
    if accepted is not None and not isinstance(accepted, bool):
        raise DataError(f"{rel}: field 'accepted' is not true/false: {accepted!r}")
    title = (_text(reviews.get("title"), f"{rel}: field 'title'")
             or _text(meta.get("title"), f"{parsed_rel}: field 'metadata.title'")).strip()
    if not title:
        raise DataError(f"{rel}: field 'title' is empty (and so is metadata.title of the parsed PDF)")
    return Paper(
        id=paper_id,
        venue=venue,
        split=split,
        title=title,
        abstract=(_text(reviews.get("abstract"), f"{rel}: field 'abstract'")
                  or _text(meta.get("abstractText"), f"{parsed_rel}: field 'metadata.abstractText'")).strip(),
        sections=sections,
        accepted=accepted,
        recommendations=official_scores(reviews, venue, rel),
        meta={"reviews_path": rel, "parsed_pdf_path": parsed_rel,
              "human_reviews": human_review_texts(reviews, venue),
              "human_review_ratings": review_numbers([r for _, r in official_reviews(reviews, venue)])},
    )


def check_against_manifest(paper: Paper) -> None:
    """Recompute a peerread95 paper's facts and compare with peerread95.json; a mismatch names the paper."""
    from peerbench.labels import recommendation_at_least

    fact = manifest().get((paper.venue, paper.split, paper.id))
    if fact is None:
        return
    problems = []
    mean = paper.mean_recommendation
    if len(paper.recommendations) != fact["n_reviews"]:
        problems.append(f"{len(paper.recommendations)} scored reviews, expected {fact['n_reviews']}")
    expected_mean = fact["mean_recommendation"]
    if (mean is None) != (expected_mean is None) or (mean is not None and abs(mean - expected_mean) > 1e-3):
        problems.append(f"mean recommendation {mean}, expected {expected_mean}")
    if fact["accepted"] is not None and paper.accepted != fact["accepted"]:
        problems.append(f"accepted {paper.accepted}, expected {fact['accepted']}")
    if recommendation_at_least(4).label(paper) != fact["label"]:
        problems.append(f"label recommendation>=4 gives {not fact['label']}, expected {fact['label']}")
    if problems:
        raise DataError(f"{paper.meta['reviews_path']}: paper {paper.key} disagrees with peerread95.json: "
                        + "; ".join(problems))


class PeerRead(Dataset):
    name = "peerread"
    Args = PeerReadArgs

    def __init__(self, data_dir: str | Path | None = None):
        data_dir = data_dir or os.environ.get("PEERBENCH_DATA")
        super().__init__(data_dir)
        self.base_url = os.environ.get("PEERBENCH_PEERREAD_URL", DEFAULT_BASE_URL)
        self.listing_url = os.environ.get("PEERBENCH_PEERREAD_LISTING_URL", DEFAULT_LISTING_URL)

    @property
    def root(self) -> Path:
        """The folder laid out like PeerRead's ``data/``."""
        if self.data_dir is not None:
            return self.data_dir
        from peerbench.paths import cache_root

        return cache_root() / "peerread" / PEERREAD_COMMIT / "data"

    @property
    def downloads(self) -> bool:
        return self.data_dir is None

    def ids(self, venue: str, split: str) -> list[str]:
        if not self.downloads:
            folder = self.root / venue / split / "reviews"
            if not folder.is_dir():
                raise DataError(f"{folder}: no such folder in the PeerRead copy given by --data-dir/PEERBENCH_DATA")
            return sorted((p.stem for p in folder.glob("*.json")), key=_id_order)
        known = [k[2] for k in manifest() if k[0] == venue and k[1] == split]
        if known:
            return sorted(known, key=_id_order)
        return self._listed_ids(venue, split)

    def listing_path(self, venue: str, split: str) -> Path:
        return self.root.parent / "listings" / f"{venue}-{split}.json"

    def _listed_ids(self, venue: str, split: str) -> list[str]:
        """Splits outside peerread95 (train) are listed once, at the pinned commit, through GitHub's
        contents API (one request per folder; PeerRead's largest, ICLR train, has 349 files)."""
        cached = self.listing_path(venue, split)
        if not cached.is_file():
            import httpx

            url = f"{self.listing_url.rstrip('/')}/data/{venue}/{split}/reviews"
            try:
                response = httpx.get(url, params={"ref": PEERREAD_COMMIT}, timeout=60.0, follow_redirects=True,
                                     headers={"Accept": "application/vnd.github+json"})
                response.raise_for_status()
                names = [item["name"] for item in response.json() if item.get("type", "file") == "file"]
            except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
                raise DataError(f"{url}: cannot list PeerRead's {venue}/{split} files ({type(exc).__name__}: "
                                f"{exc}). {LISTING_WAYS_AROUND.format(listing=cached)}") from None
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(sorted(names)))
        names = json.loads(cached.read_text())
        return sorted((n[: -len(".json")] for n in names if n.endswith(".json")), key=_id_order)

    def selection(self, args: PeerReadArgs) -> list[tuple[str, str, str]]:
        wanted = set(args.ids) if args.ids is not None else None
        chosen = [(v, s, i) for v in args.venues for s in args.splits for i in self.ids(v, s)
                  if wanted is None or i in wanted]
        if wanted is not None:
            missing = wanted - {i for _, _, i in chosen}
            if missing:
                raise DataError(f"--ids: no such paper in {args.venues} {args.splits}: {', '.join(sorted(missing))}")
        return chosen

    def size(self, args: PeerReadArgs) -> int | None:
        """Known without network for peerread95's splits and local copies; None for an unlisted train split."""
        listed = {(v, s) for v, s, _ in manifest()}
        if self.downloads and any((v, s) not in listed and not self.listing_path(v, s).is_file()
                                  for v in args.venues for s in args.splits):
            return None
        try:
            return len(self.selection(args))
        except DataError:
            return None

    def pull(self, args: PeerReadArgs, *, progress: bool = True) -> int:
        from peerbench.datasets.download import fetch_files

        rels = [rel for v, s, i in self.selection(args) for rel in (reviews_rel(v, s, i), parsed_pdf_rel(v, s, i))]
        if not self.downloads:
            missing = [r for r in rels if not (self.root / r).is_file()]
            if missing:
                raise DataError(f"{self.root / missing[0]}: missing from the PeerRead copy"
                                + (f" (and {len(missing) - 1} more files)" if len(missing) > 1 else ""))
            return 0
        return fetch_files(self.base_url, rels, self.root, validate_file, progress=progress,
                           description="PeerRead files")

    def load(self, args: PeerReadArgs, *, progress: bool = True) -> list[Paper]:
        self.pull(args, progress=progress)
        papers = []
        for venue, split, paper_id in self.selection(args):
            reviews = self._read(reviews_rel(venue, split, paper_id))
            parsed = self._read(parsed_pdf_rel(venue, split, paper_id))
            papers.append(checked_paper(self.root, venue, split, paper_id, reviews, parsed))
        return papers

    def _read(self, rel: str) -> dict[str, Any]:
        data, problem = _read_checked(self.root, self.root / rel)
        if problem:
            raise DataError(problem)
        return data

    def describe_pull(self, pulled: int) -> list[str]:
        """``pull`` returns how many files it fetched (0 when everything was cached or a copy was given)."""
        return [f"{pulled} files fetched; PeerRead files are in {self.root}"]

    def info(self) -> list[InfoRow]:
        """One row per venue and split, present or not, so a missing split shows as 0."""
        rows = []
        for venue in VENUES:
            for split in SPLITS:
                folder = self.root / venue / split
                reviews = list((folder / "reviews").glob("*.json"))
                parsed = list((folder / "parsed_pdfs").glob("*.pdf.json"))
                rows.append(InfoRow(f"{venue}/{split}", str(folder),
                                    f"{len(reviews)} review files, {len(parsed)} parsed PDFs",
                                    folder_bytes([*reviews, *parsed])))
        return rows

    @classmethod
    def claims(cls, path: Path) -> bool:
        """A folder laid out like PeerRead's data/: <venue>/<split>/reviews or parsed_pdfs."""
        return path.is_dir() and any(p.is_dir() for pattern in ("*/*/reviews", "*/*/parsed_pdfs")
                                     for p in path.glob(pattern))

    def validate(self, path: Path) -> tuple[int, list[str]]:
        """Every review file with its parsed PDF, checked as :meth:`load` would, plus orphan PDFs."""
        reviews_files = sorted(path.glob("*/*/reviews/*.json"))
        if not reviews_files:
            return 0, [f"{path}: no <venue>/<split>/reviews/*.json files; is this PeerRead's data/ folder?"]
        problems = [problem for reviews_path in reviews_files for problem in _paper_problems(path, reviews_path)]
        for parsed_path in sorted(path.glob("*/*/parsed_pdfs/*.pdf.json")):
            if not (parsed_path.parent.parent / "reviews" / parsed_path.name.replace(".pdf.json", ".json")).is_file():
                problems.append(f"{parsed_path}: no matching reviews file")
        return len(reviews_files), problems


def _read_checked(root: Path, path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the parsed file, None) or (None, the one-line problem with it)."""
    if not path.is_file():
        return None, f"{path}: missing (every review file needs its parsed_pdfs file)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path}: cannot read ({exc.strerror})"
    if len(data) > MAX_FILE_BYTES:
        return None, f"{path}: {len(data) / 2**20:.1f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit"
    try:
        return validate_file(str(path.relative_to(root)), data), None
    except DataError as exc:
        return None, f"{root}/{exc}"


def _paper_problems(root: Path, reviews_path: Path) -> list[str]:
    """The problems of one paper of a PeerRead-style folder: its two files, the manifest, the body."""
    venue, split, paper_id = reviews_path.parts[-4], reviews_path.parts[-3], reviews_path.stem
    parsed_path = reviews_path.parent.parent / "parsed_pdfs" / f"{paper_id}.pdf.json"
    reviews, problem_r = _read_checked(root, reviews_path)
    parsed, problem_p = _read_checked(root, parsed_path)
    problems = [p for p in (problem_r, problem_p) if p]
    if reviews is None or parsed is None:
        return problems
    try:
        checked_paper(root, venue, split, paper_id, reviews, parsed)
    except DataError as exc:
        return [str(exc)]
    return []


def checked_paper(root: Path, venue: str, split: str, paper_id: str, reviews: dict[str, Any],
                  parsed: dict[str, Any]) -> Paper:
    """The paper, checked exactly alike by ``run`` and ``validate-data``: its fields, the packaged
    peerread95 facts, and a body to review (each problem names its file under ``root``)."""
    try:
        paper = paper_from_files(venue, split, paper_id, reviews, parsed)
        check_against_manifest(paper)
    except DataError as exc:
        raise DataError(f"{root}/{exc}" if not str(exc).startswith("/") else str(exc)) from None
    if not any(section.text.strip() for section in paper.sections):
        raise DataError(f"{root / parsed_pdf_rel(venue, split, paper_id)}: field 'metadata.sections': "
                        "the paper has no body text")
    return paper


def _id_order(paper_id: str) -> tuple[int, str]:
    return (int(paper_id), "") if paper_id.isdigit() else (1 << 62, paper_id)


@hookimpl
def register_datasets(register):
    register("peerread", PeerRead, description="PeerRead ACL 2017, CoNLL 2016, ICLR 2017 (JSON files, pinned commit)")
