"""The one-line network status: peers, sync progress, or how to find peers."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from p2pcrew.tui.viewmodels import SyncStatus, sync_line


class SyncBar(Static):
    """Set ``status`` from above; the words come from ``viewmodels.sync_line``."""

    status: reactive[SyncStatus | None] = reactive(None, always_update=False)

    def watch_status(self, status: SyncStatus | None) -> None:
        if status is None:
            self.update("")
            return
        mark = "⟳ " if status.behind or status.receiving else ""
        self.update(Content(mark + sync_line(status)))
        self.set_class(status.peers == 0, "-alone")
