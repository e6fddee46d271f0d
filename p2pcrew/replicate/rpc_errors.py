"""Exceptions and error reasons for the multiplexed RPC layer (``rpc``, ``rpc_frames``).

Split the way h11 and the transport split them:

* ``RpcProtocolError`` and its subclasses mean *the peer* broke the RPC protocol. The
  connection machine is then in its terminal ``ERROR`` state: hang up, log, and maybe
  penalise the peer. Each subclass has a ``reason``, a stable machine-readable name for
  logs and metrics (the same style as the ``reason`` of an ERROR frame).
* ``RpcUsageError`` means *we* misused the API (responding twice, sending on a closed
  stream, a body outside the CBOR data model). It never changes the machine's state, so
  the caller may carry on. ``SendBlocked`` is the one usage error that is expected in
  normal operation: flow control or the outgoing buffer says "not now".

Anything else escaping a public method of ``RpcConnection`` is a bug.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "BadStreamId",
    "ConnectionLost",
    "FlowControlViolation",
    "FrameTooLarge",
    "MalformedFrame",
    "Reason",
    "RpcProtocolError",
    "RpcUsageError",
    "SendBlocked",
    "UnexpectedFrame",
    "UnknownStream",
]


class Reason(enum.StrEnum):
    """Well-known ``reason`` strings for ERROR frames; applications may add their own."""

    UNKNOWN_METHOD = "unknown-method"
    BAD_REQUEST = "bad-request"
    TOO_MANY_STREAMS = "too-many-streams"
    FLOW_CONTROL = "flow-control"
    INTERNAL = "internal"


class RpcProtocolError(Exception):
    """The peer broke the RPC protocol; the connection is unusable, hang up."""

    reason: ClassVar[str] = "protocol-error"


class FrameTooLarge(RpcProtocolError):
    """A length prefix announced more than ``max_frame`` bytes (detected before the body)."""

    reason: ClassVar[str] = "frame-too-large"


class MalformedFrame(RpcProtocolError):
    """A frame is not one canonical CBOR array of a known type, arity and item types."""

    reason: ClassVar[str] = "malformed-frame"


class UnknownStream(RpcProtocolError):
    """A frame names a stream id that was never opened (e.g. a RESPONSE to nothing)."""

    reason: ClassVar[str] = "unknown-stream"


class BadStreamId(RpcProtocolError):
    """A stream id is zero, has the other side's parity, or reuses an earlier id."""

    reason: ClassVar[str] = "bad-stream-id"


class UnexpectedFrame(RpcProtocolError):
    """A well-formed frame the stream's or the session's state does not allow.

    Examples: DATA on a request, RESPONSE to a duplex stream, DATA after the peer's END,
    anything after the peer's GOODBYE.
    """

    reason: ClassVar[str] = "unexpected-frame"


class FlowControlViolation(RpcProtocolError):
    """The peer sent DATA beyond the window we granted, or over-granted credit."""

    reason: ClassVar[str] = "flow-control"


class ConnectionLost(RpcProtocolError, EOFError):
    """The byte stream ended before the peer's GOODBYE.

    Like a truncated box-stream: whatever arrived is genuine, but the peer may not have
    sent everything, so this is never a clean end.
    """

    reason: ClassVar[str] = "connection-lost"


class RpcUsageError(Exception):
    """We misused the RPC API (a bug in the caller, not the peer); state is unchanged."""


class SendBlocked(RpcUsageError):
    """The frame cannot be queued *now*: the stream's send window or the outgoing buffer is full.

    Nothing was queued. Retry after a ``StreamWritable`` event (window) or after
    ``data_to_send()`` drained the buffer. ``RpcConnection.send_window()`` and
    ``data_frame_size()`` let a caller avoid this exception altogether.
    """
