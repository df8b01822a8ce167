"""A DataTable whose columns fit what it shows now and the window it is in.

DataTable's automatic widths only ever grow: one 300-character name widened a column for good,
even after its row was gone, and fixed caps cut names short at 120 columns with half the
screen empty. Here every `show()` and every resize measures the current rows; the fixed
columns take their natural width and the flexible ones (names, routes) share what is left,
the widest giving way first, each capped so one long name cannot crowd out the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import DataTable

from core.paths import printable

MIN_FLEXIBLE = 12  # a squeezed flexible column still shows this much (with its "…")
SCROLLBAR = 2  # kept free: the vertical scrollbar appears once the rows outgrow the table


def as_text(cell: object) -> Text:
    """A cell as one line of Rich Text that ends in "…" where its column cuts it, never
    parsed as markup (DataTable reads a str cell as markup; names come from disks and
    servers) and with its control characters escaped, whatever the screen passed."""
    text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
    if not text.plain.isprintable():
        text.plain = printable(text.plain)  # keeps the style spans
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def shared_widths(natural: Mapping[str, int], flexible: Sequence[str],
                  available: int) -> dict[str, int]:
    """Column widths: flexible columns share `available` less the others' natural widths,
    each getting at most its natural width; a column that needs less leaves the rest to the
    wider ones."""
    widths = dict(natural)
    left = available - sum(w for key, w in natural.items() if key not in flexible)
    wanting = sorted(flexible, key=lambda key: natural[key])
    while wanting:
        share = left // len(wanting)
        key = wanting.pop(0)
        widths[key] = max(min(natural[key], share), min(natural[key], MIN_FLEXIBLE))
        left -= widths[key]
    return widths


class FittedTable(DataTable[Text]):
    """`show({row key: cells})` (re)draws the rows; widths follow the content and the window."""

    def __init__(self, columns: Sequence[tuple[str, str]], flexible: Mapping[str, int],
                 optional: Collection[str] = (), **kwargs: object) -> None:
        """`columns` are (key, label) pairs; `flexible` maps the keys of the columns that give
        way to their widest shown width (longer cells end in "…"); `optional` columns are
        left out while every cell in them is empty."""
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._spec = tuple(columns)
        self._flexible = dict(flexible)
        self._optional = frozenset(optional)
        self._rows: dict[str, tuple[Text, ...]] = {}
        self._widths: dict[str, int] = {}

    @property
    def row_keys(self) -> list[str]:
        return list(self._rows)

    def show(self, rows: Mapping[str, Sequence[object]]) -> bool:
        """Show `rows`; True when the table was rebuilt (the cursor went back to the top
        unless the same rows were shown before), False when only cells changed."""
        new = {key: tuple(as_text(cell) for cell in cells) for key, cells in rows.items()}
        old, self._rows = self._rows, new
        widths = self._fitted_widths()
        if widths != self._widths or list(new) != list(old) or not self.columns:
            self._rebuild(widths, keep_cursor=list(new) == list(old))
            return True
        for key, cells in new.items():
            for (column, _), before, after in zip(self._spec, old[key], cells, strict=True):
                if before != after and column in widths:
                    self.update_cell(key, column, after)
        return False

    def on_resize(self, _event: events.Resize) -> None:
        widths = self._fitted_widths()
        if widths != self._widths:
            self._rebuild(widths, keep_cursor=True)

    def _fitted_widths(self) -> dict[str, int]:
        """The shown columns' widths (an optional column with nothing in it is not shown)."""
        natural = {}
        for index, (key, label) in enumerate(self._spec):
            cells = [cell_len(row[index].plain) for row in self._rows.values()]
            if key in self._optional and not any(cells):
                continue
            wanted = max([cell_len(label), *cells])
            natural[key] = min(wanted, self._flexible.get(key, wanted))
        if not self.size.width:
            return natural  # not laid out yet: the first resize fits it
        padding = 2 * self.cell_padding * len(natural)
        return shared_widths(natural, list(self._flexible), self.size.width - padding - SCROLLBAR)

    def _rebuild(self, widths: dict[str, int], *, keep_cursor: bool) -> None:
        row = self.cursor_row
        self._widths = widths
        self.clear(columns=True)
        shown = [index for index, (key, _) in enumerate(self._spec) if key in widths]
        for index in shown:
            key, label = self._spec[index]
            self.add_column(label, width=widths[key], key=key)
        for key, cells in self._rows.items():
            self.add_row(*(cells[index] for index in shown), key=key)
        if keep_cursor and 0 <= row < self.row_count:
            self.move_cursor(row=row)
