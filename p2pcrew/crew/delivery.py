"""Delivery transparency: which crew members are known to hold my crew posts, and since when.

"Did my post reach anyone?" is answered from what this node already knows; nothing
here talks to the network. Three kinds of evidence, each saying "member M held my
feed up to seq s at time t" (replication is in order, so holding seq s means holding
every entry up to s):

1. **Peer clocks.** A member we replicate with directly announces, in its notes, how
   much of our feed it holds; the node persists those notes per peer
   (``store.peer_clock(peer)``: ``received[me] >> 1``, -1 meaning "not replicating").
   Clocks carry no time, so ``observe`` keeps a small log (store meta
   ``crew.delivery.seen``) of when each member's clock was first seen covering more of
   our feed; evidence not logged yet counts from "now".
2. **Receipts.** Members who only meet through a pub never exchange notes with us, so
   each member publishes, now and then, one ``crew_receipt`` inside the crew envelope:
   per co-member feed, the latest seq it holds. One entry acknowledges everything,
   whatever the number of posts.
3. **Answers.** A member's reply to a post, an update of a request or a reaction
   proves the member held it (claimed time, capped by when we received the answer).

Receipt format (content inside a crew envelope; never valid in the clear):

====== =================================================================================
key    value
====== =================================================================================
type   ``"crew_receipt"``
time   integer milliseconds (the author's claim)
crew   crew id, bytes32: the crew the receipt is sealed for
heads  1..64 pairs ``[feed id (bytes32), seq (1..2^53-1)]``, sorted by feed id bytewise,
       feed ids distinct: "when I published this I held each feed from 1 up to seq".
       Only co-members of the crew's current state (never the author), and only feeds
       the author holds at least one entry of.
====== =================================================================================

Each pair costs at most 44 bytes: a receipt with up to 4 co-members fits the smallest
envelope bucket (a 301-byte payload, like a short post), a 32-member crew's the
2,048-byte bucket, a 64-member crew's the 4,096-byte one.

Cadence (``due_receipts``): a receipt is due for a crew only when some co-member has
crew content (anything but receipts: posts, requests, updates, reactions, states) past
what my last receipt acknowledged, so receipts never trigger receipts and a quiet crew
goes quiet. When due, it is published right after my next publication in that crew
(``publish_riding_receipts``), or otherwise by a running node's periodic upkeep
(``publish_due_receipts``) at most once per ``RECEIPT_INTERVAL_MS`` (one hour). Both
take a few reads: the members' feed tips and the entries past the last receipt.

Readers count a receipt only if it was opened from an envelope (``plaintext`` set),
names the crew it is filed under, and its author is a current member; a head above
the length of my own feed is capped to it, and a receipt says nothing about entries I
appended after it arrived. A member can lie about what it holds, but a receipt only
ever speaks for its author: at worst a post shows as reaching someone who lied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, cast

from p2pcrew import codec
from p2pcrew.crew.directory import co_members, crew_state, crew_states
from p2pcrew.crew.membership import CrewState
from p2pcrew.crew.state import MAX_MEMBERS
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed import content as c
from p2pcrew.feed.content_schema import (
    MAX_TIME_MS,
    BaseContent,
    Id,
    Rule,
    register_content_type,
    rule,
)
from p2pcrew.feed.entry import Entry
from p2pcrew.feed.errors import InvalidContent
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.indexing import index_plaintext
from p2pcrew.feed.store import Store, StoredEntry, now_ms
from p2pcrew.replicate.messages import NOT_REPLICATING, note_seq

log = logging.getLogger(__name__)

RECEIPT_TYPE: Final = "crew_receipt"
RECEIPT_INTERVAL_MS: Final = 3_600_000
"""Without a publication of mine in the crew, at most one receipt per crew per hour."""
MAX_SEQ: Final = MAX_TIME_MS
"""Largest seq a receipt may name: 2^53 - 1, exact in JSON and in every peer's numbers."""
SEEN_META: Final = "crew.delivery.seen"
"""Store meta key of the observation log: when a member's clock first covered a seq."""
MAX_SEEN_STEPS: Final = 64
"""Steps kept per member; dropping the oldest only makes old "since" times later."""
PREVIEW_CHARS: Final = 60


# --- the receipt content type -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heads(Rule):
    """1..``max_items`` (feed id, seq) pairs, feed ids strictly ascending, seq >= 1."""

    max_items: int = MAX_MEMBERS

    def check(self, where: str, value: object) -> None:
        if type(value) is not tuple:
            raise InvalidContent(
                f"{where}: must be a tuple of (feed id, seq) pairs (an array on the wire)"
            )
        if not 1 <= len(value) <= self.max_items:
            raise InvalidContent(
                f"{where}: must hold 1 to {self.max_items} pairs, got {len(value)}"
            )
        feed_rule = Id("feed id")
        previous: bytes | None = None
        for index, pair in enumerate(value):
            at = f"{where}[{index}]"
            if type(pair) is not tuple or len(pair) != 2:
                raise InvalidContent(f"{at}: must be a pair [feed id, seq]")
            feed, seq = pair
            feed_rule.check(f"{at}[0]", feed)
            if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
                raise InvalidContent(f"{at}[1]: must be a sequence number 1 to {MAX_SEQ}")
            if previous is not None and feed <= previous:
                raise InvalidContent(f"{at}: feed ids must be distinct and sorted ascending")
            previous = feed

    def from_wire(self, value: object) -> object:
        if type(value) is not list:
            return value
        return tuple(tuple(pair) if type(pair) is list else pair for pair in value)

    def to_wire(self, value: Any) -> object:
        return [[feed, seq] for feed, seq in value]

    def max_size(self) -> int:
        pair = 1 + Id("feed id").max_size() + 9
        return 3 + self.max_items * pair


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class CrewReceipt(BaseContent):
    """What a member holds of its co-members' feeds (module docstring: format, cadence)."""

    TYPE: ClassVar[str] = RECEIPT_TYPE
    crew: bytes = field(metadata=rule(Id("crew id")))
    heads: tuple[tuple[bytes, int], ...] = field(metadata=rule(Heads()))

    def head(self, feed: bytes) -> int:
        """The seq of ``feed`` this receipt acknowledges (0: none)."""
        return dict(self.heads).get(feed, 0)


def make_receipt(
    store: Store, me: bytes, crew: bytes, *, now: int | None = None
) -> CrewReceipt | None:
    """The receipt I would publish in ``crew`` now; None when I hold no co-member's feed.

    Publish it with ``publishing.publish`` (it names the crew, so it is sealed). Raises
    UnknownCrew.
    """
    state = crew_state(store, crew)
    heads = []
    for member in sorted(state.members - {me}):
        info = store.feed(member)
        if info is not None and 1 <= info.latest_seq <= MAX_SEQ:
            heads.append((member, info.latest_seq))
    if not heads:
        return None
    return CrewReceipt(time=now_ms() if now is None else now, crew=crew, heads=tuple(heads))


def due_receipts(
    store: Store,
    me: bytes,
    *,
    now: int | None = None,
    publishing: Iterable[bytes] = (),
    interval_ms: int = RECEIPT_INTERVAL_MS,
) -> list[CrewReceipt]:
    """Receipts to publish now, at most one per crew I am a member of.

    ``publishing``: crews I am publishing something in right now (their receipt rides
    along, whatever the interval). Otherwise a crew's receipt waits ``interval_ms``
    after my last one. Either way it is due only when a co-member has crew content I
    have not acknowledged yet, so receipts never answer receipts.
    """
    when = now_ms() if now is None else now
    riding = set(publishing)
    due = []
    for state in crew_states(store):
        if me not in state.members:
            continue
        last, last_at = _last_receipt(store, me, state.crew)
        reported = dict(last.heads) if last is not None else {}
        if not _unacknowledged(store, me, state, reported):
            continue
        if state.crew not in riding and last is not None and when - last_at < interval_ms:
            continue
        receipt = make_receipt(store, me, state.crew, now=when)
        if receipt is not None and (last is None or receipt.heads != last.heads):
            due.append(receipt)
    return due


def publish_due_receipts(
    store: Store,
    identity: Identity,
    *,
    now: int | None = None,
    publishing: Iterable[bytes] = (),
) -> list[Entry]:
    """Publish ``due_receipts`` (one entry per crew at most). Raises as ``publish``."""
    from p2pcrew.publishing import publish

    receipts = due_receipts(store, identity.public_key, now=now, publishing=publishing)
    if not receipts:
        return []
    return publish(store, identity, [cast(c.Content, r) for r in receipts])


def publish_riding_receipts(
    store: Store, identity: Identity, published: Iterable[object], *, now: int | None = None
) -> list[Entry]:
    """After publishing ``published`` (content items), publish the receipts now due in
    the crews they belong to. Best effort: returns [] instead of raising, so that a
    receipt can never make a publication look failed. Receipts themselves never ride.
    """
    crews = {
        crew
        for item in published
        if (crew := getattr(item, "crew", None)) is not None and not isinstance(item, CrewReceipt)
    }
    if not crews:
        return []
    try:
        return publish_due_receipts(store, identity, now=now, publishing=crews)
    except P2PCrewError as exc:
        log.info("no crew receipt published: %s", exc)
        return []


def _last_receipt(store: Store, me: bytes, crew: bytes) -> tuple[CrewReceipt | None, int]:
    for stored in store.crew_content(crew, RECEIPT_TYPE):
        if stored.entry.author == me:
            receipt = _receipt(stored, crew)
            if receipt is not None:
                return receipt, stored.received_at
    return None, 0


def _unacknowledged(store: Store, me: bytes, state: CrewState, reported: dict[bytes, int]) -> bool:
    """Whether a co-member has crew content (not receipts) past what I acknowledged."""
    for member in sorted(state.members - {me}):
        start = reported.get(member, 0) + 1
        info = store.feed(member)
        if info is None or info.latest_seq < start:
            continue
        for stored in store.iter_feed(member, start):
            if stored.plaintext is None:
                continue
            row = index_plaintext(stored.plaintext)
            if row is not None and row.crew == state.crew and row.type != RECEIPT_TYPE:
                return True
    return False


def _receipt(stored: StoredEntry, crew: bytes) -> CrewReceipt | None:
    """The receipt in an opened envelope filed under ``crew``; None for anything else."""
    if stored.plaintext is None:  # a receipt in the clear is not one
        return None
    try:
        item: object = c.decode_content(stored.plaintext)
    except InvalidContent:
        return None
    if not isinstance(item, CrewReceipt) or item.crew != crew:
        return None
    return item


# --- who holds what -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """``member`` held my feed up to ``seq`` at ``since`` (ms), as ``via`` shows."""

    seq: int
    since: int
    via: str
    """``peer`` (their replication clock), ``receipt`` or ``answer`` (reply, update,
    reaction)."""
    known_at: int
    """When this store learnt it (local ms): it says nothing about entries of mine
    appended later, whatever ``seq`` claims."""
    known_order: int | None = None
    """For evidence carried by an entry: its local arrival order (finer than ms)."""

    def covers(self, mine: StoredEntry) -> bool:
        """Whether this says the member holds ``mine`` (an entry of my own feed)."""
        if self.seq < mine.entry.seq:
            return False
        if self.known_order is not None:
            return mine.order < self.known_order
        return mine.received_at <= self.known_at


@dataclass(frozen=True, slots=True)
class PostDelivery:
    """One of my crew posts or requests and the co-members known to hold it."""

    entry_id: bytes
    seq: int
    kind: str
    """``post``, ``reply``, ``ask`` or ``offer``."""
    text: str
    """A one-line preview."""
    published_at: int
    """When this store appended it (local milliseconds)."""
    holders: Mapping[bytes, int]
    """Co-member feed id -> since when (ms) they are known to hold it."""
    members_total: int
    """Members of the crew other than me: what "reached N of M" counts against."""
    via: Mapping[bytes, str] = field(default_factory=dict)
    """For each holder, the kind of evidence behind the ``since`` time."""
    missing: tuple[bytes, ...] = ()
    """Co-members not known to hold it, sorted."""

    @property
    def reached(self) -> int:
        return len(self.holders)


def delivery(
    store: Store, me: bytes, crew: bytes, *, limit: int = 20, now: int | None = None
) -> list[PostDelivery]:
    """My ``limit`` latest posts and requests in ``crew``, newest first, with holders.

    Raises UnknownCrew.
    """
    state = crew_state(store, crew)
    members = sorted(state.members - {me})
    mine = _my_items(store, me, crew, limit)
    if not mine:
        return []
    info = store.feed(me)
    my_latest = info.latest_seq if info is not None else 0
    when = now_ms() if now is None else now
    evidence: dict[bytes, list[Evidence]] = {m: [] for m in members}
    _clock_evidence(store, me, evidence, when)
    _receipt_evidence(store, me, crew, evidence, my_latest)
    _answer_evidence(store, [stored for stored, _, _ in mine], evidence)
    out = []
    for stored, kind, text in mine:
        seq, posted = stored.entry.seq, stored.received_at
        holders: dict[bytes, int] = {}
        via: dict[bytes, str] = {}
        for member in members:
            best = min(
                ((e.since, e.via) for e in evidence[member] if e.covers(stored)),
                default=None,
            )
            if best is not None:
                holders[member], via[member] = max(best[0], posted), best[1]
        missing = tuple(m for m in members if m not in holders)
        out.append(
            PostDelivery(
                stored.entry.id, seq, kind, text, posted, holders, len(members), via, missing
            )
        )
    return out


def _my_items(
    store: Store, me: bytes, crew: bytes, limit: int
) -> list[tuple[StoredEntry, str, str]]:
    found: list[tuple[StoredEntry, str, str]] = []
    for content_type in ("post", "request"):
        for stored in store.crew_content(crew, content_type):
            if stored.entry.author != me or stored.plaintext is None:
                continue
            try:
                item = c.decode_content(stored.plaintext)
            except InvalidContent:
                continue
            if isinstance(item, c.Post):
                kind = "reply" if item.root is not None else "post"
                found.append((stored, kind, _preview(item.text)))
            elif isinstance(item, c.Request):
                found.append((stored, item.kind, _preview(item.title)))
    found.sort(key=lambda row: -row[0].entry.seq)
    return found[: max(limit, 0)]


def _preview(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def _clock_evidence(
    store: Store, me: bytes, evidence: dict[bytes, list[Evidence]], now: int
) -> None:
    seen = _load_seen(store)
    for member, found in evidence.items():
        steps = seen.get(member, [])
        found.extend(Evidence(seq, at, "peer", at) for seq, at in steps)
        current = clock_seq(store, member, me)
        if current > (steps[-1][0] if steps else 0):
            found.append(Evidence(current, now, "peer", now))


def _receipt_evidence(
    store: Store, me: bytes, crew: bytes, evidence: dict[bytes, list[Evidence]], my_latest: int
) -> None:
    for stored in store.crew_content(crew, RECEIPT_TYPE):
        author = stored.entry.author
        if author not in evidence:
            continue  # mine, a former member's, or a stranger's
        receipt = _receipt(stored, crew)
        if receipt is None:
            continue
        seq = min(receipt.head(me), my_latest)
        if seq > 0:
            since = min(receipt.time, stored.received_at)
            evidence[author].append(
                Evidence(seq, since, "receipt", stored.received_at, stored.order)
            )


def _answer_evidence(
    store: Store, mine: Sequence[StoredEntry], evidence: dict[bytes, list[Evidence]]
) -> None:
    """Replies to my posts, updates of my requests, reactions to either."""
    threads: dict[bytes, list[StoredEntry]] = {}
    for stored in mine:
        target = stored.entry.id
        answers = list(store.referring(target))
        root = _thread_root(stored)
        if root is not None:
            if root not in threads:
                threads[root] = store.thread(root)
            answers += threads[root]
        for answer in answers:
            author = answer.entry.author
            if author not in evidence or answer.plaintext is None:
                continue
            try:
                item = c.decode_content(answer.plaintext)
            except InvalidContent:
                continue
            if isinstance(item, c.Post) and (item.reply_to or item.root) != target:
                continue  # another branch of the thread says nothing about this post
            if isinstance(item, c.Post | c.RequestUpdate | c.Reaction):
                since = min(item.time, answer.received_at)
                evidence[author].append(
                    Evidence(stored.entry.seq, since, "answer", answer.received_at, answer.order)
                )


def _thread_root(stored: StoredEntry) -> bytes | None:
    """The root of the thread a post of mine is in; None for anything else."""
    try:
        item = c.decode_content(stored.plaintext or b"")
    except InvalidContent:
        return None
    if not isinstance(item, c.Post):
        return None
    return item.root or stored.entry.id


# --- the observation log for peer clocks ---------------------------------------------------


def clock_seq(store: Store, peer: bytes, feed: bytes) -> int:
    """How much of ``feed`` ``peer`` last announced holding (0: nothing or unknown)."""
    received, _sent = store.peer_clock(peer)
    value = received.get(feed, NOT_REPLICATING)
    return note_seq(value) if value != NOT_REPLICATING else 0


def observe(store: Store, me: bytes, *, now: int | None = None) -> int:
    """Log when co-members' clocks first covered more of my feed; returns steps added.

    Call it whenever clocks were saved (after a sync, from the node's tick) on a store
    this process writes to; ``delivery`` then reports stable "since" times.
    """
    when = now_ms() if now is None else now
    seen = _load_seen(store)
    added = 0
    for member in sorted(co_members(store) - {me}):
        steps = seen.get(member, [])
        current = clock_seq(store, member, me)
        if current > (steps[-1][0] if steps else 0):
            steps.append((current, when))
            seen[member] = steps[-MAX_SEEN_STEPS:]
            added += 1
    if added:
        store.set_meta(SEEN_META, _dump_seen(seen))
    return added


def _load_seen(store: Store) -> dict[bytes, list[tuple[int, int]]]:
    data = store.get_meta(SEEN_META)
    if data is None:
        return {}
    try:
        value = codec.decode(data)
        return {bytes(feed): [(int(seq), int(at)) for seq, at in steps] for feed, steps in value}
    except (codec.CodecError, TypeError, ValueError):
        return {}  # a damaged log only makes "since" times later


def _dump_seen(seen: dict[bytes, list[tuple[int, int]]]) -> bytes:
    return codec.encode(
        [[feed, [[seq, at] for seq, at in steps]] for feed, steps in sorted(seen.items())]
    )
