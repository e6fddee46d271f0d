"""The crews list: one line per crew with its unread mark, and "Public"."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from p2pcrew.tui.viewmodels import CrewRow


class CrewList(OptionList):
    """Posts ``CrewList.Chosen`` when the highlighted crew changes."""

    @dataclass
    class Chosen(Message):
        crew: bytes | None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Crews"
        self._rows: list[CrewRow] = []
        self._announced: str | None = None

    @property
    def rows(self) -> list[CrewRow]:
        return list(self._rows)

    def show(self, rows: list[CrewRow], selected: bytes | None) -> None:
        """Replace the rows, keeping ``selected`` highlighted, without announcing it."""
        key = "public" if selected is None else selected.hex()
        with self.prevent(OptionList.OptionHighlighted):
            if [r.key for r in rows] == [r.key for r in self._rows]:
                for row in rows:
                    self.replace_option_prompt(row.key, Content(row.label))
            else:
                self.set_options([Option(Content(row.label), id=row.key) for row in rows])
            self._rows = list(rows)
            keys = [r.key for r in rows]
            if key in keys:
                self.highlighted = keys.index(key)
        self._announced = key

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        row = next((r for r in self._rows if r.key == event.option_id), None)
        if row is not None and row.key != self._announced:
            self._announced = row.key
            self.post_message(self.Chosen(row.crew))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.screen.focus_next()
