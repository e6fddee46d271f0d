"""Form pieces: the inline error line under a form."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class FormError(Static):
    """An inline validation message, prefixed "Error:" so it reads without colour."""

    DEFAULT_CSS = """
    FormError {
        color: $text-error;
        text-style: bold;
        height: auto;
    }
    """

    def show(self, message: str) -> None:
        self.update(Content(f"Error: {message}") if message else "")
        self.display = bool(message)
