"""Hypothesis over the RPC machine: chunking, random action sequences on both ends, fuzz."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcrew import codec
from p2pcrew.replicate.rpc import (
    ConnectionState,
    DataReceived,
    RequestReceived,
    RpcConnection,
    RpcEvent,
    StreamOpened,
    StreamState,
)
from p2pcrew.replicate.rpc_errors import RpcProtocolError, RpcUsageError

# Tiny limits so a few dozen actions hit every bound: blocked windows, a full outgoing
# buffer, refused streams, frames too large to send.
LIMITS: dict[str, int] = {
    "max_frame": 64,
    "initial_window": 150,
    "max_streams": 3,
    "max_outgoing": 300,
}

bodies = st.one_of(
    st.none(),
    st.integers(-(2**64), 2**64 - 1),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.binary(min_size=30, max_size=70),  # near and over max_frame: fills windows fast
    st.lists(st.integers(0, 9), max_size=4),
)
methods = st.sampled_from(["get", "put", "replicate", ""])


def feed_in_chunks(conn: RpcConnection, data: bytes, cuts: list[int]) -> list[RpcEvent]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    events: list[RpcEvent] = []
    for start, end in itertools.pairwise(bounds):
        events += conn.receive_data(data[start:end])
        assert conn.receive_buffer_size <= LIMITS["max_frame"]
    return events


@st.composite
def client_byte_streams(draw: st.DrawFn) -> bytes:
    """What a correct client may write: requests, streams, data, ends, errors, goodbye."""
    client = RpcConnection(client=True, **LIMITS)
    opened: list[int] = []
    out = bytearray()
    for _ in range(draw(st.integers(0, 30))):
        action = draw(st.sampled_from(["request", "open", "data", "end", "error"]))
        try:
            if action == "request":
                opened.append(client.request(draw(methods), draw(bodies)))
            elif action == "open":
                opened.append(client.open_stream(draw(methods), draw(bodies)))
            elif opened:
                sid = draw(st.sampled_from(opened))
                if action == "data":
                    client.send_data(sid, draw(bodies))
                elif action == "end":
                    client.end_stream(sid)
                else:
                    client.send_error(sid, "internal", draw(st.text(max_size=8)))
        except RpcUsageError:
            pass
        out += client.data_to_send()
    if draw(st.booleans()):
        client.goodbye()
        out += client.data_to_send()
    return bytes(out)


@given(client_byte_streams(), st.lists(st.integers(0, 10_000), max_size=40))
@settings(max_examples=200, deadline=None)
def test_any_chunking_yields_the_same_events(stream: bytes, cuts: list[int]) -> None:
    whole = RpcConnection(client=False, **LIMITS)
    expected = whole.receive_data(stream) if stream else []
    chunked = RpcConnection(client=False, **LIMITS)
    assert feed_in_chunks(chunked, stream, cuts) == expected
    assert chunked.data_to_send() == whole.data_to_send()  # same refusals, same order
    assert chunked.state is whole.state


class Peer:
    """One end plus what its application has seen, for drawing plausible actions."""

    def __init__(self, client: bool, initial_window: int = LIMITS["initial_window"]) -> None:
        self.window = initial_window
        self.conn = RpcConnection(client=client, **{**LIMITS, "initial_window": initial_window})
        self.ids: set[int] = set()
        self.duplex: set[int] = set()
        self.wire = bytearray()  # sent by this end, not yet delivered

    def collect(self) -> None:
        self.wire += self.conn.data_to_send()

    def note(self, events: list[RpcEvent]) -> None:
        for event in events:
            sid = getattr(event, "stream_id", None)
            if sid is not None:
                self.ids.add(sid)
            if isinstance(event, StreamOpened):
                self.duplex.add(event.stream_id)


def deliver(sender: Peer, receiver: Peer, nbytes: int) -> None:
    chunk = bytes(sender.wire[:nbytes])
    del sender.wire[:nbytes]
    if chunk:
        receiver.note(receiver.conn.receive_data(chunk))
        check_bounds(receiver)


def check_bounds(peer: Peer) -> None:
    assert peer.conn.receive_buffer_size <= LIMITS["max_frame"]
    for sid in peer.ids:
        assert peer.conn.unconsumed(sid) <= peer.window


# Weighted like a busy application: mostly data and consumption on live streams. The
# weights are list repetitions because Hypothesis draws small integers far more often.
ACTIONS = 2 * (
    ["request"] * 4
    + ["open"] * 6
    + ["respond"] * 6
    + ["data"] * 24
    + ["end"] * 2
    + ["error"] * 2
    + ["consume"] * 2
    + ["consume-all"] * 8
) + ["goodbye"]


def draw_stream_id(peer: Peer, data: st.DataObject, action: str) -> int:
    """Usually a live stream of the right kind; sometimes any id seen, or one never seen."""
    if action in ("data", "end", "consume", "consume-all"):
        pool = peer.duplex
    elif action == "respond":
        pool = peer.ids - peer.duplex
    else:
        pool = peer.ids
    live = sorted(
        sid
        for sid in pool
        if peer.conn.state is not ConnectionState.ERROR
        and peer.conn.stream_state(sid) not in (StreamState.IDLE, StreamState.CLOSED)
    )
    mostly_live: bool = data.draw(st.sampled_from([True] * 9 + [False]))
    if live and mostly_live:
        return data.draw(st.sampled_from(live))
    seen: bool = data.draw(st.booleans())
    if peer.ids and seen:
        return data.draw(st.sampled_from(sorted(peer.ids)))
    return data.draw(st.integers(0, 12))


def act(peer: Peer, data: st.DataObject) -> None:
    """One random local action; the only exception allowed is RpcUsageError."""
    conn = peer.conn
    action = data.draw(st.sampled_from(ACTIONS))
    sid = draw_stream_id(peer, data, action)
    try:
        if action == "request":
            peer.ids.add(conn.request(data.draw(methods), data.draw(bodies)))
        elif action == "open":
            sid = conn.open_stream(data.draw(methods), data.draw(bodies))
            peer.ids.add(sid)
            peer.duplex.add(sid)
        elif action == "respond":
            conn.respond(sid, data.draw(bodies))
        elif action == "data":
            conn.send_data(sid, data.draw(bodies))
        elif action == "end":
            conn.end_stream(sid)
        elif action == "error":
            conn.send_error(sid, data.draw(st.sampled_from(["internal", "x", ""])), "")
        elif action == "consume":
            conn.consume(sid, data.draw(st.integers(-1, conn.unconsumed(sid) + 1)))
        elif action == "consume-all":
            conn.consume(sid, conn.unconsumed(sid))
        else:
            conn.goodbye()
    except RpcUsageError:
        pass
    peer.collect()


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_random_actions_on_both_ends_only_raise_usage_errors(data: st.DataObject) -> None:
    # Both ends must agree on the window; 68 is exactly one maximal frame.
    window = data.draw(st.sampled_from([68, 100, 150, 400]))
    client, server = Peer(client=True, initial_window=window), Peer(False, window)
    for _ in range(data.draw(st.integers(1, 150))):
        peer = data.draw(st.sampled_from([client, server]))
        if data.draw(st.sampled_from([True, True, False])):
            act(peer, data)
        else:
            other = server if peer is client else client
            deliver(peer, other, data.draw(st.integers(1, 200)))
    # Let everything in flight land, then close cleanly: no protocol error may appear.
    for peer in (client, server):
        if peer.conn.state in (ConnectionState.OPEN, ConnectionState.GOODBYE_RECEIVED):
            peer.conn.goodbye()
        peer.collect()
    deliver(client, server, len(client.wire))
    deliver(server, client, len(server.wire))
    assert client.conn.state is server.conn.state is ConnectionState.DONE
    assert client.conn.receive_data(b"") == server.conn.receive_data(b"") == []


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_flow_control_never_deadlocks(data: st.DataObject) -> None:
    """An application that consumes everything can always send everything, eventually."""
    client, server = Peer(client=True), Peer(client=False)
    sid = client.conn.open_stream("upload", None)
    client.collect()
    deliver(client, server, len(client.wire))
    payloads = data.draw(st.lists(st.binary(min_size=0, max_size=55), max_size=30))
    received: list[Any] = []
    pending = list(payloads)
    for _ in range(10 * len(payloads) + 2):
        while pending:
            if client.conn.data_frame_size(sid, pending[0]) > client.conn.send_window(sid):
                break
            client.conn.send_data(sid, pending.pop(0))
        client.collect()
        for event in server.conn.receive_data(bytes(client.wire)) if client.wire else []:
            if isinstance(event, DataReceived):
                received.append(event.body)
                server.conn.consume(sid, event.flow_bytes)
        client.wire.clear()
        credit = server.conn.data_to_send()
        if credit:
            client.conn.receive_data(credit)
        if not pending:
            break
    assert received == payloads


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_garbage_bytes_raise_only_protocol_errors(garbage: bytes) -> None:
    conn = RpcConnection(client=False, **LIMITS)
    try:
        conn.receive_data(garbage)
        conn.receive_data(b"")
    except RpcProtocolError:
        assert conn.state is ConnectionState.ERROR


cbor_items = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=4) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=8,
)


@given(st.lists(st.lists(cbor_items, min_size=1, max_size=5), max_size=12))
@settings(max_examples=300, deadline=None)
def test_well_framed_nonsense_raises_only_protocol_errors(frames: list[list[Any]]) -> None:
    conn = RpcConnection(client=False, **LIMITS)
    seen: list[RpcEvent] = []
    try:
        for items in frames:
            payload = codec.encode(items)
            seen += conn.receive_data(len(payload).to_bytes(4, "big") + payload)
    except RpcProtocolError:
        assert conn.state is ConnectionState.ERROR
    for event in seen:
        if isinstance(event, RequestReceived | StreamOpened):
            assert event.stream_id % 2 == 1
