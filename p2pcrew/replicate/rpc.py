"""Multiplexed RPC over one reliable, ordered byte stream (box-stream plaintext), sans-IO.

Theory of operation
-------------------
``RpcConnection`` does no I/O (like h2). ``receive_data(bytes)`` takes what the peer sent
(``b""`` = EOF) and returns events; the local actions (``request``, ``respond``,
``open_stream``, ``send_data``, ``end_stream``, ``send_error``, ``consume``, ``goodbye``)
queue frames, and ``data_to_send()`` hands their bytes to the caller. The wire format is
in docs/protocol.md. Four modules: ``rpc_frames`` (bytes to frames and back),
``rpc_states`` (the session and stream state machines, their tables, the events),
``rpc_errors``, and this one, which decides what each frame and each local action does.
It is one class of short methods; it runs past 500 lines because every public method
documents what it raises.

A local action the tables refuse raises ``RpcUsageError`` and changes nothing (every
check runs before the first mutation). A peer input they refuse raises an
``RpcProtocolError`` subclass and leaves the machine in the terminal ``ERROR`` state (the
events decoded earlier in that call are lost with the connection, which must be dropped).

Flow control, and why nothing is buffered: each duplex stream has a window per direction,
counted in DATA frame bytes including the length prefix. ``send_data`` never queues beyond
the window: it raises ``SendBlocked`` and queues nothing, and ``StreamWritable`` reports
each CREDIT that reopens the window. On receipt, DATA beyond the window we granted is
``FlowControlViolation``. The application returns a ``DataReceived.flow_bytes`` with
``consume()`` once it is done with the data; CREDIT goes out when enough is consumed
(``_credit_threshold``, chosen so a sender can never be stuck below one maximal frame). So
a fast peer can make us hold at most ``initial_window`` per stream, ``max_streams``
streams, and never more than one unparsed frame (``rpc_frames.FrameReader``).

Bounds on what we send: frames the application composes (REQUEST, OPEN, RESPONSE, DATA,
ERROR) are refused with ``SendBlocked`` while ``data_to_send()`` has not drained
``max_outgoing`` bytes. Control frames (CREDIT, END, GOODBYE, and the "too-many-streams"
refusal) are tiny and proportional to input, so they are always queued.

Races the protocol must tolerate: frames the peer sent before it saw our END, ERROR or
RESPONSE. CREDIT and ERROR on a closed stream are dropped. DATA, END and RESPONSE on a
closed stream are legal only if *we* closed it with ERROR while the peer could still send;
those ids are remembered (``RESET_MEMORY`` most recent) and their late frames dropped.

GOODBYE half-closes the whole session: after ours we send nothing (not even CREDIT), but
still receive; after the peer's, any further byte is an error and we may not open
streams, but may still answer. EOF before the peer's GOODBYE is ``ConnectionLost``.
``max_frame`` and ``initial_window`` are protocol parameters: both ends must use the same
values (the defaults are the standard), because nothing on the wire negotiates them.
"""

from __future__ import annotations

from typing import Any, Final

from p2pcrew import codec
from p2pcrew.replicate.rpc_errors import (
    BadStreamId,
    ConnectionLost,
    Reason,
    RpcProtocolError,
    RpcUsageError,
    SendBlocked,
    UnexpectedFrame,
    UnknownStream,
)
from p2pcrew.replicate.rpc_frames import (
    DEFAULT_MAX_FRAME,
    LENGTH_PREFIX_SIZE,
    Frame,
    FrameReader,
    FrameType,
    encode_frame,
    parse_frame,
)
from p2pcrew.replicate.rpc_states import (
    CONNECTION_TRANSITIONS,
    LOCAL_SENDING,
    MAX_WINDOW,
    REMOTE_SENDING,
    ConnectionInput,
    ConnectionState,
    DataReceived,
    ErrorReceived,
    GoodbyeReceived,
    RequestReceived,
    ResponseReceived,
    RpcEvent,
    Stream,
    StreamEnded,
    StreamInput,
    StreamKind,
    StreamOpened,
    StreamState,
    StreamWritable,
)

__all__ = [
    "DEFAULT_INITIAL_WINDOW",
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_OUTGOING",
    "DEFAULT_MAX_STREAMS",
    "MAX_WINDOW",
    "MIN_MAX_FRAME",
    "RESET_MEMORY",
    "ConnectionState",
    "DataReceived",
    "ErrorReceived",
    "GoodbyeReceived",
    "RequestReceived",
    "ResponseReceived",
    "RpcConnection",
    "RpcEvent",
    "StreamEnded",
    "StreamKind",
    "StreamOpened",
    "StreamState",
    "StreamWritable",
]

DEFAULT_INITIAL_WINDOW: Final = 262_144
"""Bytes of DATA frames each side may send on a stream before it needs CREDIT."""
DEFAULT_MAX_STREAMS: Final = 64
"""Concurrent requests + streams the peer may have open with us; more are refused."""
DEFAULT_MAX_OUTGOING: Final = 1_048_576
"""Undrained outgoing bytes beyond which application frames raise SendBlocked."""
MIN_MAX_FRAME: Final = 64
"""Smallest allowed max_frame: every control frame, and our refusal, must fit."""
MAX_STREAM_ID: Final = 2**64 - 1
RESET_MEMORY: Final = 1024
"""Streams we closed with ERROR whose in-flight DATA/END/RESPONSE we still drop quietly."""
_REFUSAL_MESSAGE: Final = "too many concurrent streams"
_RECV_INPUT: Final = {
    FrameType.RESPONSE: StreamInput.RECV_RESPONSE,
    FrameType.DATA: StreamInput.RECV_DATA,
    FrameType.END: StreamInput.RECV_END,
    FrameType.ERROR: StreamInput.RECV_ERROR,
    FrameType.CREDIT: StreamInput.RECV_CREDIT,
}


class RpcConnection:
    """One RPC session over one byte stream; see the module docstring.

    Local actions raise ``RpcUsageError`` (``SendBlocked`` when flow control or the
    outgoing buffer say "later") and then change nothing. ``receive_data`` raises an
    ``RpcProtocolError`` subclass when the peer misbehaves, after which every method
    raises ``RpcUsageError``.
    """

    def __init__(
        self,
        *,
        client: bool,
        max_frame: int = DEFAULT_MAX_FRAME,
        initial_window: int = DEFAULT_INITIAL_WINDOW,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_outgoing: int = DEFAULT_MAX_OUTGOING,
    ) -> None:
        """``client`` is True on the side that initiated the connection (odd stream ids).

        Raises ValueError if ``max_frame < MIN_MAX_FRAME``, if ``initial_window`` or
        ``max_outgoing`` cannot hold one maximal frame, or if ``max_streams < 1``.
        """
        largest = max_frame + LENGTH_PREFIX_SIZE
        if max_frame < MIN_MAX_FRAME or initial_window < largest or max_outgoing < largest:
            raise ValueError(
                f"need max_frame >= {MIN_MAX_FRAME}, and initial_window and max_outgoing "
                "each >= max_frame + 4"
            )
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self.client = client
        self.state = ConnectionState.OPEN
        self._max_frame = max_frame
        self._initial_window = initial_window
        self._max_streams = max_streams
        self._max_outgoing = max_outgoing
        # Grant when half the window is consumed, but never later than the point where
        # a sender could be stuck below one maximal frame (which would deadlock).
        self._credit_threshold = max(1, min(initial_window // 2, initial_window - largest + 1))
        self._reader = FrameReader(max_frame)
        self._out = bytearray()
        self._streams: dict[int, Stream] = {}
        self._next_id = 1 if client else 2
        self._highest_local = 0
        self._highest_remote = 0
        self._peer_streams = 0
        self._reset: dict[int, None] = {}  # insertion-ordered set, oldest first
        self._eof = False

    def __repr__(self) -> str:
        role = "client" if self.client else "server"
        return f"<RpcConnection {role} {self.state.name} streams={len(self._streams)}>"

    # ----------------------------------------------------------------- queries

    @property
    def receive_buffer_size(self) -> int:
        """Unparsed bytes held (at most ``max_frame``)."""
        return self._reader.buffered

    @property
    def outgoing_buffer_size(self) -> int:
        """Bytes queued and not yet taken by ``data_to_send()``."""
        return len(self._out)

    def stream_state(self, stream_id: int) -> StreamState:
        """IDLE for ids not used yet, CLOSED for finished ones."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream.state
        return StreamState.CLOSED if self._was_used(stream_id) else StreamState.IDLE

    def send_window(self, stream_id: int) -> int:
        """Flow bytes we may still send on a live stream. Raises RpcUsageError if not live."""
        return self._live(stream_id).send_window

    def unconsumed(self, stream_id: int) -> int:
        """Received flow bytes not yet passed to ``consume()`` (0 once the stream is closed)."""
        stream = self._streams.get(stream_id)
        return 0 if stream is None else stream.unconsumed

    def data_frame_size(self, stream_id: int, body: Any) -> int:
        """Flow bytes ``send_data(stream_id, body)`` would use; compare to ``send_window``.

        Raises RpcUsageError if ``body`` is outside the data model or too large.
        """
        self._live(stream_id)
        return len(self._encode(Frame(FrameType.DATA, stream_id, body=body)))

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> list[RpcEvent]:
        """Feed bytes from the peer, chunked any way (``b""`` = EOF); return the events.

        Raises FrameTooLarge, MalformedFrame, BadStreamId, UnknownStream,
        UnexpectedFrame, FlowControlViolation or ConnectionLost (EOF before GOODBYE)
        when the peer misbehaves; RpcUsageError if called after a failure or after EOF.
        """
        self._require_not_failed()
        if self._eof:
            raise RpcUsageError("receive_data() called after EOF")
        try:
            if not data:
                self._eof = True
                self._remote_step(ConnectionInput.RECV_EOF)
                return []
            return self._receive_bytes(memoryview(data))
        except RpcProtocolError:
            self.state = ConnectionState.ERROR
            self._reader = FrameReader(self._max_frame)  # drop every buffer at once
            self._out.clear()
            self._streams.clear()
            raise

    def _receive_bytes(self, view: memoryview) -> list[RpcEvent]:
        events: list[RpcEvent] = []
        pos = 0
        while pos < len(view):
            self._remote_step(ConnectionInput.RECV_BYTES)
            taken, payload = self._reader.feed(view[pos:])
            pos += taken
            if payload is not None:
                flow = len(payload) + LENGTH_PREFIX_SIZE
                event = self._on_frame(parse_frame(payload), flow)
                if event is not None:
                    events.append(event)
        return events

    def _on_frame(self, frame: Frame, flow: int) -> RpcEvent | None:
        if frame.type is FrameType.GOODBYE:
            self._remote_step(ConnectionInput.RECV_GOODBYE)
            return GoodbyeReceived()
        if frame.type in (FrameType.REQUEST, FrameType.OPEN):
            return self._on_open(frame)
        stream = self._known_stream(frame.stream_id)
        if stream is None:
            self._on_closed_stream(frame)
            return None
        target = stream.target(_RECV_INPUT[frame.type])
        if target is None:
            raise UnexpectedFrame(
                f"the peer sent {frame.type.name} on {stream.kind.value} {stream.stream_id} "
                f"while it was {stream.state.value}"
            )
        event = self._apply_remote(stream, frame, flow, target)
        self._set_state(stream, target)
        return event

    def _on_open(self, frame: Frame) -> RpcEvent | None:
        sid = frame.stream_id
        if sid == 0 or self._is_local_id(sid):
            raise BadStreamId(f"the peer opened stream {sid}, an id of the wrong parity")
        if sid <= self._highest_remote:
            raise BadStreamId(f"the peer reused stream id {sid} (ids must increase)")
        self._highest_remote = sid
        kind = StreamKind.REQUEST if frame.type is FrameType.REQUEST else StreamKind.DUPLEX
        if self._peer_streams >= self._max_streams:
            self._refuse(sid, kind)
            return None
        stream = self._new_stream(sid, kind, local=False)
        self._set_state(stream, stream.opening_target())
        if kind is StreamKind.REQUEST:
            return RequestReceived(sid, frame.method, frame.body)
        return StreamOpened(sid, frame.method, frame.body)

    def _refuse(self, sid: int, kind: StreamKind) -> None:
        if self._allows(ConnectionInput.SEND_FRAME):
            refusal = Frame(
                FrameType.ERROR, sid, reason=Reason.TOO_MANY_STREAMS.value, message=_REFUSAL_MESSAGE
            )
            self._push(encode_frame(refusal), budget=False)
        if kind is StreamKind.DUPLEX:  # its DATA may already be on the way
            self._remember_reset(sid)

    def _known_stream(self, sid: int) -> Stream | None:
        """The live stream ``sid``, None if it was used and is closed; raises otherwise."""
        if sid == 0:
            raise BadStreamId("stream id 0 is never used")
        stream = self._streams.get(sid)
        if stream is None and not self._was_used(sid):
            raise UnknownStream(f"the peer sent a frame on stream {sid}, which was never opened")
        return stream

    def _on_closed_stream(self, frame: Frame) -> None:
        sid = frame.stream_id
        if frame.type in (FrameType.CREDIT, FrameType.ERROR):
            # Harmless crossings: credit or a cancel sent before our END/RESPONSE/ERROR arrived.
            if frame.type is FrameType.ERROR:
                self._reset.pop(sid, None)
            return
        if sid not in self._reset:
            raise UnexpectedFrame(f"the peer sent {frame.type.name} on closed stream {sid}")
        if frame.type is not FrameType.DATA:  # END / RESPONSE: the peer's last word
            del self._reset[sid]

    def _apply_remote(
        self, stream: Stream, frame: Frame, flow: int, target: StreamState
    ) -> RpcEvent | None:
        sid = stream.stream_id
        match frame.type:
            case FrameType.RESPONSE:
                return ResponseReceived(sid, frame.body)
            case FrameType.DATA:
                stream.take_data(flow)
                return DataReceived(sid, frame.body, flow)
            case FrameType.END:
                return StreamEnded(sid)
            case FrameType.ERROR:
                return ErrorReceived(sid, frame.reason, frame.message)
        # CREDIT (the only frame type left).
        stream.take_credit(frame.credit)
        return StreamWritable(sid) if target in LOCAL_SENDING else None

    # ----------------------------------------------------------------- local actions

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued for the peer. Raises RpcUsageError after a failure."""
        self._require_not_failed()
        out = bytes(self._out)
        self._out.clear()
        return out

    def request(self, method: str, body: Any) -> int:
        """Send a REQUEST and return its stream id; expect one ResponseReceived or ErrorReceived.

        Raises RpcUsageError (bad method/body, frame too large, after a GOODBYE) or
        SendBlocked (outgoing buffer full).
        """
        return self._open_local(StreamKind.REQUEST, method, body)

    def open_stream(self, method: str, body: Any) -> int:
        """Send OPEN for a duplex stream and return its id. Raises like ``request``."""
        return self._open_local(StreamKind.DUPLEX, method, body)

    def respond(self, stream_id: int, body: Any) -> None:
        """Answer the peer's request ``stream_id``, which closes it.

        Raises RpcUsageError (not a pending request of the peer, e.g. answered twice;
        bad body) or SendBlocked.
        """
        stream, target = self._local_step(stream_id, StreamInput.SEND_RESPONSE)
        self._push(self._encode(Frame(FrameType.RESPONSE, stream_id, body=body)), budget=True)
        self._set_state(stream, target)

    def send_data(self, stream_id: int, body: Any) -> None:
        """Send DATA on an open stream.

        Raises SendBlocked if the frame exceeds the stream's send window (retry after
        StreamWritable) or the outgoing buffer is full; RpcUsageError if the stream is
        not open for sending or the body is unacceptable. Nothing is queued on error.
        """
        stream, target = self._local_step(stream_id, StreamInput.SEND_DATA)
        wire = self._encode(Frame(FrameType.DATA, stream_id, body=body))
        if len(wire) > stream.send_window:
            raise SendBlocked(
                f"stream {stream_id}: a {len(wire)}-byte DATA frame exceeds the "
                f"{stream.send_window}-byte send window; wait for StreamWritable"
            )
        self._push(wire, budget=True)
        stream.send_window -= len(wire)
        self._set_state(stream, target)

    def end_stream(self, stream_id: int) -> None:
        """Half-close our side of a duplex stream. Raises RpcUsageError if not allowed now."""
        stream, target = self._local_step(stream_id, StreamInput.SEND_END)
        self._push(encode_frame(Frame(FrameType.END, stream_id)), budget=False)
        self._set_state(stream, target)

    def send_error(self, stream_id: int, reason: str, message: str) -> None:
        """End a request or stream with an error (reject, or cancel our own request).

        ``reason`` is machine-readable (see ``rpc_errors.Reason``). Raises
        RpcUsageError (stream not live, bad texts, frame too large) or SendBlocked.
        """
        _require_text("reason", reason, nonempty=True)
        _require_text("message", message)
        stream, target = self._local_step(stream_id, StreamInput.SEND_ERROR)
        frame = Frame(FrameType.ERROR, stream_id, reason=str(reason), message=str(message))
        self._push(self._encode(frame), budget=True)
        if stream.state in REMOTE_SENDING:
            self._remember_reset(stream_id)
        self._set_state(stream, target)

    def consume(self, stream_id: int, nbytes: int) -> None:
        """Tell the machine the application is done with ``nbytes`` received flow bytes.

        Sends CREDIT once enough is consumed. A no-op for streams that are closed (and
        after our GOODBYE). Raises RpcUsageError for a negative count, more than was
        received, or a stream id never used.
        """
        self._require_not_failed()
        if type(nbytes) is not int or nbytes < 0:
            raise RpcUsageError(f"consume() needs a non-negative int, got {nbytes!r}")
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._was_used(stream_id):
                return
            raise RpcUsageError(f"stream {stream_id} was never opened")
        if nbytes > stream.unconsumed:
            raise RpcUsageError(
                f"consume({stream_id}, {nbytes}): only {stream.unconsumed} bytes are unconsumed"
            )
        stream.unconsumed -= nbytes
        stream.pending_credit += nbytes
        if stream.pending_credit >= self._credit_threshold:
            self._grant(stream)

    def goodbye(self) -> None:
        """End the session on our side; after it nothing more is sent.

        Raises RpcUsageError if we already said goodbye or the connection failed.
        """
        self._local_conn_step(ConnectionInput.SEND_GOODBYE)
        self._push(encode_frame(Frame(FrameType.GOODBYE)), budget=False)
        self.state = CONNECTION_TRANSITIONS[self.state][ConnectionInput.SEND_GOODBYE]

    # ----------------------------------------------------------------- helpers

    def _open_local(self, kind: StreamKind, method: str, body: Any) -> int:
        self._local_conn_step(ConnectionInput.OPEN_STREAM)
        _require_text("method", method)
        sid = self._next_id
        if sid > MAX_STREAM_ID:
            raise RpcUsageError("stream ids are exhausted; open a new connection")
        frame_type = FrameType.REQUEST if kind is StreamKind.REQUEST else FrameType.OPEN
        self._push(self._encode(Frame(frame_type, sid, method=method, body=body)), budget=True)
        self._next_id += 2
        self._highest_local = sid
        stream = self._new_stream(sid, kind, local=True)
        self._set_state(stream, stream.opening_target())
        return sid

    def _grant(self, stream: Stream) -> None:
        if stream.target(StreamInput.SEND_CREDIT) is None:
            return  # the peer sends no more DATA on this stream
        if not self._allows(ConnectionInput.SEND_FRAME):
            return  # we said goodbye
        credit = Frame(FrameType.CREDIT, stream.stream_id, credit=stream.grant())
        self._push(encode_frame(credit), budget=False)

    def _new_stream(self, sid: int, kind: StreamKind, *, local: bool) -> Stream:
        window = self._initial_window if kind is StreamKind.DUPLEX else 0
        stream = Stream(sid, kind, local, send_window=window, recv_window=window)
        self._streams[sid] = stream
        if not local:
            self._peer_streams += 1
        return stream

    def _set_state(self, stream: Stream, target: StreamState) -> None:
        stream.state = target
        if target is StreamState.CLOSED:
            del self._streams[stream.stream_id]
            if not stream.local:
                self._peer_streams -= 1

    def _remember_reset(self, sid: int) -> None:
        self._reset[sid] = None
        if len(self._reset) > RESET_MEMORY:
            del self._reset[next(iter(self._reset))]

    def _local_step(self, stream_id: int, inp: StreamInput) -> tuple[Stream, StreamState]:
        self._local_conn_step(ConnectionInput.SEND_FRAME)
        stream = self._live(stream_id)
        target = stream.target(inp)
        if target is None:
            raise RpcUsageError(
                f"cannot {inp.value} on {stream.kind.value} {stream_id} "
                f"while it is {stream.state.value}"
            )
        return stream, target

    def _live(self, stream_id: int) -> Stream:
        self._require_not_failed()
        stream = self._streams.get(stream_id)
        if stream is None:
            state = "closed" if self._was_used(stream_id) else "never opened"
            raise RpcUsageError(f"stream {stream_id!r} is not live ({state})")
        return stream

    def _local_conn_step(self, inp: ConnectionInput) -> None:
        self._require_not_failed()
        if not self._allows(inp):
            raise RpcUsageError(f"cannot {inp.value}: the session is {self.state.value}")

    def _remote_step(self, inp: ConnectionInput) -> None:
        target = CONNECTION_TRANSITIONS[self.state].get(inp)
        if target is not None:
            self.state = target
        elif inp is ConnectionInput.RECV_EOF:
            where = "in the middle of a frame" if self._reader.mid_frame else "between frames"
            raise ConnectionLost(
                f"the byte stream ended {where}, before the peer's GOODBYE: the connection "
                "dropped or the peer crashed; replies may be missing"
            )
        else:
            raise UnexpectedFrame(f"the peer sent more bytes after its GOODBYE ({inp.value})")

    def _allows(self, inp: ConnectionInput) -> bool:
        return inp in CONNECTION_TRANSITIONS[self.state]

    def _require_not_failed(self) -> None:
        if self.state is ConnectionState.ERROR:
            raise RpcUsageError("the RPC connection failed with a protocol error; drop it")

    def _encode(self, frame: Frame) -> bytes:
        try:
            wire = encode_frame(frame)
        except codec.CodecError as exc:
            raise RpcUsageError(f"cannot send {frame.type.name}: {exc}") from exc
        if len(wire) - LENGTH_PREFIX_SIZE > self._max_frame:
            raise RpcUsageError(
                f"a {frame.type.name} frame of {len(wire) - LENGTH_PREFIX_SIZE} bytes exceeds "
                f"max_frame ({self._max_frame}); split the body"
            )
        return wire

    def _push(self, wire: bytes, budget: bool) -> None:
        if budget and len(self._out) + len(wire) > self._max_outgoing:
            raise SendBlocked(
                f"{len(self._out)} bytes are waiting to be sent; call data_to_send() first"
            )
        self._out += wire

    def _is_local_id(self, sid: int) -> bool:
        return (sid % 2 == 1) == self.client

    def _was_used(self, sid: object) -> bool:
        if type(sid) is not int or sid < 1:
            return False
        return sid <= (self._highest_local if self._is_local_id(sid) else self._highest_remote)


def _require_text(name: str, value: object, *, nonempty: bool = False) -> None:
    if not isinstance(value, str) or (nonempty and not value):
        raise RpcUsageError(f"{name} must be a {'non-empty ' if nonempty else ''}str")
