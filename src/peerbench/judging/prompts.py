"""The judge's prompts: package data (``peerbench/data/judge/*.txt``), rendered, never retyped.

Each file holds a system part and a user part, split by a ``---- user ----`` line; ``$name``
placeholders are filled with :class:`string.Template` (a review's own ``$`` or braces are never
read as placeholders: values are substituted once). Each prompt's hash enters the judge's
identity, so an edited prompt is a new judgement, never mixed with the old one's answers.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from string import Template

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "judge"
PROMPTS_VERSION = 1
NAMES = ("extract", "match", "aspects")
USER_MARK = "---- user ----"


@lru_cache(maxsize=None)
def prompt(name: str) -> tuple[str, str]:
    """(system, user template) of one judge prompt."""
    text = (PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8")
    system, _, user = text.partition(f"\n{USER_MARK}\n")
    return system.strip(), user.strip()


def prompt_hashes() -> dict[str, str]:
    """name -> sha256 of the file (first 16 hex digits), for the judge's identity and config.json."""
    return {name: hashlib.sha256((PROMPTS_DIR / f"{name}.txt").read_bytes()).hexdigest()[:16] for name in NAMES}


def render(name: str, **values: str | int) -> list[dict[str, str]]:
    """The chat messages of one judge request."""
    system, user = prompt(name)
    return [{"role": "system", "content": system},
            {"role": "user", "content": Template(user).substitute({k: str(v) for k, v in values.items()})}]


def show() -> str:
    """Every judge prompt as the judge receives it, placeholders left as ``$name`` (--show-prompts)."""
    parts = [f"peerbench judge prompts, version {PROMPTS_VERSION} ({PROMPTS_DIR})"]
    for name, digest in prompt_hashes().items():
        system, user = prompt(name)
        parts.append(f"==== {name} (sha256 {digest}) ====\n[system]\n{system}\n\n[user]\n{user}")
    return "\n\n".join(parts) + "\n"
