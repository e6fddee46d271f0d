"""Write a new post (a thread root) in a crew or in public."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Footer, Header, Static, TextArea

from p2pcrew.tui.screens.base import ComposeScreen, facade_of
from p2pcrew.tui.widgets.form import FormError


class ComposePostScreen(ComposeScreen):
    """A new thread root; dismisses with its entry id, or None when cancelled."""

    def compose(self) -> ComposeResult:
        yield Header()
        where = "in public (anyone can read it)" if self.crew is None else f"in {self.crew_name}"
        yield Static(Content(f"New post {where}. Ctrl+S publishes, Escape cancels."))
        yield TextArea(id="text", soft_wrap=True, placeholder="What do you want to tell them?")
        yield FormError(id="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FormError).show("")
        self.query_one(TextArea).focus()

    def action_publish(self) -> None:
        text = self.query_one(TextArea).text
        if not text.strip():
            self.query_one(FormError).show("write something first")
            return
        self.submit(lambda: facade_of(self).post(text, self.crew), "Posted.")
