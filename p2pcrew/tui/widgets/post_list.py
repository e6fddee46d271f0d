"""One thread: the root and its replies, indented by depth, one option per post."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.padding import Padding
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from p2pcrew.tui.viewmodels import PostLine


def post_prompt(line: PostLine) -> Padding:
    """Heading and text, padded on the left so that wrapped lines keep the indent.

    Replies start with "↳" so their place shows without relying on indentation alone.
    """
    marker = "↳ " if line.indent else ""
    heading = Text(marker + line.heading, style="bold")
    body = Text(line.body)
    return Padding(Group(heading, body), (0, 0, 0, line.indent))


class PostList(OptionList):
    """Posts ``PostList.ReplyTo`` when a post is chosen (Enter): reply to that post."""

    @dataclass
    class ReplyTo(Message):
        post: bytes

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._posts: list[PostLine] = []

    @property
    def current(self) -> PostLine | None:
        index = self.highlighted
        return self._posts[index] if index is not None and index < len(self._posts) else None

    def show(self, lines: list[PostLine]) -> None:
        keep = self.current.id if self.current else None
        self.set_options([Option(post_prompt(line), id=line.id.hex()) for line in lines])
        self._posts = list(lines)
        ids = [line.id for line in lines]
        self.highlighted = ids.index(keep) if keep in ids else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id is not None:
            self.post_message(self.ReplyTo(bytes.fromhex(event.option_id)))
