"""Behaviour: the app driven by keys through Pilot, with messages recorded."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, TextArea

from p2pcrew.feed.identity import Identity
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.home import Home
from p2pcrew.queries import Queries
from p2pcrew.tui.screens.board import BoardScreen
from p2pcrew.tui.screens.compose_post import ComposePostScreen
from p2pcrew.tui.screens.compose_request import ComposeRequestScreen
from p2pcrew.tui.screens.crew import CrewScreen
from p2pcrew.tui.screens.help import HelpScreen
from p2pcrew.tui.screens.main import MainScreen
from p2pcrew.tui.screens.peers import PeersScreen
from p2pcrew.tui.screens.thread import ThreadScreen
from p2pcrew.tui.screens.welcome import WelcomeScreen
from p2pcrew.tui.widgets.post_list import PostList
from p2pcrew.tui.widgets.request_list import RequestList
from p2pcrew.tui.widgets.thread_list import ThreadList
from tests.tui import fixture as fx
from tests.tui.conftest import Recorder, make_app, settle
from tests.tui.screen_text import screen_text


async def test_onboarding_creates_identity_then_a_crew(tmp_path: Path, recorder: Recorder) -> None:
    home = Home(tmp_path / "new")
    app = make_app(home)
    async with app.run_test(size=(80, 24), message_hook=recorder) as pilot:
        await pilot.press(*"Ana", "enter")
        await settle(pilot)
        assert isinstance(app.screen, WelcomeScreen)
        assert home.identity_path.exists()
        assert "You are set up, Ana" in screen_text(app)
        await pilot.press("c")  # create a crew
        await settle(pilot)
        await pilot.press(*"Garden crew", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "Garden crew" in screen_text(app)
        assert "Threads · Garden crew" in screen_text(app)
        me = app.facade.me
    store = home.open_store(readonly=True)
    try:
        assert Queries(store, me).names()[me] == "Ana"
    finally:
        store.close()


async def test_onboarding_requires_a_name_and_matching_passphrases(tmp_path: Path) -> None:
    app = make_app(Home(tmp_path / "new"), network=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await settle(pilot)
        assert "Error: choose a name" in screen_text(app)
        await pilot.press(*"Ana", "tab", *"one", "tab", *"two", "enter")
        await settle(pilot)
        assert "Error: the two passphrases differ" in screen_text(app)
        assert app.facade.identity is None


async def test_post_in_a_crew(fixture_home: fx.Fixture, recorder: Recorder) -> None:
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24), message_hook=recorder) as pilot:
        await settle(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, ComposePostScreen)
        await pilot.press("ctrl+s")
        assert "Error: write something first" in screen_text(app)
        app.screen.query_one(TextArea).insert("Who has the shed key?\nIt is locked.")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        threads = app.screen.query_one(ThreadList)
        assert threads.rows[0].title == "Who has the shed key?"
        assert threads.rows[0].meta.startswith("you · 0 replies")


async def test_reply_to_a_reply(fixture_home: fx.Fixture, recorder: Recorder) -> None:
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24), message_hook=recorder) as pilot:
        await settle(pilot)
        assert "• 3 new" in screen_text(app)
        await pilot.press("enter")  # the first thread: the seed swap
        await settle(pilot)
        assert isinstance(app.screen, ThreadScreen)
        assert recorder.of(ThreadList.Opened)[-1].root == fixture_home.seed_swap
        posts = app.screen.query_one(PostList)
        await pilot.press("down", "enter")  # choose Cleo's reply
        assert recorder.of(PostList.ReplyTo)
        assert "Replying to Cleo" in screen_text(app)
        await pilot.press(*"Lovely", "ctrl+s")
        await settle(pilot)
        lines = posts._posts
        mine = next(line for line in lines if line.body == "Lovely")
        cleo = next(line for line in lines if line.body.startswith("Count me in"))
        assert mine.indent == cleo.indent + 2
        await pilot.press("escape")
        await settle(pilot)
        # Opening the thread marked it read.
        assert "• 3 new" not in screen_text(app)


async def test_request_lifecycle_claim_then_fulfil(fixture_home: fx.Fixture) -> None:
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BoardScreen)
        board = app.screen
        assert board.query_one(RequestList).current == fixture_home.drill
        assert board.allowed == ("claim",)
        assert "c Claim" in screen_text(app)
        await pilot.press("f")  # not allowed yet: nothing happens
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("3")  # the "claimed by me" tab
        await settle(pilot)
        assert board.query_one(RequestList).current == fixture_home.drill
        assert "[claimed by you]" in screen_text(app)
        assert set(board.allowed) == {"unclaim", "fulfil"}
        await pilot.press("f")
        await settle(pilot)
        view = app.facade._nodes()[1].request(fixture_home.drill)
        assert view is not None and view.status == "fulfilled" and view.claimer == fx.ANA.public_key


async def test_request_compose_shows_validation_inline(fixture_home: fx.Fixture) -> None:
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        assert isinstance(app.screen, ComposeRequestScreen)
        await pilot.press("ctrl+s")
        assert "Error: give the request a title" in screen_text(app)
        app.screen.query_one("#title", Input).value = "Borrow a ladder"
        app.screen.query_one("#needed", Input).value = "next week-ish"
        await pilot.press("ctrl+s")
        assert "Error: needed by: use a date" in screen_text(app)
        app.screen.query_one("#needed", Input).value = "+3d"
        app.screen.query_one("#title", Input).value = "x" * 500
        await pilot.press("ctrl+s")
        assert "Error: request.title" in screen_text(app)
        app.screen.query_one("#title", Input).value = "Borrow a ladder"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        rows = app.facade.board(fixture_home.garden, "open").rows
        assert any(r.title == "Borrow a ladder" and "due in 3d" in r.meta for r in rows)


async def test_crew_invite_rename_and_remove(fixture_home: fx.Fixture, tmp_path: Path) -> None:
    dan = Identity.from_seed(bytes([4]) * 32)
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, CrewScreen)
        assert "Garden crew: 3 members" in screen_text(app)
        await pilot.press("i", *"feed_nonsense", "enter")
        await settle(pilot)
        assert "Error:" in screen_text(app)  # the prompt stays open with the reason
        prompt_input = app.screen.query_one(Input)
        prompt_input.value = feed_id_to_text(dan.public_key)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, CrewScreen)
        assert "Garden crew: 4 members" in screen_text(app)
        await pilot.press("e")
        app.screen.query_one(Input).value = "Garden club"
        await pilot.press("enter")
        await settle(pilot)
        assert "Garden club: 4 members" in screen_text(app)
        crew_screen = app.screen
        members = crew_screen.query_one("#members")
        while members.current != dan.public_key:  # type: ignore[attr-defined]
            await pilot.press("down")
        await pilot.press("x", "y")
        await settle(pilot)
        assert "Garden club: 3 members" in screen_text(app)


async def test_peers_screen_shows_the_fallback_hint_and_connects(fixture_home: fx.Fixture) -> None:
    app = make_app(fixture_home.home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "No peers connected: pair by address" in screen_text(app)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, PeersScreen)
        assert "press s and type a peer's address" in screen_text(app)
        await pilot.press("s", *"tcp://127.0.0.1:1#feed_x", "enter")
        await settle(pilot)
        assert "Error: the key part is wrong" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("y")
        await settle(pilot)
        assert "tcp://" in screen_text(app) and "#feed_" in screen_text(app)
        assert "█" in screen_text(app)  # the QR code


async def test_help_palette_and_themes(fixture_home: fx.Fixture) -> None:
    app = make_app(fixture_home.home, network=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        listed = {entry.description: entry.key for entry in app.screen.entries}
        assert listed["Post"] == "n" and listed["Help"] == "f1, ?"
        for action in ("Ask/offer", "Requests", "Crew", "Peers", "Create a crew", "Join a pub"):
            assert action in listed
        assert "Ask/offer" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"Requests")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, BoardScreen)
        await pilot.press("f2")
        assert app.theme == "textual-light"
        await pilot.press("f2")
        assert app.theme == "p2pcrew-high-contrast"
    again = make_app(fixture_home.home, network=None)
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert again.theme == "p2pcrew-high-contrast"
