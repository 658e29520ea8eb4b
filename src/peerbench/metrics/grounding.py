"""Grounding: the checkable specifics of a review, looked up in the paper.

Specifics (``specifics``): numbers with a decimal part, a percent sign or a unit ("84.2", "12%",
"3.5 BLEU" is the number 3.5; "10 ms"); quoted spans of three or more words; references to a
Table, Figure, Section or Equation by number; named terms (acronyms with two or more capitals,
"LSTM", "ResNet", "GPT-2"; runs of two or more capitalised words, "Penn Treebank"). Each is looked
up (``found``) in the text the model was given (title, abstract, body after truncation) and in the
whole paper, with the rules of :func:`normalise` and the per-kind matchers below.

Per review: ``grounding_specifics`` (how many), ``grounding_in_given`` (share found in the given
text), ``grounding_only_cut`` (share found only in the part truncation cut away: the model could
not have read it there, a contamination signal), ``grounding_nowhere`` (share found nowhere in the
paper: an ungrounded-claim proxy). Shares are None for a review with no specifics, and all four
are None where the paper could not be read back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from peerbench.hookspecs import hookimpl
from peerbench.metrics.review import ReviewInput, ReviewMeasure, Values

DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
UNITS = ("%", "percent", "pp", "points", "ms", "s", "sec", "seconds", "minutes", "hours", "days", "x", "\u00d7",
         "gb", "mb", "kb", "tb", "k", "m", "b", "million", "billion", "thousand", "hz", "khz", "gpus?", "tokens",
         "words", "epochs", "layers", "parameters", "params", "bleu", "f1", "rouge", "accuracy", "dimensions")
_NUMBER_RE = re.compile(
    r"(?<![\w.])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+\.\d+|-?\d+)"
    rf"(?:\s?({'|'.join(UNITS)})\b|\s?(%))?", re.IGNORECASE)
_PAPER_NUMBER_RE = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")  # the paper side: every number, fast
_LINE_BREAK_HYPHEN_RE = re.compile(r"-[ \t]*\n\s*(?=\w)")
_REF_RE = re.compile(r"\b(table|tab\.|figure|fig\.|section|sec\.|§|equation|eqn?\.)\s*\(?(\d+(?:\.\d+)*)\)?",
                     re.IGNORECASE)
_FOLDED_REF_RE = re.compile(r"(table|tab\.|figure|fig\.|section|sec\.|§|equation|eqn?\.)\s*\(?(\d+(?:\.\d+)*)\)?")
_QUOTE_RE = re.compile(r"[\"\u201c\u201d]([^\"\u201c\u201d\n]{3,300})[\"\u201c\u201d]")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-\d+[A-Za-z]*)?")  # an acronym is a word with 2+ capitals
_CAPITALISED_RE = re.compile(r"\b[A-Z][a-z]+(?:[ -](?:of |for |and |the )?[A-Z][a-z]+)+\b")
KINDS = {"tab": "table", "table": "table", "fig": "figure", "figure": "figure", "sec": "section",
         "section": "section", "§": "section", "eq": "equation", "eqn": "equation", "equation": "equation"}
# Capitalised words that start sentences or name the review's own parts, not the paper's things.
NOT_TERMS = frozenset({"the", "this", "these", "that", "a", "an", "in", "on", "our", "we", "it", "its", "their",
                       "however", "overall", "also", "strengths", "weaknesses", "summary", "significance",
                       "technical", "soundness", "clarity", "writing", "final", "recommendation", "i", "while",
                       "although", "additionally", "furthermore", "moreover", "for", "to", "of", "and", "but"})
NOT_ACRONYMS = frozenset({"ACCEPTANCE", "REJECTION", "II", "III", "IV", "OK", "TODO"})


@dataclass(frozen=True)
class Specific:
    """One checkable specific: its kind (number, quote, reference, term), the text as written, and
    what is looked up (the canonical form)."""

    kind: str
    text: str
    key: str


def normalise(text: str) -> str:
    """The form both sides are matched in: unicode NFKC (ligatures "ﬁ" -> "fi", full-width digits),
    every dash and the minus sign as "-", a hyphen broken across a line joined ("mod-\\nel" -> "model"),
    curly quotes straight, case folded, white space collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate({ord(c): "-" for c in DASHES})
    text = _LINE_BREAK_HYPHEN_RE.sub("", text)
    text = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"'})
    return " ".join(text.casefold().split())


def number_key(number: str) -> str:
    """A number's canonical form: thousands commas and the sign dropped, trailing decimal zeros
    dropped ("0.50" -> "0.5", "1,000" -> "1000", "3.0" -> "3", "-2.5" -> "2.5")."""
    plain = number.replace(",", "").lstrip("-")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return plain or "0"


@lru_cache(maxsize=64)
def _numbers_in(text: str) -> frozenset[str]:
    """Every number written in a (normalised) text, in canonical form; "12%" and "12 %" both give "12"."""
    return frozenset(number_key(number) for number in _PAPER_NUMBER_RE.findall(text))


@lru_cache(maxsize=64)
def _refs_in(text: str) -> frozenset[tuple[str, str]]:
    """(kind, number) of every Table/Figure/Section/Equation reference in a normalised text, plus
    numbered headings ("4 experiments" at a line start: section 4; a line ending "(3)": equation 3)."""
    return frozenset((KINDS[kind.rstrip(".")], number) for kind, number in _FOLDED_REF_RE.findall(text))


@lru_cache(maxsize=64)
def _headings_in(raw: str) -> frozenset[tuple[str, str]]:
    found = {("section", m.group(1)) for m in re.finditer(r"(?m)^\s*(\d+(?:\.\d+)*)\.?\s+[A-Za-z]", raw)}
    found |= {("equation", m.group(1)) for m in re.finditer(r"\((\d+)\)\s*$", raw, re.MULTILINE)}
    return frozenset(found)


def specifics(review: str) -> list[Specific]:
    """The checkable specifics of a review's text (headings and decision lines already stripped),
    each counted once per review."""
    found: dict[tuple[str, str], Specific] = {}
    text = unicodedata.normalize("NFKC", review).translate({ord(c): "-" for c in DASHES})
    refs = list(_REF_RE.finditer(text))
    in_refs = {i for m in refs for i in range(m.start(), m.end())}
    for m in refs:
        kind = KINDS[m.group(1).rstrip(".").lower()]
        key = f"{kind} {m.group(2)}"
        found.setdefault(("reference", key), Specific("reference", m.group(0), key))
    for m in _NUMBER_RE.finditer(text):
        if m.start() in in_refs:
            continue
        number, unit = m.group(1), m.group(2) or m.group(3)
        if "." not in number and not unit:
            continue  # a bare integer is mostly a count ("two datasets", "3 reviewers"), not a claim
        found.setdefault(("number", number_key(number)), Specific("number", m.group(0), number_key(number)))
    for m in _QUOTE_RE.finditer(text):
        span = m.group(1).strip()
        if len(span.split()) >= 3:
            found.setdefault(("quote", normalise(span)), Specific("quote", span, normalise(span)))
    for word in _WORD_RE.findall(text):
        if not word.islower() and sum(c.isupper() for c in word) >= 2 and word not in NOT_ACRONYMS:
            found.setdefault(("term", normalise(word)), Specific("term", word, normalise(word)))
    for m in _CAPITALISED_RE.finditer(text):
        words = re.split(r"[ -]", m.group(0))
        while words and words[0].casefold() in NOT_TERMS:
            words = words[1:]
        if len(words) >= 2 and not all(w.casefold() in NOT_TERMS for w in words):
            term = " ".join(words)
            found.setdefault(("term", normalise(term)), Specific("term", term, normalise(term)))
    return list(found.values())


def found_in(specific: Specific, raw: str, text: str) -> bool:
    """Whether a specific is in a paper text (``raw`` as written, ``text`` normalised): a number by
    value among the text's numbers; a reference by kind and number ("Fig. 3" finds "Figure 3"), or a
    numbered heading for a section, "(n)" at a line end for an equation; a quote as a substring, and
    a term as whole words, of the normalised text (a hyphen and a space match each other)."""
    if specific.kind == "number":
        return specific.key in _numbers_in(text)
    if specific.kind == "reference":
        kind, number = specific.key.split(" ", 1)
        return (kind, number) in _refs_in(text) or (kind, number) in _headings_in(raw)
    if specific.kind == "quote":
        return specific.key in text or specific.key.replace("-", " ") in text.replace("-", " ")
    pattern = r"(?<!\w)" + re.escape(specific.key).replace(r"\-", "[- ]").replace(r"\ ", "[- ]") + r"(?!\w)"
    return re.search(pattern, text) is not None


def grounding_of(item: ReviewInput) -> Values:
    """One review's grounding values (see the module's docstring)."""
    if item.given_text is None or item.whole_text is None:
        return {}
    from peerbench.metrics.review_format import review_content

    found = specifics(review_content(item.review, item.format))
    given = normalise(item.given_text)
    # The cut part is what follows the given text in the whole one (a specific spanning the cut
    # counts as not found there); normalised only if a specific is not in the given text.
    given_len = len(item.given_text) if item.whole_text.startswith(item.given_text) else 0
    cut_raw, cut = item.whole_text[given_len:], None
    in_given = only_cut = nowhere = 0
    for specific in found:
        if found_in(specific, item.given_text, given):
            in_given += 1
            continue
        if cut is None:
            cut = normalise(cut_raw)
        if cut and found_in(specific, cut_raw, cut):
            only_cut += 1
        else:
            nowhere += 1
    n = len(found)
    return {"grounding_specifics": float(n), "grounding_in_given": in_given / n if n else None,
            "grounding_only_cut": only_cut / n if n else None, "grounding_nowhere": nowhere / n if n else None}


def measure(inputs: Sequence[ReviewInput], options: Mapping[str, Any]) -> list[Values]:
    return [grounding_of(item) for item in inputs]


GROUNDING = ReviewMeasure(
    "grounding", "specifics of the review (numbers, quotes, Table/Figure/Section/Equation references, named terms) "
                 "found in the text the model was given, only in the part truncation cut, or nowhere", measure,
    higher_is_better={"grounding_specifics": None, "grounding_in_given": True, "grounding_only_cut": None,
                      "grounding_nowhere": False})


@hookimpl
def register_metrics(register):
    register(GROUNDING)
