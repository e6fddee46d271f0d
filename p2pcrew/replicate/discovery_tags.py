"""LAN announcements that only friends can recognise: the sans-IO half of discovery.

Theory of operation
-------------------
A running node announces ``_p2pcrew._tcp.local.`` over mDNS (see ``discovery``).
Everything an outsider on the network sees is random or rotating:

- the instance and host names are fresh random hex, renewed every time the window
  turns and whenever the machine's addresses change (never the computer's own name);
- the TXT record holds only a format version ``v``, a random per-announcement
  ``nonce`` (16 bytes) and short tags. No feed key, no name in the clear.

Tags. For every secret ``S`` the node shares with someone::

    window = floor(unix_time / 600)                   # rotates every 10 minutes
    tag    = BLAKE2b-256(key=S, b"p2pcrew-lan-tag" || u64be(window) || nonce)[:8]

Secrets come in two kinds:

- *pairwise*, one per followed feed ``F``: ``S = BLAKE2b-256(person="p2pcrew-lan-pair",
  X25519(my_curve_secret, curve(F)) || min(me, F) || max(me, F))``. Both ends compute
  the same ``S``; the browser that matches it knows it found ``F``.
- *group*, supplied by a ``SecretSource`` (one per crew, ``crew.directory.lan_secrets``): ``S =
  BLAKE2b-256(person="p2pcrew-lan-crew", key=crew_key)`` (domain-separated from the
  crew's encryption key). A member matching a group tag does not know *which* member
  announced it, so each group tag travels with a sealed copy of the announcer's feed
  key: ``secretbox(key=BLAKE2b-256(key=S, b"p2pcrew-lan-key"), nonce=nonce ||
  u64be(window), feed_key)``. Only members can open it; the handshake that follows
  still requires the host to prove that key, so a lying member can misdirect a dial
  but never impersonate anyone.

Unlinkability. A tag is a PRF of a fresh nonce and the window, so two announcements
share no tag; the tag count is padded with random decoys to a bucket (8, 16, 32, 48
pairwise; 0, 2, 4 group) and shuffled, so neither the number of contacts nor their
order links announcements. What the network layer shows (MAC, IP address, port) is
linkable by any observer of the LAN anyway; announcements add nothing to it.

Who finds whom. A node tags only the people it follows, and a browser holds secrets
only for the people it follows, so two people find each other when they follow each
other; someone who merely follows you cannot spot you in a room.

Bounds (mDNS packets must stay small). At most ``MAX_PAIR_TAGS`` (48) pairwise tags
and ``MAX_GROUP_TAGS`` (4) group tags; the largest record is 870 bytes, under
``MAX_TXT_BYTES`` (1024), the smallest 119. A node following more people announces
for the first 48 of ``rank_contacts``: the most recently active (latest entry
received or last connection). It still *recognises* everyone it follows (up to
``MAX_MATCH_SECRETS``) when browsing, and one side recognising the other is enough
for a connection, so a quiet friend is found as long as either ranks the other in
its 48.

Clock skew. A tag depends on the announcer's window, so a browser has to guess it.
The fast path (``quick_match``, every announcement) tries the browser's own window and
the ones either side for every secret, plus the offsets it learned from earlier wide
matches. Only when that recognises nothing does the adapter consider a *wide search*
(``wide_match``): every window within ``MAX_CLOCK_SKEW`` (7 days) either side, nearest
first, for the group secrets and the first ``WIDE_SEARCH_SECRETS`` pairwise ones. It
exists for laptops whose clock is hours or days off (a wrong timezone, a flat clock
battery), which would otherwise never meet anyone on the LAN. It costs about 2,014
keyed BLAKE2b calls per secret, so a stranger's record (which matches nothing) is the
worst case; ``WideSearchBudget`` rations it (a global token bucket, and never twice for
one nonce), because every record a hostile device invents would otherwise buy that
much CPU. A wide search also accepts a *replayed* record up to 7 days old, where the
fast path accepted about 20 minutes: a replay can only misdirect a dial (the handshake
proves the key), but whoever replays a recorded announcement can see who dials.

``decode_txt`` is strict (exact keys, canonical unpadded
base64url, exact sizes, no duplicates); anything else raises ``BadAnnouncement`` and
the browser ignores that service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import math
import secrets
import struct
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.secret

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.identity import Identity, feed_key_to_curve25519

SERVICE_TYPE: Final = "_p2pcrew._tcp.local."
FORMAT_VERSION: Final = b"1"
WINDOW_SECONDS: Final = 600
SKEW_WINDOWS: Final = (0, -1, 1)
NONCE_BYTES: Final = 16
TAG_BYTES: Final = 8
KEY_BYTES: Final = 32
SEALED_BYTES: Final = KEY_BYTES + nacl.secret.SecretBox.MACBYTES
GROUP_ENTRY_BYTES: Final = TAG_BYTES + SEALED_BYTES
PAIR_BUCKETS: Final = (8, 16, 32, 48)
GROUP_BUCKETS: Final = (0, 2, 4)
MAX_PAIR_TAGS: Final = PAIR_BUCKETS[-1]
MAX_GROUP_TAGS: Final = GROUP_BUCKETS[-1]
TAGS_PER_STRING: Final = 16
MAX_TXT_BYTES: Final = 1024
MAX_MATCH_SECRETS: Final = 512
"""Secrets a browser checks each announcement against (3 windows each)."""
MIN_GROUP_KEY: Final = 16
MAX_GROUP_KEY: Final = 64
MAX_CLOCK_SKEW: Final = 7 * 24 * 3600
"""Seconds of clock difference a wide search still bridges (either way)."""
WIDE_WINDOWS: Final = MAX_CLOCK_SKEW // WINDOW_SECONDS
"""Windows a wide search tries each side of the browser's own (1,008)."""
WIDE_SEARCH_SECRETS: Final = 16
"""Pairwise secrets a wide search tries: the first ones in ranking order."""
WIDE_SEARCH_GROUPS: Final = 16
"""Group secrets a wide search tries (all of them, for anyone in at most 16 crews)."""
WIDE_SEARCHES_PER_MINUTE: Final = 4.0
WIDE_SEARCH_BURST: Final = 4
WIDE_SEARCH_NONCES_KEPT: Final = 256
"""Nonces already searched that a ``WideSearchBudget`` remembers (oldest forgotten)."""
LEARNED_SKEWS: Final = 4
"""Window offsets learned from wide matches that the fast path also tries."""

_TAG_LABEL: Final = b"p2pcrew-lan-tag"
_MAX_WINDOW: Final = 2**64 - 1
_BOX_LABEL: Final = b"p2pcrew-lan-key"
_PAIR_PERSON: Final = b"p2pcrew-lan-pair"
_GROUP_PERSON: Final = b"p2pcrew-lan-crew"


class BadAnnouncement(P2PCrewError, ValueError):
    """A TXT record that is not a well-formed announcement of this format (remote)."""


class UnsupportedVersion(BadAnnouncement):
    """An announcement of another format version: skipped, not an error."""


class BadSecret(P2PCrewError, ValueError):
    """A contact key or group key that cannot make a LAN secret (local; skip it)."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret shared with one contact (``peer`` set) or with a group (``peer`` None)."""

    value: bytes = field(repr=False)
    peer: bytes | None
    label: str

    @property
    def is_group(self) -> bool:
        return self.peer is None


@dataclass(frozen=True, slots=True)
class Announcement:
    """The decoded TXT record: nonce, pairwise tags, (group tag, sealed key) pairs."""

    nonce: bytes
    tags: tuple[bytes, ...]
    groups: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """Whom an announcement came from, and through which secret."""

    peer: bytes
    label: str
    window: int


@dataclass(frozen=True, slots=True)
class Contact:
    """A followed feed, with when we last heard of it (entry received or link opened)."""

    feed: bytes
    activity_ms: int


# --------------------------------------------------------------------------- derivation


def window_of(unix_time: float) -> int:
    """The 10-minute window a wall-clock time falls in."""
    return math.floor(unix_time / WINDOW_SECONDS)


def pair_secret(identity: Identity, peer: bytes) -> bytes:
    """The secret ``identity`` shares with feed ``peer`` (the same from both ends).

    Raises:
        BadSecret: ``peer`` is not a usable Ed25519 key (invalid or low order).
    """
    try:
        their_curve = feed_key_to_curve25519(peer)
        shared = nacl.bindings.crypto_scalarmult(identity.curve25519_secret(), their_curve)
    except (ValueError, nacl.exceptions.RuntimeError, nacl.exceptions.TypeError):
        raise BadSecret("not a usable contact key") from None
    low, high = sorted((identity.public_key, peer))
    return hashlib.blake2b(shared + low + high, digest_size=32, person=_PAIR_PERSON).digest()


def group_secret(crew_key: bytes) -> bytes:
    """The LAN secret of a group, domain-separated from the group's own key.

    Raises:
        BadSecret: ``crew_key`` is shorter than 16 or longer than 64 bytes.
    """
    if not MIN_GROUP_KEY <= len(crew_key) <= MAX_GROUP_KEY:
        raise BadSecret(f"group keys must be {MIN_GROUP_KEY} to {MAX_GROUP_KEY} bytes")
    return hashlib.blake2b(b"", key=crew_key, digest_size=32, person=_GROUP_PERSON).digest()


def tag(secret: bytes, window: int, nonce: bytes) -> bytes:
    return hashlib.blake2b(_tag_input(window, nonce), key=secret, digest_size=32).digest()[
        :TAG_BYTES
    ]


def _tag_input(window: int, nonce: bytes) -> bytes:
    return _TAG_LABEL + struct.pack(">Q", window) + nonce


def _box(secret: bytes) -> nacl.secret.SecretBox:
    return nacl.secret.SecretBox(hashlib.blake2b(_BOX_LABEL, key=secret, digest_size=32).digest())


def _box_nonce(window: int, nonce: bytes) -> bytes:
    return nonce + struct.pack(">Q", window)


def seal_key(secret: bytes, window: int, nonce: bytes, feed_key: bytes) -> bytes:
    """The announcer's feed key, readable only by holders of the group ``secret``."""
    sealed = _box(secret).encrypt(feed_key, _box_nonce(window, nonce))
    return sealed.ciphertext


def open_key(secret: bytes, window: int, nonce: bytes, sealed: bytes) -> bytes | None:
    """The feed key inside ``sealed``; None when it was not sealed under ``secret``."""
    try:
        key = _box(secret).decrypt(sealed, _box_nonce(window, nonce))
    except (nacl.exceptions.CryptoError, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


# --------------------------------------------------------------------------- announcing


def rank_contacts(contacts: Iterable[Contact]) -> list[bytes]:
    """Feeds in announcing order: the most recently active first."""
    ordered = sorted(contacts, key=lambda c: (-c.activity_ms, c.feed))
    return [c.feed for c in ordered]


def _bucket(count: int, buckets: Sequence[int]) -> int:
    return next(b for b in buckets if b >= count)


def build_announcement(
    feed_key: bytes, owned: Sequence[Secret], window: int, nonce: bytes | None = None
) -> Announcement:
    """Tags for the first ``MAX_PAIR_TAGS`` pairwise and ``MAX_GROUP_TAGS`` group secrets.

    ``owned`` is in priority order (``rank_contacts`` for the pairwise ones); the rest
    are left out. Decoys pad both lists to a bucket; both are shuffled.
    """
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    pairs = [s for s in owned if not s.is_group][:MAX_PAIR_TAGS]
    groups = [s for s in owned if s.is_group][:MAX_GROUP_TAGS]
    tags = [tag(s.value, window, nonce) for s in pairs]
    tags += [
        secrets.token_bytes(TAG_BYTES) for _ in range(_bucket(len(tags), PAIR_BUCKETS) - len(tags))
    ]
    entries = [
        (tag(s.value, window, nonce), seal_key(s.value, window, nonce, feed_key)) for s in groups
    ]
    padding = _bucket(len(entries), GROUP_BUCKETS) - len(entries)
    entries += [
        (secrets.token_bytes(TAG_BYTES), secrets.token_bytes(SEALED_BYTES)) for _ in range(padding)
    ]
    rng = secrets.SystemRandom()
    rng.shuffle(tags)
    rng.shuffle(entries)
    return Announcement(nonce, tuple(tags), tuple(entries))


# --------------------------------------------------------------------------- recognising


def match(
    announcement: Announcement,
    known: Sequence[Secret],
    me: bytes,
    window: int,
    offsets: Sequence[int] = SKEW_WINDOWS,
) -> list[Match]:
    """Whom ``announcement`` is from, as far as ``known`` secrets tell (never ``me``).

    Checks ``window + d`` for each ``d`` of ``offsets`` in order (by default the
    window and the ones either side: clock skew). At most one match per secret; a
    peer can appear twice (pairwise and through a group).
    """
    return _match(announcement, known[:MAX_MATCH_SECRETS], me, window, offsets)[0]


def _match(
    announcement: Announcement,
    known: Sequence[Secret],
    me: bytes,
    window: int,
    offsets: Sequence[int],
) -> tuple[list[Match], bool]:
    """``match`` without the cap, and whether any secret recognised the record at all.

    The flag is also True for our own record (which yields no match): that record is
    explained, and a wide search for it would be wasted.
    """
    found: list[Match] = []
    anything = False
    tags = set(announcement.tags)
    groups = dict(announcement.groups)
    windows = [window + d for d in offsets if 0 <= window + d <= _MAX_WINDOW]
    for secret in known:
        for w in windows:
            expected = tag(secret.value, w, announcement.nonce)
            peer = _recognise(secret, expected, tags, groups, w, announcement.nonce)
            anything = anything or peer is not None
            if peer is not None and peer != me:
                found.append(Match(peer, secret.label, w))
                break
    return found, anything


def wide_secrets(known: Sequence[Secret]) -> list[Secret]:
    """The secrets a wide search (and a learned offset) is tried with, in ``known``'s order.

    Every group secret (up to ``WIDE_SEARCH_GROUPS``: a crew is whom a skewed laptop
    most needs to find) and the first ``WIDE_SEARCH_SECRETS`` pairwise ones in ranking
    order: the cost of a wide search is proportional to this list, so it must not
    grow with the contact list.
    """
    chosen: list[Secret] = []
    groups = pairs = 0
    for s in known:
        if s.is_group and groups < WIDE_SEARCH_GROUPS:
            groups += 1
            chosen.append(s)
        elif not s.is_group and pairs < WIDE_SEARCH_SECRETS:
            pairs += 1
            chosen.append(s)
    return chosen


def learned_offsets(learned: Sequence[int]) -> list[int]:
    """The window offsets the fast path adds for ``learned`` skews, beyond ``SKEW_WINDOWS``.

    Each learned offset ``d`` brings ``d - 1`` and ``d + 1`` along: a clock 12.5 windows
    off is seen at 12 or at 13 depending on when in the window the record was built.
    """
    offsets: list[int] = []
    for d in learned[:LEARNED_SKEWS]:
        for o in (d, d - 1, d + 1):
            if o not in SKEW_WINDOWS and o not in offsets and abs(o) <= WIDE_WINDOWS:
                offsets.append(o)
    return offsets


def remember_skew(learned: Sequence[int], offset: int) -> tuple[int, ...]:
    """``learned`` with ``offset`` (the latest wide match) first, at most ``LEARNED_SKEWS``."""
    return tuple([offset, *(d for d in learned if d != offset)][:LEARNED_SKEWS])


def quick_match(
    announcement: Announcement,
    known: Sequence[Secret],
    me: bytes,
    window: int,
    learned: Sequence[int] = (),
) -> list[Match] | None:
    """The fast path, run for every announcement: cheap, bounded by ``MAX_MATCH_SECRETS``.

    Every secret for the windows of ``SKEW_WINDOWS``; then the ``wide_secrets`` for the
    offsets ``learned`` from earlier wide matches (so a friend whose clock is off is
    recognised again without another wide search). Returns None when no secret
    recognised the record at all, not even as our own: only then can a wide search
    help. A record that is only ours gives ``[]``.
    """
    found, anything = _match(announcement, known[:MAX_MATCH_SECRETS], me, window, SKEW_WINDOWS)
    if anything:
        return found
    extra = learned_offsets(learned)
    if extra:
        found, anything = _match(announcement, wide_secrets(known), me, window, extra)
    return found if anything else None


def wide_offsets() -> Iterator[int]:
    """Window offsets a wide search tries, nearest first: 2, -2, 3, -3, ... ±1008."""
    for distance in range(max(abs(d) for d in SKEW_WINDOWS) + 1, WIDE_WINDOWS + 1):
        yield distance
        yield -distance


def wide_match(
    announcement: Announcement, known: Sequence[Secret], me: bytes, window: int
) -> list[Match]:
    """The slow path: ``match`` over every window within ``MAX_CLOCK_SKEW`` of ``window``.

    Only for the ``wide_secrets`` of ``known`` and only the windows the fast path does
    not try (``wide_offsets``, nearest first). A record carries tags for a single
    window, so the sweep stops at the first window where any secret recognises it,
    and all the secrets are then checked at that window alone.

    Cost: at most ``len(wide_secrets(known)) * 2,014`` keyed BLAKE2b-256 calls (the tag
    input is built once per window and the keyed state copied, not re-keyed). Measured
    on a 2-core development VM (CPython 3, idle): about 0.4 us per call, 27 ms for
    the largest search (32 secrets, a stranger's record), 17 ms for 4 crews and 16
    contacts, 5 ms for one crew and 4 contacts; the fast path over 512 secrets is
    about 1.2 ms. So it runs on a worker thread, not the event loop. A friend ``d``
    windows off is found after about ``2 * |d|`` windows instead of 2,014.
    """
    candidates = wide_secrets(known)
    if not candidates:
        return []
    states = [hashlib.blake2b(key=s.value, digest_size=32) for s in candidates]
    tags = set(announcement.tags)
    groups = dict(announcement.groups)
    nonce = announcement.nonce
    for d in wide_offsets():
        w = window + d
        if not 0 <= w <= _MAX_WINDOW:
            continue  # a clock near 1970: no such window to announce in
        data = _tag_input(w, nonce)
        for secret, state in zip(candidates, states, strict=True):
            h = state.copy()
            h.update(data)
            if _recognise(secret, h.digest()[:TAG_BYTES], tags, groups, w, nonce) is not None:
                return _match(announcement, candidates, me, w, (0,))[0]
    return []


class WideSearchBudget:
    """Who may start a wide search: a token bucket, and never twice for one nonce.

    A wide search costs tens of milliseconds of CPU and any device on the LAN can
    announce as many fresh records as it likes, so the budget is global (not per
    service name, which costs nothing to change): ``per_minute`` tokens a minute, at
    most ``burst`` saved up. A nonce that was searched once is not searched again
    (its record is re-resolved on every update); the last ``remember`` nonces are
    kept. Pure: the caller passes the (monotonic) time.
    """

    def __init__(
        self,
        per_minute: float = WIDE_SEARCHES_PER_MINUTE,
        burst: int = WIDE_SEARCH_BURST,
        remember: int = WIDE_SEARCH_NONCES_KEPT,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last: float | None = None
        self._remember = remember
        self._searched: OrderedDict[bytes, None] = OrderedDict()

    def admit(self, nonce: bytes, now: float) -> bool:
        """True (and a token spent, the nonce remembered) when a search may start now."""
        if nonce in self._searched:
            return False
        if self._last is None or now > self._last:
            elapsed = 0.0 if self._last is None else now - self._last
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._last = now  # never backwards: a clock step must not mint tokens
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        self._searched[nonce] = None
        while len(self._searched) > self._remember:
            self._searched.popitem(last=False)
        return True


def _recognise(
    secret: Secret,
    expected: bytes,
    tags: set[bytes],
    groups: dict[bytes, bytes],
    window: int,
    nonce: bytes,
) -> bytes | None:
    if secret.peer is not None:
        return secret.peer if expected in tags else None
    sealed = groups.get(expected)
    return None if sealed is None else open_key(secret.value, window, nonce, sealed)


# --------------------------------------------------------------------------- TXT format


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: bytes, what: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadAnnouncement(f"{what}: not base64url") from None
    if _b64(data) != text:  # rejects padding, stray characters and non-canonical forms
        raise BadAnnouncement(f"{what}: not canonical unpadded base64url")
    return data


def encode_txt(announcement: Announcement) -> bytes:
    """The TXT rdata: length-prefixed ``key=value`` strings, as mDNS carries them.

    Raises:
        ValueError: the announcement breaks the bounds (a bug in the caller).
    """
    if len(announcement.nonce) != NONCE_BYTES:
        raise ValueError("nonce must be 16 bytes")
    if len(announcement.tags) > MAX_PAIR_TAGS or len(announcement.groups) > MAX_GROUP_TAGS:
        raise ValueError("too many tags")
    strings = [b"v=" + FORMAT_VERSION, b"n=" + _b64(announcement.nonce)]
    tags = announcement.tags
    for i in range(0, len(tags), TAGS_PER_STRING):
        strings.append(
            b"t%d=" % (i // TAGS_PER_STRING) + _b64(b"".join(tags[i : i + TAGS_PER_STRING]))
        )
    for i, (group_tag, sealed) in enumerate(announcement.groups):
        strings.append(b"g%d=" % i + _b64(group_tag + sealed))
    return b"".join(bytes((len(s),)) + s for s in strings)


def _split_strings(raw: bytes) -> dict[bytes, bytes]:
    if len(raw) > MAX_TXT_BYTES:
        raise BadAnnouncement(f"TXT record of {len(raw)} bytes exceeds {MAX_TXT_BYTES}")
    fields: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(raw):
        end = pos + 1 + raw[pos]
        if end > len(raw):
            raise BadAnnouncement("truncated TXT string")
        key, sep, value = raw[pos + 1 : end].partition(b"=")
        if not sep or not value:
            raise BadAnnouncement("TXT string without a value")
        if key in fields:
            raise BadAnnouncement(f"duplicate key {key!r}")
        fields[key] = value
        pos = end
    return fields


def _indexed(fields: dict[bytes, bytes], prefix: bytes) -> list[bytes]:
    """Values of ``prefix0``, ``prefix1``, ... which must be numbered without gaps."""
    values: list[bytes] = []
    while (value := fields.pop(prefix + b"%d" % len(values), None)) is not None:
        values.append(value)
    return values


def decode_txt(raw: bytes) -> Announcement:
    """Parse a TXT record strictly.

    Raises:
        UnsupportedVersion: another format version (skip quietly).
        BadAnnouncement: anything malformed, oversized or unexpected.
    """
    fields = _split_strings(raw)
    version = fields.pop(b"v", None)
    if version is None:
        raise BadAnnouncement("no version")
    if version != FORMAT_VERSION:
        raise UnsupportedVersion(f"announcement format {version[:8]!r}")
    nonce = _unb64(fields.pop(b"n", b""), "nonce")
    if len(nonce) != NONCE_BYTES:
        raise BadAnnouncement("nonce must be 16 bytes")
    tags = _decode_tags(_indexed(fields, b"t"))
    groups = tuple(_decode_group(v) for v in _indexed(fields, b"g"))
    if len(groups) > MAX_GROUP_TAGS:
        raise BadAnnouncement("too many group tags")
    if fields:
        raise BadAnnouncement(f"unexpected keys {sorted(fields)[:4]!r}")
    return Announcement(nonce, tags, groups)


def _decode_tags(values: list[bytes]) -> tuple[bytes, ...]:
    tags: list[bytes] = []
    for value in values:
        data = _unb64(value, "tags")
        if not data or len(data) % TAG_BYTES or len(data) > TAG_BYTES * TAGS_PER_STRING:
            raise BadAnnouncement("tag list of the wrong size")
        tags += [data[i : i + TAG_BYTES] for i in range(0, len(data), TAG_BYTES)]
    if len(tags) > MAX_PAIR_TAGS:
        raise BadAnnouncement("too many tags")
    return tuple(tags)


def _decode_group(value: bytes) -> tuple[bytes, bytes]:
    data = _unb64(value, "group tag")
    if len(data) != GROUP_ENTRY_BYTES:
        raise BadAnnouncement("group tag of the wrong size")
    return data[:TAG_BYTES], data[TAG_BYTES:]


# --------------------------------------------------------------------------- addresses


def order_addresses(remote: Iterable[str], local: Iterable[str]) -> list[str]:
    """IPv4 ``remote`` addresses worth dialling, those on one of our ``local`` networks first.

    ``local`` holds interfaces as ``"10.0.0.5/24"``. An announcement is controlled by
    whoever sent it (a replayed one too), so only addresses a LAN peer can have are
    kept: on one of our networks, or private / link-local (a routed venue network).
    Public, loopback, multicast, unspecified and malformed addresses are dropped, so
    a forged record cannot make us dial out to the internet.
    """
    networks = [ipaddress.IPv4Interface(n).network for n in local]
    usable: list[ipaddress.IPv4Address] = []
    for text in remote:
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        ours = any(addr in net for net in networks)
        if _dialable(addr) and (ours or addr.is_private) and addr not in usable:
            usable.append(addr)
    usable.sort(key=lambda a: not any(a in net for net in networks))
    return [str(a) for a in usable]


def _dialable(addr: ipaddress.IPv4Address) -> bool:
    return not (addr.is_loopback or addr.is_multicast or addr.is_unspecified or addr.is_reserved)
