"""LAN discovery across clocks hours or days apart: wide search, its bounds, its budget.

A laptop whose clock is 2 hours ahead or 3 days behind must still find its crew on the
LAN (and be found), without letting a hostile device buy unbounded hashing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from zeroconf import IPVersion

from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate import discovery as disc_mod
from p2pcrew.replicate import discovery_record as dr
from p2pcrew.replicate import discovery_skew as ds
from p2pcrew.replicate import discovery_tags as dt
from p2pcrew.replicate.discovery import LanDiscovery
from p2pcrew.replicate.discovery_record import Announcement
from p2pcrew.replicate.discovery_tags import Secret
from p2pcrew.replicate.node import Node

ANA, BEN = Identity.generate(), Identity.generate()
WINDOW = dt.window_of(1_760_000_000)
CREW_KEY = b"k" * 32
HOUR = 3600 // dt.WINDOW_SECONDS  # windows per hour
DAY = 24 * HOUR


def pair(me: Identity, other: Identity) -> Secret:
    return Secret(dt.pair_secret(me, other.public_key), other.public_key, "contact")


def group(crew_key: bytes = CREW_KEY) -> Secret:
    return Secret(dt.group_secret(crew_key), None, "crew")


def strangers(count: int) -> list[Secret]:
    return [
        Secret(secrets.token_bytes(32), secrets.token_bytes(32), "contact") for _ in range(count)
    ]


# ---- recognition across a skewed clock -----------------------------------------------------


@pytest.mark.parametrize("skew", [2 * HOUR, -3 * DAY], ids=["2h-ahead", "3d-behind"])
@pytest.mark.parametrize("through", ["pair", "crew"])
def test_a_skewed_clock_is_found_by_wide_search_not_the_fast_path(skew: int, through: str) -> None:
    ben_secret, ana_secret = (
        (pair(BEN, ANA), pair(ANA, BEN)) if through == "pair" else (group(),) * 2
    )
    ben_says = dt.build_announcement(BEN.public_key, [ben_secret], WINDOW + skew)
    assert dt.match(ben_says, [ana_secret], ANA.public_key, WINDOW) == []
    assert ds.quick_match(ben_says, [ana_secret], ANA.public_key, WINDOW) is None
    (found,) = ds.wide_match(ben_says, [ana_secret], ANA.public_key, WINDOW)
    assert found.peer == BEN.public_key
    assert found.window == WINDOW + skew


@pytest.mark.parametrize("skew", [ds.WIDE_WINDOWS, -ds.WIDE_WINDOWS])
def test_seven_days_exactly_is_still_found(skew: int) -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW + skew)
    assert [
        m.window for m in ds.wide_match(ben_says, [pair(ANA, BEN)], ANA.public_key, WINDOW)
    ] == [WINDOW + skew]


@pytest.mark.parametrize("skew", [ds.WIDE_WINDOWS + 1, -ds.WIDE_WINDOWS - 1, 30 * DAY])
def test_beyond_seven_days_nothing_is_found(skew: int) -> None:
    assert ds.MAX_CLOCK_SKEW == 7 * 24 * 3600 and ds.WIDE_WINDOWS == 1008
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA), group()], WINDOW + skew)
    assert ds.wide_match(ben_says, [pair(ANA, BEN), group()], ANA.public_key, WINDOW) == []


def test_offsets_are_tried_nearest_first() -> None:
    offsets = list(ds.wide_offsets())
    assert offsets[:6] == [2, -2, 3, -3, 4, -4]
    assert offsets[-2:] == [1008, -1008]
    assert len(offsets) == len(set(offsets)) == 2 * 1007  # the fast path does -1, 0, 1
    assert not set(offsets) & set(dt.SKEW_WINDOWS)
    # A (hand-made) record tagged for two windows: the nearer one wins.
    secret = pair(ANA, BEN)
    nonce = bytes(16)
    far, near = dt.tag(secret.value, WINDOW - 7, nonce), dt.tag(secret.value, WINDOW + 5, nonce)
    record = Announcement(nonce, (far, near) + (b"\0" * 8,) * 6)
    assert [m.window for m in ds.wide_match(record, [secret], ANA.public_key, WINDOW)] == [
        WINDOW + 5
    ]


def test_all_secrets_are_reported_at_the_window_found() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA), group()], WINDOW - 40)
    found = ds.wide_match(ben_says, [pair(ANA, BEN), group()], ANA.public_key, WINDOW)
    assert [(m.peer, m.label, m.window) for m in found] == [
        (BEN.public_key, "contact", WINDOW - 40),
        (BEN.public_key, "crew", WINDOW - 40),
    ]


def test_wide_search_tries_crews_and_only_the_first_sixteen_contacts() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW + 2 * HOUR)
    known = [*strangers(ds.WIDE_SEARCH_SECRETS), pair(ANA, BEN)]  # Ben ranked 17th
    assert ds.wide_match(ben_says, known, ANA.public_key, WINDOW) == []
    known = [*strangers(ds.WIDE_SEARCH_SECRETS - 1), pair(ANA, BEN)]  # Ben ranked 16th
    assert len(ds.wide_match(ben_says, known, ANA.public_key, WINDOW)) == 1
    # Crews are always included, whatever the number of contacts.
    many = strangers(400) + [Secret(secrets.token_bytes(32), None, "crew") for _ in range(3)]
    chosen = ds.wide_secrets(many)
    assert chosen == many[: ds.WIDE_SEARCH_SECRETS] + many[-3:]
    crews = [Secret(secrets.token_bytes(32), None, "crew") for _ in range(40)]
    assert len(ds.wide_secrets(crews)) == ds.WIDE_SEARCH_GROUPS


def test_own_record_and_fast_matches_need_no_wide_search() -> None:
    mine = dt.build_announcement(ANA.public_key, [group()], WINDOW)
    assert ds.quick_match(mine, [group()], ANA.public_key, WINDOW) == []  # explained, not None
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW - 1)
    (found,) = ds.quick_match(ben_says, [pair(ANA, BEN)], ANA.public_key, WINDOW) or []
    assert found.peer == BEN.public_key
    # Not even a 3-day-old replay of our own record buys a wide search hit.
    old_mine = dt.build_announcement(ANA.public_key, [group()], WINDOW - 3 * DAY)
    assert ds.wide_match(old_mine, [group()], ANA.public_key, WINDOW) == []


def test_a_learned_offset_is_tried_by_the_fast_path() -> None:
    known = [pair(ANA, BEN), group()]
    learned = ds.remember_skew((), 2 * HOUR)
    assert learned == (12,)
    for skew in (11, 12, 13):  # the window phase can shift the offset by one
        ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW + skew)
        (found,) = ds.quick_match(ben_says, known, ANA.public_key, WINDOW, learned) or []
        assert found.window == WINDOW + skew
    far = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW + 14)
    assert ds.quick_match(far, known, ANA.public_key, WINDOW, learned) is None


def test_learned_offsets_are_few_and_latest_first() -> None:
    learned: tuple[int, ...] = ()
    for d in (12, -432, 12, 40, 41, 42):
        learned = ds.remember_skew(learned, d)
    assert learned == (42, 41, 40, 12)
    assert len(ds.learned_offsets(learned)) <= 3 * ds.LEARNED_SKEWS
    assert not set(ds.learned_offsets((1, -2))) & set(dt.SKEW_WINDOWS)


def test_a_clock_near_1970_does_not_crash() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], 3)
    assert [m.window for m in ds.wide_match(ben_says, [pair(ANA, BEN)], ANA.public_key, 0)] == [3]
    assert dt.match(ben_says, [pair(ANA, BEN)], ANA.public_key, 0) == []


# ---- the budget -----------------------------------------------------------------------------


def test_budget_allows_a_burst_then_refills_at_its_rate() -> None:
    budget = ds.WideSearchBudget(per_minute=4, burst=4)
    assert [budget.admit(bytes([i]) * 16, 100.0) for i in range(6)] == [True] * 4 + [False] * 2
    assert not budget.admit(b"\x10" * 16, 114.0)  # 14 s: not yet a token
    assert budget.admit(b"\x11" * 16, 115.0)  # 15 s: one token
    assert not budget.admit(b"\x12" * 16, 115.0)
    later = [budget.admit(bytes([0x20 + i]) * 16, 100_000.0) for i in range(6)]
    assert later == [True] * 4 + [False] * 2  # saved up to the burst, no more


def test_budget_never_searches_one_nonce_twice() -> None:
    budget = ds.WideSearchBudget(per_minute=4, burst=4, remember=2)
    assert budget.admit(b"a" * 16, 0.0)
    assert not budget.admit(b"a" * 16, 1000.0)  # tokens to spare, but already searched
    assert budget.admit(b"b" * 16, 1000.0) and budget.admit(b"c" * 16, 1000.0)
    assert budget.admit(b"a" * 16, 1000.0)  # forgotten: memory is bounded too


def test_a_refused_nonce_may_try_again_when_tokens_come_back() -> None:
    budget = ds.WideSearchBudget(per_minute=4, burst=1)
    assert budget.admit(b"a" * 16, 0.0)
    assert not budget.admit(b"b" * 16, 1.0)
    assert budget.admit(b"b" * 16, 16.0)


def test_time_going_backwards_adds_no_tokens() -> None:
    budget = ds.WideSearchBudget(per_minute=4, burst=1)
    assert budget.admit(b"a" * 16, 100.0)
    assert not budget.admit(b"b" * 16, 50.0)
    assert not budget.admit(b"c" * 16, 100.0)


# ---- the adapter (no sockets: records are handed to it as if resolved) ----------------------


@dataclass
class FakeInfo:
    """What ``_consider`` reads from a resolved ``AsyncServiceInfo``."""

    text: bytes
    port: int = 8008

    def parsed_addresses(self, version: IPVersion) -> list[str]:
        return ["10.0.0.2"]


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Callable[[float], LanDiscovery]]:
    stores: list[SqliteStore] = []

    def make(now: float) -> LanDiscovery:
        store = SqliteStore(tmp_path / f"node{len(stores)}")
        stores.append(store)
        discovery = LanDiscovery(
            Node(store, ANA), 8008, group_secrets=lambda: [(CREW_KEY, "crew")], clock=lambda: now
        )
        discovery._addresses = ["10.0.0.1/24"]
        discovery._maybe_dial = lambda *_args: None  # type: ignore[method-assign]
        return discovery

    yield make
    for store in stores:
        store.close()


async def test_adapter_finds_a_skewed_crewmate_and_remembers_the_offset(
    lan: Callable[[float], LanDiscovery],
) -> None:
    now = 1_760_000_000.0
    discovery = lan(now)
    await discovery._refresh_secrets()
    window = dt.window_of(now)
    ben_says = dt.build_announcement(BEN.public_key, [group()], window - 3 * DAY)
    await discovery._consider("ben1", FakeInfo(dr.encode_txt(ben_says)))  # type: ignore[arg-type]
    assert BEN.public_key in discovery.found
    assert discovery.wide_searches == 1 and discovery.skews == (-3 * DAY,)
    # Ben's next record (next window, fresh nonce) is recognised by the fast path.
    discovery.found.clear()
    again = dt.build_announcement(BEN.public_key, [group()], window - 3 * DAY + 1)
    await discovery._consider("ben2", FakeInfo(dr.encode_txt(again)))  # type: ignore[arg-type]
    assert BEN.public_key in discovery.found and discovery.wide_searches == 1


async def test_adapter_a_flood_of_strangers_buys_one_search_per_token(
    lan: Callable[[float], LanDiscovery], monkeypatch: pytest.MonkeyPatch
) -> None:
    discovery = lan(1_760_000_000.0)
    await discovery._refresh_secrets()
    calls: list[bytes] = []

    def counting(announcement: Announcement, *args: object) -> list[dt.Match]:
        calls.append(announcement.nonce)
        return []

    monkeypatch.setattr(disc_mod, "wide_match", counting)
    stranger = Identity.generate()
    records = [
        dr.encode_txt(dt.build_announcement(stranger.public_key, strangers(3), WINDOW))
        for _ in range(50)
    ]
    for round_ in range(3):  # every record seen again, under fresh names too
        for i, raw in enumerate(records):
            await discovery._consider(f"s{round_}-{i}", FakeInfo(raw))  # type: ignore[arg-type]
    assert len(calls) == ds.WIDE_SEARCH_BURST == discovery.wide_searches
    assert len(set(calls)) == len(calls)  # never the same nonce twice
    assert not discovery.found
