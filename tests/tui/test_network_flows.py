"""The app as a running node: CLI writes through its control socket, joining a real
pub with an invite, and unlocking a passphrase-protected key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nacl.pwhash
from textual.notifications import Notify
from textual.widgets import Input

from p2pcrew.control import publish_via_control
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import now_ms
from p2pcrew.home import Home
from p2pcrew.pub import invites as inv
from p2pcrew.pub.config import PubConfig
from p2pcrew.pub.relay import PubRelay
from p2pcrew.pub.server import PubService
from p2pcrew.tui.screens.main import MainScreen
from p2pcrew.tui.screens.unlock import UnlockScreen
from tests.tui import fixture as fx
from tests.tui.conftest import Recorder, make_app, settle
from tests.tui.screen_text import screen_text
from tests.tui.test_live import wait_until


async def test_cli_writes_go_through_the_running_app(fixture_home: fx.Fixture) -> None:
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        socket = fixture_home.home.control_socket
        await wait_until(pilot, socket.exists)
        payload = c.encode_content(c.Post(text="Posted from a script", crew=None, time=fx.NOW))
        await asyncio.to_thread(publish_via_control, socket, payload, force=False)
        await pilot.press("tab", "end")  # the public pseudo-crew
        await wait_until(pilot, lambda: "Posted from a script" in screen_text(app))
    assert not fixture_home.home.control_socket.exists()


async def test_join_a_pub_from_the_app(
    tmp_path: Path, fixture_home: fx.Fixture, recorder: Recorder
) -> None:
    config = PubConfig()
    store = SqliteStore(tmp_path / "pub")
    relay = PubRelay(store, fx.CLEO, config, tmp_path / "pub")
    service = PubService(relay, config, tmp_path / "pub")
    await service.start(("127.0.0.1", 0), None)
    try:
        address = service.tcp_address
        assert address is not None
        secret = relay.invites.create(uses=1, expires=None, now=now_ms())
        url = f"tcp://{address.host}:{address.port}"
        code = inv.InviteCode(fx.CLEO.public_key, (url,), secret, None).encode()
        app = make_app(fixture_home.home)
        async with app.run_test(size=(80, 24), message_hook=recorder) as pilot:
            await settle(pilot)
            await pilot.press("j", *"not-a-code", "enter")
            await settle(pilot)
            errors = [m.notification for m in recorder.of(Notify)]
            assert errors and errors[-1].severity == "error"
            await pilot.press("j")
            await settle(pilot)
            app.screen.query_one(Input).value = code
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: any(
                    "Joined the pub" in m.notification.message for m in recorder.of(Notify)
                ),
            )
            await wait_until(pilot, lambda: "1 peer connected" in screen_text(app))
    finally:
        await service.shutdown()
        store.close()


async def test_unlock_a_passphrase_protected_key(tmp_path: Path) -> None:
    home = Home(tmp_path / "locked")
    home.ensure()
    save_identity(
        fx.ANA,
        home.identity_path,
        "correct horse",
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN,
    )
    app = make_app(home, network=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, UnlockScreen)
        await pilot.press(*"wrong", "enter")
        await settle(pilot)
        assert isinstance(app.screen, UnlockScreen)
        assert "Error:" in screen_text(app)
        await pilot.press(*"correct horse", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert app.facade.me == fx.ANA.public_key
