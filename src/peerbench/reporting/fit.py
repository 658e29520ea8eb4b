"""A rich Table that stays readable at the console's width, 80 columns included.

Output piped to a file, a CI log or ``less`` is 80 columns wide, and rich's own shrinking then
cuts cells to ``0…`` or squeezes a column to nothing. This table instead gives each column a
width of its own when the whole does not fit: the widest columns give way first, every cell
wraps at spaces and folds a longer word, and no column goes below its longest number (so a
number is never cut: ``[0.333,`` and ``1.000]`` may sit on two lines, never ``[0.3…``).
"""

from __future__ import annotations

import re
from typing import Any

from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table as RichTable
from rich.text import Text

# A number as the tables print it (0.914, -0.2, 95%, 10/10, 2026-12-07, 12:30), not digits inside a
# name or a path (acl_2017, pytest-12, v2).
NUMBER = re.compile(r"(?<![\w/.\-])[-+$]?\d(?:[\d.,:%/\-]*\d)?%?(?![A-Za-z_])")
# Each pass narrows the widest column first, down to a floor: (1) its longest word up to 20
# characters (text wraps at spaces; only a path or a URL folds), (2) 10 characters (words fold),
# (3) 12 for the columns made with no_wrap (names, to be copied: kept whole until here), (4) then 4,
# for any column. No column ever goes below its longest number. (floor, whether no_wrap columns shrink)
PHASES = ((None, False), (10, False), (12, True), (4, False), (4, True))
WORD_CAP = 20


class Table(RichTable):
    """``rich.table.Table`` with widths fitted to the console at render time (see the module)."""

    def __rich_console__(self, console: Any, options: Any) -> Any:
        self._fit(console, options)
        yield from super().__rich_console__(console, options)

    def _fit(self, console: Any, options: Any) -> None:
        saved = self.__dict__.get("_unfitted")
        if saved is None or len(saved[0]) != len(self.columns):  # the settings given, before any fitting
            saved = self.__dict__["_unfitted"] = ([(c.width, c.no_wrap, c.overflow) for c in self.columns],
                                                  self.padding)
        self.padding = saved[1]
        for column, (width, no_wrap, overflow) in zip(self.columns, saved[0]):
            column.width, column.no_wrap, column.overflow = width, no_wrap, overflow
        if not self.columns or any(c.width is not None for c in self.columns):
            return
        natural = [_natural_width(console, options, c) for c in self.columns]
        if sum(natural) <= self._available(options):
            return
        words = [_longest_word(console, c) for c in self.columns]
        numbers = [_longest_number(console, c) for c in self.columns]
        whole = [keep for _, keep, _ in saved[0]]  # no_wrap given: a name that must stay whole to be copied
        widths = _fitted(natural, words, numbers, whole, self._available(options))
        if sum(widths) > self._available(options):  # even at the floors: the cells' padding goes, never a digit
            self.padding = (0, 0)
            widths = _fitted(natural, words, numbers, whole, self._available(options))
        for column, width in zip(self.columns, widths):
            column.width, column.no_wrap, column.overflow = width, False, "fold"

    def _available(self, options: Any) -> int:
        return options.max_width - self._border_width() - self._padding_width()

    def _border_width(self) -> int:
        if not self.box:
            return 0
        return (2 if self.show_edge else 0) + len(self.columns) - 1

    def _padding_width(self) -> int:
        _, right, _, left = Padding.unpack(self.padding)
        return (left + right) * len(self.columns)


def _fitted(natural: list[int], words: list[int], numbers: list[int], whole: list[bool], available: int) -> list[int]:
    widths = natural
    for floor, names_too in PHASES:
        floors = [w if keep and not names_too else max(min(n, floor or min(w, WORD_CAP)), num)
                  for n, w, num, keep in zip(natural, words, numbers, whole)]
        widths = _shrink(widths, floors, available)
    return widths


def _shrink(widths: list[int], floors: list[int], available: int) -> list[int]:
    """Take one character at a time from the widest column still above its floor."""
    widths = list(widths)
    excess = sum(widths) - available
    while excess > 0:
        above = [i for i, (w, f) in enumerate(zip(widths, floors)) if w > f]
        if not above:
            break  # every column at its floor: wider than the console, but nothing cut
        widest = max(above, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def _cells(column: Any) -> list[Any]:
    return [column.header, *column.cells]


def _natural_width(console: Any, options: Any, column: Any) -> int:
    return max((Measurement.get(console, options, cell).maximum for cell in _cells(column)), default=1)


def _longest_word(console: Any, column: Any) -> int:
    return max((len(word) for cell in _cells(column) for word in _plain(console, cell).split()), default=0)


def _plain(console: Any, cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return console.render_str(cell).plain
    return ""


def _longest_number(console: Any, column: Any) -> int:
    """The longest space-separated word of the column that holds a number: the column's floor."""
    return max((len(word) for cell in _cells(column) for word in _plain(console, cell).split()
                if NUMBER.search(word)), default=0)
