"""One copy-paste address: how to reach a peer and which key it must prove.

Form: ``SCHEME://HOST:PORT[/PATH]#FEED_ID`` with SCHEME ``tcp`` (Secret Handshake over
TCP), ``ws`` or ``wss`` (the same bytes in WebSocket binary frames, for pubs behind a
web proxy). The fragment is the peer's feed id, so the handshake fails unless the
other end holds that key: an address cannot be silently redirected.

Examples: ``tcp://192.168.1.20:8008#feed_...``, ``wss://pub.example.org/ws#feed_...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.ids import InvalidId, feed_id_to_text, text_to_feed_id

SCHEMES = ("tcp", "ws", "wss")
DEFAULT_PORTS = {"tcp": 8008, "ws": 80, "wss": 443}


class BadAddress(P2PCrewError, ValueError):
    """An address that cannot be used; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class Address:
    scheme: str
    host: str
    port: int
    key: bytes
    path: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}#{feed_id_to_text(self.key)}"

    @property
    def is_websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    def websocket_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path or '/ws'}"


def parse_address(text: str) -> Address:
    """Raises BadAddress with a message naming the wrong part."""
    text = text.strip()
    if "://" not in text:
        raise BadAddress(f"{text[:40]!r} is not an address: expected tcp://HOST:PORT#feed_...")
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise BadAddress(f"unknown scheme {parts.scheme!r}: use tcp://, ws:// or wss://")
    if not parts.hostname:
        raise BadAddress("the address has no host")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise BadAddress(f"bad port: {exc}") from exc
    if not parts.fragment:
        raise BadAddress("the address lacks the peer's key: add #feed_... at the end")
    try:
        key = text_to_feed_id(parts.fragment)
    except InvalidId as exc:
        raise BadAddress(f"the key part is wrong: {exc}") from exc
    return Address(parts.scheme, parts.hostname, port, key, parts.path)
