"""asyncio adapter: Secret Handshake, then box-stream, over a reader/writer pair.

This is the thin I/O edge around the sans-IO machines in ``shs`` and
``boxstream``: it moves bytes between an ``asyncio.StreamReader`` /
``StreamWriter`` and the machines, and adds the timeouts. Every await on the
peer has one (``PeerTimeout``). On any failure the connection is hung up at
once (``transport.abort()``) before the exception reaches the caller, so a
failed handshake never leaves a half-open connection behind.

Closing is two-sided, as in box-stream itself: ``close()`` sends our goodbye,
and the peer's goodbye makes ``read()`` return ``b""``. The TCP connection is
closed when both goodbyes have been exchanged (or by ``abort()``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Final

from nacl.signing import SigningKey

from p2pcrew.replicate.boxstream import (
    BoxStreamDecoder,
    BoxStreamEncoder,
    DataReceived,
    GoodbyeReceived,
)
from p2pcrew.replicate.shs import ClientHandshake, HandshakeCompleted, ServerHandshake
from p2pcrew.replicate.transport_errors import (
    LocalProtocolError,
    PeerTimeout,
    StreamTruncated,
    TransportError,
)

__all__ = ["DEFAULT_TIMEOUT", "SecureStream", "client_handshake", "server_handshake"]

#: Seconds allowed for the whole handshake and for each later read/drain.
DEFAULT_TIMEOUT: Final = 10.0
# One socket read; the decoders take what they need from it, so this bounds
# how much decrypted data can pile up per read.
_READ_SIZE: Final = 64 * 1024


async def client_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    network_key: bytes,
    local_key: SigningKey | bytes,
    remote_pk: bytes,
    timeout: float = DEFAULT_TIMEOUT,
) -> SecureStream:
    """Dial side: authenticate the server as ``remote_pk`` and return the stream.

    Raises a HandshakeFailed subclass (e.g. BadNetworkKey, WrongServerKey,
    BadAuthentication, InvalidPeerKey) or PeerTimeout; the connection is then
    already hung up. Raises ValueError for malformed local keys.
    """
    return await run_handshake(
        lambda: ClientHandshake(network_key, local_key, remote_pk), reader, writer, timeout
    )


async def server_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    network_key: bytes,
    local_key: SigningKey | bytes,
    timeout: float = DEFAULT_TIMEOUT,
) -> SecureStream:
    """Accept side: learn and authenticate the client, return the stream.

    Raises like ``client_handshake``; the client's key is
    ``SecureStream.remote_public_key``.
    """
    return await run_handshake(
        lambda: ServerHandshake(network_key, local_key), reader, writer, timeout
    )


async def run_handshake(
    make_machine: Callable[[], ClientHandshake | ServerHandshake],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    limit: float,
) -> SecureStream:
    """Build the machine and drive it; hang up on any failure, including bad keys."""
    try:
        machine = make_machine()
    except BaseException:
        _hang_up(writer)
        raise
    try:
        async with asyncio.timeout(limit):
            completed = await _exchange(machine, reader, writer)
    except TimeoutError:
        _hang_up(writer)
        raise PeerTimeout(
            f"the peer did not complete the handshake within {limit:g} s "
            f"(we were {machine.state.value})"
        ) from None
    except BaseException:
        _hang_up(writer)
        raise
    return SecureStream(reader, writer, completed, limit, machine.trailing_data)


async def _exchange(
    machine: ClientHandshake | ServerHandshake,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> HandshakeCompleted:
    """Alternate sending and receiving until the machine completes or raises."""
    while True:
        out = machine.data_to_send()
        try:
            if out:
                writer.write(out)
                await writer.drain()
            data = await reader.read(_READ_SIZE)
        except ConnectionError:
            data = b""  # a reset is a hang-up; the machine knows what it means
        events = machine.receive_data(data)
        if events:
            out = machine.data_to_send()
            if out:  # the server's msg4
                writer.write(out)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            return events[0]


def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


class SecureStream:
    """An authenticated, encrypted byte stream (box-stream) to one peer.

    One instance per connection; ``read()`` and ``write()``/``drain()`` may be
    used from two different tasks at the same time. ``timeout`` limits every
    read and drain: raise it for connections that may stay idle longer.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        completed: HandshakeCompleted,
        timeout: float = DEFAULT_TIMEOUT,
        initial_data: bytes = b"",
    ) -> None:
        """``initial_data``: box-stream bytes that arrived with the last handshake message."""
        keys = completed.box_keys
        self._reader = reader
        self._writer = writer
        self._encoder = BoxStreamEncoder(keys.encrypt_key, keys.encrypt_nonce)
        self._decoder = BoxStreamDecoder(keys.decrypt_key, keys.decrypt_nonce)
        self._received: collections.deque[bytes] = collections.deque()
        self._unread = initial_data  # decoded on the first read(), so errors surface there
        self._goodbye_received = False
        self._goodbye_sent = False
        self._aborted = False
        self.remote_public_key: Final = completed.remote_public_key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<SecureStream to {self.remote_public_key.hex()[:16]}…>"

    async def read(self) -> bytes:
        """Return the next decrypted chunk, or ``b""`` after the peer's goodbye.

        Raises StreamTruncated (connection ended without goodbye),
        StreamCorrupted (authentication failed) or PeerTimeout (nothing
        arrived within ``timeout``); the connection is then hung up.
        """
        while not self._received and not self._goodbye_received:
            data, self._unread = self._unread or await self._recv(), b""
            self._feed(data)
        return self._received.popleft() if self._received else b""

    def write(self, data: bytes) -> None:
        """Encrypt and queue ``data``; call ``drain()`` for flow control.

        Raises LocalProtocolError after ``close()`` or ``abort()``.
        """
        if self._aborted:
            raise LocalProtocolError("cannot write: the connection was aborted")
        self._encoder.send_data(data)
        self._writer.write(self._encoder.data_to_send())

    async def drain(self) -> None:
        """Wait until the transport's buffer is low. Raises PeerTimeout, StreamTruncated."""
        try:
            async with asyncio.timeout(self.timeout):  # wait_for can swallow a cancel (3.11)
                await self._writer.drain()
        except TimeoutError:
            self.abort()
            raise PeerTimeout(
                f"the peer did not accept our data within {self.timeout:g} s"
            ) from None
        except ConnectionError as exc:
            self.abort()
            raise StreamTruncated(f"the connection broke while sending: {exc}") from exc

    async def close(self) -> None:
        """Send our goodbye (once) and flush it; ``read()`` still works afterwards.

        The connection closes when the peer's goodbye has also arrived.
        Raises PeerTimeout or StreamTruncated if the goodbye cannot be flushed.
        """
        if self._aborted:
            return
        if not self._goodbye_sent:
            self._goodbye_sent = True
            self._encoder.send_goodbye()
            self._writer.write(self._encoder.data_to_send())
            await self.drain()
        if self._close_if_done():
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(self._writer.wait_closed(), self.timeout)

    def abort(self) -> None:
        """Hang up at once, without goodbye (for errors and shutdown)."""
        self._aborted = True
        _hang_up(self._writer)

    async def _recv(self) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._reader.read(_READ_SIZE)
        except TimeoutError:
            self.abort()
            raise PeerTimeout(f"the peer sent nothing for {self.timeout:g} s") from None
        except ConnectionError:
            return b""  # the decoder turns this into StreamTruncated

    def _feed(self, data: bytes) -> None:
        try:
            events = self._decoder.receive_data(data)
        except TransportError:
            self.abort()
            raise
        for event in events:
            if isinstance(event, DataReceived):
                self._received.append(event.data)
            elif isinstance(event, GoodbyeReceived):
                self._goodbye_received = True
        self._close_if_done()

    def _close_if_done(self) -> bool:
        """Close the connection once both goodbyes are through; True if closed."""
        if self._goodbye_sent and self._goodbye_received:
            self._writer.close()
            return True
        return False
