"""RPC machine: two ends wired in memory, the wrong frame at every step, flow control, limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from p2pcrew import codec
from p2pcrew.replicate.rpc import (
    DEFAULT_MAX_FRAME,
    MAX_WINDOW,
    RESET_MEMORY,
    ConnectionState,
    DataReceived,
    ErrorReceived,
    GoodbyeReceived,
    RequestReceived,
    ResponseReceived,
    RpcConnection,
    RpcEvent,
    StreamEnded,
    StreamOpened,
    StreamState,
    StreamWritable,
)
from p2pcrew.replicate.rpc_errors import (
    BadStreamId,
    ConnectionLost,
    FlowControlViolation,
    FrameTooLarge,
    MalformedFrame,
    Reason,
    RpcProtocolError,
    RpcUsageError,
    SendBlocked,
    UnexpectedFrame,
    UnknownStream,
)

# Small limits so flow control and buffers are exercised with tiny bodies.
SMALL: dict[str, int] = {"max_frame": 64, "initial_window": 200, "max_outgoing": 400}


def frame(*items: Any) -> bytes:
    """A raw frame as a (possibly misbehaving) peer would write it."""
    payload = codec.encode(list(items))
    return len(payload).to_bytes(4, "big") + payload


def prefixed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


class ConnectionPair:
    """Two machines wired back to back in memory, like h11's test helper."""

    def __init__(self, **kwargs: Any) -> None:
        self.client = RpcConnection(client=True, **kwargs)
        self.server = RpcConnection(client=False, **kwargs)

    def other(self, conn: RpcConnection) -> RpcConnection:
        return self.server if conn is self.client else self.client

    def deliver(self, sender: RpcConnection) -> list[RpcEvent]:
        """Move what ``sender`` queued to the other end; return the other end's events."""
        data = sender.data_to_send()
        return self.other(sender).receive_data(data) if data else []

    def pump(self) -> tuple[list[RpcEvent], list[RpcEvent]]:
        """Deliver both ways until quiet; return (client events, server events)."""
        client_events: list[RpcEvent] = []
        server_events: list[RpcEvent] = []
        while self.client.outgoing_buffer_size or self.server.outgoing_buffer_size:
            server_events += self.deliver(self.client)
            client_events += self.deliver(self.server)
        return client_events, server_events


@pytest.fixture
def pair() -> ConnectionPair:
    return ConnectionPair()


def open_duplex(pair: ConnectionPair, **body: Any) -> int:
    sid = pair.client.open_stream("chat", body or None)
    pair.pump()
    return sid


# ----------------------------------------------------------------------------- wire format


def test_request_frame_bytes_match_the_documented_format() -> None:
    client = RpcConnection(client=True)
    client.request("ping", None)
    # length 9, then [0, 1, "ping", null]
    assert client.data_to_send() == bytes.fromhex("000000098400016470696e67f6")


def test_every_frame_type_has_the_documented_layout(pair: ConnectionPair) -> None:
    c, s = pair.client, pair.server
    sid = c.open_stream("m", 1)
    assert c.data_to_send() == frame(2, 1, "m", 1)
    s.receive_data(frame(2, 1, "m", 1))
    s.send_data(1, b"x")
    assert s.data_to_send() == frame(3, 1, b"x")
    s.end_stream(sid)
    assert s.data_to_send() == frame(4, 1)
    s.send_error(sid, "internal", "boom")
    assert s.data_to_send() == frame(5, 1, "internal", "boom")
    s.receive_data(frame(0, 3, "q", [1]))
    s.respond(3, {"ok": True})
    assert s.data_to_send() == frame(1, 3, {"ok": True})
    s.goodbye()
    assert s.data_to_send() == frame(7)


def test_credit_frame_layout() -> None:
    # A window of one maximal frame makes the machine grant at once.
    server = RpcConnection(client=False, max_frame=64, initial_window=68)
    server.receive_data(frame(2, 1, "m", None))
    events = server.receive_data(frame(3, 1, bytes(50)))
    assert isinstance(events[0], DataReceived)
    server.consume(1, events[0].flow_bytes)
    assert server.data_to_send() == frame(6, 1, events[0].flow_bytes)


# ----------------------------------------------------------------------------- happy paths


def test_request_and_response(pair: ConnectionPair) -> None:
    sid = pair.client.request("ping", {"n": 1})
    _, server_events = pair.pump()
    assert server_events == [RequestReceived(sid, "ping", {"n": 1})]
    assert pair.server.stream_state(sid) is StreamState.HALF_CLOSED_REMOTE
    pair.server.respond(sid, {"pong": 1})
    client_events, _ = pair.pump()
    assert client_events == [ResponseReceived(sid, {"pong": 1})]
    assert pair.client.stream_state(sid) is StreamState.CLOSED
    assert pair.server.stream_state(sid) is StreamState.CLOSED


def test_stream_ids_have_parity_and_increase(pair: ConnectionPair) -> None:
    assert [pair.client.request("a", None) for _ in range(3)] == [1, 3, 5]
    assert [pair.server.open_stream("b", None) for _ in range(2)] == [2, 4]
    client_events, server_events = pair.pump()
    assert [e.stream_id for e in server_events if isinstance(e, RequestReceived)] == [1, 3, 5]
    assert [e.stream_id for e in client_events if isinstance(e, StreamOpened)] == [2, 4]


def test_duplex_stream_both_directions(pair: ConnectionPair) -> None:
    sid = pair.client.open_stream("chat", {"room": "a"})
    _, server_events = pair.pump()
    assert server_events == [StreamOpened(sid, "chat", {"room": "a"})]
    pair.client.send_data(sid, "hello")
    pair.server.send_data(sid, "hi")
    pair.server.send_data(sid, "there")
    client_events, server_events = pair.pump()
    assert [e.body for e in client_events if isinstance(e, DataReceived)] == ["hi", "there"]
    assert server_events == [DataReceived(sid, "hello", len(frame(3, sid, "hello")))]


def test_half_close_then_close(pair: ConnectionPair) -> None:
    sid = open_duplex(pair)
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    assert server_events == [StreamEnded(sid)]
    assert pair.client.stream_state(sid) is StreamState.HALF_CLOSED_LOCAL
    assert pair.server.stream_state(sid) is StreamState.HALF_CLOSED_REMOTE
    with pytest.raises(RpcUsageError):
        pair.client.send_data(sid, "late")
    pair.server.send_data(sid, "still flowing")
    pair.server.end_stream(sid)
    client_events, _ = pair.pump()
    assert client_events[-1] == StreamEnded(sid)
    assert [type(e) for e in client_events] == [DataReceived, StreamEnded]
    assert pair.client.stream_state(sid) is StreamState.CLOSED
    assert pair.server.stream_state(sid) is StreamState.CLOSED


def test_error_ends_a_stream_with_its_reason(pair: ConnectionPair) -> None:
    sid = open_duplex(pair)
    pair.server.send_error(sid, Reason.BAD_REQUEST, "room does not exist")
    client_events, _ = pair.pump()
    assert client_events == [ErrorReceived(sid, "bad-request", "room does not exist")]
    assert isinstance(client_events[0], ErrorReceived)
    assert type(client_events[0].reason) is str
    assert pair.client.stream_state(sid) is StreamState.CLOSED
    with pytest.raises(RpcUsageError):
        pair.client.send_data(sid, "x")


def test_unknown_method_answered_by_the_application(pair: ConnectionPair) -> None:
    handlers = {"ping": lambda body: "pong"}

    def serve(events: list[RpcEvent]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                handler = handlers.get(event.method)
                if handler is None:
                    pair.server.send_error(
                        event.stream_id, Reason.UNKNOWN_METHOD, f"no method {event.method!r}"
                    )
                else:
                    pair.server.respond(event.stream_id, handler(event.body))

    ok = pair.client.request("ping", None)
    bad = pair.client.request("launch", None)
    serve(pair.pump()[1])
    client_events, _ = pair.pump()
    assert client_events == [
        ResponseReceived(ok, "pong"),
        ErrorReceived(bad, "unknown-method", "no method 'launch'"),
    ]


def test_goodbye_both_ways(pair: ConnectionPair) -> None:
    sid = pair.client.request("last", None)
    pair.client.goodbye()
    assert pair.client.state is ConnectionState.GOODBYE_SENT
    _, server_events = pair.pump()
    assert server_events == [RequestReceived(sid, "last", None), GoodbyeReceived()]
    assert pair.server.state is ConnectionState.GOODBYE_RECEIVED
    with pytest.raises(RpcUsageError):
        pair.server.request("too late", None)  # no answer could ever come
    pair.server.respond(sid, "answered anyway")
    pair.server.goodbye()
    client_events, _ = pair.pump()
    assert client_events == [ResponseReceived(sid, "answered anyway"), GoodbyeReceived()]
    assert {pair.client.state, pair.server.state} == {ConnectionState.DONE}
    assert pair.client.receive_data(b"") == []
    assert pair.server.receive_data(b"") == []


def test_eof_without_goodbye_is_connection_lost(pair: ConnectionPair) -> None:
    pair.client.goodbye()
    pair.pump()
    assert pair.server.receive_data(b"") == []  # the client said goodbye: a clean EOF
    with pytest.raises(ConnectionLost) as info:
        pair.client.receive_data(b"")  # the server never did
    assert isinstance(info.value, EOFError)
    assert info.value.reason == "connection-lost"
    assert pair.client.state is ConnectionState.ERROR


def test_eof_in_the_middle_of_a_frame_is_connection_lost() -> None:
    server = RpcConnection(client=False)
    server.receive_data(frame(0, 1, "m", None)[:5])
    with pytest.raises(ConnectionLost, match="middle of a frame"):
        server.receive_data(b"")


def test_after_a_protocol_error_every_call_raises() -> None:
    server = RpcConnection(client=False)
    server.receive_data(frame(2, 1, "m", None))
    with pytest.raises(UnknownStream):
        server.receive_data(frame(3, 9, None))
    assert server.state is ConnectionState.ERROR
    calls = [
        lambda: server.receive_data(b"x"),
        lambda: server.receive_data(b""),
        server.data_to_send,
        lambda: server.request("m", None),
        lambda: server.send_data(1, None),
        lambda: server.consume(1, 0),
        server.goodbye,
    ]
    for call in calls:
        with pytest.raises(RpcUsageError):
            call()


def test_receive_after_eof_is_a_usage_error(pair: ConnectionPair) -> None:
    pair.client.goodbye()
    pair.pump()
    pair.server.receive_data(b"")
    with pytest.raises(RpcUsageError):
        pair.server.receive_data(b"more")


# ----------------------------------------------------------------------------- chunking


def test_frames_split_across_calls_and_packed_together() -> None:
    data = frame(0, 1, "a", "x" * 40) + frame(2, 3, "b", None) + frame(3, 3, b"\x00" * 30)
    whole = RpcConnection(client=False).receive_data(data)
    bytewise = RpcConnection(client=False)
    events: list[RpcEvent] = []
    for i in range(len(data)):
        events += bytewise.receive_data(data[i : i + 1])
        assert bytewise.receive_buffer_size <= DEFAULT_MAX_FRAME
    assert events == whole
    assert [type(e) for e in whole] == [RequestReceived, StreamOpened, DataReceived]


def test_a_frame_of_exactly_max_frame_is_accepted() -> None:
    server = RpcConnection(client=False, **SMALL)
    raw = frame(0, 1, "m", bytes(56))  # 84 00 01 61 6d 58 38 + 56 bytes = 63... plus one
    raw = frame(0, 1, "mm", bytes(56))
    assert len(raw) - 4 == 64
    assert isinstance(server.receive_data(raw)[0], RequestReceived)
    with pytest.raises(FrameTooLarge):
        server.receive_data(frame(0, 3, "mmm", bytes(56)))


# ----------------------------------------------------------------------------- framing errors


def test_oversized_length_is_rejected_before_the_body_arrives() -> None:
    server = RpcConnection(client=False, **SMALL)
    with pytest.raises(FrameTooLarge) as info:
        server.receive_data((65).to_bytes(4, "big"))
    assert info.value.reason == "frame-too-large"
    assert server.receive_buffer_size == 0


def test_oversized_length_split_across_calls() -> None:
    server = RpcConnection(client=False)
    assert server.receive_data(b"\xff\xff") == []
    with pytest.raises(FrameTooLarge):
        server.receive_data(b"\xff\xff")


def test_zero_length_frame_is_malformed() -> None:
    with pytest.raises(MalformedFrame):
        RpcConnection(client=False).receive_data(bytes(4))


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (bytes.fromhex("84 18 00 01 61 6d f6"), "non-canonical integer"),
        (bytes.fromhex("84 00 01 61"), "truncated"),
        (bytes.fromhex("84 00 01 61 6d f6 00"), "trailing byte"),
        (bytes.fromhex("9f 00 01 61 6d f6 ff"), "indefinite array"),
        (bytes.fromhex("84 00 01 61 6d f9 3c 00"), "float body"),
        (bytes.fromhex("84 00 01 61 6d c1 00"), "tagged body"),
    ],
)
def test_bad_cbor_is_malformed(payload: bytes, why: str) -> None:
    with pytest.raises(MalformedFrame) as info:
        RpcConnection(client=False).receive_data(prefixed(payload))
    assert isinstance(info.value.__cause__, codec.CodecError), why


def test_non_canonical_cbor_keeps_its_cause() -> None:
    with pytest.raises(MalformedFrame) as info:
        RpcConnection(client=False).receive_data(prefixed(bytes.fromhex("84 18 00 01 61 6d f6")))
    assert isinstance(info.value.__cause__, codec.NonCanonicalCBOR)


@pytest.mark.parametrize(
    "items",
    [
        pytest.param({"type": 0}, id="map not array"),
        pytest.param("frame", id="text not array"),
        pytest.param([], id="empty array"),
        pytest.param([8, 1], id="unknown type"),
        pytest.param([-1, 1], id="negative type"),
        pytest.param([True, 1, "m", None], id="bool type"),
        pytest.param(["0", 1, "m", None], id="text type"),
        pytest.param([0, 1, "m"], id="REQUEST short"),
        pytest.param([0, 1, "m", None, None], id="REQUEST long"),
        pytest.param([1, 1], id="RESPONSE short"),
        pytest.param([2, 1, "m"], id="OPEN short"),
        pytest.param([3, 1], id="DATA short"),
        pytest.param([4, 1, None], id="END long"),
        pytest.param([5, 1, "r"], id="ERROR short"),
        pytest.param([6, 1], id="CREDIT short"),
        pytest.param([7, 0], id="GOODBYE long"),
        pytest.param([0, 1, 5, None], id="method int"),
        pytest.param([0, 1, b"m", None], id="method bytes"),
        pytest.param([0, -1, "m", None], id="negative id"),
        pytest.param([0, "1", "m", None], id="text id"),
        pytest.param([0, False, "m", None], id="bool id"),
        pytest.param([0, None, "m", None], id="null id"),
        pytest.param([5, 1, b"r", "m"], id="reason bytes"),
        pytest.param([5, 1, "r", 7], id="message int"),
        pytest.param([6, 1, 0], id="zero credit"),
        pytest.param([6, 1, -5], id="negative credit"),
        pytest.param([6, 1, "5"], id="text credit"),
    ],
)
def test_wrong_shape_or_types_are_malformed(items: Any) -> None:
    with pytest.raises(MalformedFrame) as info:
        RpcConnection(client=False).receive_data(prefixed(codec.encode(items)))
    assert info.value.reason == "malformed-frame"


# ----------------------------------------------------------------------------- the wrong frame


@pytest.mark.parametrize(
    ("setup", "bad", "error"),
    [
        pytest.param([], frame(3, 1, None), UnknownStream, id="DATA on unopened peer id"),
        pytest.param([], frame(3, 2, None), UnknownStream, id="DATA on unopened own id"),
        pytest.param([], frame(4, 1), UnknownStream, id="END on unopened"),
        pytest.param([], frame(6, 1, 10), UnknownStream, id="CREDIT on unopened"),
        pytest.param([], frame(5, 1, "r", "m"), UnknownStream, id="ERROR on unopened"),
        pytest.param([], frame(1, 2, None), UnknownStream, id="RESPONSE to nothing"),
        pytest.param([], frame(0, 2, "m", None), BadStreamId, id="REQUEST wrong parity"),
        pytest.param([], frame(2, 4, "m", None), BadStreamId, id="OPEN wrong parity"),
        pytest.param([], frame(0, 0, "m", None), BadStreamId, id="REQUEST id 0"),
        pytest.param([], frame(3, 0, None), BadStreamId, id="DATA id 0"),
        pytest.param([frame(0, 1, "m", None)], frame(0, 1, "m", None), BadStreamId, id="reuse"),
        pytest.param([frame(2, 5, "m", None)], frame(2, 3, "m", None), BadStreamId, id="decrease"),
        pytest.param(
            [frame(0, 1, "m", None)], frame(3, 1, None), UnexpectedFrame, id="DATA on request"
        ),
        pytest.param(
            [frame(0, 1, "m", None)], frame(1, 1, None), UnexpectedFrame, id="RESPONSE own ask"
        ),
        pytest.param(
            [frame(0, 1, "m", None)], frame(6, 1, 9), UnexpectedFrame, id="CREDIT on request"
        ),
        pytest.param([frame(0, 1, "m", None)], frame(4, 1), UnexpectedFrame, id="END on request"),
        pytest.param(
            [frame(2, 1, "m", None)], frame(1, 1, None), UnexpectedFrame, id="RESPONSE on stream"
        ),
        pytest.param(
            [frame(2, 1, "m", None), frame(4, 1)],
            frame(3, 1, None),
            UnexpectedFrame,
            id="DATA after END",
        ),
        pytest.param(
            [frame(2, 1, "m", None), frame(4, 1)], frame(4, 1), UnexpectedFrame, id="END twice"
        ),
        pytest.param(
            [frame(2, 1, "m", None), frame(5, 1, "r", "m")],
            frame(3, 1, None),
            UnexpectedFrame,
            id="DATA after peer ERROR",
        ),
        pytest.param([frame(7)], frame(0, 1, "m", None), UnexpectedFrame, id="after GOODBYE"),
        pytest.param([frame(7)], frame(7), UnexpectedFrame, id="GOODBYE twice"),
        pytest.param([frame(7)], b"\x00", UnexpectedFrame, id="one byte after GOODBYE"),
    ],
)
def test_the_wrong_frame_raises_the_specific_error(
    setup: list[bytes], bad: bytes, error: type[RpcProtocolError]
) -> None:
    server = RpcConnection(client=False)
    for raw in setup:
        server.receive_data(raw)
    with pytest.raises(error) as info:
        server.receive_data(bad)
    assert info.value.reason == error.reason
    assert server.state is ConnectionState.ERROR


def test_data_on_a_cleanly_closed_stream_is_unexpected(pair: ConnectionPair) -> None:
    sid = open_duplex(pair)
    pair.client.end_stream(sid)
    pair.server.end_stream(sid)
    pair.pump()
    with pytest.raises(UnexpectedFrame):
        pair.server.receive_data(frame(3, sid, None))


def test_response_after_the_response_is_unexpected(pair: ConnectionPair) -> None:
    sid = pair.client.request("m", None)
    pair.pump()
    pair.server.respond(sid, 1)
    pair.pump()
    with pytest.raises(UnexpectedFrame):
        pair.client.receive_data(frame(1, sid, 2))


def test_error_reasons_are_stable_names() -> None:
    assert {cls.reason for cls in RpcProtocolError.__subclasses__()} == {
        "frame-too-large",
        "malformed-frame",
        "unknown-stream",
        "bad-stream-id",
        "unexpected-frame",
        "flow-control",
        "connection-lost",
    }
    assert [r.value for r in Reason] == [
        "unknown-method",
        "bad-request",
        "too-many-streams",
        "flow-control",
        "internal",
    ]


# ----------------------------------------------------------------------------- races


def test_late_frames_after_our_error_are_dropped(pair: ConnectionPair) -> None:
    sid = open_duplex(pair)
    pair.client.send_data(sid, "in flight")
    pair.client.end_stream(sid)
    pair.server.send_error(sid, Reason.INTERNAL, "giving up")  # crosses the DATA and END
    client_events, server_events = pair.pump()
    assert server_events == []
    assert client_events == [ErrorReceived(sid, "internal", "giving up")]
    with pytest.raises(UnexpectedFrame):  # the END was the peer's last word
        pair.server.receive_data(frame(3, sid, None))


def test_crossing_errors_close_quietly(pair: ConnectionPair) -> None:
    sid = open_duplex(pair)
    pair.client.send_error(sid, "a", "")
    pair.server.send_error(sid, "b", "")
    client_events, server_events = pair.pump()
    assert client_events == server_events == []


def test_cancelled_request_drops_the_crossing_response(pair: ConnectionPair) -> None:
    sid = pair.client.request("slow", None)
    pair.pump()
    pair.server.respond(sid, "done")
    pair.client.send_error(sid, "cancelled", "no longer needed")
    client_events, server_events = pair.pump()
    assert client_events == server_events == []


def test_credit_crossing_our_end_is_ignored() -> None:
    # The peer grants credit after its END, before it sees our END.
    client = RpcConnection(client=True, **SMALL)
    sid = client.open_stream("m", None)
    client.data_to_send()
    client.end_stream(sid)
    client.receive_data(frame(4, sid))
    assert client.stream_state(sid) is StreamState.CLOSED
    assert client.receive_data(frame(6, sid, 50)) == []


def test_reset_memory_is_bounded() -> None:
    server = RpcConnection(client=False)
    last = 2 * (RESET_MEMORY + 1) - 1
    for sid in range(1, last + 1, 2):  # RESET_MEMORY + 1 streams, each refused by us
        server.receive_data(frame(2, sid, "m", None))
        server.send_error(sid, "no", "")
    server.data_to_send()
    assert server.receive_data(frame(3, last, None)) == []  # remembered: dropped
    with pytest.raises(UnexpectedFrame):  # the oldest was forgotten
        server.receive_data(frame(3, 1, None))


# ----------------------------------------------------------------------------- flow control


def test_peer_ignoring_the_window_is_rejected() -> None:
    server = RpcConnection(client=False, **SMALL)
    server.receive_data(frame(2, 1, "m", None))
    chunk = frame(3, 1, bytes(40))
    assert len(chunk) == 49
    for _ in range(4):  # 196 of 200
        server.receive_data(chunk)
    with pytest.raises(FlowControlViolation) as info:
        server.receive_data(chunk)
    assert info.value.reason == "flow-control"


def test_local_sender_stops_at_the_window_and_resumes_after_credit() -> None:
    pair = ConnectionPair(**SMALL)
    sid = open_duplex(pair)
    body = bytes(40)
    size = pair.client.data_frame_size(sid, body)
    sent = 0
    while pair.client.send_window(sid) >= size:
        pair.client.send_data(sid, body)
        sent += size
    queued = pair.client.outgoing_buffer_size
    with pytest.raises(SendBlocked):
        pair.client.send_data(sid, body)
    assert pair.client.outgoing_buffer_size == queued  # nothing queued on refusal
    assert sent <= 200
    _, server_events = pair.pump()
    flows = [e.flow_bytes for e in server_events if isinstance(e, DataReceived)]
    assert sum(flows) == sent == pair.server.unconsumed(sid)
    assert pair.server.outgoing_buffer_size == 0  # nothing consumed, no credit yet
    for flow in flows:
        pair.server.consume(sid, flow)
    client_events, _ = pair.pump()
    assert client_events == [StreamWritable(sid)]
    pair.client.send_data(sid, body)


def test_credit_waits_for_half_the_window() -> None:
    server = RpcConnection(client=False, max_frame=64, initial_window=1000)
    server.receive_data(frame(2, 1, "m", None))
    chunk = frame(3, 1, bytes(50))  # 59 flow bytes
    for _ in range(8):  # 472 bytes: below half the window, not worth a frame yet
        server.receive_data(chunk)
        server.consume(1, len(chunk))
        assert server.data_to_send() == b""
    server.receive_data(chunk)
    server.consume(1, len(chunk))
    assert server.data_to_send() == frame(6, 1, 9 * 59)


def test_no_credit_once_the_peer_has_ended() -> None:
    server = RpcConnection(client=False, **SMALL)
    chunk = frame(3, 1, bytes(50))
    server.receive_data(frame(2, 1, "m", None) + chunk + chunk + chunk + frame(4, 1))
    server.consume(1, server.unconsumed(1))
    assert server.data_to_send() == b""


def test_no_credit_after_our_goodbye() -> None:
    server = RpcConnection(client=False, max_frame=64, initial_window=68)
    server.receive_data(frame(2, 1, "m", None) + frame(3, 1, bytes(50)))
    server.goodbye()
    server.data_to_send()
    server.consume(1, server.unconsumed(1))
    assert server.data_to_send() == b""


def test_credit_past_the_maximum_window_is_a_violation() -> None:
    client = RpcConnection(client=True)
    sid = client.open_stream("m", None)
    with pytest.raises(FlowControlViolation):
        client.receive_data(frame(6, sid, MAX_WINDOW))


def test_consume_checks_its_arguments(pair: ConnectionPair) -> None:
    sid = open_duplex(pair)
    pair.client.send_data(sid, "x")
    pair.pump()
    with pytest.raises(RpcUsageError):
        pair.server.consume(sid, pair.server.unconsumed(sid) + 1)
    with pytest.raises(RpcUsageError):
        pair.server.consume(sid, -1)
    with pytest.raises(RpcUsageError):
        pair.server.consume(99, 1)  # never opened
    pair.server.send_error(sid, "r", "")
    pair.server.consume(sid, 10**6)  # closed: a no-op


# ----------------------------------------------------------------------------- limits


def test_too_many_streams_is_refused_per_stream_not_per_connection() -> None:
    pair = ConnectionPair(max_streams=2)
    ids = [pair.client.request("m", None) for _ in range(3)]
    client_events, server_events = pair.pump()
    assert [e.stream_id for e in server_events if isinstance(e, RequestReceived)] == ids[:2]
    assert len(server_events) == 2
    assert client_events == [
        ErrorReceived(ids[2], "too-many-streams", "too many concurrent streams")
    ]
    pair.server.respond(ids[0], None)
    pair.pump()
    again = pair.client.request("m", None)
    _, server_events = pair.pump()
    assert server_events == [RequestReceived(again, "m", None)]


def test_a_refused_streams_data_in_flight_is_dropped() -> None:
    server = RpcConnection(client=False, max_streams=1)
    server.receive_data(frame(2, 1, "m", None))
    assert server.receive_data(frame(2, 3, "m", None) + frame(3, 3, "x") + frame(4, 3)) == []
    assert server.data_to_send() == frame(5, 3, "too-many-streams", "too many concurrent streams")


def test_outgoing_buffer_is_bounded() -> None:
    client = RpcConnection(client=True, **SMALL)
    body = "x" * 50
    with pytest.raises(SendBlocked):
        for _ in range(100):
            client.request("m", body)
    assert client.outgoing_buffer_size <= SMALL["max_outgoing"]
    stuck = client.outgoing_buffer_size
    client.data_to_send()
    client.request("m", body)
    assert client.outgoing_buffer_size < stuck


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frame": 63},
        {"max_frame": 1000, "initial_window": 1003},
        {"max_frame": 1000, "max_outgoing": 1003},
        {"max_streams": 0},
    ],
)
def test_configuration_is_checked(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RpcConnection(client=True, **kwargs)


# ----------------------------------------------------------------------------- local misuse


def test_usage_errors_change_nothing(pair: ConnectionPair) -> None:
    req = pair.client.request("m", None)
    duplex = pair.client.open_stream("s", None)
    pair.pump()
    pair.server.respond(req, 1)
    pair.pump()
    misuses: list[Callable[[], object]] = [
        lambda: pair.server.respond(req, 2),  # responding twice
        lambda: pair.client.respond(duplex, 1),  # respond to a stream
        lambda: pair.server.send_data(req, 1),  # closed request
        lambda: pair.client.send_data(12345, 1),  # never opened
        lambda: pair.client.send_data(duplex, 1.5),  # float: outside the data model
        lambda: pair.client.send_data(duplex, {1, 2}),  # set: outside the data model
        lambda: pair.client.send_data(duplex, bytes(70_000)),  # larger than max_frame
        lambda: pair.client.request(b"m", None),  # type: ignore[arg-type]  # method: text
        lambda: pair.client.send_error(duplex, "", "empty reason"),
        lambda: pair.client.end_stream(req),  # END on a request
    ]
    for misuse in misuses:
        with pytest.raises(RpcUsageError):
            misuse()
    assert pair.client.outgoing_buffer_size == pair.server.outgoing_buffer_size == 0
    assert pair.client.stream_state(duplex) is StreamState.OPEN
    pair.client.end_stream(duplex)
    with pytest.raises(RpcUsageError):
        pair.client.end_stream(duplex)  # END twice
    pair.client.goodbye()
    with pytest.raises(RpcUsageError):
        pair.client.goodbye()
    with pytest.raises(RpcUsageError):
        pair.client.send_error(duplex, "r", "after goodbye")
