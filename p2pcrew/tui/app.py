"""The terminal app: first-run onboarding, then your crew's recent posts and a composer.

This is the app's first cut: it works on the embedded store with no server. The
crews, threads, requests board and live sync screens arrive with the terminal-app
issue; the structure (screens per task, the node behind a small interface) is
already the one they will use.
"""

from __future__ import annotations

from typing import ClassVar, cast

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, ListItem, ListView, Static

from p2pcrew import publishing
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from p2pcrew.views import entry_view


class Onboarding(Screen[None]):
    """Creates the identity on first run."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="onboarding"):
            yield Static("Welcome to p2pcrew. Choose the name your crew will see.")
            yield Input(placeholder="Your name", id="name")
            yield Button("Create my identity", id="create", variant="primary")
            yield Label("", id="error")
        yield Footer()

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self._create()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._create()

    def _create(self) -> None:
        app = _crew_app(self)
        name = self.query_one("#name", Input).value.strip()
        try:
            app.create_identity(name)
        except P2PCrewError as exc:
            self.query_one("#error", Label).update(f"Error: {exc}")
            return
        app.switch_screen(MainScreen())


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield ListView(id="posts")
        yield Input(placeholder="Write a post and press Enter", id="compose")
        yield Label("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        self.query_one("#compose", Input).focus()

    def action_refresh(self) -> None:
        app = _crew_app(self)
        posts = self.query_one("#posts", ListView)
        posts.clear()
        for stored in app.store.by_type("post", limit=200):
            view = entry_view(stored)
            text = view["content"]["text"] if view["content"] else "(deleted)"
            posts.append(ListItem(Label(f"{view['author'][:13]}  {text}")))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        app = _crew_app(self)
        text = event.value.strip()
        if not text:
            return
        try:
            app.publish(c.Post(text=text, time=c.now_ms()))
        except P2PCrewError as exc:
            self.query_one("#status", Label).update(f"Error: {exc}")
            return
        event.input.value = ""
        self.query_one("#status", Label).update("Posted.")
        self.action_refresh()


class CrewApp(App[None]):
    TITLE = "p2pcrew"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit")]

    def __init__(self, home: Home) -> None:
        super().__init__()
        self.home = home
        self.identity: Identity | None = None
        self.store = SqliteStore(home.store_dir)

    def on_mount(self) -> None:
        if self.home.identity_path.exists():
            self.identity = self.home.load_identity()
            self.sub_title = self.identity.feed_id
            self.push_screen(MainScreen())
        else:
            self.push_screen(Onboarding())

    def on_unmount(self) -> None:
        self.store.close()

    def create_identity(self, name: str) -> None:
        identity = Identity.generate()
        save_identity(identity, self.home.identity_path)
        self.identity = identity
        self.sub_title = identity.feed_id
        if name:
            self.publish(c.About(name=name, time=c.now_ms()))

    def publish(self, item: c.Content) -> None:
        if self.identity is None:
            raise P2PCrewError("create your identity first")
        publishing.publish(self.store, self.identity, [item])


def _crew_app(screen: Screen[None]) -> CrewApp:
    return cast(CrewApp, screen.app)


def run_app(home: Home) -> None:
    home.ensure()
    CrewApp(home).run()
