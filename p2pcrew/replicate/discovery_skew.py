"""Finding friends whose clock is wrong: the wide search, and what it learns.

A tag depends on the announcer's 10-minute window, so a browser has to guess it. The
fast path (``quick_match``, every announcement) tries the browser's own window and
the ones either side for every secret, plus the offsets it learned from earlier wide
matches. Only when that recognises nothing does the adapter consider a *wide search*
(``wide_match``): every window within ``MAX_CLOCK_SKEW`` (7 days) either side, nearest
first, for the group secrets and the first ``WIDE_SEARCH_SECRETS`` pairwise ones. It
exists for laptops whose clock is hours or days off (a wrong timezone, a flat clock
battery), which would otherwise never meet anyone on the LAN.

It costs about 2,014 keyed BLAKE2b calls per secret, so a stranger's record (which
matches nothing) is the worst case; ``WideSearchBudget`` rations it (a global token
bucket, and never twice for one nonce), because every record a hostile device invents
would otherwise buy that much CPU. A wide search also accepts a *replayed* record up
to 7 days old, where the fast path accepted about 20 minutes: a replay can only
misdirect a dial (the handshake proves the key), but whoever replays a recorded
announcement can see who dials.

Pure functions and one pure class; the adapter (``discovery``) runs ``wide_match`` on
a worker thread and keeps the learned offsets.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Final

from p2pcrew.replicate.discovery_record import TAG_BYTES, Announcement
from p2pcrew.replicate.discovery_tags import (
    MAX_MATCH_SECRETS,
    MAX_WINDOW,
    SKEW_WINDOWS,
    WINDOW_SECONDS,
    Match,
    Secret,
    match_uncapped,
    recognise,
    tag_input,
)

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
    found, anything = match_uncapped(
        announcement, known[:MAX_MATCH_SECRETS], me, window, SKEW_WINDOWS
    )
    if anything:
        return found
    extra = learned_offsets(learned)
    if extra:
        found, anything = match_uncapped(announcement, wide_secrets(known), me, window, extra)
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
        if not 0 <= w <= MAX_WINDOW:
            continue  # a clock near 1970: no such window to announce in
        data = tag_input(w, nonce)
        for secret, state in zip(candidates, states, strict=True):
            h = state.copy()
            h.update(data)
            if recognise(secret, h.digest()[:TAG_BYTES], tags, groups, w, nonce) is not None:
                return match_uncapped(announcement, candidates, me, w, (0,))[0]
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
