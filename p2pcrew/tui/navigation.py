"""App-wide actions (reachable from every screen and the command palette): help,
peers, my address, create a crew, connect, join a pub, themes, my name.

Kept apart from ``app`` so the app module stays about wiring: start, events, refresh.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from p2pcrew.replicate.address import parse_address
from p2pcrew.tui import settings
from p2pcrew.tui.facade import Facade
from p2pcrew.tui.keys import available_actions
from p2pcrew.tui.screens.address import AddressScreen
from p2pcrew.tui.screens.base import attempt, report
from p2pcrew.tui.screens.help import HelpScreen
from p2pcrew.tui.screens.main import MainScreen
from p2pcrew.tui.screens.peers import PeersScreen
from p2pcrew.tui.screens.prompt import PromptScreen
from p2pcrew.tui.themes import THEME_LABELS, next_theme

NEEDS_IDENTITY = frozenset(
    {"peers", "my_address", "create_crew", "connect", "join_pub", "set_name"}
)


class Navigator(App[None]):
    facade: Facade

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("p", "peers", "Peers"),
        Binding("y", "my_address", "My address", show=False),
        Binding("c", "create_crew", "Create a crew", show=False),
        Binding("s", "connect", "Connect to an address", show=False),
        Binding("j", "join_pub", "Join a pub", show=False),
        Binding("f2", "cycle_theme", "Next theme", show=False),
        Binding("f3", "set_name", "Change my name", show=False),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in NEEDS_IDENTITY or self.facade.identity is not None

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(available_actions(self.screen)))

    def action_peers(self) -> None:
        if not isinstance(self.screen, PeersScreen):
            self.push_screen(PeersScreen())

    def action_my_address(self) -> None:
        if not isinstance(self.screen, AddressScreen):
            self.push_screen(AddressScreen())

    def action_create_crew(self) -> None:
        def done(name: str | None) -> None:
            crew = attempt(self.screen, lambda: self.facade.create_crew(name)) if name else None
            if crew is None:
                return
            self.notify(f"Created the crew {name}. Invite members from its Crew screen (m).")
            for screen in self.screen_stack:
                if isinstance(screen, MainScreen):
                    screen.show_crew(crew)

        self.push_screen(PromptScreen("Name of the new crew", placeholder="e.g. Garden crew"), done)

    def action_connect(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self._background(self.facade.connect(text), "Connected to {}.")

        self.push_screen(
            PromptScreen(
                "Peer address (they see theirs with y)",
                placeholder="tcp://192.168.1.20:8008#feed_…",
                check=parse_address,
            ),
            done,
        )

    def action_join_pub(self) -> None:
        def done(code: str | None) -> None:
            if code:
                self._background(self.facade.join_pub(code), "Joined the pub at {}.")

        self.push_screen(PromptScreen("Pub invite code", placeholder="p2pcrew-invite…"), done)

    def _background(self, work: Awaitable[str], success: str) -> None:
        """Network work in a worker; the result or the error becomes a notification."""

        async def run() -> None:
            try:
                result = await work
            except Exception as exc:
                report(self, exc)
                return
            self.notify(success.format(result))

        self.run_worker(run(), group="network-command", exit_on_error=False)

    def action_cycle_theme(self) -> None:
        self.action_use_theme(next_theme(self.theme))

    def action_use_theme(self, name: str) -> None:
        self.theme = name
        settings.save_theme(self.facade.home.root, name)
        self.notify(f"Theme: {THEME_LABELS.get(name, name)}", timeout=2)

    def action_set_name(self) -> None:
        def done(name: str | None) -> None:
            if name and attempt(self.screen, lambda: self.facade.set_name(name)) is not None:
                self.notify(f"Your crews will see you as {name}.")

        self.push_screen(PromptScreen("Your name, as your crews see it"), done)
