"""The main screen: crews on the left, the selected crew's threads on the right."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Header

from p2pcrew.tui import viewmodels as vm
from p2pcrew.tui.readmodel import MainData
from p2pcrew.tui.screens.base import LiveScreen
from p2pcrew.tui.screens.board import BoardScreen
from p2pcrew.tui.screens.compose_post import ComposePostScreen
from p2pcrew.tui.screens.compose_request import ComposeRequestScreen
from p2pcrew.tui.screens.crew import CrewScreen
from p2pcrew.tui.screens.thread import ThreadScreen
from p2pcrew.tui.widgets.crew_list import CrewList
from p2pcrew.tui.widgets.sync_bar import SyncBar
from p2pcrew.tui.widgets.thread_list import ThreadList

NOT_CHOSEN = b""
"""Not a crew id: asking for it shows the first crew (readmodel falls back to it)."""
NO_THREADS = "No threads here yet. Press n to start one."
NO_CREWS = (
    "You are in no crew yet. Press c to create one, or y to show your address "
    "so a crew member can invite you."
)


class MainScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_post", "Post"),
        Binding("a", "new_request", "Ask/offer"),
        Binding("b", "board", "Requests"),
        Binding("m", "crew", "Crew"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.crew: bytes | None = None
        """The crew shown."""
        self.crew_name = ""
        self._wanted: bytes | None = NOT_CHOSEN
        """The crew asked for; until the person picks one, the first (a crew that
        arrives by sync replaces the public list on its own)."""
        self._has_crews = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            yield CrewList(id="crews")
            yield ThreadList(id="threads")
        yield SyncBar(id="sync")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ThreadList).focus()

    def reload(self) -> None:
        facade, crew = self.facade, self._wanted
        self.load(lambda: facade.main(crew), self._show)

    def action_reload(self) -> None:
        self.reload()

    def _show(self, data: MainData) -> None:
        self.crew, self.crew_name = data.crew, data.crew_name
        self._has_crews = any(info.crew is not None for info in data.crews)
        self.query_one(CrewList).show(vm.crew_rows(data.crews), data.crew)
        threads = self.query_one(ThreadList)
        threads.border_title = f"Threads · {data.crew_name}"
        threads.show(data.threads, NO_THREADS if self._has_crews else NO_CREWS)
        self.refresh_bindings()

    def on_crew_list_chosen(self, event: CrewList.Chosen) -> None:
        self.show_crew(event.crew)

    def show_crew(self, crew: bytes | None) -> None:
        """Switch to ``crew``'s threads (e.g. a crew just created)."""
        self._wanted = crew
        self.reload()

    def on_thread_list_opened(self, event: ThreadList.Opened) -> None:
        self.app.push_screen(ThreadScreen(event.root))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "crew" and self.crew is None:
            return None  # shown, but disabled: Public has no members
        return True

    def action_new_post(self) -> None:
        self.app.push_screen(ComposePostScreen(self.crew, self.crew_name))

    def action_new_request(self) -> None:
        self.app.push_screen(ComposeRequestScreen(self.crew, self.crew_name))

    def action_board(self) -> None:
        self.app.push_screen(BoardScreen(self.crew))

    def action_crew(self) -> None:
        if self.crew is not None:
            self.app.push_screen(CrewScreen(self.crew))
