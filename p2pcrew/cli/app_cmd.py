"""``p2pcrew`` with no arguments: the terminal app (its own issue builds it out)."""

from __future__ import annotations

from p2pcrew.home import Home


def open_app(home: Home) -> None:
    from p2pcrew.tui.app import run_app  # textual is imported only when the app opens

    run_app(home)
