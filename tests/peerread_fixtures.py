"""Synthetic PeerRead files in the exact schema of the real ones (our own texts, never PeerRead's).

They carry the real files' quirks: duplicated reviews, unscored pre-review questions, author
replies, public comments with scores, the committee's decision entry, string scores, int/str/empty
ids, null headings, ACL margin line numbers and an over-long body. The 95 peerread95 papers are
generated so that their scores reproduce every fact in ../shared/data/peerread/peerread95.json.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO.parent / "shared" / "data" / "peerread" / "peerread95.json"
LEAK = "LEAKMARKER"  # put in every review and decision text; must never reach a prompt

GOOD_WORDS = "robust principled rigorous novel significant consistent convincing thorough state-of-the-art".split()
BAD_WORDS = "preliminary unclear incremental limited heuristic anecdotal unconvincing small-scale ad-hoc".split()
PLAIN_WORDS = ("model data training network learning method results task evaluation corpus parser embedding "
               "attention gradient benchmark baseline ablation feature sentence graph").split()

TRAIN_PAPERS = {"iclr_2017": 14, "acl_2017": 8, "conll_2016": 4}


def manifest() -> list[dict]:
    return json.loads(MANIFEST.read_text())


def _words(rng: random.Random, n: int, positive: bool) -> str:
    flavour = GOOD_WORDS if positive else BAD_WORDS
    return " ".join(rng.choice(flavour) if rng.random() < 0.25 else rng.choice(PLAIN_WORDS) for _ in range(n))


def _scores(mean: float | None, n: int) -> list[int]:
    if not n:
        return []
    total = round(mean * n)
    base, extra = divmod(total, n)
    return [base + 1] * extra + [base] * (n - extra)


def _sections(rng: random.Random, venue: str, positive: bool, long_body: bool) -> list[dict]:
    sections = []
    headings = ["1 Introduction", "2 Related Work", None, "4 Experiments", "5 Conclusion"]
    for index, heading in enumerate(headings):
        lines = []
        for line_no in range(6 if not long_body else 400):
            lines.append(_words(rng, 30, positive))
            if venue == "acl_2017":
                lines.append(f"{100 + index * 50 + line_no:03d}")  # review-copy margin line numbers
        sections.append({"heading": heading, "text": "\n".join(lines)})
    return sections


def iclr_reviews(rng: random.Random, scores: list[int], accepted: bool) -> list[dict]:
    reviews = []
    for i, score in enumerate(scores, 1):
        reviews.append({"TITLE": f"Review {i}", "OTHER_KEYS": f"ICLR 2017 conference AnonReviewer{i}",
                        "comments": f"{LEAK} official review {_words(rng, 20, score >= 6)}",
                        "IS_META_REVIEW": False, "is_meta_review": False, "DATE": "12 Dec 2016",
                        "RECOMMENDATION": score, "REVIEWER_CONFIDENCE": rng.randint(2, 5)})
        reviews.append({"TITLE": "pre-review question", "OTHER_KEYS": f"ICLR 2017 conference AnonReviewer{i}",
                        "comments": f"{LEAK} question", "IS_META_REVIEW": False, "is_meta_review": False,
                        "DATE": "1 Dec 2016"})
    if reviews:
        reviews.append(dict(reviews[0]))  # the real files repeat some scored reviews
    if not scores:  # PeerRead's accepted ICLR papers carry reviews without scores
        reviews.append({"TITLE": "Review", "OTHER_KEYS": "ICLR 2017 conference AnonReviewer1",
                        "comments": f"{LEAK} unscored review", "IS_META_REVIEW": False, "is_meta_review": False,
                        "DATE": "12 Dec 2016"})
    reviews.append({"TITLE": "reply", "OTHER_KEYS": "(author)", "comments": f"{LEAK} thank you",
                    "IS_META_REVIEW": False, "is_meta_review": False, "DATE": "3 Jan 2017"})
    reviews.append({"TITLE": "public comment", "OTHER_KEYS": "(anonymous)", "comments": f"{LEAK} nice",
                    "IS_META_REVIEW": False, "is_meta_review": False, "DATE": "4 Jan 2017", "RECOMMENDATION": 1})
    reviews.append({"TITLE": "ICLR committee final decision", "OTHER_KEYS": "ICLR 2017 pcs",
                    "comments": f"{LEAK} The committee decided: {'Accept (Poster)' if accepted else 'Reject'}",
                    "IS_META_REVIEW": False, "is_meta_review": False, "DATE": "6 Feb 2017"})
    return reviews


def acl_reviews(rng: random.Random, scores: list[int]) -> list[dict]:
    reviews = []
    for score in scores:
        aspects = {k: str(rng.randint(1, 5)) for k in ("ORIGINALITY", "SOUNDNESS_CORRECTNESS", "CLARITY", "SUBSTANCE",
                                                       "IMPACT", "MEANINGFUL_COMPARISON", "APPROPRIATENESS")}
        reviews.append({"comments": f"{LEAK} review {_words(rng, 20, score >= 4)}", "is_meta_review": None,
                        "RECOMMENDATION": str(score), "REVIEWER_CONFIDENCE": str(rng.randint(1, 5)), **aspects})
    if len(reviews) > 1:
        reviews.append(dict(reviews[-1]))  # exact repeat, to be dropped
    return reviews


def write_paper(root: Path, venue: str, split: str, paper_id: str, *, scores: list[int], accepted: bool | None,
                positive: bool, seed: int, long_body: bool = False) -> None:
    rng = random.Random(seed)
    title = f"A study of {rng.choice(PLAIN_WORDS)} {rng.choice(PLAIN_WORDS)} number {paper_id}"
    abstract = _words(rng, 60, positive)
    id_field: object = ["", int(paper_id) if paper_id.isdigit() else paper_id, paper_id][seed % 3]
    doc: dict = {"title": title, "abstract": abstract, "id": id_field, "authors": "Anonymous",
                 "KEYWORDS": "learning"}
    if venue == "iclr_2017":
        doc.update({"conference": "ICLR 2017 conference submission", "accepted": bool(accepted),
                    "reviews": iclr_reviews(rng, scores, bool(accepted))})
    else:
        doc.update({"conference": venue, "reviews": acl_reviews(rng, scores)})
    parsed = {"name": f"{paper_id}.pdf", "metadata": {
        "source": "CRF", "title": None if seed % 4 == 0 else title, "authors": ["Anonymous"], "emails": [],
        "sections": _sections(rng, venue, positive, long_body), "references": [], "referenceMentions": [],
        "year": 2017, "abstractText": abstract, "creator": "LaTeX"}}
    for rel, content in ((f"{venue}/{split}/reviews/{paper_id}.json", doc),
                         (f"{venue}/{split}/parsed_pdfs/{paper_id}.pdf.json", parsed)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def write_peerread(root: Path, *, train: bool = True, long_body_id: str | None = "37") -> Path:
    """A PeerRead-shaped ``data/`` folder: the 95 papers of peerread95 plus a small train split."""
    for index, fact in enumerate(manifest()):
        scores = _scores(fact["mean_recommendation"], fact["n_reviews"])
        write_paper(root, fact["venue"], fact["split"], fact["id"], scores=scores, accepted=fact["accepted"],
                    positive=fact["label"], seed=index, long_body=(fact["id"] == long_body_id
                                                                   and fact["venue"] == "acl_2017"))
    if train:
        rng = random.Random(7)
        for venue, count in TRAIN_PAPERS.items():
            for k in range(count):
                positive = k % 3 != 0
                high, low = (7, 3) if venue == "iclr_2017" else (4, 2)
                scores = [high if positive else low] * rng.randint(1, 3)
                write_paper(root, venue, "train", str(9000 + k), scores=scores,
                            accepted=positive if venue == "iclr_2017" else None, positive=positive, seed=1000 + k)
    return root


def folder_listing(root: Path, folder: str) -> list[dict]:
    """The shape of GitHub's contents-API answer for one folder under ``root``."""
    return [{"name": p.name, "path": f"data/{folder}/{p.name}", "type": "file"}
            for p in sorted((root / folder).glob("*"))]
