"""A crew's members: name and feed id, you first."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from p2pcrew.tui.readmodel import Member


class MemberList(OptionList):
    """Posts ``MemberList.Highlighted`` with the member under the cursor."""

    @dataclass
    class Highlighted(Message):
        member: bytes | None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._members: list[Member] = []

    @property
    def current(self) -> bytes | None:
        index = self.highlighted
        if index is None or index >= len(self._members):
            return None
        return self._members[index].feed

    def show(self, members: list[Member]) -> None:
        keep = self.current
        self._members = list(members)
        self.set_options([Option(Content(m.label), id=m.feed.hex()) for m in members])
        feeds = [m.feed for m in members]
        self.highlighted = feeds.index(keep) if keep in feeds else (0 if feeds else None)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(self.current))
