"""States, transition tables and events of the RPC machine (``rpc.RpcConnection``).

Theory of operation
-------------------
Two state machines, each with one table:

* The session: ``ConnectionState`` by ``CONNECTION_TRANSITIONS``. GOODBYE half-closes the
  whole session, so OPEN splits into GOODBYE_SENT (we may still receive) and
  GOODBYE_RECEIVED (we may still send, but not open new streams); both together are DONE.
  EOF is only acceptable once the peer's GOODBYE arrived.
* Every request and duplex stream: a ``Stream`` record moving through ``StreamState`` by
  ``STREAM_TRANSITIONS``, keyed by (kind, state). A REQUEST is a stream the requester
  half-closes at once (it sends nothing more) and the responder closes with RESPONSE or
  ERROR; the requester may cancel with ERROR. A duplex stream (OPEN) carries DATA both
  ways until each side sent END, or either side sent ERROR; CREDIT flows against the
  DATA, so it is still allowed after the granting side's own END.

``Stream`` also keeps the flow-control counts of one duplex stream, in DATA frame bytes
including the 4-byte length prefix. For the receiving direction the invariant is
``recv_window + unconsumed + pending_credit == initial_window``, so the peer can never
make us hold more than one window per stream.

``rpc.RpcConnection`` owns the records, decides what a table miss means (a usage error
for a local action, a protocol error for peer input) and writes the frames. This module
has no I/O and raises only ``FlowControlViolation``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from p2pcrew.replicate.rpc_errors import FlowControlViolation

__all__ = [
    "CONNECTION_TRANSITIONS",
    "LOCAL_SENDING",
    "MAX_WINDOW",
    "REMOTE_SENDING",
    "STREAM_TRANSITIONS",
    "ConnectionInput",
    "ConnectionState",
    "DataReceived",
    "ErrorReceived",
    "GoodbyeReceived",
    "RequestReceived",
    "ResponseReceived",
    "RpcEvent",
    "Stream",
    "StreamEnded",
    "StreamInput",
    "StreamKind",
    "StreamOpened",
    "StreamState",
    "StreamWritable",
]

MAX_WINDOW: Final = 2**32 - 1
"""A CREDIT growing a send window past this is a flow-control violation."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """The peer asks ``method``; answer with ``respond()`` or ``send_error()``."""

    stream_id: int
    method: str
    body: Any


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The answer to our request ``stream_id``; the request is complete."""

    stream_id: int
    body: Any


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a duplex stream; both sides may now send DATA."""

    stream_id: int
    method: str
    body: Any


@dataclass(frozen=True, slots=True)
class DataReceived:
    """DATA on a stream; pass ``flow_bytes`` to ``consume()`` when done with it."""

    stream_id: int
    body: Any
    flow_bytes: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed the stream: it sends no more DATA."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The peer ended a request or stream with an error; it is closed."""

    stream_id: int
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class StreamWritable:
    """The peer granted CREDIT on a stream we may still send DATA on."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class GoodbyeReceived:
    """The peer ended the session cleanly; it sends nothing more."""


RpcEvent = (
    RequestReceived
    | ResponseReceived
    | StreamOpened
    | DataReceived
    | StreamEnded
    | ErrorReceived
    | StreamWritable
    | GoodbyeReceived
)


class ConnectionState(enum.Enum):
    OPEN = "open"
    GOODBYE_SENT = "closed on our side (GOODBYE sent)"
    GOODBYE_RECEIVED = "closed on the peer's side (GOODBYE received)"
    DONE = "done (both GOODBYEs exchanged)"
    ERROR = "failed"


class ConnectionInput(enum.Enum):
    OPEN_STREAM = "open a request or stream"
    SEND_FRAME = "send a frame"
    SEND_GOODBYE = "send GOODBYE"
    RECV_BYTES = "receive bytes"
    RECV_GOODBYE = "receive GOODBYE"
    RECV_EOF = "receive EOF"


_C = ConnectionState
CONNECTION_TRANSITIONS: Final[dict[ConnectionState, dict[ConnectionInput, ConnectionState]]] = {
    _C.OPEN: {
        ConnectionInput.OPEN_STREAM: _C.OPEN,
        ConnectionInput.SEND_FRAME: _C.OPEN,
        ConnectionInput.SEND_GOODBYE: _C.GOODBYE_SENT,
        ConnectionInput.RECV_BYTES: _C.OPEN,
        ConnectionInput.RECV_GOODBYE: _C.GOODBYE_RECEIVED,
    },
    _C.GOODBYE_SENT: {
        ConnectionInput.RECV_BYTES: _C.GOODBYE_SENT,
        ConnectionInput.RECV_GOODBYE: _C.DONE,
    },
    _C.GOODBYE_RECEIVED: {
        ConnectionInput.SEND_FRAME: _C.GOODBYE_RECEIVED,
        ConnectionInput.SEND_GOODBYE: _C.DONE,
        ConnectionInput.RECV_EOF: _C.GOODBYE_RECEIVED,
    },
    _C.DONE: {ConnectionInput.RECV_EOF: _C.DONE},
    _C.ERROR: {},
}


class StreamKind(enum.Enum):
    REQUEST = "request"
    DUPLEX = "stream"


class StreamState(enum.Enum):
    IDLE = "idle"
    OPEN = "open"
    HALF_CLOSED_LOCAL = "half-closed (local)"
    HALF_CLOSED_REMOTE = "half-closed (remote)"
    CLOSED = "closed"


class StreamInput(enum.Enum):
    SEND_REQUEST = "send REQUEST"
    RECV_REQUEST = "receive REQUEST"
    SEND_OPEN = "send OPEN"
    RECV_OPEN = "receive OPEN"
    SEND_RESPONSE = "send RESPONSE"
    RECV_RESPONSE = "receive RESPONSE"
    SEND_DATA = "send DATA"
    RECV_DATA = "receive DATA"
    SEND_END = "send END"
    RECV_END = "receive END"
    SEND_ERROR = "send ERROR"
    RECV_ERROR = "receive ERROR"
    SEND_CREDIT = "send CREDIT"
    RECV_CREDIT = "receive CREDIT"


_S = StreamState
_I = StreamInput
_REQ = StreamKind.REQUEST
_DUP = StreamKind.DUPLEX
# Missing (kind, state) pairs, e.g. anything CLOSED, allow nothing.
STREAM_TRANSITIONS: Final[dict[tuple[StreamKind, StreamState], dict[StreamInput, StreamState]]] = {
    (_REQ, _S.IDLE): {
        _I.SEND_REQUEST: _S.HALF_CLOSED_LOCAL,
        _I.RECV_REQUEST: _S.HALF_CLOSED_REMOTE,
    },
    (_REQ, _S.HALF_CLOSED_LOCAL): {  # we asked: await the answer, or cancel with ERROR
        _I.RECV_RESPONSE: _S.CLOSED,
        _I.RECV_ERROR: _S.CLOSED,
        _I.SEND_ERROR: _S.CLOSED,
    },
    (_REQ, _S.HALF_CLOSED_REMOTE): {  # we were asked
        _I.SEND_RESPONSE: _S.CLOSED,
        _I.SEND_ERROR: _S.CLOSED,
        _I.RECV_ERROR: _S.CLOSED,
    },
    (_DUP, _S.IDLE): {_I.SEND_OPEN: _S.OPEN, _I.RECV_OPEN: _S.OPEN},
    (_DUP, _S.OPEN): {
        _I.SEND_DATA: _S.OPEN,
        _I.RECV_DATA: _S.OPEN,
        _I.SEND_CREDIT: _S.OPEN,
        _I.RECV_CREDIT: _S.OPEN,
        _I.SEND_END: _S.HALF_CLOSED_LOCAL,
        _I.RECV_END: _S.HALF_CLOSED_REMOTE,
        _I.SEND_ERROR: _S.CLOSED,
        _I.RECV_ERROR: _S.CLOSED,
    },
    (_DUP, _S.HALF_CLOSED_LOCAL): {  # we sent END; the peer still sends DATA
        _I.RECV_DATA: _S.HALF_CLOSED_LOCAL,
        _I.SEND_CREDIT: _S.HALF_CLOSED_LOCAL,
        _I.RECV_CREDIT: _S.HALF_CLOSED_LOCAL,  # granted before our END arrived
        _I.RECV_END: _S.CLOSED,
        _I.SEND_ERROR: _S.CLOSED,
        _I.RECV_ERROR: _S.CLOSED,
    },
    (_DUP, _S.HALF_CLOSED_REMOTE): {  # the peer sent END; we still send DATA
        _I.SEND_DATA: _S.HALF_CLOSED_REMOTE,
        _I.RECV_CREDIT: _S.HALF_CLOSED_REMOTE,
        _I.SEND_END: _S.CLOSED,
        _I.SEND_ERROR: _S.CLOSED,
        _I.RECV_ERROR: _S.CLOSED,
    },
}

REMOTE_SENDING: Final = frozenset({_S.OPEN, _S.HALF_CLOSED_LOCAL})
"""States in which the peer may still send DATA, END or RESPONSE on the stream."""
LOCAL_SENDING: Final = frozenset({_S.OPEN, _S.HALF_CLOSED_REMOTE})
"""States in which we may still send DATA (so a CREDIT is worth reporting)."""


@dataclass(slots=True)
class Stream:
    """One live request or duplex stream, as ``rpc.RpcConnection`` tracks it."""

    stream_id: int
    kind: StreamKind
    local: bool  # True if we opened it
    send_window: int  # flow bytes we may still send
    recv_window: int  # flow bytes the peer may still send
    state: StreamState = StreamState.IDLE
    unconsumed: int = 0  # received flow bytes the application has not consumed
    pending_credit: int = 0  # consumed flow bytes not yet granted back with CREDIT

    def target(self, inp: StreamInput) -> StreamState | None:
        """The state ``inp`` leads to, or None if the table does not allow it now."""
        return STREAM_TRANSITIONS.get((self.kind, self.state), {}).get(inp)

    def opening_target(self) -> StreamState:
        """The state this new (IDLE) stream enters with its opening frame."""
        if self.kind is _REQ:
            inp = _I.SEND_REQUEST if self.local else _I.RECV_REQUEST
        else:
            inp = _I.SEND_OPEN if self.local else _I.RECV_OPEN
        return STREAM_TRANSITIONS[(self.kind, _S.IDLE)][inp]

    def take_data(self, flow: int) -> None:
        """Account for received DATA. Raises FlowControlViolation beyond the window."""
        if flow > self.recv_window:
            raise FlowControlViolation(
                f"the peer sent a {flow}-byte DATA frame on stream {self.stream_id} with only "
                f"{self.recv_window} bytes of window left"
            )
        self.recv_window -= flow
        self.unconsumed += flow

    def take_credit(self, credit: int) -> None:
        """Account for received CREDIT. Raises FlowControlViolation past MAX_WINDOW."""
        if self.send_window + credit > MAX_WINDOW:
            raise FlowControlViolation(
                f"the peer's CREDIT grows stream {self.stream_id}'s window past {MAX_WINDOW}"
            )
        self.send_window += credit

    def grant(self) -> int:
        """Move the pending credit into the receive window; return what to send as CREDIT."""
        credit, self.pending_credit = self.pending_credit, 0
        self.recv_window += credit
        return credit
