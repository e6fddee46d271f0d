"""The pub's node: a ``Node`` that serves members only, and lets guests redeem invites.

Theory of operation
-------------------
A stranger must connect before it can redeem an invite, so the handshake admits
everyone while there is room (``max_guests`` non-members at once). What a guest
cannot do is replicate: its ``replicate`` stream is opened as usual, but the engine
is never told about it (``link_ready`` is held back) and its first few replication
messages are parked. A guest that redeems an invite (``invite.use``) is promoted on
the same connection: the engine gets the held-back ``link_ready`` and the parked
messages, in their original order, exactly as if the peer had been a member all
along. A guest that does not redeem within ``guest_grace`` seconds is dropped.

Scope: ``hops=0``, so the pub replicates its own feed and its members' feeds
(``add_feeds``) and nothing else; live fan-out to connected members is the node's
ordinary push. A member whose stored feed exceeds ``member_quota_bytes`` leaves the
scope: the pub keeps serving what it holds but stops accepting more (entries already
in flight are dropped and counted as ``over-quota``), and says so in its log.

Members are a JSON file written atomically; invites live in the ``InviteBook``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.entry import MAX_SEQ, decode_entry, header_author
from p2pcrew.feed.errors import EntryRejected
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.ids import InvalidId, feed_id_to_text, text_to_feed_id
from p2pcrew.feed.store import Store, now_ms
from p2pcrew.pub.config import PubConfig
from p2pcrew.pub.invites import (
    InviteBook,
    InviteError,
    InviteExpired,
    InviteNotValid,
    InviteRateLimited,
    InviteUsedUp,
    write_json_atomic,
)
from p2pcrew.pub.metrics import PubMetrics, close_reason_label
from p2pcrew.replicate import messages as m
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.peer import PeerLink
from p2pcrew.replicate.secure_stream import SecureStream

log = logging.getLogger(__name__)

INVITE_USE: Final = "invite.use"
GUEST_MAX_PARKED: Final = 4
"""Replication messages a guest may send before joining (HELLO, perhaps NOTES)."""
RATE_TABLE_SIZE: Final = 4096
"""Peer keys whose invite attempts are remembered; the oldest is forgotten first."""
MEMBERS_FILE: Final = "pub-members.json"
INVITES_FILE: Final = "pub-invites.json"
_MEMBERS_FORMAT: Final = "p2pcrew-pub-members"


class BadInviteRequest(P2PCrewError):
    reason = "bad-request"


class MembersFileError(P2PCrewError):
    """The members file cannot be read; the pub refuses to start rather than forget."""


class Members:
    """Member feed keys with their join time, persisted as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._joined: dict[bytes, int] = self._load()
        self._writing = threading.Lock()
        """``add`` runs on worker threads: without it, people joining at the same moment
        each wrote back their own copy and the last write won (a member was lost)."""

    def __contains__(self, key: object) -> bool:
        return key in self._joined

    def __len__(self) -> int:
        return len(self._joined)

    def keys(self) -> set[bytes]:
        return set(self._joined)

    def joined(self) -> dict[bytes, int]:
        """Member key to join time (ms since the epoch)."""
        return dict(self._joined)

    def add(self, key: bytes, when: int) -> bool:
        """Add and persist; False if already a member. Raises OSError."""
        with self._writing:
            if key in self._joined:
                return False
            joined = {**self._joined, key: when}
            write_json_atomic(self.path, _members_document(joined))
            self._joined = joined
            return True

    def _load(self) -> dict[bytes, int]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise MembersFileError(f"cannot read {self.path}: {exc}") from exc
        try:
            if doc["format"] != _MEMBERS_FORMAT:
                raise MembersFileError(f"{self.path} is not a p2pcrew members file")
            return {text_to_feed_id(k): int(v["joined"]) for k, v in doc["members"].items()}
        except (KeyError, TypeError, ValueError, InvalidId) as exc:
            raise MembersFileError(f"{self.path} is damaged: {exc}") from exc


def _members_document(joined: dict[bytes, int]) -> dict[str, Any]:
    return {
        "format": _MEMBERS_FORMAT,
        "version": 1,
        "members": {feed_id_to_text(k): {"joined": v} for k, v in joined.items()},
    }


class RateLimiter:
    """A token bucket per key: ``per_minute`` tokens a minute, burst of the same size."""

    def __init__(self, per_minute: int, size: int = RATE_TABLE_SIZE) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.size = size
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, key: bytes, now: float) -> bool:
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return allowed


@dataclass(slots=True)
class _Guest:
    link: PeerLink
    timer: asyncio.TimerHandle
    ready: bool = False
    parked: list[m.Message] = field(default_factory=list)


class PubRelay(Node):
    def __init__(
        self,
        store: Store,
        identity: Identity,
        config: PubConfig,
        root: Path,
        metrics: PubMetrics | None = None,
    ) -> None:
        super().__init__(store, identity, hops=0, max_connections=config.max_connections)
        self.config = config
        self.metrics = metrics or PubMetrics()
        self.members = Members(root / MEMBERS_FILE)
        self.invites = InviteBook(root / INVITES_FILE)
        self.usage: dict[bytes, int] = {}
        self.over_quota: set[bytes] = set()
        self.guests: dict[bytes, _Guest] = {}
        self._aborted: dict[int, str] = {}
        """Links the pub itself dropped (id to a ``CLOSE_REASONS`` label): their own
        close_reason then only says the stream was cut."""
        self._rate = RateLimiter(config.invite_attempts_per_minute)
        self.admit = self._admit
        self.request_handlers[INVITE_USE] = self._invite_use
        self.add_feeds(self.members.keys())

    async def start(self) -> None:
        """Measure members' usage (for the quota), then start the node's timers."""
        if self.config.member_quota_bytes:
            usage = await asyncio.to_thread(self._measure, self.members.keys())
            self.usage.update(usage)
            for member, used in usage.items():
                self._check_quota(member, used)
        await super().start()

    # ---- admission and guests ---------------------------------------------------

    def _admit(self, peer: bytes) -> bool:
        return peer in self.members or len(self.guests) < self.config.max_guests

    def adopt(self, stream: SecureStream, *, client: bool, address: str) -> PeerLink | None:
        link = super().adopt(stream, client=client, address=address)
        if link is not None and not client and link.peer not in self.members:
            timer = asyncio.get_running_loop().call_later(
                self.config.guest_grace, self._drop_guest, link
            )
            self.guests[link.peer] = _Guest(link, timer)
        return link

    def _drop_guest(self, link: PeerLink) -> None:
        guest = self.guests.get(link.peer)
        if guest is not None and guest.link is link:
            self.metrics.guests_dropped.inc()
            grace = self.config.guest_grace
            self._aborted[id(link)] = "guest-timeout"
            link.abort(f"not a member of this pub (no invite used within {grace:g} s)")

    def link_ready(self, link: PeerLink) -> None:
        guest = self.guests.get(link.peer)
        if guest is not None and guest.link is link:
            guest.ready = True
            return
        super().link_ready(link)

    def link_closed(self, link: PeerLink) -> None:
        guest = self.guests.get(link.peer)
        if guest is not None and guest.link is link:
            guest.timer.cancel()
            del self.guests[link.peer]
        ours = self._aborted.pop(id(link), None)
        self.metrics.peers_closed.inc(ours or close_reason_label(link.close_reason))
        super().link_closed(link)

    async def _promote(self, peer: bytes) -> None:
        """The guest joined: replay what the engine has not seen, in order."""
        guest = self.guests.pop(peer, None)
        if guest is None:
            return
        guest.timer.cancel()
        if guest.ready:
            super().link_ready(guest.link)
            for message in guest.parked:
                await self.message_from(guest.link, message)

    # ---- invite.use ---------------------------------------------------------------

    async def _invite_use(self, peer: bytes, body: Any) -> Any:
        """Redeem an invite for ``peer``. Raises InviteNotValid, InviteRateLimited."""
        secret = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(secret, bytes) or len(secret) != 32:
            self.metrics.invites.inc("bad_request")
            raise BadInviteRequest("invite.use needs {'secret': 32 bytes}")
        if not self._rate.allow(peer, time.monotonic()):
            self.metrics.invites.inc("rate_limited")
            raise InviteRateLimited()
        if peer in self.members:
            self.metrics.invites.inc("already_member")
            await self._promote(peer)
            return {"member": True, "already": True}
        await self._redeem(secret)
        try:
            await asyncio.to_thread(self.members.add, peer, now_ms())
        except OSError as exc:  # e.g. disk full; the use is spent
            log.error("cannot record new member %s: %s", feed_id_to_text(peer), exc)
            raise P2PCrewError(
                "the pub could not record your membership; tell its operator"
            ) from exc
        self.metrics.invites.inc("ok")
        log.info("new member %s", feed_id_to_text(peer))
        self.usage.setdefault(peer, 0)
        self.add_feeds([peer])
        await self._promote(peer)
        return {"member": True, "already": False}

    async def _redeem(self, secret: bytes) -> None:
        """Every refusal leaves here as the one, uninformative, InviteNotValid."""
        try:
            await asyncio.to_thread(self.invites.redeem, secret, now_ms())
        except InviteUsedUp:
            self.metrics.invites.inc("used_up")
        except InviteNotValid:
            self.metrics.invites.inc("unknown")
        except InviteExpired:
            self.metrics.invites.inc("expired")
        except InviteError:
            log.exception("invite book unusable")
            raise P2PCrewError("the pub cannot check invites right now; try later") from None
        else:
            return
        raise InviteNotValid()

    # ---- replication with a quota ---------------------------------------------------

    async def message_from(self, link: PeerLink, message: m.Message) -> None:
        guest = self.guests.get(link.peer)
        if guest is not None and guest.link is link:
            if isinstance(message, m.Entries):
                # Nobody asked a guest for entries (its link is not ready yet), and one
                # received batch can be a whole stream window: never hold those.
                return
            if len(guest.parked) >= GUEST_MAX_PARKED:
                self._aborted[id(link)] = "guest-overflow"
                link.abort("replication messages before joining: use an invite first")
            else:
                guest.parked.append(message)
            return
        if not isinstance(message, m.Entries) or not self.config.member_quota_bytes:
            await super().message_from(link, message)
            return
        items, full = self._within_quota(message.items)
        if len(items) < len(message.items):
            self.metrics.over_quota_rejected.inc(amount=len(message.items) - len(items))
        if items:
            authors = {a for a in (header_author(h) for h, _ in items) if a is not None}
            before = {a: self.state.local.get(a, 0) for a in authors}
            await super().message_from(link, m.Entries(items))
            self._account(items, before)
        for member in full:
            self._check_quota(member, self.usage.get(member, 0), force=True)

    def _within_quota(
        self, items: list[tuple[bytes, bytes | None]]
    ) -> tuple[list[tuple[bytes, bytes | None]], set[bytes]]:
        """The items that fit each member's quota, and the members who hit it.

        Entries already stored pass (the store counts them as duplicates); the rest
        are counted in order, and a member's entries stop at the first that does not fit.
        """
        quota = self.config.member_quota_bytes
        kept: list[tuple[bytes, bytes | None]] = []
        running: dict[bytes, int] = {}
        full: set[bytes] = set()
        for header, payload in items:
            author = header_author(header)
            if author is None or author not in self.members:
                kept.append((header, payload))  # not ours to count: the engine decides
                continue
            if author in self.over_quota or author in full:
                continue
            if _seq(header) <= self.state.local.get(author, 0):
                kept.append((header, payload))
                continue
            used = running.get(author, self.usage.get(author, 0)) + _size(header, payload)
            if used > quota:
                full.add(author)
                continue
            running[author] = used
            kept.append((header, payload))
        return kept, full

    def _account(self, items: list[tuple[bytes, bytes | None]], before: dict[bytes, int]) -> None:
        """Add the sizes of the entries just stored to their authors' usage."""
        for header, payload in items:
            author = header_author(header)
            if author is None or author not in before:
                continue
            if before[author] < _seq(header) <= self.state.local.get(author, 0):
                self.usage[author] = self.usage.get(author, 0) + _size(header, payload)

    def _check_quota(self, member: bytes, used: int, *, force: bool = False) -> None:
        """Stop replicating ``member`` if over quota (``force``: it hit the quota)."""
        quota = self.config.member_quota_bytes
        if not quota or member in self.over_quota or not (force or used > quota):
            return
        self.over_quota.add(member)
        log.warning(
            "member %s reached its storage quota (%d of %d bytes): the pub keeps what it "
            "holds but stops replicating this feed",
            feed_id_to_text(member),
            used,
            quota,
        )
        self.extra_feeds.discard(member)
        self.refresh_scope()

    def _measure(self, members: set[bytes]) -> dict[bytes, int]:
        """Bytes stored per member (a one-off walk at start; ingest keeps it current)."""
        return {
            member: sum(_size(s.entry.header, s.payload) for s in self.store.iter_feed(member))
            for member in members
        }


def _seq(header: bytes) -> int:
    """The header's sequence number; a huge one for malformed headers (never "stored")."""
    try:
        return decode_entry(header).seq
    except EntryRejected:
        return MAX_SEQ + 1


def _size(header: bytes, payload: bytes | None) -> int:
    return len(header) + (len(payload) if payload is not None else 0)
