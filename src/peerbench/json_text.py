"""JSON a user hands peerbench, read so that no file can raise past its one-line error: nesting
deeper than Python's recursion limit is malformed JSON like any other, and a string holding a lone
UTF-16 surrogate (``"\\udc00"``, valid JSON escape but no text: it cannot be encoded to UTF-8, so
it would fail later in a content hash or a prompt) is found and named by its field."""

from __future__ import annotations

import json
from typing import Any


class TooDeep(ValueError):
    """A JSON document nested deeper than Python can parse."""

    def __init__(self) -> None:
        super().__init__("nested too deeply")
        self.msg = "nested too deeply"


def parse_json(content: str | bytes) -> Any:
    """``json.loads``, raising :class:`TooDeep` (a ValueError) rather than RecursionError."""
    try:
        return json.loads(content)
    except RecursionError:
        raise TooDeep() from None


def lone_surrogate(value: Any) -> str | None:
    """The field path (``metadata.sections[2].text``) of the first string, key or value, holding a lone
    surrogate, or None. Walked without recursion: the document may be as deep as json allowed."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return where or "(value)"
        elif isinstance(item, dict):
            for key, inner in reversed(list(item.items())):
                path = f"{where}.{key}" if where else str(key)
                if not _encodable(str(key)):
                    return where or "(key)"
                stack.append((path, inner))
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", inner) for index, inner in reversed(list(enumerate(item))))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
