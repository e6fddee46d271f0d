"""Errors are shown in the app as notifications; a crash leaves one line, not a
traceback, and the details go to the log."""

from __future__ import annotations

import logging

import pytest
from textual.notifications import Notify

from p2pcrew.errors import P2PCrewError
from p2pcrew.tui.screens.main import MainScreen
from tests.tui import fixture as fx
from tests.tui.conftest import Recorder, make_app, settle


async def test_a_failing_load_becomes_a_notification(
    fixture_home: fx.Fixture, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(fixture_home.home, network=None)
    async with app.run_test(size=(80, 24), message_hook=recorder) as pilot:
        await settle(pilot)

        def broken(_crew: bytes | None) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(app.facade, "main", broken)
        await pilot.press("ctrl+r")
        await settle(pilot)
        notes = [m.notification for m in recorder.of(Notify)]
        assert notes[-1].title == "Internal error" and "disk on fire" in notes[-1].message
        assert isinstance(app.screen, MainScreen)  # still running

        def refused(_text: str, _crew: bytes | None) -> bytes:
            raise P2PCrewError("you are not a member of the crew any more")

        monkeypatch.setattr(app.facade, "post", refused)
        await pilot.press("n", *"hello", "ctrl+s")
        await settle(pilot)
        assert "Error: you are not a member" in str(app.screen.query_one("#error").render())


async def test_a_crash_prints_one_line_and_logs_the_traceback(
    fixture_home: fx.Fixture,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def crash(self: MainScreen) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(MainScreen, "action_board", crash)
    app = make_app(fixture_home.home, network=None)
    with caplog.at_level(logging.ERROR, logger="p2pcrew"), pytest.raises(ZeroDivisionError):
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("b")
            await pilot.pause()
    printed = capsys.readouterr()
    assert "p2pcrew stopped on an internal error; details are in the log" in printed.err
    assert "Traceback" not in printed.err + printed.out and "boom" not in printed.err
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
