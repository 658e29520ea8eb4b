"""A small server on 127.0.0.1 with the routes of OpenReview's API v1 that peerbench uses:
GET /notes (invitation, details=directReplies, offset/limit paging) and GET /pdf?id=...; PDFs are
generated here (matplotlib's PDF backend) with numbered section headings. Faults: a 429 and a 500
on chosen requests, and a set of PDFs that fail every time (to interrupt a pull)."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from urllib.parse import parse_qs, urlparse

from local_http import LocalServer, QuietHandler

VENUE = "ICLR.cc/2020/Conference"


def make_pdf(title: str, number: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["pdf.fonttype"] = 42
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    pages = [f"Under review as a conference paper at ICLR 2020\n{title}\nAnonymous authors\nABSTRACT\n"
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


def submission(number: int) -> dict:
    """A blind submission with its direct replies, in API v1's shape."""
    forum = f"note{number:03d}"
    kind = number % 6
    decision = {0: "Accept (Poster)", 1: "Reject", 2: "Accept (Spotlight)", 3: "Reject", 4: "Accept (Talk)"}.get(kind)
    replies = [{"id": f"rev{number}-{r}", "invitation": f"{VENUE}/Paper{number}/-/Official_Review", "forum": forum,
                "replyto": forum, "content": {"rating": f"{(number + r) % 8 + 1}: Some label", "review": "secret text"}}
               for r in range(3)]
    if decision:
        replies.append({"id": f"dec{number}", "invitation": f"{VENUE}/Paper{number}/-/Decision", "forum": forum,
                        "replyto": forum, "content": {"decision": decision, "comment": "DECISIONTEXT"}})
    replies.append({"id": f"com{number}", "invitation": f"{VENUE}/Paper{number}/-/Official_Comment", "forum": forum,
                    "replyto": forum, "content": {"comment": "AUTHORCOMMENT"}})
    content = {"title": f"Paper number {number} on learning", "abstract": f"Abstract of paper {number}.",
               "pdf": f"/pdf/{forum}.pdf"}
    if kind == 5:  # withdrawn: no decision, marked by the venue field
        content["venue"] = "ICLR 2020 Conference Withdrawn Submission"
    return {"id": forum, "number": number, "forum": forum, "invitation": f"{VENUE}/-/Blind_Submission",
            "content": content, "details": {"directReplies": replies}, "readers": ["everyone"],
            "writers": [VENUE], "signatures": [VENUE], "cdate": 0, "tcdate": 0, "tmdate": 0}


class OpenReviewServer(LocalServer):
    def __init__(self, n_papers: int = 13):
        self.notes = [submission(i + 1) for i in range(n_papers)]
        self.pdfs = {n["id"]: make_pdf(n["content"]["title"], n["number"]) for n in self.notes}
        self.hits: Counter[str] = Counter()
        self.faults: dict[str, list[int]] = {}  # path key -> statuses to send before answering
        self.broken_pdfs: set[str] = set()
        self.missing_pdfs: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                key = f"{url.path}?{query.get('id') or query.get('offset', '')}"
                with server._lock:
                    server.hits[key] += 1
                    pending = server.faults.get(key)
                    status = pending.pop(0) if pending else None
                if status:
                    return self.send_body(status, b'{"name": "Error", "message": "try again"}', "application/json",
                                      {"Retry-After": "0"})
                if url.path == "/notes":
                    if query.get("invitation") != f"{VENUE}/-/Blind_Submission":
                        return self.send_body(200, json.dumps({"notes": [], "count": 0}).encode(), "application/json")
                    offset, limit = int(query.get("offset", 0)), int(query.get("limit", 1000))
                    notes = server.notes[offset:offset + limit]
                    if query.get("details") != "directReplies":
                        notes = [{k: v for k, v in n.items() if k != "details"} for n in notes]
                    body = json.dumps({"notes": notes, "count": len(server.notes)}).encode()
                    return self.send_body(200, body, "application/json")
                if url.path == "/pdf":
                    note_id = query.get("id", "")
                    if note_id in server.broken_pdfs:  # refused (not retried by the client): the pull stops
                        return self.send_body(403, b'{"name": "ForbiddenError", "message": "forbidden"}',
                                          "application/json")
                    if note_id not in server.pdfs or note_id in server.missing_pdfs:
                        return self.send_body(404, b'{"name": "NotFoundError", "message": "not found"}', "application/json")
                    return self.send_body(200, server.pdfs[note_id], "application/pdf")
                self.send_body(404, b'{"message": "no route"}', "application/json")

        super().__init__(Handler)
        self.url = self.root_url
