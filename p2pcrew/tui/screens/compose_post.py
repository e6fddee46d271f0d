"""Write a new post (a thread root) in a crew or in public."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TextArea

from p2pcrew.errors import P2PCrewError
from p2pcrew.tui.screens.base import facade_of, report
from p2pcrew.tui.widgets.form import FormError


class ComposePostScreen(Screen[bytes | None]):
    """Dismisses with the new entry's id, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "publish", "Publish", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, crew: bytes | None, crew_name: str) -> None:
        super().__init__()
        self.crew = crew
        self.crew_name = crew_name

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
        try:
            entry = facade_of(self).post(text, self.crew)
        except P2PCrewError as exc:
            self.query_one(FormError).show(str(exc))
            return
        except Exception as exc:
            report(self.app, exc)
            return
        self.app.notify("Posted.")
        self.dismiss(entry)

    def action_cancel(self) -> None:
        self.dismiss(None)
