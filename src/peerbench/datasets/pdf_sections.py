"""PDF -> sections (heading + text), for datasets that only have the submission PDF.

pypdf does the text extraction: it is pure Python with a permissive (BSD) license and installs
everywhere from a wheel; PyMuPDF extracts better layouts but is AGPL-licensed, which a library
others build on should not impose. Headings are numbered lines ("1 INTRODUCTION", "3.2 Setup")
or the usual unnumbered ones (ABSTRACT, ACKNOWLEDGMENTS); the text stops at REFERENCES, since a
reviewer model has no use for the bibliography and it costs context.
"""

from __future__ import annotations

import io
import re

from peerbench.errors import DataError, MissingDependency
from peerbench.records import Section

HEADING_RE = re.compile(r"^(?:(?:\d+(?:\.\d+)*\.?)\s+[A-Z][A-Za-z0-9 ,:\-–&()/']{1,80}|"
                        r"ABSTRACT|Abstract|ACKNOWLEDGMENTS?|Acknowledgments?|APPENDIX|Appendix)$")
REFERENCES_RE = re.compile(r"^(?:\d+\.?\s+)?(?:REFERENCES|References|BIBLIOGRAPHY|Bibliography)$")


def pdf_text(data: bytes, where: str) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise MissingDependency("pypdf", "openreview") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: not a readable PDF ({type(exc).__name__})") from None


def split_sections(text: str) -> list[Section]:
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if REFERENCES_RE.match(line):
            break
        if HEADING_RE.match(line) and len(line) < 90:
            if lines or heading:
                sections.append(Section(heading, "\n".join(lines).strip()))
            heading, lines = line, []
        elif line:
            lines.append(line)
    if lines or heading:
        sections.append(Section(heading, "\n".join(lines).strip()))
    return [s for s in sections if s.text or s.heading]


def pdf_sections(data: bytes, where: str) -> list[Section]:
    """Sections of the body. The title/author block before the first heading and the abstract are left
    out: the note's own title and abstract are used instead."""
    sections = split_sections(pdf_text(data, where))
    if len(sections) > 1 and sections[0].heading is None:
        sections = sections[1:]
    return [s for s in sections if (s.heading or "").lower() != "abstract"]
