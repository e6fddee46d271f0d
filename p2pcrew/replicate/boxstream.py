"""Box-stream: the bulk encryption Scuttlebutt runs after the Secret Handshake.

Theory of operation
-------------------
This module does no I/O (sans-IO, like h11/h2). Each direction of a
connection is one machine with its own key and 24-byte starting nonce (both
come from the handshake, see ``BoxStreamKeys``):

* ``BoxStreamEncoder``: ``send_data()`` / ``send_goodbye()`` queue packets,
  ``data_to_send()`` hands the wire bytes to the caller.
* ``BoxStreamDecoder``: ``receive_data(bytes)`` returns events
  (``DataReceived``, ``GoodbyeReceived``); ``receive_data(b"")`` means EOF.

A packet is a 34-byte header ``secretbox(uint16 BE body length || 16-byte body
MAC, nonce n)`` followed by the body ``secretbox(chunk, nonce n+1)`` without
its MAC. The nonce is a 192-bit big-endian counter that advances by 2 per
packet and wraps around. Bodies are at most 4096 bytes, so longer writes are
split and the decoder never holds more than one header or one body: TCP
segments need not line up with packets, and a peer cannot make us buffer more.
The goodbye is a header whose plaintext is 18 zero bytes; only it ends a
stream cleanly. EOF before it raises ``StreamTruncated``, because a truncated
stream must never be mistaken for a complete one.

The decoder moves through ``DecoderState`` according to
``_DECODER_TRANSITIONS``; an input the table does not allow moves it to the
terminal ``ERROR`` state and raises.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from typing import Final, NoReturn

import nacl.exceptions
from nacl.bindings import crypto_secretbox_easy, crypto_secretbox_open_easy

from p2pcrew.replicate.transport_errors import (
    LocalProtocolError,
    StreamCorrupted,
    StreamTruncated,
)

__all__ = [
    "HEADER_SIZE",
    "MAX_BODY_SIZE",
    "BoxStreamDecoder",
    "BoxStreamEncoder",
    "BoxStreamEvent",
    "BoxStreamKeys",
    "DataReceived",
    "DecoderState",
    "EncoderState",
    "GoodbyeReceived",
]

MAX_BODY_SIZE: Final = 4096
KEY_SIZE: Final = 32
NONCE_SIZE: Final = 24
_MAC_SIZE: Final = 16
HEADER_SIZE: Final = _MAC_SIZE + 2 + _MAC_SIZE  # 34
_GOODBYE: Final = bytes(2 + _MAC_SIZE)
_NONCE_MODULUS: Final = 1 << (8 * NONCE_SIZE)


@dataclass(frozen=True, slots=True)
class BoxStreamKeys:
    """Keys and starting nonces for both directions of one connection.

    ``encrypt_*`` is for what we send, ``decrypt_*`` for what we receive.
    The repr is redacted so the keys never end up in a log.
    """

    encrypt_key: bytes = field(repr=False)
    encrypt_nonce: bytes = field(repr=False)
    decrypt_key: bytes = field(repr=False)
    decrypt_nonce: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        """Return the 112-byte shs1-testsuite "outcome" layout.

        encrypt key || encrypt nonce || decrypt key || decrypt nonce.
        """
        return self.encrypt_key + self.encrypt_nonce + self.decrypt_key + self.decrypt_nonce


@dataclass(frozen=True, slots=True)
class DataReceived:
    """An authenticated chunk of application data arrived."""

    data: bytes


@dataclass(frozen=True, slots=True)
class GoodbyeReceived:
    """The peer ended its direction with the authenticated goodbye."""


BoxStreamEvent = DataReceived | GoodbyeReceived


class EncoderState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed (goodbye sent)"


class DecoderState(enum.Enum):
    AWAIT_HEADER = "waiting for a packet header"
    AWAIT_BODY = "waiting for a packet body"
    CLOSED = "closed (goodbye received)"
    ERROR = "failed"


class _Input(enum.Enum):
    HEADER = "a packet header"
    BODY = "a packet body"
    GOODBYE = "the goodbye"
    BYTES = "more bytes"
    EOF = "end of stream"


_DECODER_TRANSITIONS: Final[dict[DecoderState, dict[_Input, DecoderState]]] = {
    DecoderState.AWAIT_HEADER: {
        _Input.HEADER: DecoderState.AWAIT_BODY,
        _Input.GOODBYE: DecoderState.CLOSED,
    },
    DecoderState.AWAIT_BODY: {_Input.BODY: DecoderState.AWAIT_HEADER},
    DecoderState.CLOSED: {_Input.EOF: DecoderState.CLOSED},
    DecoderState.ERROR: {},
}


def _check_key_and_nonce(key: bytes, nonce: bytes) -> int:
    """Validate sizes and return the nonce as an integer.

    Raises ValueError for wrong sizes (a local bug, not peer input).
    """
    if len(key) != KEY_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError(f"box-stream needs a {KEY_SIZE}-byte key and a {NONCE_SIZE}-byte nonce")
    return int.from_bytes(nonce, "big")


def _nonce(counter: int) -> bytes:
    return (counter % _NONCE_MODULUS).to_bytes(NONCE_SIZE, "big")


class BoxStreamEncoder:
    """Encrypts one direction of a box-stream. Raises LocalProtocolError on misuse."""

    def __init__(self, key: bytes, nonce: bytes) -> None:
        self._key = bytes(key)
        self._counter = _check_key_and_nonce(key, nonce)
        self._out = bytearray()
        self.state = EncoderState.OPEN

    def __repr__(self) -> str:
        return f"<BoxStreamEncoder {self.state.name}>"

    def send_data(self, data: bytes) -> None:
        """Queue ``data`` as packets of at most 4096 bytes; empty data sends nothing.

        Raises LocalProtocolError after ``send_goodbye()``.
        """
        self._require_open("send data")
        view = memoryview(data)
        for start in range(0, len(view), MAX_BODY_SIZE):
            self._encrypt_packet(bytes(view[start : start + MAX_BODY_SIZE]))

    def send_goodbye(self) -> None:
        """Queue the goodbye, which ends this direction. Raises LocalProtocolError if repeated."""
        self._require_open("send a second goodbye")
        self._out += crypto_secretbox_easy(_GOODBYE, _nonce(self._counter), self._key)
        self.state = EncoderState.CLOSED

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued for the wire."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _require_open(self, action: str) -> None:
        if self.state is not EncoderState.OPEN:
            raise LocalProtocolError(f"cannot {action}: the goodbye was already sent")

    def _encrypt_packet(self, chunk: bytes) -> None:
        boxed_body = crypto_secretbox_easy(chunk, _nonce(self._counter + 1), self._key)
        header_plain = len(chunk).to_bytes(2, "big") + boxed_body[:_MAC_SIZE]
        self._out += crypto_secretbox_easy(header_plain, _nonce(self._counter), self._key)
        self._out += boxed_body[_MAC_SIZE:]
        self._counter = (self._counter + 2) % _NONCE_MODULUS


class BoxStreamDecoder:
    """Decrypts one direction of a box-stream, whatever the chunking of the input.

    ``receive_data`` raises StreamCorrupted (a packet failed authentication,
    a length is out of range, or bytes followed the goodbye), StreamTruncated
    (EOF before the goodbye) and LocalProtocolError (called again after one of
    those). Events decoded before the error in the same call are lost with
    the connection, which must be dropped anyway.
    """

    def __init__(self, key: bytes, nonce: bytes) -> None:
        self._key = bytes(key)
        self._counter = _check_key_and_nonce(key, nonce)
        self._buffer = bytearray()
        self._need = HEADER_SIZE
        self._body_mac = b""
        self.state = DecoderState.AWAIT_HEADER

    def __repr__(self) -> str:
        return f"<BoxStreamDecoder {self.state.name}>"

    def receive_data(self, data: bytes) -> list[BoxStreamEvent]:
        """Feed bytes from the peer (``b""`` = EOF) and return the decoded events."""
        if self.state is DecoderState.ERROR:
            raise LocalProtocolError("the box-stream decoder already failed; drop the connection")
        if not data:
            self._transition(_Input.EOF)
            return []
        events: list[BoxStreamEvent] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self.state is DecoderState.CLOSED:
                self._transition(_Input.BYTES)
            take = view[pos : pos + self._need - len(self._buffer)]
            self._buffer += take
            pos += len(take)
            if len(self._buffer) == self._need:
                event = self._complete_unit()
                if event is not None:
                    events.append(event)
        return events

    def _complete_unit(self) -> BoxStreamEvent | None:
        unit = bytes(self._buffer)
        self._buffer.clear()
        if self.state is DecoderState.AWAIT_HEADER:
            return self._open_header(unit)
        return self._open_body(unit)

    def _open_header(self, boxed: bytes) -> GoodbyeReceived | None:
        plain = self._open(boxed, self._counter, "a packet header")
        if hmac.compare_digest(plain, _GOODBYE):
            self._transition(_Input.GOODBYE)
            return GoodbyeReceived()
        length = int.from_bytes(plain[:2], "big")
        if not 0 < length <= MAX_BODY_SIZE:
            self._fail(
                StreamCorrupted(f"the peer announced a {length}-byte packet; allowed: 1..4096")
            )
        self._body_mac = plain[2:]
        self._need = length
        self._transition(_Input.HEADER)
        return None

    def _open_body(self, body: bytes) -> BoxStreamEvent:
        data = self._open(self._body_mac + body, self._counter + 1, "a packet body")
        self._counter = (self._counter + 2) % _NONCE_MODULUS
        self._need = HEADER_SIZE
        self._transition(_Input.BODY)
        return DataReceived(data)

    def _open(self, boxed: bytes, counter: int, what: str) -> bytes:
        try:
            return crypto_secretbox_open_easy(boxed, _nonce(counter), self._key)
        except nacl.exceptions.CryptoError:
            self._fail(
                StreamCorrupted(
                    f"{what} failed authentication: the data was altered or reordered in "
                    "transit, or the peer encrypts with other keys"
                )
            )

    def _transition(self, inp: _Input) -> None:
        allowed = _DECODER_TRANSITIONS[self.state]
        if inp in allowed:
            self.state = allowed[inp]
            return
        if inp is _Input.EOF:
            self._fail(
                StreamTruncated(
                    f"the stream ended while {self.state.value}, before the peer's goodbye: "
                    "the connection dropped or the peer crashed; data may be missing"
                )
            )
        self._fail(
            StreamCorrupted(f"the peer sent {inp.value} while the stream was {self.state.value}")
        )

    def _fail(self, error: Exception) -> NoReturn:
        self.state = DecoderState.ERROR
        self._buffer.clear()
        raise error
