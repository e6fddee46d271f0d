"""Exceptions for the Secret Handshake and box-stream transport.

Errors are split the way h11 splits them:

* ``TransportError`` and its subclasses mean *the peer* (or the network)
  misbehaved. The right reaction is to hang up, log the message and maybe
  penalise the peer. They never mean there is a bug in p2pcrew.
* ``LocalProtocolError`` means *we* misused the API (for example wrote after
  our own goodbye). It is a bug in the calling code.

Exceptions that also mean a standard-library condition inherit it too, so
generic code keeps working: ``StreamTruncated`` is an ``EOFError`` and
``PeerTimeout`` is a ``TimeoutError``.

Messages are written for a person reading a log: they say what happened and,
where there is a likely cause, what to check.
"""

from __future__ import annotations

__all__ = [
    "BadAuthentication",
    "BadNetworkKey",
    "HandshakeFailed",
    "InvalidPeerKey",
    "LocalProtocolError",
    "PeerTimeout",
    "StreamCorrupted",
    "StreamTruncated",
    "TransportError",
    "WrongServerKey",
]


class TransportError(Exception):
    """The peer or the network broke the secure transport; hang up."""


class HandshakeFailed(TransportError):
    """The Secret Handshake did not complete; no secure stream exists."""


class BadNetworkKey(HandshakeFailed):
    """A msg1/msg2 HMAC did not match: the peer uses a different network key.

    Also raised when the peer hangs up right after our challenge, which is how
    a correct peer reacts to a challenge made with another network key.
    """


class BadAuthentication(HandshakeFailed):
    """msg3 or msg4 failed to open, or the signature inside was invalid."""


class InvalidPeerKey(HandshakeFailed):
    """A public key from the peer is not a usable curve point (e.g. low order)."""


class WrongServerKey(HandshakeFailed):
    """The server hung up after our authentication (msg3).

    A correct server does that when it cannot open msg3, which happens when the
    public key we dialled is not its key. (It also happens when the server
    refuses to talk to us; the two cannot be told apart on the wire.)
    """


class StreamTruncated(TransportError, EOFError):
    """The box-stream ended without the authenticated goodbye.

    The data received so far is authentic, but the peer may not have sent all
    of it; treat it like a dropped connection, never like a clean end.
    """


class StreamCorrupted(TransportError):
    """A box-stream packet failed authentication or was malformed."""


class PeerTimeout(TransportError, TimeoutError):
    """The peer did not send or accept data within the allowed time."""


class LocalProtocolError(Exception):
    """We misused the transport API (a bug in the caller, not the peer)."""
