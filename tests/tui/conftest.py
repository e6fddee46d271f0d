"""Shared helpers for the app's tests: a fixture store, an app on it, settling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from p2pcrew.home import Home
from p2pcrew.tui.app import CrewApp
from p2pcrew.tui.facade import Facade, NetworkOptions
from tests.tui import fixture as fx

LOOPBACK = NetworkOptions(host="127.0.0.1", port=0, lan=False)
"""Real sockets, but only on loopback and on a port the OS picks."""


def make_app(home: Home, *, network: NetworkOptions | None = LOOPBACK) -> CrewApp:
    return CrewApp(Facade.open(home, network=network, clock=fx.clock, tz=UTC))


async def settle(pilot: Pilot[Any], limit: float = 10.0) -> None:
    """Let the app go quiet: no coalesced refresh pending, no worker running, twice
    in a row (loads run in worker threads and apply their result afterwards)."""
    app = pilot.app
    quiet = 0
    for _ in range(int(limit / 0.03)):
        await pilot.pause(0.03)
        with contextlib.suppress(WorkerCancelled):  # superseded by a newer load
            await app.workers.wait_for_complete()
        busy = getattr(app, "_refresh_pending", False) or any(
            not w.is_finished for w in app.workers
        )
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:
            break
    await pilot.pause()


class Recorder:
    """A ``message_hook``: keeps every message the app processed, for assertions."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


@pytest.fixture
def fixture_home(tmp_path: Path) -> fx.Fixture:
    return fx.build(Home(tmp_path / "ana"))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield Recorder()


def pytest_configure(config: pytest.Config) -> None:
    """Write the snapshot failure report to the temp directory, not the work tree."""
    import tempfile

    if config.getoption("--snapshot-report", None) == "snapshot_report.html":
        config.option.snapshot_report = str(
            Path(tempfile.gettempdir()) / "p2pcrew_snapshot_report.html"
        )
