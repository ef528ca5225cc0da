"""Tables that fit the width they are printed in (80 columns in a CI log or a pipe).

Cells people copy into the next command (ids, services, check names) are never cut.
When a table is too wide, columns give way by priority: the last column (a reason, a
title) is shortened to one line with an ellipsis, then whole columns of least priority
are left out. Rich alone would rather hide an arbitrary column when a no-wrap table does
not fit.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guardrail.text import printable

GAP = 2  # spaces between two columns
LEAST = 8  # narrower than this, the last column is left out


def shorten(text: str, width: int) -> str:
    """``text`` on one line within ``width`` characters (an ellipsis says it was cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def fitted(console: Console, headers: tuple[str, ...], rows: list[tuple[str, ...]], last: str,
           lasts: list[str], *, drop_first: tuple[str, ...] = ()) -> Table:
    """A box-less table of ``headers`` (never cut) and one last column ``last`` that takes
    what width is left; ``drop_first``: the headers to leave out, in that order, while even
    the last column would not fit. Cells are text: control characters and markup are
    shown as they are, escaped."""
    rows = [tuple(printable(cell) for cell in row) for row in rows]
    keep = list(headers)

    def widths() -> int:
        return sum(max([len(h)] + [len(r[headers.index(h)]) for r in rows]) for h in keep) + GAP * len(keep)

    for header in drop_first:
        if console.width - widths() >= LEAST:
            break
        keep.remove(header)
    room = console.width - widths()
    table = Table(box=None, pad_edge=False, padding=(0, GAP, 0, 0))
    for header in keep:
        table.add_column(header, no_wrap=True)
    if room >= LEAST:
        table.add_column(last, no_wrap=True, max_width=room)
    for row, text in zip(rows, lasts):
        cells = [escape(row[headers.index(h)]) for h in keep]
        table.add_row(*cells, *([escape(shorten(printable(text), room))] if room >= LEAST else []))
    return table
