"""Small modal questions: one line of text, or yes/no.

``PromptScreen`` validates before it closes: ``check`` raises ``P2PCrewError`` or
``ValueError`` and the message is shown under the input, so a mistyped feed id is
corrected in place instead of failing later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from p2pcrew.errors import P2PCrewError
from p2pcrew.tui.widgets.form import FormError


class PromptScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        question: str,
        *,
        placeholder: str = "",
        value: str = "",
        password: bool = False,
        check: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value
        self.password = password
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(self.question), classes="dialog-title")
            yield Input(
                self.value, placeholder=self.placeholder, password=self.password, id="answer"
            )
            yield FormError(id="error")
            with Horizontal(classes="buttons"):
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(FormError).show("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        value = self.query_one("#answer", Input).value.strip()
        if not value:
            self.query_one(FormError).show("please type something, or press Escape")
            return
        if self.check is not None:
            try:
                self.check(value)
            except (P2PCrewError, ValueError) as exc:
                self.query_one(FormError).show(str(exc))
                return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(self.question), classes="dialog-title")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
