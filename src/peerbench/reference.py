"""The published peerread95 reference, read from the packaged copy of its model card's facts.

``data/card.json`` is a byte-for-byte copy of the shared ``card.json`` (a test compares the two):
the prompt, the decision regex and the sampling of the reference are read from it, never retyped,
so that what peerbench sends is what the reference sent.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")
CARD_PATH = DATA_DIR / "card.json"
PEERREAD95_PATH = DATA_DIR / "peerread95.json"


@lru_cache(maxsize=1)
def card() -> dict[str, Any]:
    """The reference's facts: ``system``, ``user_template``, ``decision_regex``, ``sampling``, ``serve``,
    ``published_peerread95``."""
    return json.loads(CARD_PATH.read_text(encoding="utf-8"))


def published_figures(model: str = "distilled") -> dict[str, Any]:
    """The published peerread95 figures of the distilled student or of ``base_gemma_4_e4b_it``."""
    return card()["published_peerread95"][model]
