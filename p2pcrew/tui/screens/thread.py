"""One thread: read the replies, pick a post, write a reply."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Footer, Header, Static, TextArea

from p2pcrew.errors import P2PCrewError
from p2pcrew.tui import viewmodels as vm
from p2pcrew.tui.facade import Facade
from p2pcrew.tui.readmodel import ThreadData
from p2pcrew.tui.screens.base import LiveScreen, report
from p2pcrew.tui.widgets.form import FormError
from p2pcrew.tui.widgets.post_list import PostList
from p2pcrew.tui.widgets.sync_bar import SyncBar


class ThreadScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "reply", "Reply"),
        Binding("ctrl+s", "send", "Send", priority=True),
    ]

    def __init__(self, root: bytes) -> None:
        super().__init__()
        self.root = root
        self.reply_to = root
        self._data: ThreadData | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield PostList(id="posts")
        yield Static("", id="delivery")
        yield Static("", id="replying")
        yield TextArea(
            id="reply", soft_wrap=True, show_line_numbers=False, placeholder="Your reply (r)"
        )
        yield FormError(id="error")
        yield SyncBar(id="sync")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FormError).show("")
        self.query_one(PostList).focus()

    def reload(self) -> None:
        facade, root = self.facade, self.root
        self.load(lambda: self._fetch_thread(facade, root), self._show)

    @staticmethod
    def _fetch_thread(facade: Facade, root: bytes) -> tuple[ThreadData | None, str]:
        """The thread and who holds my latest post in it (in a worker thread)."""
        data = facade.thread(root)
        delivery = facade.delivery(root) if data is not None else None
        if delivery is None:
            return data, ""
        return data, vm.delivery_line(delivery.has, delivery.unknown, facade.names())

    def _show(self, loaded: tuple[ThreadData | None, str]) -> None:
        data, text = loaded
        if data is None:
            self.app.notify("That thread is not here.", severity="warning")
            self.dismiss()
            return
        self._data = data
        self.sub_title = data.title
        self.query_one(PostList).show(data.lines)
        self._show_target()
        self.query_one("#delivery", Static).update(Content(text))
        self.query_one("#delivery", Static).display = bool(text)

    def _show_target(self) -> None:
        if self._data is None:
            return
        line = next((ln for ln in self._data.lines if ln.id == self.reply_to), self._data.lines[0])
        who = line.heading.split(" · ")[0]
        text = f"Replying to {who}: {vm.first_line(line.body, 56)}"
        self.query_one("#replying", Static).update(Content(text))

    def on_post_list_reply_to(self, event: PostList.ReplyTo) -> None:
        self.reply_to = event.post
        self._show_target()
        self.query_one(TextArea).focus()

    def action_reply(self) -> None:
        current = self.query_one(PostList).current
        if current is not None:
            self.reply_to = current.id
        self._show_target()
        self.query_one(TextArea).focus()

    def action_send(self) -> None:
        box = self.query_one(TextArea)
        error = self.query_one(FormError)
        if not box.text.strip():
            error.show("write something first")
            return
        try:
            self.facade.reply(self.root, self.reply_to, box.text)
        except P2PCrewError as exc:
            error.show(str(exc))
            return
        except Exception as exc:
            report(self.app, exc)
            return
        error.show("")
        box.clear()
        self.reply_to = self.root
        self.app.notify("Reply posted.")
        self.query_one(PostList).focus()

    def action_back(self) -> None:
        self.dismiss()
