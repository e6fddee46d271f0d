"""Manage one crew: its members, invite by feed id, remove, leave, rename."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Footer, Header, Static

from p2pcrew.feed.ids import text_to_feed_id
from p2pcrew.tui.readmodel import Member
from p2pcrew.tui.screens.base import LiveScreen, attempt
from p2pcrew.tui.screens.prompt import ConfirmScreen, PromptScreen
from p2pcrew.tui.viewmodels import plural
from p2pcrew.tui.widgets.member_list import MemberList
from p2pcrew.tui.widgets.sync_bar import SyncBar


class CrewScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("i", "invite", "Invite"),
        Binding("x", "remove", "Remove"),
        Binding("e", "rename", "Rename"),
        Binding("l", "leave", "Leave"),
    ]

    def __init__(self, crew: bytes) -> None:
        super().__init__()
        self.crew = crew
        self.crew_name = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="about")
        yield MemberList(id="members")
        yield Static(
            "Invite someone with their feed id (they find it with y, My address). "
            "Removing a member rotates the crew key: they cannot read what follows.",
            id="crew-help",
        )
        yield SyncBar(id="sync")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(MemberList).focus()

    def reload(self) -> None:
        facade, crew = self.facade, self.crew
        self.load(lambda: (facade.crew_name(crew), facade.members(crew)), self._show)

    def _show(self, data: tuple[str, list[Member]]) -> None:
        self.crew_name, members = data
        self.sub_title = self.crew_name
        self.query_one("#about", Static).update(
            Content(f"{self.crew_name}: {plural(len(members), 'member')}")
        )
        self.query_one(MemberList).show(members)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "remove":
            member = self.query_one(MemberList).current
            return member is not None and member != self.facade.me
        return True

    def on_member_list_highlighted(self, _event: MemberList.Highlighted) -> None:
        self.refresh_bindings()

    def action_invite(self) -> None:
        def done(text: str | None) -> None:
            if text and attempt(self, lambda: self.facade.invite(self.crew, text)) is not None:
                self.app.notify("Invited: they receive the crew key when they next sync.")

        self.app.push_screen(
            PromptScreen(
                f"Invite to {self.crew_name}: their feed id",
                placeholder="feed_…",
                check=text_to_feed_id,
            ),
            done,
        )

    def action_remove(self) -> None:
        member = self.query_one(MemberList).current
        if member is None or member == self.facade.me:
            return

        def done(yes: bool | None) -> None:
            if yes and attempt(self, lambda: self.facade.remove(self.crew, member)) is not None:
                self.app.notify("Removed; the crew key was rotated.")

        self.app.push_screen(ConfirmScreen("Remove this member from the crew?", "Remove"), done)

    def action_rename(self) -> None:
        def done(text: str | None) -> None:
            if text and attempt(self, lambda: self.facade.rename(self.crew, text)) is not None:
                self.app.notify(f"Renamed to {text}.")

        self.app.push_screen(PromptScreen("New name for the crew", value=self.crew_name), done)

    def action_leave(self) -> None:
        def done(yes: bool | None) -> None:
            if yes and attempt(self, lambda: self.facade.leave(self.crew)) is not None:
                self.app.notify(f"You left {self.crew_name}.")
                self.dismiss()

        self.app.push_screen(
            ConfirmScreen(f"Leave {self.crew_name}? You will not read what follows.", "Leave"), done
        )

    def action_back(self) -> None:
        self.dismiss()
