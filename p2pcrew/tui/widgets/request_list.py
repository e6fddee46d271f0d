"""The requests board's list and the detail of the highlighted request."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from p2pcrew.tui.viewmodels import RequestRow


def request_prompt(row: RequestRow) -> Content:
    return Content.assemble((row.status, "bold"), " ", row.title, "\n", (row.meta, "dim"))


class RequestList(OptionList):
    """Posts ``RequestList.Highlighted`` as the cursor moves (None: the list is empty)."""

    @dataclass
    class Highlighted(Message):
        request: bytes | None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[RequestRow] = []

    @property
    def current(self) -> bytes | None:
        index = self.highlighted
        return self._rows[index].id if index is not None and index < len(self._rows) else None

    def show(self, rows: list[RequestRow], empty_text: str) -> None:
        keep = self.current
        self._rows = list(rows)
        if not rows:
            self.set_options([Option(Content(empty_text), disabled=True)])
            self.post_message(self.Highlighted(None))
            return
        self.set_options([Option(request_prompt(row), id=row.id.hex()) for row in rows])
        ids = [row.id for row in rows]
        self.highlighted = ids.index(keep) if keep in ids else 0
        self.post_message(self.Highlighted(self.current))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(self.current))


class RequestDetail(Static):
    """The highlighted request: text, history, lost races, and what you can do."""

    def show(self, lines: list[str], hints: str) -> None:
        body = "\n".join(lines)
        self.update(Content.assemble(body, "\n\n", ("Actions: ", "bold"), hints) if lines else "")
