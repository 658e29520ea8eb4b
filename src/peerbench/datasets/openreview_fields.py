"""Where each ICLR year on OpenReview keeps its decision, its reviewers' ratings and its exclusions.

The years differ, and a field read from the wrong place gives no error, only empty or wrong
labels; so every year peerbench pulls is named here, and any other venue is refused. The shapes
come from openreview-py's documentation and public ICLR scrapers (docs/datasets.md has the table):

- 2018 (API v1): the decision is a direct reply ``ICLR.cc/2018/Conference/-/Acceptance_Decision``
  ("Accept (Oral)", "Accept (Poster)", "Invite to Workshop Track", "Reject"); some withdrawn
  papers stay in the listing with ``content.withdrawal == "Confirmed"``.
- 2019 (v1): no decision note; the meta-review's ``recommendation`` is the decision.
- 2020-2023 (v1): ``.../Paper{N}/-/Decision``; the official review's rating is ``rating`` up to
  2021 and ``recommendation`` ("8: accept, good paper") in 2022-2023; 2023 decisions read
  "Accept: notable-top-5%", "Accept: poster".
- 2019-2023 (v1): withdrawn and desk-rejected papers leave ``-/Blind_Submission`` for their own
  invitations ``-/Withdrawn_Submission`` and ``-/Desk_Rejected_Submission``.
- 2024-2025 (API v2): ``-/Submission`` lists every paper; replies carry an ``invitations`` list and
  values wrapped in ``{"value": ...}``; the note's ``venueid`` says accepted, rejected, withdrawn or
  desk rejected. 2025 ratings are plain numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from peerbench.errors import DataError

FIRST_YEAR, LAST_YEAR = 2018, 2025
VENUE_RE = re.compile(r"^ICLR\.cc/(\d{4})/Conference$")
RATING_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)")
REJECT_DECISIONS = ("Reject", "Invite to Workshop Track")  # 2018's workshop invitation is not the conference


@dataclass(frozen=True)
class YearShape:
    """One ICLR year's API and the reply and field names that hold its decision and ratings."""

    year: int
    api: int                # 1: api.openreview.net (openreview.Client); 2: api2 (openreview.api.OpenReviewClient)
    decision_reply: str     # how the invitation of the reply holding the decision ends
    decision_field: str     # that reply's content key
    rating_field: str       # the official review's content key holding "6: ..." (or 6)

    def submissions(self, venue: str) -> str:
        return f"{venue}/-/Blind_Submission" if self.api == 1 else f"{venue}/-/Submission"

    def exclusion_listings(self, venue: str) -> dict[str, str]:
        """API v1 moves withdrawn and desk-rejected papers out of the listing, into these invitations."""
        if self.api != 1:
            return {}
        return {"withdrawn": f"{venue}/-/Withdrawn_Submission", "desk rejected": f"{venue}/-/Desk_Rejected_Submission"}


SHAPES = {
    2018: YearShape(2018, 1, "/-/Acceptance_Decision", "decision", "rating"),
    2019: YearShape(2019, 1, "/Meta_Review", "recommendation", "rating"),
    2020: YearShape(2020, 1, "/-/Decision", "decision", "rating"),
    2021: YearShape(2021, 1, "/-/Decision", "decision", "rating"),
    2022: YearShape(2022, 1, "/-/Decision", "decision", "recommendation"),
    2023: YearShape(2023, 1, "/-/Decision", "decision", "recommendation"),
    2024: YearShape(2024, 2, "/-/Decision", "decision", "rating"),
    2025: YearShape(2025, 2, "/-/Decision", "decision", "rating"),
}


def shape_of(venue: str) -> YearShape:
    """The year's shape, or a one-line refusal: a venue whose fields peerbench has not checked would
    give labels nobody can vouch for."""
    match = VENUE_RE.match(venue)
    if not match:
        raise DataError(f"dataset field 'venues': {venue!r} is not an OpenReview venue id like ICLR.cc/2020/Conference")
    year = int(match.group(1))
    if year not in SHAPES:
        raise DataError(f"dataset field 'venues': {venue!r}: peerbench knows the OpenReview fields of ICLR "
                        f"{FIRST_YEAR}-{LAST_YEAR} only (see docs/datasets.md)")
    return SHAPES[year]


def content_value(value: Any) -> Any:
    """API v1 content values are plain; API v2 wraps them in {"value": ...}."""
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def rating_of(value: Any) -> float | None:
    """The leading number of "6: Weak Accept" or "8: accept, good paper" (or a plain 6, as in 2025)."""
    if isinstance(value, bool):
        return None
    match = RATING_RE.match(str(value if value is not None else ""))
    return float(match.group(1)) if match else None


def accepted_of(decision: str) -> bool | None:
    """True for any "Accept..." (2023's "Accept: poster" too), False for a rejection, None otherwise."""
    if decision.startswith("Accept"):
        return True
    return False if decision in REJECT_DECISIONS else None


def _invitations(reply: dict[str, Any]) -> list[str]:
    return [str(i) for i in reply.get("invitations") or [reply.get("invitation") or ""]]


def read_replies(note: dict[str, Any], shape: YearShape) -> tuple[str | None, list[float], int]:
    """(decision text or None, official review ratings, official reviews whose rating could not be
    read) from a submission's direct replies. An unread rating is counted, never guessed."""
    decision, ratings, unread = None, [], 0
    for reply in (note.get("details") or {}).get("directReplies") or []:
        invitations = _invitations(reply)
        content = reply.get("content") or {}
        if any(i.endswith(shape.decision_reply) for i in invitations):
            decision = str(content_value(content.get(shape.decision_field)) or "") or decision
        elif any(i.endswith("/Official_Review") for i in invitations):
            rating = rating_of(content_value(content.get(shape.rating_field)))
            if rating is None:
                unread += 1
            else:
                ratings.append(rating)
    return decision, ratings, unread


# The official review's text fields per year, in the form's order (docs/datasets.md): joined with blank
# lines, they are a human review's text for the review measures (never a prompt's).
REVIEW_TEXT_FIELDS = {
    **{year: ("review",) for year in range(2018, 2022)},
    2022: ("summary_of_the_paper", "main_review", "summary_of_the_review"),
    2023: ("summary_of_the_paper", "strength_and_weaknesses", "clarity,_quality,_novelty_and_reproducibility",
           "summary_of_the_review"),
    **{year: ("summary", "strengths", "weaknesses", "questions") for year in (2024, 2025)},
}


def review_texts(note: dict[str, Any], shape: YearShape) -> list[str]:
    """The text of each official review of a submission (its year's fields that hold text, joined);
    a review with none of them is left out."""
    texts = []
    for reply in (note.get("details") or {}).get("directReplies") or []:
        if not any(i.endswith("/Official_Review") for i in _invitations(reply)):
            continue
        content = reply.get("content") or {}
        parts = [content_value(content.get(name)) for name in REVIEW_TEXT_FIELDS.get(shape.year, ())]
        text = "\n\n".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
        if text:
            texts.append(text)
    return texts


def venueid_status(note: dict[str, Any], venue: str) -> str | None:
    """What an API v2 note's venueid says: accepted, rejected, withdrawn, desk rejected, or None."""
    venueid = str(content_value((note.get("content") or {}).get("venueid")) or "")
    return {venue: "accepted", f"{venue}/Rejected_Submission": "rejected",
            f"{venue}/Withdrawn_Submission": "withdrawn",
            f"{venue}/Desk_Rejected_Submission": "desk rejected"}.get(venueid)


@dataclass(frozen=True)
class Verdict:
    """A submission's fate: left out (``reason``) or kept with its decision and ratings."""

    reason: str | None
    decision: str | None = None
    accepted: bool | None = None
    ratings: tuple[float, ...] = ()
    source: str = "reply"   # where the decision was read: a reply, or (API v2) the note's venueid
    unread_ratings: int = 0  # official reviews whose rating could not be read (not in ``ratings``)


def judge(note: dict[str, Any], shape: YearShape, venue: str) -> Verdict:
    """The verdict of a listed submission; the counters of ``data pull`` are made of the reasons."""
    decision, ratings, unread = read_replies(note, shape)
    content = note.get("content") or {}
    if shape.api == 1:
        if str(content_value(content.get("withdrawal")) or "") == "Confirmed":  # 2018 keeps these listed
            return Verdict("withdrawn")
        source = "reply"
    else:
        status = venueid_status(note, venue)
        if status in ("withdrawn", "desk rejected"):
            return Verdict(status)
        if decision is None and status in ("accepted", "rejected"):
            decision, source = str(content_value(content.get("venueid"))), "venueid"
            return Verdict(None, decision, status == "accepted", tuple(ratings), source, unread)
        source = "reply"
        if decision is not None and status is not None and accepted_of(decision) != (status == "accepted"):
            return Verdict("conflicting decisions", decision)
    if decision is None:
        return Verdict("no decision")
    accepted = accepted_of(decision)
    if accepted is None:
        return Verdict("unrecognised decision", decision)
    return Verdict(None, decision, accepted, tuple(ratings), source, unread)
