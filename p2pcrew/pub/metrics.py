"""Prometheus text exposition (format 0.0.4), written by hand for a few metrics.

Labels carry only fixed vocabularies (transport, outcome, rule names of the
validation rules, direction): never a key, a feed id or an address, so a scrape
reveals nothing about who uses the pub. ``PubMetrics`` holds what the pub counts as
things happen; gauges that describe the present (peers, members, entries stored,
disk used) are taken from a ``Snapshot`` at scrape time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from p2pcrew.replicate import rpc_errors
from p2pcrew.replicate.ws_transport import ByteCounts


def _rpc_errors() -> list[type[rpc_errors.RpcProtocolError]]:
    """Every RPC protocol error class (each has a stable ``reason``)."""
    found: list[type[rpc_errors.RpcProtocolError]] = []
    todo = [rpc_errors.RpcProtocolError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
NAMESPACE: Final = "p2pcrew_pub"

HANDSHAKE_OUTCOMES: Final = ("ok", "failed", "timeout", "refused", "evicted")
"""refused: closed unread because the pub is full, or every handshake slot is held by a
handshake too young to evict; evicted: hung up to give its slot to a newer connection,
because it had not sent a valid msg1 (or stalled after it) while every slot was taken
(``admission.HandshakeGate``)."""
INVITE_OUTCOMES: Final = (
    "ok",
    "already_member",
    "unknown",
    "used_up",
    "expired",
    "rate_limited",
    "bad_request",
)
TRANSPORTS: Final = ("tcp", "ws")
CLOSE_REASONS: Final = (
    "goodbye",
    "idle-timeout",
    "write-timeout",
    "truncated",
    "corrupted",
    "connection-lost",
    "frame-too-large",
    "malformed-frame",
    "unknown-stream",
    "bad-stream-id",
    "unexpected-frame",
    "flow-control",
    "bad-replication-message",
    "guest-timeout",
    "guest-overflow",
    "other",
)
"""Why a peer connection ended (``close_reason_label``): a fixed vocabulary, so that an
operator can tell a flood of oversized frames from slow readers without reading logs."""
_BY_EXCEPTION: Final = {
    **{cls.__name__: cls.reason for cls in _rpc_errors()},
    "StreamTruncated": "truncated",
    "StreamCorrupted": "corrupted",
    "BadReplicationMessage": "bad-replication-message",
    "connection lost": "connection-lost",
}


def close_reason_label(close_reason: str) -> str:
    """``PeerLink.close_reason`` ("ExceptionName: message", or "" after goodbyes) to a
    label from ``CLOSE_REASONS``."""
    if not close_reason:
        return "goodbye"
    name, _, rest = close_reason.partition(": ")
    if name == "PeerTimeout":
        return "write-timeout" if "accept our data" in rest else "idle-timeout"
    label = _BY_EXCEPTION.get(name, "other")
    return label if label in CLOSE_REASONS else "other"


class Counter:
    """A monotonically increasing value per label tuple."""

    def __init__(self, *vocabularies: tuple[str, tuple[str, ...]]) -> None:
        """One ``(label name, known values)`` pair per label; known series start at 0."""
        self.labelnames = tuple(name for name, _ in vocabularies)
        self.values: dict[tuple[str, ...], float] = {
            combo: 0.0 for combo in itertools.product(*(values for _, values in vocabularies))
        }

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"expected labels {self.labelnames}, got {labels}")
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)


@dataclass(slots=True)
class PubMetrics:
    """What happened since the pub started."""

    connections: Counter = field(default_factory=lambda: Counter(("transport", TRANSPORTS)))
    handshakes: Counter = field(
        default_factory=lambda: Counter(("transport", TRANSPORTS), ("outcome", HANDSHAKE_OUTCOMES))
    )
    invites: Counter = field(default_factory=lambda: Counter(("outcome", INVITE_OUTCOMES)))
    guests_dropped: Counter = field(default_factory=Counter)
    peers_closed: Counter = field(default_factory=lambda: Counter(("reason", CLOSE_REASONS)))
    ws_too_big: Counter = field(default_factory=Counter)
    """WebSocket connections closed (1009) for a message over ``max_ws_message``."""
    over_quota_rejected: Counter = field(default_factory=Counter)
    transfer: dict[str, ByteCounts] = field(
        default_factory=lambda: {t: ByteCounts() for t in TRANSPORTS}
    )
    loop_lag: float = 0.0
    """Seconds the event loop was late on its last check (a busy or blocked loop)."""
    handshakes_in_flight: int = 0

    def connections_ended(self) -> float:
        """Connections that ended so far, handshakes that never completed included."""
        failed = sum(v for k, v in self.handshakes.values.items() if k[1] != "ok")
        return failed + sum(self.peers_closed.values.values())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The pub's state now; shared by the status page and /metrics."""

    uptime: float
    members: int
    peers: int
    guests: int
    entries: int
    disk_bytes: int
    live_invites: int
    over_quota: int
    accepted: int
    """Entries received and stored since start."""
    rejected: Mapping[str, int]
    """Received entries refused since start, by rule name."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        full = f"{NAMESPACE}_{name}"
        self.lines.append(f"# HELP {full} {help_text}")
        self.lines.append(f"# TYPE {full} {kind}")
        self.lines.extend(_sample(full, labels, value) for labels, value in samples)

    def counter(self, name: str, help_text: str, counter: Counter) -> None:
        samples = [
            (dict(zip(counter.labelnames, k, strict=True)), v) for k, v in counter.values.items()
        ]
        self.family(name, "counter", help_text, sorted(samples, key=lambda s: sorted(s[0].items())))


def render(metrics: PubMetrics, snap: Snapshot) -> str:
    """The whole exposition, ending with a newline."""
    w = _Writer()
    gauges: list[tuple[str, str, float]] = [
        ("uptime_seconds", "Seconds since the pub started.", snap.uptime),
        ("members", "Members (feeds this pub stores and forwards).", snap.members),
        ("peers_connected", "Peers connected now (members and guests).", snap.peers),
        ("guests_connected", "Connected non-members who may still redeem an invite.", snap.guests),
        ("entries_stored", "Entries in the pub's store.", snap.entries),
        ("data_dir_bytes", "Bytes used by the pub's data directory.", snap.disk_bytes),
        ("invites_live", "Invites with uses left and not expired.", snap.live_invites),
        ("members_over_quota", "Members whose feed exceeds the storage quota.", snap.over_quota),
        ("handshakes_in_flight", "Secret Handshakes in progress.", metrics.handshakes_in_flight),
        (
            "event_loop_lag_seconds",
            "How late the event loop was at its last check.",
            metrics.loop_lag,
        ),
    ]
    for name, help_text, value in gauges:
        w.family(name, "gauge", help_text, [({}, value)])
    w.counter(
        "connections_total",
        "Peer connections accepted (before the handshake).",
        metrics.connections,
    )
    w.counter("handshakes_total", "Secret Handshakes by outcome.", metrics.handshakes)
    w.counter("invite_redemptions_total", "invite.use requests by outcome.", metrics.invites)
    w.counter(
        "guests_dropped_total", "Guests dropped for not joining in time.", metrics.guests_dropped
    )
    w.counter(
        "peers_closed_total",
        "Peer connections ended after the handshake, by reason.",
        metrics.peers_closed,
    )
    w.counter(
        "ws_messages_too_big_total",
        "WebSocket connections closed for a message over max_ws_message.",
        metrics.ws_too_big,
    )
    w.family("entries_accepted_total", "counter", "Received entries stored.", [({}, snap.accepted)])
    rejected = dict(snap.rejected)
    rejected["over-quota"] = rejected.get("over-quota", 0) + int(metrics.over_quota_rejected.get())
    w.family(
        "entries_rejected_total",
        "counter",
        "Received entries refused, by rule.",
        [({"reason": r}, n) for r, n in sorted(rejected.items())],
    )
    for direction in ("received", "sent"):
        w.family(
            f"bytes_{direction}_total",
            "counter",
            f"Bytes {direction} at the transport.",
            [({"transport": t}, getattr(c, direction)) for t, c in metrics.transfer.items()],
        )
    return "\n".join(w.lines) + "\n"
