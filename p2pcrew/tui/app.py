"""The terminal app: wiring only. Screens live in ``screens``, widgets in ``widgets``,
app-wide actions in ``navigation``, and everything the app knows about the node comes
through ``facade.Facade``.

Live updates: the node calls the facade on every change; the facade emits
``DataChanged``; the app turns that into a ``StoreChanged`` message and refreshes the
top screen at most once per ``REFRESH_INTERVAL``, so a sync of 10,000 entries is a few
refreshes, not 10,000.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from rich.text import Text
from textual.app import App
from textual.message import Message

from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.home import Home
from p2pcrew.replicate.address import Address
from p2pcrew.tui import settings
from p2pcrew.tui.facade import DataChanged, Facade, FacadeEvent, NetworkOptions, Notice
from p2pcrew.tui.keys import ActionsProvider
from p2pcrew.tui.navigation import Navigator
from p2pcrew.tui.screens.base import LiveScreen
from p2pcrew.tui.screens.main import MainScreen
from p2pcrew.tui.screens.onboarding import OnboardingScreen
from p2pcrew.tui.screens.unlock import UnlockScreen
from p2pcrew.tui.screens.welcome import WelcomeScreen
from p2pcrew.tui.themes import HIGH_CONTRAST, THEMES
from p2pcrew.tui.widgets.sync_bar import SyncBar

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 0.2
"""Seconds: the most often the screen is refreshed while entries stream in."""
MAINTAIN_INTERVAL = 60.0
"""Seconds between delivery upkeep runs (receipts keep their own hourly cadence)."""


class StoreChanged(Message):
    """The store changed; queued copies of this message collapse into one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreChanged)


class NodeNotice(Message):
    def __init__(self, notice: Notice) -> None:
        super().__init__()
        self.notice = notice


class CrewApp(Navigator):
    TITLE = "p2pcrew"
    CSS_PATH = "app.tcss"
    COMMANDS: ClassVar = App.COMMANDS | {ActionsProvider}

    def __init__(self, facade: Facade) -> None:
        super().__init__()
        self.facade = facade
        self.refreshes = 0
        """How many coalesced refreshes ran (tests check bursts stay few)."""
        self._refresh_pending = False

    def on_mount(self) -> None:
        self.register_theme(HIGH_CONTRAST)
        saved = settings.load_theme(self.facade.home.root)
        self.theme = saved if saved in THEMES else THEMES[0]
        self.facade.subscribe(self._facade_event)
        self.set_interval(1.0, self._show_sync)
        self.set_interval(MAINTAIN_INTERVAL, self._maintain)
        if self.facade.identity is not None:
            self._enter()
        elif self.facade.has_identity_file:
            self.push_screen(UnlockScreen(), lambda _ok: self._enter())
        else:
            self.push_screen(OnboardingScreen(), lambda _ok: self._first_steps())

    def _enter(self) -> None:
        self.sub_title = self._me()
        self.push_screen(MainScreen())
        self.run_worker(self.facade.start(), group="network", exit_on_error=False)

    def _first_steps(self) -> None:
        self._enter()
        names = self.facade.names()
        self.push_screen(WelcomeScreen(names.get(self.facade.me, "")), self._after_welcome)

    def _after_welcome(self, choice: str | None) -> None:
        if choice and choice != "continue":
            self.call_later(self.run_action, f"app.{choice}")

    def _me(self) -> str:
        name = self.facade.names().get(self.facade.me)
        return name or feed_id_to_text(self.facade.me)

    # ---- events from the node --------------------------------------------------------

    def _facade_event(self, event: FacadeEvent) -> None:
        if isinstance(event, DataChanged):
            self.post_message(StoreChanged())
        else:
            self.post_message(NodeNotice(event))

    def on_store_changed(self, _message: StoreChanged) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(REFRESH_INTERVAL, self._refresh_screen)

    def _refresh_screen(self) -> None:
        self._refresh_pending = False
        self.refreshes += 1
        if isinstance(self.screen, LiveScreen):
            self.screen.reload()
        self._show_sync()

    def on_node_notice(self, message: NodeNotice) -> None:
        self.notify(message.notice.text, severity=message.notice.severity)

    def _maintain(self) -> None:
        try:
            self.facade.maintain()
        except Exception:  # upkeep must never disturb the person
            log.exception("delivery upkeep failed")

    def _show_sync(self) -> None:
        status = self.facade.sync_status()
        for bar in self.screen.query(SyncBar):
            bar.status = status

    async def on_unmount(self) -> None:
        await self.facade.close()

    def _fatal_error(self) -> None:
        """A bug: the traceback goes to the log file, one line to the terminal.

        Overrides Textual's (private, version-pinned) hook that would print a
        traceback with local variables, which may hold secrets, on the screen.
        """
        log.error("the app stopped on an unexpected error", exc_info=self._exception)
        self.bell()
        self._exit_renderables.append(
            Text("p2pcrew stopped on an internal error; details are in the log (p2pcrew locate).")
        )
        self._close_messages_no_wait()


def run_app(
    home: Home,
    *,
    listen: tuple[str, int] = ("0.0.0.0", 8008),  # noqa: S104 - LAN peers must reach us
    connect: tuple[Address, ...] = (),
    lan: bool = True,
) -> None:
    """Open the app on ``home``. Raises StoreLocked when another process writes there."""
    options = NetworkOptions(host=listen[0], port=listen[1], connect=connect, lan=lan)
    facade = Facade.open(home, network=options)
    _route_other_logs()
    CrewApp(facade).run()


def _route_other_logs() -> None:
    """While the app owns the terminal, other libraries' warnings (asyncio, zeroconf,
    Python warnings) go to p2pcrew's log file too, rather than to logging's
    last-resort handler on stderr, over the screen."""
    ours = logging.getLogger("p2pcrew").handlers
    root = logging.getLogger()
    if ours and not root.handlers:
        for handler in ours:
            root.addHandler(handler)
        root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
