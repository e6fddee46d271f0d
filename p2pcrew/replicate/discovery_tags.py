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

Bounds. An announcement carries tags for at most 48 pairwise and 4 group secrets
(``discovery_record`` fixes the record and its size). A node following more people
announces for the first 48 of ``rank_contacts``: the most recently active (latest
entry received or last connection). It still *recognises* everyone it follows (up to
``MAX_MATCH_SECRETS``) when browsing, and one side recognising the other is enough
for a connection, so a quiet friend is found as long as either ranks the other in
its 48.

Clock skew. ``match`` tries the browser's own window and the ones either side;
``discovery_skew`` bridges clocks that are further off.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.secret

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.identity import Identity, feed_key_to_curve25519
from p2pcrew.replicate.discovery_record import (
    GROUP_BUCKETS,
    KEY_BYTES,
    MAX_GROUP_TAGS,
    MAX_PAIR_TAGS,
    NONCE_BYTES,
    PAIR_BUCKETS,
    SEALED_BYTES,
    TAG_BYTES,
    Announcement,
)

SERVICE_TYPE: Final = "_p2pcrew._tcp.local."
WINDOW_SECONDS: Final = 600
SKEW_WINDOWS: Final = (0, -1, 1)
MAX_MATCH_SECRETS: Final = 512
"""Secrets a browser checks each announcement against (3 windows each)."""
MIN_GROUP_KEY: Final = 16
MAX_GROUP_KEY: Final = 64
MAX_WINDOW: Final = 2**64 - 1
"""The last window a u64 can name (tags hash the window as 8 bytes)."""

_TAG_LABEL: Final = b"p2pcrew-lan-tag"
_BOX_LABEL: Final = b"p2pcrew-lan-key"
_PAIR_PERSON: Final = b"p2pcrew-lan-pair"
_GROUP_PERSON: Final = b"p2pcrew-lan-crew"


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
    return hashlib.blake2b(tag_input(window, nonce), key=secret, digest_size=32).digest()[
        :TAG_BYTES
    ]


def tag_input(window: int, nonce: bytes) -> bytes:
    """What a tag is the keyed hash of; public so a wide search can hash it once per window."""
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
    return match_uncapped(announcement, known[:MAX_MATCH_SECRETS], me, window, offsets)[0]


def match_uncapped(
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
    windows = [window + d for d in offsets if 0 <= window + d <= MAX_WINDOW]
    for secret in known:
        for w in windows:
            expected = tag(secret.value, w, announcement.nonce)
            peer = recognise(secret, expected, tags, groups, w, announcement.nonce)
            anything = anything or peer is not None
            if peer is not None and peer != me:
                found.append(Match(peer, secret.label, w))
                break
    return found, anything


def recognise(
    secret: Secret,
    expected: bytes,
    tags: set[bytes],
    groups: dict[bytes, bytes],
    window: int,
    nonce: bytes,
) -> bytes | None:
    """The feed ``secret`` says announced, if its ``expected`` tag is in the record.

    A pairwise secret names its peer; a group secret names whoever's key its sealed
    copy opens to, which only a group member can read.
    """
    if secret.peer is not None:
        return secret.peer if expected in tags else None
    sealed = groups.get(expected)
    return None if sealed is None else open_key(secret.value, window, nonce, sealed)
