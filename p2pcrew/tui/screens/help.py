"""Help: the keys of the screen you came from and the app-wide ones."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from p2pcrew.tui.keys import ActionEntry

ABOUT = (
    "Tab moves between panes; arrows move in lists; Enter opens. "
    "Ctrl+P searches every action. F2 switches dark, light and high-contrast colours."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "close", "Close help"),
    ]

    def __init__(self, entries: list[ActionEntry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help"):
            yield Static("Keys", classes="dialog-title")
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
            yield Static(ABOUT)
            yield Static("Escape closes this help.")

    def on_mount(self) -> None:
        table: DataTable[str] = self.query_one(DataTable)
        table.add_columns("Key", "Action")
        for entry in self.entries:
            table.add_row(entry.key, entry.description)
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
