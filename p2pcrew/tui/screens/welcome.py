"""After onboarding: the first steps (create a crew, share my address, join a pub)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

CHOICES = (
    ("create_crew", "Create a crew (c)"),
    ("my_address", "Show my address and QR code, so someone can invite me (y)"),
    ("join_pub", "Join a pub with an invite code (j)"),
    ("continue", "Go to my crews (Escape)"),
)


class WelcomeScreen(ModalScreen[str]):
    """Dismisses with the chosen step: an app action name, or "continue"."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "choose('create_crew')", "Create a crew"),
        Binding("y", "choose('my_address')", "My address"),
        Binding("j", "choose('join_pub')", "Join a pub"),
        Binding("escape", "choose('continue')", "Continue"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.person = name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="welcome"):
            yield Static(
                Content(f"You are set up, {self.person}. What next?"), classes="dialog-title"
            )
            for action, label in CHOICES:
                yield Button(label, id=action)

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id or "continue")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
