"""My address and QR code, so someone can sync with me or invite me to a crew."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Header, Static

from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.tui.screens.base import LiveScreen
from p2pcrew.tui.widgets.qr import QrCode


class AddressScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("n", "next_address", "Next address"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="address-box"):
            yield QrCode(id="qr")
            with VerticalScroll(id="address-text"):
                yield Static("", id="address")
                yield Static("", id="feed")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "My address"

    def reload(self) -> None:
        addresses = self.facade.addresses()
        feed = feed_id_to_text(self.facade.me)
        self.query_one("#feed", Static).update(
            Content(
                f"Your feed id, for crew invites:\n{feed}\n"
                "A crew member invites you with it (Crew screen, i)."
            )
        )
        qr = self.query_one(QrCode)
        if not addresses:
            self.query_one("#address", Static).update(
                "The network is not running, so there is no address to share yet."
            )
            qr.display = False
            return
        address = addresses[self.index % len(addresses)]
        more = f" ({self.index % len(addresses) + 1} of {len(addresses)}; n for next)"
        self.query_one("#address", Static).update(
            Content(
                f"Others can sync with you at{more if len(addresses) > 1 else ''}:\n"
                f"{address}\n\nThey type it (p2pcrew sync ADDRESS, or s in the app) "
                "or scan the code.\n"
            )
        )
        qr.display = True
        qr.show(address)

    def action_next_address(self) -> None:
        self.index += 1
        self.reload()

    def action_back(self) -> None:
        self.dismiss()
