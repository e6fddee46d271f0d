"""The requests board: tabs for open, mine, claimed by me, due soon and all; the
highlighted request's detail; and only the actions ``allowed_actions`` permits."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Tab, Tabs

from p2pcrew.feed.content import RequestAction
from p2pcrew.tui import viewmodels as vm
from p2pcrew.tui.readmodel import BoardData
from p2pcrew.tui.screens.base import LiveScreen, attempt
from p2pcrew.tui.screens.compose_request import ComposeRequestScreen
from p2pcrew.tui.widgets.request_list import RequestDetail, RequestList
from p2pcrew.tui.widgets.sync_bar import SyncBar

EMPTY: dict[vm.BoardTab, str] = {
    "open": "No open requests. Press n to ask for help or offer it.",
    "mine": "You have no requests and claimed none.",
    "claimed-by-me": "You have not claimed any request.",
    "due-soon": "Nothing is due in the next three days.",
    "all": "No requests yet. Press n to ask for help or offer it.",
}


def _action_bindings() -> list[BindingType]:
    return [
        Binding(key, f"act('{action}')", label) for action, (key, label) in vm.ACTION_KEYS.items()
    ]


class BoardScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("n", "new_request", "New"),
        *_action_bindings(),
        *[
            Binding(str(i), f"tab('{tab}')", f"Show {label.lower()}", show=False)
            for i, (tab, label) in enumerate(vm.BOARD_TABS, start=1)
        ],
    ]

    def __init__(self, crew: bytes | None) -> None:
        super().__init__()
        self.crew = crew
        self.tab: vm.BoardTab = "open"
        self.allowed: tuple[RequestAction, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Tabs(*[Tab(label, id=tab) for tab, label in vm.BOARD_TABS], id="tabs")
        yield RequestList(id="requests")
        with VerticalScroll(id="detail-box"):
            yield RequestDetail(id="detail")
        yield SyncBar(id="sync")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RequestList).focus()

    def reload(self) -> None:
        facade, crew, tab = self.facade, self.crew, self.tab
        self.load(lambda: facade.board(crew, tab), self._show)

    def _show(self, data: BoardData) -> None:
        label = dict(vm.BOARD_TABS)[self.tab]
        self.sub_title = f"Requests · {data.crew_name} · {label}"
        self.query_one(RequestList).show(data.rows, EMPTY[self.tab])

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id is not None and event.tab.id != self.tab:
            self.tab = next(t for t, _ in vm.BOARD_TABS if t == event.tab.id)
            self.reload()

    def on_request_list_highlighted(self, event: RequestList.Highlighted) -> None:
        request = event.request
        if request is None:
            self._show_detail(([], "", ()))
            return
        facade = self.facade
        self.load(lambda: facade.request_panel(request), self._show_detail, "detail")

    def _show_detail(self, panel: tuple[list[str], str, tuple[RequestAction, ...]]) -> None:
        lines, hints, allowed = panel
        self.allowed = allowed
        self.query_one(RequestDetail).show(lines, hints)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            return parameters[0] in self.allowed
        return True

    def action_act(self, action: RequestAction) -> None:
        request = self.query_one(RequestList).current
        if request is None or action not in self.allowed:
            return
        if attempt(self, lambda: self.facade.act(request, action)) is not None:
            label = vm.ACTION_KEYS[action][1].lower()
            self.app.notify(f"Done: {label}.")

    def action_tab(self, tab: str) -> None:
        self.query_one(Tabs).active = tab

    def action_new_request(self) -> None:
        self.app.push_screen(ComposeRequestScreen(self.crew, self.facade.crew_name(self.crew)))

    def action_back(self) -> None:
        self.dismiss()
