"""The reviewer prompt and how a paper is fitted into a model's context.

Only the title, abstract and the parsed body reach the prompt: never reviews, scores or the
decision (ICLR files hold the committee's final decision, which would leak the label).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from peerbench.errors import ConfigError
from peerbench.records import Paper

# peerbench's first prompt, written from the reference's described structure before its exact text
# was available; kept as a named alternative so that runs made with it can still be reproduced.
REVIEWER_SYSTEM_PROMPT = (
    "You are an expert reviewer for a top-tier computer science and artificial intelligence "
    "conference. Read the submitted paper carefully and write a rigorous, fair and constructive "
    "review. Judge the paper on its technical soundness, novelty, clarity and significance, and "
    "end with a clear decision."
)

REVIEWER_USER_TEMPLATE = """Review the following paper.

Title: ${title}

Abstract: ${abstract}

Paper content:
${body}

Write your review with these sections, in this order:
## Summary
## Strengths
## Weaknesses
## Technical Soundness
## Clarity and Writing
## Significance
## Final Recommendation

End the review with exactly one of these two lines and nothing after it:
I recommend this paper for ACCEPTANCE.
I recommend this paper for REJECTION."""

DEFAULT_PROMPT = "reference"
TEMPLATE_FIELDS = frozenset({"title", "abstract", "body", "venue"})
Syntax = Literal["format", "dollar"]
SYNTAXES: tuple[str, ...] = ("format", "dollar")


def builtin_prompts() -> dict[str, tuple[str, str, Syntax]]:
    """Named prompts: (system, user template, template syntax).

    ``reference`` is the published reviewer's prompt, read from the packaged card (``str.format``
    with ``{title}``, ``{abstract}``, ``{body}``); ``reviewer-v1`` is peerbench's earlier prompt
    (``string.Template``), kept so that its runs stay reproducible; ``reference-rating-LO-HI`` ask
    for the venue's overall rating too (:mod:`peerbench.ratings`); ``aiscientist`` is the AI
    Scientist's one-call reviewer (:mod:`peerbench.aiscientist_prompts`), whose body is the paper's
    text as its dataset gives it (:data:`VERBATIM_PROMPTS`).
    """
    from peerbench import aiscientist_prompts
    from peerbench.ratings import rating_prompts
    from peerbench.reference import card

    facts = card()
    return {"reference": (facts["system"], facts["user_template"], "format"),
            "reviewer-v1": (REVIEWER_SYSTEM_PROMPT, REVIEWER_USER_TEMPLATE, "dollar"), **rating_prompts(),
            aiscientist_prompts.PROMPT_NAME: aiscientist_prompts.named_prompt()}


# Without a tokenizer the body is cut to a character budget: 3.5 characters per token is on the
# safe side for English scientific prose (PeerRead bodies run about 4 characters per token).
CHARS_PER_TOKEN = 3.5
# Room for the chat template's own tokens (role markers, BOS), which a plain count misses.
CHAT_TEMPLATE_MARGIN = 32

# The choices the reference's card leaves open, named in every config.json and table.
BODY_RULE = ("parsed sections as 'heading\\ntext' blocks joined by blank lines (missing headings left out, "
             "ACL margin line numbers removed); title and abstract from the dataset's own fields")
# Prompts whose source sent the paper's text exactly as read from its file: their body is the
# sections' text unchanged (no headings added, no lines dropped, nothing stripped).
VERBATIM_PROMPTS = frozenset({"aiscientist"})
VERBATIM_BODY_RULE = ("the paper's text as the dataset's file holds it (read as text, newlines made \\n), unchanged: "
                      "the source sent it so")
TRUNCATION_RULE = (f"the body's end is cut so that prompt + max_tokens + {CHAT_TEMPLATE_MARGIN} fits max_model_len, "
                   f"counted in the model's tokens where the backend can count them, else at {CHARS_PER_TOKEN} "
                   "characters per token")

_LINE_NUMBER_RE = re.compile(r"^\s*\d{3}\s*$")


def paper_body(paper: Paper, verbatim: bool = False) -> str:
    """Sections as 'heading\\ntext' blocks; ACL review-copy margin numbers removed. ``verbatim``:
    the sections' texts as they are, joined by blank lines (one section: its text, byte for byte)."""
    if verbatim:
        return "\n\n".join(section.text for section in paper.sections)
    blocks = []
    for section in paper.sections:
        text = "\n".join(line for line in section.text.splitlines() if not _LINE_NUMBER_RE.match(line)).strip()
        heading = (section.heading or "").strip()
        if heading and text:
            blocks.append(f"{heading}\n{text}")
        elif heading or text:
            blocks.append(heading or text)
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class PromptTemplate:
    """A system prompt and a user template; ``syntax`` says how the template's fields are written:
    ``format`` (``{body}``, Python ``str.format``, the reference's) or ``dollar`` (``${body}``)."""

    name: str
    system: str
    user: str
    syntax: Syntax = "format"
    verbatim: bool = False  # the body is the paper's text unchanged (VERBATIM_PROMPTS)

    @property
    def body_rule(self) -> str:
        """How the paper becomes the ``{body}`` field, in words for config.json's choices."""
        return VERBATIM_BODY_RULE if self.verbatim else BODY_RULE

    @classmethod
    def resolve(cls, name: str | None = None, system: str | None = None, user: str | None = None,
                syntax: str | None = None) -> PromptTemplate:
        prompts = builtin_prompts()
        base = prompts.get(name or DEFAULT_PROMPT)
        if base is None and (system is None or user is None):
            raise ConfigError(f"unknown prompt {name!r}; valid choices: {', '.join(prompts)} (or give system and user)")
        base_system, base_user, base_syntax = base or (None, None, "format")
        if syntax is not None and syntax not in SYNTAXES:
            raise ConfigError(f"template_syntax {syntax!r}: valid choices: {', '.join(SYNTAXES)}")
        custom = system is not None or user is not None
        template = cls(f"{name or 'custom'}+custom" if custom and base else (name or "custom"),
                       system if system is not None else base_system, user if user is not None else base_user,
                       syntax or base_syntax, verbatim=(name or DEFAULT_PROMPT) in VERBATIM_PROMPTS)
        template.check()
        return template

    def fields(self) -> set[str]:
        """The field names the user template uses."""
        try:
            if self.syntax == "dollar":
                return {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(self.user)
                        if m.group("named") or m.group("braced")}
            return {name for _, name, _, _ in string.Formatter().parse(self.user) if name is not None}
        except ValueError as exc:
            raise ConfigError(f"prompt user template: {exc} (template_syntax {self.syntax}: write literal braces "
                              "as {{ and }})") from None

    def check(self) -> None:
        names = self.fields()
        unknown = names - TEMPLATE_FIELDS
        if unknown:
            raise ConfigError(f"prompt user template uses unknown field(s) {sorted(unknown)}; "
                              f"known: {sorted(TEMPLATE_FIELDS)}")
        if "body" not in names:
            body_field = "${body}" if self.syntax == "dollar" else "{body}"
            raise ConfigError(f"prompt user template must contain {body_field}")

    def messages(self, paper: Paper, body: str) -> list[dict[str, str]]:
        values = {"title": paper.title, "abstract": paper.abstract, "body": body, "venue": paper.venue}
        if self.syntax == "dollar":
            user = string.Template(self.user).safe_substitute(values)
        else:
            user = self.user.format(**values)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@dataclass
class RenderedPrompt:
    messages: list[dict[str, str]]
    truncation: dict[str, Any]


TokenCounter = Callable[[list[dict[str, str]]], int]


BodyInsert = Callable[[str], str]  # a probe's text put into the body after it was cut to fit


def render(paper: Paper, template: PromptTemplate, *, max_model_len: int, max_tokens: int,
           count_tokens: TokenCounter | None = None, insert: BodyInsert | None = None) -> RenderedPrompt:
    """Fit the body so that prompt + max_tokens <= max_model_len, in the model's tokens if it can count them.

    ``insert`` (a robustness probe's text) is placed into the body that is kept, and the cut makes
    room for it: the model sees the inserted text wherever the body is cut. Where the context has no
    room for the text at all, the paper is rendered without it and ``truncation["inserted"]`` is
    False: the probe leaves that paper out of its rates (and counts it) rather than score a paper
    that never saw the text."""
    body = paper_body(paper, template.verbatim)

    def fit(with_insert: bool) -> RenderedPrompt:
        def messages_for(kept: str) -> list[dict[str, str]]:
            return template.messages(paper, insert(kept) if with_insert else kept)

        if count_tokens is None:
            return _render_by_chars(messages_for, body, max_model_len, max_tokens)
        return _render_by_tokens(messages_for, body, count_tokens, max_model_len, max_tokens)

    if insert is None:
        return fit(False)
    try:
        rendered = fit(True)
        rendered.truncation["inserted"] = True
    except ConfigError:
        rendered = fit(False)  # refused as before if even the plain prompt has no room
        rendered.truncation["inserted"] = False
    return rendered


def _render_by_tokens(messages_for: Callable[[str], list[dict[str, str]]], body: str, count_tokens: TokenCounter,
                      max_model_len: int, max_tokens: int) -> RenderedPrompt:
    method = getattr(count_tokens, "method", "tokens")
    budget = max_model_len - max_tokens - CHAT_TEMPLATE_MARGIN
    messages = messages_for(body)
    total = count_tokens(messages)
    if total <= budget:
        return RenderedPrompt(messages, {"method": method, "prompt_tokens": total, "cut_chars": 0, "cut_tokens": 0})
    # Binary search on the body's length: the largest prefix whose prompt fits.
    lo, hi = 0, len(body)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(messages_for(body[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    messages = messages_for(body[:lo])
    kept = count_tokens(messages)
    if kept > budget:
        raise ConfigError(f"--max-model-len {max_model_len}: the prompt without any of the paper already takes "
                          f"{kept} tokens, more than the {budget} left after max_tokens {max_tokens}")
    return RenderedPrompt(messages, {"method": method, "prompt_tokens": kept, "cut_chars": len(body) - lo,
                                     "cut_tokens": total - kept})


def _render_by_chars(messages_for: Callable[[str], list[dict[str, str]]], body: str, max_model_len: int,
                     max_tokens: int) -> RenderedPrompt:
    frame_chars = sum(len(m["content"]) for m in messages_for(""))
    budget = int((max_model_len - max_tokens - CHAT_TEMPLATE_MARGIN) * CHARS_PER_TOKEN) - frame_chars
    if budget <= 0 and body:  # no room for any of the paper: never a prompt whose body silently vanished
        raise ConfigError(f"--max-model-len {max_model_len}: the prompt without any of the paper already takes "
                          f"about {frame_chars / CHARS_PER_TOKEN:.0f} tokens, more than the "
                          f"{max_model_len - max_tokens - CHAT_TEMPLATE_MARGIN} left after max_tokens {max_tokens}")
    cut = max(len(body) - budget, 0)
    kept_body = body[: len(body) - cut] if cut else body
    return RenderedPrompt(messages_for(kept_body),
                          {"method": "chars", "char_budget": budget, "cut_chars": cut})
