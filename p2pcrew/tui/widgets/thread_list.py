"""The selected crew's threads, newest activity first, with reply counts and unread marks."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from p2pcrew.tui.viewmodels import ThreadListRow


def thread_prompt(row: ThreadListRow) -> Content:
    """Two lines: the title, then who/when/replies and the "• 3 new" mark."""
    parts: list[str | tuple[str, str]] = [(row.title, "bold"), "\n", (row.meta, "dim")]
    if row.unread:
        parts += ["  ", (row.unread, "bold")]
    return Content.assemble(*parts)


class ThreadList(OptionList):
    """Posts ``ThreadList.Opened`` when a thread is chosen (Enter or click)."""

    @dataclass
    class Opened(Message):
        root: bytes

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Threads"
        self._rows: list[ThreadListRow] = []

    @property
    def rows(self) -> list[ThreadListRow]:
        return list(self._rows)

    @property
    def current(self) -> bytes | None:
        index = self.highlighted
        return self._rows[index].root if index is not None and index < len(self._rows) else None

    def show(self, rows: list[ThreadListRow], empty_text: str) -> None:
        """Replace the rows; the highlight stays on the same thread when it is still there."""
        keep = self.current
        if not rows:
            self.set_options([Option(Content(empty_text), disabled=True)])
        else:
            self.set_options([Option(thread_prompt(row), id=row.root.hex()) for row in rows])
        self._rows = list(rows)
        roots = [r.root for r in rows]
        if keep in roots:
            self.highlighted = roots.index(keep)
        elif rows:
            self.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id is not None:
            self.post_message(self.Opened(bytes.fromhex(event.option_id)))
