"""A task's review format, read from its own prompt template, and a review cut along it.

Two kinds. ``markdown``: the template's markdown headings (``## Summary``...) are the required
sections, in the template's order; a section whose template text starts with a list item
(``- <specific strength 1>``) is a bulleted one. ``json``: a template that asks for a JSON object
and lists its fields as ``- "Summary": ...`` lines (the AI Scientist's form) requires those fields;
a field described as "A list of ..." is a listed one. Nothing here names a section: a plugin's
template brings its own.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

_HEADING_RE = re.compile(r"^[ \t]*(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d+[.)])[ \t]+\S", re.MULTILINE)
_JSON_FIELD_RE = re.compile(r'^[ \t]*-[ \t]*"([^"\n]+)"[ \t]*:[ \t]*(.*)$', re.MULTILINE)
_FIELD_RE = re.compile(r"\{[^{}\s]*\}|\$\{?\w+\}?")  # a template field: {body}, ${body}


@dataclass(frozen=True)
class ReviewFormat:
    """What a review should look like: its required sections (or JSON fields) in order, and which
    of them hold a list (bullets, or a JSON array)."""

    kind: Literal["markdown", "json"]
    sections: tuple[str, ...]
    listed: tuple[str, ...] = ()


def section_key(name: str) -> str:
    """How a heading is matched to a required name: unicode NFKC, case folded, markdown emphasis,
    leading numbering ("3.", "III.") and trailing colons dropped, white space collapsed."""
    text = unicodedata.normalize("NFKC", name).replace("*", "").replace("_", " ").replace("`", "")
    text = re.sub(r"^\s*(?:\d+(?:\.\d+)*|[ivx]+)[.)]?\s+", "", text.strip(), flags=re.IGNORECASE)
    return " ".join(text.rstrip(": ").split()).casefold()


def format_of_template(system: str, user: str) -> ReviewFormat | None:
    """The review format a prompt asks for; None where it asks for neither headings nor JSON fields."""
    text = f"{system}\n{user}"
    fields = _JSON_FIELD_RE.findall(text)
    if fields and "json" in text.lower():
        names = tuple(dict.fromkeys(name.strip() for name, _ in fields))
        listed = tuple(name.strip() for name, about in fields if re.match(r"\s*an?\s+(list|set)\b", about, re.I))
        return ReviewFormat("json", names, tuple(dict.fromkeys(listed)))
    headings = [m for m in _HEADING_RE.finditer(text) if not _FIELD_RE.search(m.group(2))]
    if not headings:
        return None
    names, listed = [], []
    for index, match in enumerate(headings):
        name = match.group(2).strip()
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[match.end():end].strip()
        names.append(name)
        if body and _ITEM_RE.match(body.splitlines()[0]):
            listed.append(name)
    return ReviewFormat("markdown", tuple(dict.fromkeys(names)), tuple(listed))


def format_of_config(config: dict[str, Any]) -> ReviewFormat | None:
    """The format of a run's prompt, from its config.json (the task as it ran)."""
    from peerbench.errors import PeerbenchError
    from peerbench.prompts import PromptTemplate

    task = config.get("task_definition") or {}
    try:
        template = PromptTemplate.resolve(task.get("prompt"), task.get("system_prompt"), task.get("user_template"),
                                          task.get("template_syntax"))
    except PeerbenchError:
        return None
    return format_of_template(template.system, template.user)


def markdown_sections(review: str) -> list[tuple[str, str]]:
    """(heading, text under it) for every markdown heading of a review, in order; text before the
    first heading is left out."""
    found = list(_HEADING_RE.finditer(review))
    return [(m.group(2).strip(), review[m.end(): found[i + 1].start() if i + 1 < len(found) else len(review)])
            for i, m in enumerate(found)]


def json_review(review: str) -> dict[str, Any] | None:
    """The review's JSON object: the last ```json block, else the outermost {...}; None if neither parses."""
    blocks = re.findall(r"```(?:json)?\s*(\{.*?\})\s*```", review, re.DOTALL)
    candidates = blocks[::-1] or ([review[review.find("{"): review.rfind("}") + 1]] if "{" in review else [])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def has_items(text: str) -> bool:
    """A list: at least one line that is a bullet (-, *, +, •) or a numbered item (1. or 1))."""
    return bool(_ITEM_RE.search(text))


def review_content(review: str, fmt: ReviewFormat | None) -> str:
    """What a review says, for closeness to human reviews: markdown headings and decision lines
    removed (JSON reviews: the string values of the fields, the decision field left out)."""
    from peerbench.parsing import _LENIENT_RE

    if fmt is not None and fmt.kind == "json":
        data = json_review(review) or {}
        parts = []
        for key, value in data.items():
            if key.casefold() == "decision":
                continue
            values = value if isinstance(value, list) else [value]
            parts.extend(v for v in values if isinstance(v, str))
        return "\n".join(parts)
    text = _HEADING_RE.sub("", review)
    return _LENIENT_RE.sub("", text).strip()
