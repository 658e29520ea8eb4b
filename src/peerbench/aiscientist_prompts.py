"""The AI Scientist reviewer's prompt strings, rendered as its source renders them.

The strings are read from ``data/aiscientist_prompts.json``, a copy of the constants of
``ai_scientist/perform_review.py`` in SakanaAI/AI-Scientist at commit
9dffdc445c2596ffa871b5588377e9f12558febc (Apache-2.0; the JSON's ``source`` key says so): never
retyped. This module renders the one-call review (``perform_review`` with no few-shot example, no
ensemble and no reflection); a multi-call protocol reuses :func:`prompts` and the f-strings.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from peerbench.reference import DATA_DIR

PROMPTS_PATH = DATA_DIR / "aiscientist_prompts.json"
PROMPT_NAME = "aiscientist"  # the named prompt a task YAML picks (prompt: aiscientist)


@lru_cache(maxsize=1)
def prompts() -> dict[str, Any]:
    """Every string of prompts.json by its source name, plus ``source`` (repository, commit, file, license)."""
    return json.loads(PROMPTS_PATH.read_text(encoding="utf-8"))


def paper_suffix(text: str) -> str:
    """``"\\nHere is the paper you are asked to review:\\n```\\n{text}\\n```"``, as the source's f-string."""
    return prompts()["paper_suffix_fstring"].format(text=text)


def base_prompt(text: str, fewshot: str = "") -> str:
    """The user turn of ``perform_review``: ``neurips_form`` [+ few-shot block] + the paper suffix."""
    return prompts()["neurips_form"] + fewshot + paper_suffix(text)


def one_call_messages(text: str) -> list[dict[str, str]]:
    """The one request of the one-call protocol: system ``reviewer_system_prompt_neg``, then the user turn."""
    return [{"role": "system", "content": prompts()["reviewer_system_prompt_neg"]},
            {"role": "user", "content": base_prompt(text)}]


def named_prompt() -> tuple[str, str, str]:
    """(system, user template, syntax) of the ``aiscientist`` prompt: the paper suffix's ``{text}``
    becomes the template's ``{body}``; neither ``neurips_form`` nor the system prompt holds a brace."""
    strings = prompts()
    form = strings["neurips_form"]
    if "{" in form or "}" in form:
        raise ValueError(f"{PROMPTS_PATH}: neurips_form holds a brace; it cannot be a str.format template")
    return strings["reviewer_system_prompt_neg"], form + strings["paper_suffix_fstring"].replace("{text}", "{body}"), \
        "format"
