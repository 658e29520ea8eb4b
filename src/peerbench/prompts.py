"""The reviewer prompt and how a paper is fitted into a model's context.

Only the title, abstract and the parsed body reach the prompt: never reviews, scores or the
decision (ICLR files hold the committee's final decision, which would leak the label).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peerbench.errors import ConfigError
from peerbench.records import Paper

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

PROMPTS: dict[str, tuple[str, str]] = {"reviewer-v1": (REVIEWER_SYSTEM_PROMPT, REVIEWER_USER_TEMPLATE)}
TEMPLATE_FIELDS = frozenset({"title", "abstract", "body", "venue"})

# Without a tokenizer the body is cut to a character budget: 3.5 characters per token is on the
# safe side for English scientific prose (PeerRead bodies run about 4 characters per token).
CHARS_PER_TOKEN = 3.5
# Room for the chat template's own tokens (role markers, BOS), which a plain count misses.
CHAT_TEMPLATE_MARGIN = 32

_LINE_NUMBER_RE = re.compile(r"^\s*\d{3}\s*$")


def paper_body(paper: Paper) -> str:
    """Sections as 'heading\\ntext' blocks; ACL review-copy margin numbers removed."""
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
    name: str
    system: str
    user: str

    @classmethod
    def resolve(cls, name: str | None = None, system: str | None = None, user: str | None = None) -> PromptTemplate:
        base_system, base_user = PROMPTS.get(name or "reviewer-v1", (None, None))
        if base_system is None and (system is None or user is None):
            raise ConfigError(f"unknown prompt {name!r}; valid choices: {', '.join(PROMPTS)} (or give system and user)")
        template = cls(name or "custom", system if system is not None else base_system,
                       user if user is not None else base_user)
        template.check()
        return template

    def check(self) -> None:
        try:
            names = {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(self.user)
                     if m.group("named") or m.group("braced")}
        except ValueError as exc:  # pragma: no cover - Template.pattern never raises on str
            raise ConfigError(f"prompt user template: {exc}") from exc
        unknown = names - TEMPLATE_FIELDS
        if unknown:
            raise ConfigError(f"prompt user template uses unknown field(s) {sorted(unknown)}; "
                              f"known: {sorted(TEMPLATE_FIELDS)}")
        if "body" not in names:
            raise ConfigError("prompt user template must contain ${body}")

    def messages(self, paper: Paper, body: str) -> list[dict[str, str]]:
        user = string.Template(self.user).safe_substitute(
            title=paper.title, abstract=paper.abstract, body=body, venue=paper.venue)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@dataclass
class RenderedPrompt:
    messages: list[dict[str, str]]
    truncation: dict[str, Any]


TokenCounter = Callable[[list[dict[str, str]]], int]


def render(paper: Paper, template: PromptTemplate, *, max_model_len: int, max_tokens: int,
           count_tokens: TokenCounter | None = None) -> RenderedPrompt:
    """Fit the body so that prompt + max_tokens <= max_model_len, in the model's tokens if it can count them."""
    body = paper_body(paper)
    if count_tokens is None:
        return _render_by_chars(paper, template, body, max_model_len, max_tokens)
    method = getattr(count_tokens, "method", "tokens")
    budget = max_model_len - max_tokens - CHAT_TEMPLATE_MARGIN
    messages = template.messages(paper, body)
    total = count_tokens(messages)
    if total <= budget:
        return RenderedPrompt(messages, {"method": method, "prompt_tokens": total, "cut_chars": 0, "cut_tokens": 0})
    # Binary search on the body's length: the largest prefix whose prompt fits.
    lo, hi = 0, len(body)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(template.messages(paper, body[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    messages = template.messages(paper, body[:lo])
    kept = count_tokens(messages)
    if kept > budget:
        raise ConfigError(f"--max-model-len {max_model_len}: the prompt without any of the paper already takes "
                          f"{kept} tokens, more than the {budget} left after max_tokens {max_tokens}")
    return RenderedPrompt(messages, {"method": method, "prompt_tokens": kept, "cut_chars": len(body) - lo,
                                     "cut_tokens": total - kept})


def _render_by_chars(paper: Paper, template: PromptTemplate, body: str, max_model_len: int,
                     max_tokens: int) -> RenderedPrompt:
    frame = template.messages(paper, "")
    frame_chars = sum(len(m["content"]) for m in frame)
    budget = int((max_model_len - max_tokens - CHAT_TEMPLATE_MARGIN) * CHARS_PER_TOKEN) - frame_chars
    budget = max(budget, 0)
    cut = max(len(body) - budget, 0)
    kept_body = body[: len(body) - cut] if cut else body
    return RenderedPrompt(template.messages(paper, kept_body),
                          {"method": "chars", "char_budget": budget, "cut_chars": cut})
