"""Appearance: SVG snapshots of the main screens at 80x24 and 120x40.

Deterministic by construction: the fixture store has fixed keys and times, the app's
clock is frozen at ``fixture.NOW``, the node listens on loopback on a port the OS
picks and no screen shows it. Regenerate after an intended change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from p2pcrew.home import Home
from p2pcrew.tui.app import CrewApp
from tests.tui import fixture as fx
from tests.tui.conftest import make_app, settle

SnapCompare = Callable[..., bool]


def fixture_app(tmp_path: Path) -> CrewApp:
    return make_app(fx.build(Home(tmp_path / "ana")).home)


def keys(*pressed: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_main(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(fixture_app(tmp_path), terminal_size=size, run_before=keys())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_thread(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(fixture_app(tmp_path), terminal_size=size, run_before=keys("enter"))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_board(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(fixture_app(tmp_path), terminal_size=size, run_before=keys("b"))


def test_crew(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(fixture_app(tmp_path), run_before=keys("m"))


def test_help(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(fixture_app(tmp_path), run_before=keys("f1"))


def test_high_contrast(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(fixture_app(tmp_path), run_before=keys("f2", "f2"))


def test_onboarding(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(make_app(Home(tmp_path / "new")), run_before=keys())
