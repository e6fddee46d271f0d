"""Handshake admission: who gets one of the ``max_handshakes`` slots, and who loses one.

Used by the pub (``max_handshakes``, default 512) and by every node that listens
(``p2pcrew serve``, the app: ``MAX_HANDSHAKES_IN_FLIGHT``, 16), so a hostile peer on the
meetup's Wi-Fi cannot lock a laptop out with a handful of silent sockets either.

Why eviction, not plain refusal
-------------------------------
A handshake slot is cheap memory but a scarce right. With plain refusal, 512 sockets
that connect and say nothing held every slot until ``handshake_timeout`` (10 s) ran out,
and everyone else, members included, was refused meanwhile: a real member needed 8.4 s
to get through a 2,000-connection half-open flood. A genuine client sends its first
handshake message (msg1, 64 bytes) the moment it connects, and the whole handshake takes
one round trip, so the *oldest* handshake that is still missing msg1 is almost never a
genuine one. When every slot is taken, the newcomer therefore takes the slot of:

1. the oldest handshake that has not yet delivered a valid msg1 (silent, dribbling or
   half-sent sockets), whatever its age; else
2. the oldest handshake past msg1 that has been in flight for at least ``STALL_GRACE``
   seconds (a client that proved it knows the network key, then stalled); else
3. nobody: the newcomer is refused, unread (every slot is held by a handshake that is
   both valid so far and young, which is what a burst of genuine members looks like).

Nothing here looks at addresses: many genuine users share one address behind NAT (and
every test shares 127.0.0.1), so an address is never blocked wholesale. A flood from one
address only ever evicts its own oldest sockets first, since those are the oldest.

``HandshakeGate`` is the pure decision (no sockets, no clock of its own: the caller
passes ``now``), so it is tested without I/O; ``WatchedServerHandshake`` is the sans-IO
Secret Handshake machine with one addition, telling the gate when msg1 arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from nacl.signing import SigningKey

from p2pcrew.replicate.secure_stream import SecureStream, run_handshake
from p2pcrew.replicate.shs import HandshakeCompleted, HandshakeState, ServerHandshake

STALL_GRACE: Final = 1.0
"""Seconds past which a handshake that did send msg1 may be evicted. A genuine client
answers msg2 within one round trip (well under a second even on a poor mobile link)."""


@dataclass(eq=False, slots=True)
class Ticket:
    """One handshake in flight: when it started, how far it got, how to hang up on it."""

    transport: str
    started: float
    hang_up: Callable[[], None] = field(repr=False)
    msg1: bool = False
    """A valid msg1 arrived (the peer knows the network key and did not stall at once)."""
    evicted: bool = False
    """Its slot was given to a newer connection (the handshake then fails as "evicted")."""
    done: bool = False


class HandshakeGate:
    """The slots: ``enter`` admits (evicting if it must) or refuses; ``leave`` frees.

    Two queues in arrival order, so both eviction choices are O(1): handshakes still
    waiting for msg1, and handshakes past it.
    """

    def __init__(self, max_handshakes: int, stall_grace: float = STALL_GRACE) -> None:
        if max_handshakes < 1:
            raise ValueError("max_handshakes must be at least 1")
        self.max_handshakes = max_handshakes
        self.stall_grace = stall_grace
        self._waiting: dict[int, Ticket] = {}
        """Tickets without msg1, oldest first (dicts keep insertion order)."""
        self._past_msg1: dict[int, Ticket] = {}
        self.evictions = 0

    @property
    def in_flight(self) -> int:
        return len(self._waiting) + len(self._past_msg1)

    def enter(
        self,
        transport: str,
        now: float,
        hang_up: Callable[[], None],
        *,
        room: int | None = None,
    ) -> Ticket | None:
        """A ticket for a new connection, or None to refuse it unread.

        ``room``: connections the pub can still take in all (``max_connections`` minus
        established links); handshakes beyond it are evicted like those beyond
        ``max_handshakes``, and with no room at all the newcomer is refused (evicting a
        handshake would not make room for it). Evicted tickets are hung up here, via
        their ``hang_up``, after their slot was freed.
        """
        limit = self.max_handshakes if room is None else min(self.max_handshakes, room)
        if limit < 1:
            return None
        victims: list[Ticket] = []
        while self.in_flight - len(victims) >= limit:
            victim = self._victim(now, exclude=victims)
            if victim is None:
                return None
            victims.append(victim)
        for victim in victims:
            victim.evicted = True
            self.leave(victim)
            self.evictions += 1
            victim.hang_up()
        ticket = Ticket(transport, now, hang_up)
        self._waiting[id(ticket)] = ticket
        return ticket

    def msg1_received(self, ticket: Ticket) -> None:
        """The ticket's peer sent a valid msg1: evict it only once it has stalled."""
        if self._waiting.pop(id(ticket), None) is not None:
            ticket.msg1 = True
            self._past_msg1[id(ticket)] = ticket

    def leave(self, ticket: Ticket) -> None:
        """Free the ticket's slot (idempotent: an evicted ticket was freed already)."""
        ticket.done = True
        self._waiting.pop(id(ticket), None)
        self._past_msg1.pop(id(ticket), None)

    def _victim(self, now: float, exclude: list[Ticket]) -> Ticket | None:
        """The slot to free: the oldest without msg1, else the oldest stalled after it."""
        for ticket in self._waiting.values():
            if ticket not in exclude:
                return ticket
        for ticket in self._past_msg1.values():
            if now - ticket.started < self.stall_grace:
                return None  # the rest are younger still
            if ticket not in exclude:
                return ticket
        return None


class WatchedServerHandshake(ServerHandshake):
    """The server side of the Secret Handshake, reporting msg1 to the gate.

    The machine moves on from ``AWAIT_MSG1`` only once msg1 is complete and its HMAC
    verified, so a peer cannot buy protection from eviction with 64 random bytes.
    """

    def __init__(
        self,
        network_key: bytes,
        local_key: SigningKey | bytes,
        on_msg1: Callable[[], None],
    ) -> None:
        super().__init__(network_key, local_key)
        self._on_msg1: Callable[[], None] | None = on_msg1

    def receive_data(self, data: bytes) -> list[HandshakeCompleted]:
        events = super().receive_data(data)
        if self._on_msg1 is not None and self.state is not HandshakeState.AWAIT_MSG1:
            if self.state is not HandshakeState.ERROR:
                self._on_msg1()
            self._on_msg1 = None
        return events


async def gated_server_handshake(
    gate: HandshakeGate,
    ticket: Ticket,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    network_key: bytes,
    local_key: SigningKey,
    timeout: float,
) -> SecureStream:
    """The server side of the Secret Handshake, telling ``gate`` when msg1 arrived.

    One place for the pub and every listening node, so both protect a peer that has
    proved it knows the network key in the same way.
    """

    def machine() -> WatchedServerHandshake:
        return WatchedServerHandshake(network_key, local_key, lambda: gate.msg1_received(ticket))

    return await run_handshake(machine, reader, writer, timeout)
