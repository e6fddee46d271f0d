"""``p2pcrew`` with no arguments: the terminal app."""

from __future__ import annotations

from p2pcrew.home import Home


def open_app(home: Home) -> None:
    """Raises StoreLocked (a P2PCrewError) when another process writes to ``home``."""
    from p2pcrew.tui.app import run_app  # textual is imported only when the app opens

    run_app(home)
