"""Connected and known peers in a table."""

from __future__ import annotations

from textual.widgets import DataTable

COLUMNS = ("Who", "Found via", "State", "Entries", "Address")


class PeerTable(DataTable[str]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*COLUMNS)

    def show(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        self.clear()
        for row in rows:
            self.add_row(*row)
