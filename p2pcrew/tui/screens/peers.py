"""Peers and sync: who is connected and how we found them, progress while entries
arrive, and what to do when nobody is there."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Footer, Header, ProgressBar, Static

from p2pcrew.tui import viewmodels as vm
from p2pcrew.tui.screens.base import LiveScreen, attempt
from p2pcrew.tui.widgets.peer_table import PeerTable

PAIRING_HELP = (
    "To find peers: on the same network, p2pcrew finds crew members by itself (mDNS). "
    "If the venue blocks that, press s and type a peer's address (they show theirs "
    "with y), or join a pub with j."
)


class PeersScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("s", "app.connect", "Connect"),
        Binding("j", "app.join_pub", "Join pub"),
        Binding("y", "app.my_address", "My address"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._wave = 0
        """The largest backlog seen since the last time we were in sync (progress total)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="summary")
        yield ProgressBar(total=None, show_eta=False, id="progress")
        yield PeerTable(id="peers")
        yield Static(PAIRING_HELP, id="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Peers and sync"
        self.set_interval(1.0, self.reload)
        self.query_one(PeerTable).focus()

    def reload(self) -> None:
        attempt(self, self._show)

    def _show(self) -> None:
        status = self.facade.sync_status()
        self.query_one("#summary", Static).update(
            Content(f"{vm.sync_line(status)}  Received this session: {status.received_total:,}.")
        )
        self._progress(status)
        peers = self.facade.peers()
        self.query_one(PeerTable).show(vm.peer_rows(peers, self.facade.names(), self.facade.me))
        self.query_one("#hint", Static).display = status.peers == 0

    def _progress(self, status: vm.SyncStatus) -> None:
        bar = self.query_one(ProgressBar)
        if status.behind > 0:
            self._wave = max(self._wave, status.behind)
            bar.update(total=self._wave, progress=self._wave - status.behind)
        else:
            self._wave = 0
            bar.update(total=None)
        bar.display = status.behind > 0 or status.receiving

    def action_back(self) -> None:
        self.dismiss()
