"""A small copy of the AI Scientist's benchmark files in their real schema, at their repository
paths: ``review_iclr_bench/ratings_subset.tsv`` (ids beginning with ``-`` and ``_``, empty rating
cells, the four decision strings and an ``Unknown`` one), the papers' ``.txt`` texts, the one-shot
example, and a reviewer CSV as pandas wrote theirs (quoted newlines, Python-literal lists)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

# id, decision, reviewer ratings (columns 0..6, None = empty), the review's Overall cell and Decision cell
PAPERS = [
    ("-a1", "Accept (Oral)", [8, 8, 6], "7", "Accept"),
    ("_b2", "Accept (Poster)", [6, 6, 5, 8], "6", "Reject"),
    ("c3", "Accept (Spotlight)", [8, 6], "5", "Reject"),
    ("d4", "Accept (Poster)", [6, 5, 6], "4", "Weak Accept"),     # no Accept/Reject: UNPARSED decision
    ("e5", "Reject", [3, 5, 3], "3", "Reject"),
    ("f6", "Reject", [5, 3, 5], "6", "Accept"),
    ("g7", "Reject", [3, 3], "8", "Accept"),
    ("h8", "Reject", [1, 3, 3], "2", "Reject"),
    ("i9", "Reject", [5, 5, 3], "n/a", "Reject"),                # Overall not a number: no rating
    ("j10", "Reject", [3, 6], "4", "Reject"),
    ("k11", "Reject", [5], "11", "Reject"),                       # off the 1-10 scale; one reviewer only
    ("-l12", "Accept (Poster)", [8, 6, 8], "6.0", "Accept"),
]
UNKNOWN = ("m13", "Unknown", [5, 5])  # left out, as their prep_open_review_data does

# texts the prompt must carry byte for byte: a 3-digit line, leading blanks, a CRLF file (read as \n)
TEXTS = {
    "-a1": "# A FIRST PAPER\n\n**Anonymous authors**\n\n123\n\n  indented line {braces} stay\n",
    "_b2": "# SECOND PAPER\r\nWindows line ends\r\n\r\nend\r\n",
}


def text_of(paper_id: str) -> str:
    return TEXTS.get(paper_id, f"# PAPER {paper_id.upper()}\n\nThe body of {paper_id}.\n{'word ' * 40}\n")


def write_benchmark(root: Path) -> Path:
    """The files beneath ``root`` at their repository paths; returns ``root``."""
    bench = root / "review_iclr_bench"
    (bench / "iclr_parsed").mkdir(parents=True, exist_ok=True)
    lines = ["paper_id\t0\t1\t2\t3\t4\t5\t6\tdecision"]
    for paper_id, decision, ratings, *_ in [*PAPERS, (*UNKNOWN, None, None)]:
        cells = [f"{r:.1f}" for r in ratings] + [""] * (7 - len(ratings))
        lines.append("\t".join([paper_id, *cells, decision]))
    (bench / "ratings_subset.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for paper_id, *_ in PAPERS:
        (bench / "iclr_parsed" / f"{paper_id}.txt").write_bytes(text_of(paper_id).encode("utf-8"))
    fewshot = root / "ai_scientist" / "fewshot_examples"
    fewshot.mkdir(parents=True, exist_ok=True)
    (fewshot / "132_automated_relational.txt").write_text("# AN EXAMPLE PAPER\n", encoding="utf-8")
    (fewshot / "132_automated_relational.json").write_text(json.dumps({"review": "{}"}), encoding="utf-8")
    return root


COLUMNS = ["paper_id", "Summary", "Questions", "Limitations", "Ethical Concerns", "Soundness", "Presentation",
           "Contribution", "Overall", "Confidence", "Strengths", "Weaknesses", "Originality", "Quality", "Clarity",
           "Significance", "Decision"]


def write_reviews_csv(path: Path) -> Path:
    """A reviewer CSV as their iclr_analysis.py wrote it (pandas to_csv of the review dicts)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for paper_id, _, _, overall, decision in PAPERS:
            writer.writerow([paper_id, f"Summary of {paper_id}.\nIt spans, with commas, two lines.",
                             "['Why \"this\"?', \"What's next, then?\"]", "['None, really.']", "False", "3", "2", "3",
                             overall, "4", "['Clear, novel idea.']", "['Weak\\nbaselines.', 'Small {scale}.']",
                             "3", "3", "2", "3", decision])
    return path
