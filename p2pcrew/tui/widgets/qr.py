"""A QR code drawn with half blocks, dark on light whatever the theme."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from p2pcrew.tui.viewmodels import qr_lines


class QrCode(Static):
    DEFAULT_CSS = """
    QrCode {
        width: auto;
        height: auto;
        color: #000000;
        background: #ffffff;
        padding: 0 2;
    }
    """

    def show(self, text: str) -> None:
        self.update(Content("\n".join(qr_lines(text))))
