"""Ask for help or offer it: a request with kind, title, category, when and where."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Footer, Header, Input, Select, Static, TextArea

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.content import REQUEST_CATEGORIES, REQUEST_KINDS
from p2pcrew.tui.inputs import parse_needed_by
from p2pcrew.tui.screens.base import ComposeScreen, facade_of
from p2pcrew.tui.widgets.form import FormError

KIND_LABELS = {"ask": "Ask for help", "offer": "Offer help"}


class ComposeRequestScreen(ComposeScreen):
    """A new ask or offer; dismisses with its entry id, or None when cancelled."""

    def compose(self) -> ComposeResult:
        yield Header()
        where = "in public" if self.crew is None else f"in {self.crew_name}"
        yield Static(Content(f"New request {where}. Ctrl+S publishes, Escape cancels."))
        with Horizontal(classes="row"):
            yield Select(
                [(KIND_LABELS[k], k) for k in REQUEST_KINDS],
                value="ask",
                allow_blank=False,
                id="kind",
            )
            yield Select(
                [(f"Category: {k}", k) for k in REQUEST_CATEGORIES],
                value="other",
                allow_blank=False,
                id="category",
            )
        yield Input(placeholder="Title: what is needed or offered", id="title")
        with Horizontal(classes="row"):
            yield Input(placeholder="Needed by (+3d, 2025-06-01)", id="needed")
            yield Input(placeholder="Rough place (optional)", id="place")
        yield TextArea(id="body", soft_wrap=True, placeholder="Details (optional)")
        yield FormError(id="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FormError).show("")
        self.query_one("#title", Input).focus()

    def _fields(self) -> dict[str, Any]:
        """The request's fields. Raises ValueError for an unreadable needed-by."""
        facade = facade_of(self)
        needed = parse_needed_by(self.query_one("#needed", Input).value, facade.clock(), facade.tz)
        place = self.query_one("#place", Input).value.strip()
        body = self.query_one("#body", TextArea).text.strip()
        return {
            "kind": self.query_one("#kind", Select).value,
            "category": self.query_one("#category", Select).value,
            "title": self.query_one("#title", Input).value.strip(),
            "needed_by": needed,
            "place": place or None,
            "body": body or None,
        }

    def action_publish(self) -> None:
        def publish() -> bytes:
            fields = self._fields()
            if not fields["title"]:
                raise ValueError("give the request a title")
            return facade_of(self).ask(self.crew, **fields)

        self.submit(publish, "Request published.", inline=(P2PCrewError, ValueError))
