"""The pub's handshake admission policy, without sockets (``p2pcrew.replicate.admission``).

The policy: when every slot is taken, the newcomer takes the slot of the oldest
handshake that has not sent a valid msg1, else of the oldest that stalled after msg1
for ``stall_grace`` seconds, else it is refused. Nothing depends on addresses.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nacl.signing import SigningKey

from p2pcrew.pub.metrics import PubMetrics, Snapshot, close_reason_label, render
from p2pcrew.replicate.admission import HandshakeGate, Ticket, WatchedServerHandshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY, ClientHandshake, HandshakeState
from p2pcrew.replicate.transport_errors import HandshakeFailed


class HangUps:
    """Records which connections the gate hung up on, in order."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def of(self, name: str) -> Callable[[], None]:
        return lambda: self.order.append(name)


def fill(gate: HandshakeGate, hang: HangUps, names: list[str], now: float) -> dict[str, Ticket]:
    tickets = {}
    for i, name in enumerate(names):
        ticket = gate.enter("tcp", now + i * 0.001, hang.of(name))
        assert ticket is not None, name
        tickets[name] = ticket
    return tickets


def test_below_the_cap_everyone_is_admitted_and_nobody_evicted() -> None:
    gate, hang = HandshakeGate(3), HangUps()
    fill(gate, hang, ["a", "b", "c"], 0.0)
    assert gate.in_flight == 3 and hang.order == [] and gate.evictions == 0


def test_at_the_cap_the_oldest_silent_handshake_makes_room() -> None:
    gate, hang = HandshakeGate(3), HangUps()
    t = fill(gate, hang, ["a", "b", "c"], 0.0)
    newcomer = gate.enter("tcp", 0.01, hang.of("d"))
    assert newcomer is not None
    assert hang.order == ["a"] and t["a"].evicted and t["a"].done
    assert gate.in_flight == 3 and gate.evictions == 1
    # and again: b is now the oldest silent one
    assert gate.enter("tcp", 0.02, hang.of("e")) is not None
    assert hang.order == ["a", "b"]


def test_a_handshake_past_msg1_is_spared_while_silent_ones_remain() -> None:
    gate, hang = HandshakeGate(3), HangUps()
    t = fill(gate, hang, ["genuine", "silent1", "silent2"], 0.0)
    gate.msg1_received(t["genuine"])  # the oldest, but it spoke at once
    for i, name in enumerate(["x", "y", "z", "w"]):
        assert gate.enter("tcp", 5.0 + i, hang.of(name)) is not None
    assert "genuine" not in hang.order
    assert hang.order[:2] == ["silent1", "silent2"]
    assert not t["genuine"].evicted


def test_when_all_sent_msg1_a_young_burst_is_refused_not_evicted() -> None:
    gate, hang = HandshakeGate(2, stall_grace=1.0), HangUps()
    t = fill(gate, hang, ["a", "b"], 0.0)
    for ticket in t.values():
        gate.msg1_received(ticket)
    assert gate.enter("tcp", 0.5, hang.of("c")) is None  # both younger than the grace
    assert hang.order == [] and gate.in_flight == 2


def test_a_handshake_stalled_after_msg1_is_evicted_after_the_grace() -> None:
    gate, hang = HandshakeGate(2, stall_grace=1.0), HangUps()
    t = fill(gate, hang, ["stalled", "young"], 0.0)
    gate.msg1_received(t["stalled"])
    gate.msg1_received(t["young"])
    t["young"].started = 0.9
    assert gate.enter("tcp", 1.5, hang.of("c")) is not None
    assert hang.order == ["stalled"] and t["stalled"].evicted


def test_leaving_frees_the_slot_and_is_idempotent() -> None:
    gate, hang = HandshakeGate(1), HangUps()
    a = gate.enter("tcp", 0.0, hang.of("a"))
    assert a is not None
    gate.msg1_received(a)
    gate.leave(a)
    gate.leave(a)
    assert gate.in_flight == 0
    assert gate.enter("tcp", 0.1, hang.of("b")) is not None and hang.order == []


def test_no_room_for_connections_refuses_without_evicting() -> None:
    gate, hang = HandshakeGate(10), HangUps()
    fill(gate, hang, ["a", "b"], 0.0)
    assert gate.enter("tcp", 1.0, hang.of("c"), room=0) is None
    assert hang.order == []
    # room for 2 in all: the newcomer takes a silent one's slot
    assert gate.enter("tcp", 1.0, hang.of("d"), room=2) is not None
    assert hang.order == ["a"] and gate.in_flight == 2


def test_a_flood_never_locks_out_a_genuine_client() -> None:
    """2,000 silent sockets through 512 slots; a genuine client arriving at any point
    (and sending msg1 at once) is admitted and never evicted."""
    gate, hang = HandshakeGate(512), HangUps()
    genuine: list[Ticket] = []
    for i in range(2000):
        ticket = gate.enter("tcp", i * 0.001, hang.of(f"s{i}"))
        assert ticket is not None
        if i % 97 == 0:
            member = gate.enter("tcp", i * 0.001, hang.of(f"genuine{i}"))
            assert member is not None, f"locked out at {i}"
            gate.msg1_received(member)
            genuine.append(member)
    assert not any(t.evicted for t in genuine)
    assert all(name.startswith("s") for name in hang.order)
    assert gate.in_flight == 512


def test_the_gate_does_not_look_at_addresses() -> None:
    """Tickets carry no address: a shared address (NAT, tests) cannot be blocked."""
    assert "address" not in Ticket.__dataclass_fields__
    assert "peer" not in Ticket.__dataclass_fields__


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        HandshakeGate(0)


# ---- the machine that reports msg1 -------------------------------------------------


def test_watched_machine_reports_a_valid_msg1_once() -> None:
    seen: list[int] = []
    server_key = SigningKey.generate()
    server = WatchedServerHandshake(P2PCREW_NETWORK_KEY, server_key, lambda: seen.append(1))
    client = ClientHandshake(
        P2PCREW_NETWORK_KEY, SigningKey.generate(), bytes(server_key.verify_key)
    )
    msg1 = client.data_to_send()
    server.receive_data(msg1[:40])
    assert seen == []  # incomplete msg1 buys nothing
    server.receive_data(msg1[40:])
    assert seen == [1] and server.state is HandshakeState.AWAIT_MSG3
    client.receive_data(server.data_to_send())
    assert server.receive_data(client.data_to_send())  # completes
    assert seen == [1]


def test_watched_machine_does_not_report_a_forged_msg1() -> None:
    seen: list[int] = []
    server = WatchedServerHandshake(
        P2PCREW_NETWORK_KEY, SigningKey.generate(), lambda: seen.append(1)
    )
    with pytest.raises(HandshakeFailed):
        server.receive_data(bytes(64))  # 64 bytes, but the HMAC does not verify
    assert seen == []


# ---- metrics ------------------------------------------------------------------------------


def test_evictions_and_close_reasons_are_exported() -> None:
    metrics = PubMetrics()
    metrics.handshakes.inc("tcp", "evicted", amount=3)
    metrics.peers_closed.inc(close_reason_label("FrameTooLarge: 1000000 > 65536"))
    snap = Snapshot(0.0, 0, 0, 0, 0, 0, 0, 0, 0, {})
    text = render(metrics, snap)
    assert 'p2pcrew_pub_handshakes_total{transport="tcp",outcome="evicted"} 3' in text
    assert 'p2pcrew_pub_peers_closed_total{reason="frame-too-large"} 1' in text


@pytest.mark.parametrize(
    ("close_reason", "label"),
    [
        ("", "goodbye"),
        ("FrameTooLarge: the peer announced a 70000-byte frame", "frame-too-large"),
        ("MalformedFrame: not CBOR", "malformed-frame"),
        ("FlowControlViolation: beyond the window", "flow-control"),
        ("PeerTimeout: the peer sent nothing for 60 s", "idle-timeout"),
        ("PeerTimeout: the peer did not accept our data within 60 s", "write-timeout"),
        ("StreamTruncated: the connection ended", "truncated"),
        ("BadReplicationMessage: bad", "bad-replication-message"),
        ("connection lost: reset", "connection-lost"),
        ("something new: whatever", "other"),
    ],
)
def test_close_reason_labels(close_reason: str, label: str) -> None:
    assert close_reason_label(close_reason) == label
