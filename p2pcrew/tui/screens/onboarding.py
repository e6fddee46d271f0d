"""First run: choose a name (and optionally a passphrase); the key pair is made here."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.identity import Identity
from p2pcrew.tui.facade import Facade
from p2pcrew.tui.screens.base import facade_of, report
from p2pcrew.tui.widgets.form import FormError

WELCOME = (
    "Welcome to p2pcrew: your crew's threads and requests, passed from laptop to "
    "laptop with no server in between. Choose the name your crew will see. A "
    "passphrase is optional: it protects your key on this laptop, and you type it "
    "each time the app starts."
)


class OnboardingScreen(Screen[bool]):
    """Dismisses with True once the identity exists."""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="onboarding", classes="form"):
            yield Static(WELCOME)
            yield Input(placeholder="Your name", id="name")
            with Horizontal(classes="row"):
                yield Input(placeholder="Passphrase (optional)", password=True, id="passphrase")
                yield Input(placeholder="Passphrase again", password=True, id="again")
            yield FormError(id="error")
            yield Button("Create my identity", id="create", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Welcome"
        self.query_one(FormError).show("")
        self.query_one("#name", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "again" or not self.query_one("#passphrase", Input).value:
            self._submit()
        else:
            self.focus_next()

    def _submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        passphrase = self.query_one("#passphrase", Input).value
        if not name:
            self.query_one(FormError).show("choose a name your crew will recognise")
            return
        if passphrase != self.query_one("#again", Input).value:
            self.query_one(FormError).show("the two passphrases differ")
            return
        self.query_one(FormError).show("")
        self.query_one(Button).disabled = True
        self._create(self.app, facade_of(self), name, passphrase or None)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _create(self, app: App[Any], facade: Facade, name: str, passphrase: str | None) -> None:
        """In a thread: a passphrase means an Argon2id derivation, about a second."""
        try:
            identity = facade.new_identity(name, passphrase)
        except P2PCrewError as exc:
            app.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:
            app.call_from_thread(report, app, exc)
            app.call_from_thread(self._failed, "")
            return
        app.call_from_thread(self._created, facade, identity, name)

    def _created(self, facade: Facade, identity: Identity, name: str) -> None:
        try:
            facade.adopt(identity, name)
        except Exception as exc:  # the key exists; the name can be set later (F3)
            report(self.app, exc)
        self.dismiss(True)

    def _failed(self, message: str) -> None:
        self.query_one(FormError).show(message)
        self.query_one(Button).disabled = False
