"""Unlock a passphrase-protected identity at start."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.identity import Identity
from p2pcrew.tui.facade import Facade
from p2pcrew.tui.screens.base import facade_of, report
from p2pcrew.tui.widgets.form import FormError


class UnlockScreen(Screen[bool]):
    """Dismisses with True once the identity is unlocked."""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(classes="form"):
            yield Static("Your key is protected by a passphrase. Type it to start.")
            yield Input(placeholder="Passphrase", password=True, id="passphrase")
            yield FormError(id="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FormError).show("")
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.disabled = True
        self._unlock(self.app, facade_of(self), event.value)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _unlock(self, app: App[Any], facade: Facade, passphrase: str) -> None:
        try:
            identity = facade.open_identity(passphrase)
        except P2PCrewError as exc:
            app.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:
            app.call_from_thread(report, app, exc)
            app.call_from_thread(self._failed, "")
            return
        app.call_from_thread(self._unlocked, facade, identity)

    def _unlocked(self, facade: Facade, identity: Identity) -> None:
        facade.adopt(identity)
        self.dismiss(True)

    def _failed(self, message: str) -> None:
        box = self.query_one(Input)
        box.disabled = False
        box.value = ""
        box.focus()
        self.query_one(FormError).show(message)
