"""Review text -> decision.

The published reviewer ends with ``I recommend this paper for ACCEPTANCE.`` (or REJECTION). The
last such line wins, because reviews sometimes quote the instruction earlier; anything without it
is UNPARSED and counted separately, never silently turned into a class.
"""

from __future__ import annotations

import re

from peerbench.records import Decision

DECISION_PATTERN = r"I recommend this paper for (ACCEPTANCE|REJECTION)\.?"
_DECISION_RE = re.compile(r"I\s+recommend\s+this\s+paper\s+for\s+(ACCEPTANCE|REJECTION)\.?", re.IGNORECASE)
# Markdown emphasis and code marks that models wrap around the line: **...**, _..._, `...`.
_EMPHASIS_RE = re.compile(r"[*_`]+")


def parse_decision(text: str | None) -> Decision:
    if not text:
        return Decision.UNPARSED
    matches = _DECISION_RE.findall(_EMPHASIS_RE.sub("", text))
    if not matches:
        return Decision.UNPARSED
    return Decision.ACCEPT if matches[-1].upper() == "ACCEPTANCE" else Decision.REJECT


def decision_line(accept: bool) -> str:
    return f"I recommend this paper for {'ACCEPTANCE' if accept else 'REJECTION'}."
