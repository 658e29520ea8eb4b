"""A small server on 127.0.0.1 speaking OpenReview's API v1 and v2 as each ICLR year really has it.

Routes: GET /notes (invitation, details=directReplies, sort, offset/limit paging), GET /pdf?id=...,
POST /login. The shapes per year (see src/peerbench/datasets/openreview_fields.py and
docs/datasets.md for the sources):

- 2018 (v1): decision in a ``-/Acceptance_Decision`` reply (one is "Invite to Workshop Track"); one
  withdrawn paper stays in Blind_Submission with ``withdrawal: "Confirmed"``, another is in
  ``-/Withdrawn_Submission``.
- 2019 (v1): decision is the ``-/PaperN/Meta_Review``'s ``recommendation``.
- 2020-2023 (v1): ``PaperN/-/Decision``; ratings under ``rating`` (2020-2021) or ``recommendation``
  (2022-2023); withdrawn and desk-rejected papers only in their own invitations.
- 2024-2025 (v2): ``-/Submission`` lists everything; values wrapped in {"value": ...}; replies with
  an ``invitations`` list; venueid says accepted/rejected/withdrawn/desk rejected; 2025 ratings are
  numbers and some rejected papers have no Decision reply (only the venueid says so).

Paper number n: n % 6 == 5 is left out (withdrawn when n % 12 == 5, desk rejected when n % 12 == 11);
otherwise kind n % 6 picks the decision from DECISIONS[year]. Review r of paper n rates
SCALES[year][(n + r) % 4]. Without ``sort=number:asc`` the listing comes newest first. PDFs are made
(matplotlib) on first request. Faults: statuses to send before answering, PDFs refused (403), PDFs
missing (404), anonymous reading refused with a challenge page, a login that needs MFA.
"""

from __future__ import annotations

import functools
import io
import json
import threading
from collections import Counter
from urllib.parse import parse_qs, urlparse

from local_http import LocalServer, QuietHandler

VENUE = "ICLR.cc/2020/Conference"
SCALES = {
    2018: ["3: Clear rejection", "5: Marginally below acceptance threshold", "6: Marginally above acceptance threshold",
           "8: Top 50% of accepted papers, clear accept"],
    2019: ["4: Ok but not good enough - rejection", "5: Marginally below acceptance threshold",
           "6: Marginally above acceptance threshold", "7: Good paper, accept"],
    2020: ["1: Reject", "3: Weak Reject", "6: Weak Accept", "8: Accept"],
    2021: ["4: Ok but not good enough - rejection", "5: Marginally below acceptance threshold",
           "6: Marginally above acceptance threshold", "7: Good paper, accept"],
    2022: ["3: reject, not good enough", "5: marginally below the acceptance threshold",
           "6: marginally above the acceptance threshold", "8: accept, good paper"],
    2024: ["3: reject, not good enough", "5: marginally below the acceptance threshold",
           "6: marginally above the acceptance threshold", "8: accept, good paper"],
    2025: [3, 5, 6, 8],
}
SCALES[2023] = SCALES[2022]
DECISIONS = {
    2018: ["Accept (Poster)", "Reject", "Accept (Oral)", "Invite to Workshop Track", "Accept (Poster)"],
    2019: ["Accept (Poster)", "Reject", "Accept (Oral)", "Reject", "Accept (Poster)"],
    2020: ["Accept (Poster)", "Reject", "Accept (Spotlight)", "Reject", "Accept (Talk)"],
    2021: ["Accept (Poster)", "Reject", "Accept (Spotlight)", "Reject", "Accept (Oral)"],
    2022: ["Accept (Poster)", "Reject", "Accept (Spotlight)", "Reject", "Accept (Oral)"],
    2023: ["Accept: poster", "Reject", "Accept: notable-top-25%", "Reject", "Accept: notable-top-5%"],
    2024: ["Accept (poster)", "Reject", "Accept (spotlight)", "Reject", "Accept (oral)"],
    2025: ["Accept (Poster)", "Reject", "Accept (Spotlight)", "Reject", "Accept (Oral)"],
}
CHALLENGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>challenge</body></html>"


def venue_of(year: int) -> str:
    return f"ICLR.cc/{year}/Conference"


@functools.lru_cache(maxsize=64)  # the same titles recur across years and servers
def make_pdf(title: str, number: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["pdf.fonttype"] = 42
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    pages = [f"Under review as a conference paper at ICLR\n{title}\nAnonymous authors\nABSTRACT\n"
             f"We study problem {number}.\n1 INTRODUCTION\nThis paper introduces method {number}.\n"
             f"2 METHOD\nThe method uses gradients and attention.",
             f"3 EXPERIMENTS\nResults on benchmark {number} improve accuracy.\n4 CONCLUSION\nIt works.\n"
             f"REFERENCES\nA. Author. A cited paper. 2019."]
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        for page in pages:
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(0.08, 0.92, page, va="top", fontsize=10)
            pdf.savefig(fig)
            plt.close(fig)
    return buffer.getvalue()


def note_id(year: int, number: int) -> str:
    """Unique across years on one server; ICLR 2020's ids stay the short ones older tests name."""
    return f"note{number:03d}" if year == 2020 else f"i{year % 100}note{number:03d}"


def fate(number: int) -> str:
    """'withdrawn', 'desk rejected', or the index (as text) of the paper's decision in DECISIONS."""
    if number % 6 == 5:
        return "withdrawn" if number % 12 == 5 else "desk rejected"
    return str(number % 6)


def v1_replies(year: int, number: int, forum: str) -> list[dict]:
    venue = venue_of(year)
    paper = f"{venue}/-/Paper{number}" if year <= 2019 else f"{venue}/Paper{number}/-"
    rating_key = "recommendation" if year in (2022, 2023) else "rating"
    text_key = {2022: "main_review", 2023: "strength_and_weaknesses"}.get(year, "review")  # the year's form
    replies = [{"id": f"rev{number}-{r}", "invitation": f"{paper}/Official_Review", "forum": forum, "replyto": forum,
                "content": {rating_key: SCALES[year][(number + r) % 4], text_key: "secret text",
                            "confidence": "4: The reviewer is confident but not absolutely certain"}}
               for r in range(3)]
    kind = fate(number)
    if kind.isdigit():
        decision = DECISIONS[year][int(kind)]
        if year == 2018:
            replies.append({"id": f"dec{number}", "invitation": f"{venue}/-/Acceptance_Decision", "forum": forum,
                            "replyto": forum, "content": {"title": "ICLR 2018 Conference Acceptance Decision",
                                                          "decision": decision, "comment": "DECISIONTEXT"}})
        elif year == 2019:
            replies.append({"id": f"meta{number}", "invitation": f"{paper}/Meta_Review", "forum": forum,
                            "replyto": forum, "content": {"recommendation": decision, "metareview": "DECISIONTEXT",
                                                          "confidence": "5: The area chair is absolutely certain"}})
        else:
            replies.append({"id": f"dec{number}", "invitation": f"{paper}/Decision", "forum": forum, "replyto": forum,
                            "content": {"decision": decision, "comment": "DECISIONTEXT"}})
            replies.append({"id": f"meta{number}", "invitation": f"{paper}/Meta_Review", "forum": forum,
                            "replyto": forum, "content": {"recommendation": decision, "metareview": "DECISIONTEXT"}})
    replies.append({"id": f"com{number}", "invitation": f"{paper}/Official_Comment", "forum": forum, "replyto": forum,
                    "content": {"comment": "AUTHORCOMMENT"}})
    return replies


def v1_note(year: int, number: int) -> tuple[str, dict]:
    """(the listing it is in, the note) in API v1's shape."""
    venue, forum, kind = venue_of(year), note_id(year, number), fate(number)
    content = {"title": f"Paper number {number} on learning", "abstract": f"Abstract of paper {number}.",
               "pdf": f"/pdf/{forum}.pdf", "authors": ["Anonymous"], "keywords": ["learning"]}
    listing = "Blind_Submission"
    if kind == "withdrawn" and year == 2018:
        content["withdrawal"] = "Confirmed"  # 2018 keeps this one in the blind listing
    elif kind == "withdrawn" or (kind == "desk rejected" and year == 2018):
        listing = "Withdrawn_Submission"
        content["venue"] = f"ICLR {year} Conference Withdrawn Submission"
    elif kind == "desk rejected":
        listing = "Desk_Rejected_Submission"
        content["venue"] = f"ICLR {year} Conference Desk Rejected Submission"
    note = {"id": forum, "original": f"orig{number:03d}", "number": number, "forum": forum, "replyto": None,
            "invitation": f"{venue}/-/{listing}", "content": content, "readers": ["everyone"], "writers": [venue],
            "signatures": [venue], "cdate": 1000 + number, "tcdate": 1000 + number, "tmdate": 5000 - number,
            "details": {"directReplies": v1_replies(year, number, forum)}}
    return listing, note


def v2_note(year: int, number: int) -> dict:
    """A note in API v2's shape: every content value wrapped, replies with an invitations list."""
    venue, forum, kind = venue_of(year), note_id(year, number), fate(number)
    prefix = f"{venue}/Submission{number}/-"
    replies = [{"id": f"rev{number}-{r}", "forum": forum, "replyto": forum, "invitations": [f"{prefix}/Official_Review"],
                "signatures": [f"{venue}/Submission{number}/Reviewer_{r}"], "readers": ["everyone"], "domain": venue,
                "content": {"summary": {"value": "secret text"}, "rating": {"value": SCALES[year][(number + r) % 4]},
                            "confidence": {"value": 4}}} for r in range(3)]
    if kind == "withdrawn":
        venueid, shown = f"{venue}/Withdrawn_Submission", f"ICLR {year} Conference Withdrawn Submission"
        replies.append({"id": f"wd{number}", "forum": forum, "replyto": forum, "invitations": [f"{prefix}/Withdrawal"],
                        "content": {"withdrawal_confirmation": {"value": "I have read and agree."}}})
    elif kind == "desk rejected":
        venueid, shown = f"{venue}/Desk_Rejected_Submission", f"ICLR {year} Conference Desk Rejected Submission"
        replies.append({"id": f"dr{number}", "forum": forum, "replyto": forum,
                        "invitations": [f"{prefix}/Desk_Rejection"],
                        "content": {"desk_reject_comments": {"value": "DECISIONTEXT"}}})
    else:
        decision = DECISIONS[year][int(kind)]
        accepted = decision.startswith("Accept")
        venueid = venue if accepted else f"{venue}/Rejected_Submission"
        shown = f"ICLR {year} {decision.split('(')[1].rstrip(')')}" if accepted else f"Submitted to ICLR {year}"
        if not (year == 2025 and kind == "3"):  # these say "rejected" through the venueid only
            replies.append({"id": f"dec{number}", "forum": forum, "replyto": forum, "invitations": [f"{prefix}/Decision"],
                            "content": {"decision": {"value": decision}, "comment": {"value": "DECISIONTEXT"}}})
    replies.append({"id": f"com{number}", "forum": forum, "replyto": forum, "invitations": [f"{prefix}/Official_Comment"],
                    "content": {"comment": {"value": "AUTHORCOMMENT"}}})
    content = {"title": {"value": f"Paper number {number} on learning"},
               "abstract": {"value": f"Abstract of paper {number}."}, "pdf": {"value": f"/pdf/{forum}.pdf"},
               "venue": {"value": shown}, "venueid": {"value": venueid}, "keywords": {"value": ["learning"]}}
    return {"id": forum, "number": number, "forum": forum, "invitations": [f"{venue}/-/Submission",
            f"{venue}/-/Post_Submission"], "domain": venue, "content": content, "readers": ["everyone"],
            "writers": [venue], "signatures": [f"{venue}/Submission{number}/Authors"], "cdate": 1000 + number,
            "tcdate": 1000 + number, "tmdate": 5000 - number, "details": {"directReplies": replies}}


def listings(year: int, n_papers: int) -> dict[str, list[dict]]:
    """Invitation -> the notes it lists, in number order."""
    venue, found = venue_of(year), {}
    for number in range(1, n_papers + 1):
        if year >= 2024:
            found.setdefault(f"{venue}/-/Submission", []).append(v2_note(year, number))
        else:
            listing, note = v1_note(year, number)
            found.setdefault(f"{venue}/-/{listing}", []).append(note)
    return found


class OpenReviewServer(LocalServer):
    def __init__(self, n_papers: int = 13, years: tuple[int, ...] = (2020,)):
        self.listed: dict[str, list[dict]] = {}
        self.titles: dict[str, tuple[str, int]] = {}
        for year in years:
            self.add(year, n_papers)
        self._pdfs: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[dict] = []  # every /notes query, as sent
        self.faults: dict[str, list[int]] = {}  # hit key -> statuses to send before answering
        self.broken_pdfs: set[str] = set()
        self.missing_pdfs: set[str] = set()
        self.anonymous_refused = False  # /notes answers 403 with a challenge page unless logged in
        self.account: tuple[str, str] | None = None  # (username, password) that /login accepts
        self.mfa = False
        self.token = "tok-0123456789abcdef"
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if urlparse(self.path).path != "/login":
                    return self.send_json(404, {"message": "no route"})
                server.hits["/login"] += 1
                if server.account is None or (body.get("id"), body.get("password")) != server.account:
                    return self.send_json(400, {"name": "Error", "message": "Invalid username or password",
                                                "status": 400})
                if server.mfa:
                    return self.send_json(200, {"mfaPending": True, "mfaPendingToken": "pending",
                                                "mfaMethods": ["totp"], "preferredMethod": "totp"})
                self.send_json(200, {"token": server.token, "user": {"id": body["id"],
                                                                     "profile": {"id": "~Test_Reader1"}}})

            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                key = (f"/pdf?{query.get('id')}" if url.path == "/pdf" else
                       f"/notes?{query.get('invitation', '').rsplit('/', 1)[-1]}@{query.get('offset', '0')}")
                with server._lock:
                    server.hits[key] += 1
                    pending = server.faults.get(key)
                    status = pending.pop(0) if pending else None
                if status:
                    return self.send_json(status, {"name": "Error", "message": "try again"}, {"Retry-After": "0"})
                if url.path == "/notes":
                    return self.notes(query)
                if url.path == "/pdf":
                    return self.pdf(query.get("id", ""))
                self.send_json(404, {"message": "no route"})

            def notes(self, query):
                server.requests.append(query)
                if server.anonymous_refused and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self.send_body(403, CHALLENGE, "text/html; charset=UTF-8")
                found = server.listed.get(query.get("invitation", ""), [])
                if query.get("sort") != "number:asc":
                    found = found[::-1]  # newest first: pages cut from this order shift as papers come and go
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 1000))
                notes = found[offset:offset + limit]
                if query.get("details") != "directReplies":
                    notes = [{k: v for k, v in n.items() if k != "details"} for n in notes]
                self.send_json(200, {"notes": notes, "count": len(found)})

            def pdf(self, note_id):
                if note_id in server.broken_pdfs:  # refused (not retried by the client): the pull stops
                    return self.send_json(403, {"name": "ForbiddenError", "message": "forbidden"})
                if note_id not in server.titles or note_id in server.missing_pdfs:
                    return self.send_json(404, {"name": "NotFoundError", "message": "not found"})
                with server._lock:
                    if note_id not in server._pdfs:
                        server._pdfs[note_id] = make_pdf(*server.titles[note_id])
                self.send_body(200, server._pdfs[note_id], "application/pdf")

        super().__init__(Handler)
        self.url = self.root_url

    def add(self, year: int, n_papers: int) -> None:
        """Serve this year's papers too (a venue that was empty becomes listed)."""
        self.listed.update(listings(year, n_papers))
        for notes in self.listed.values():
            for note in notes:
                title = note["content"]["title"]
                self.titles[note["id"]] = (title["value"] if isinstance(title, dict) else title, note["number"])
