"""A small, deterministic store for the app's tests and snapshots.

Ana (the person using the app), Ben and Cleo have fixed keys; every time is fixed
relative to ``NOW``, the clock the app is given, so a screenshot is the same on
every run. Ben's and Cleo's entries are appended straight into Ana's store, as if
replication had brought them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from p2pcrew import publishing
from p2pcrew.crew.keyring import Keyring
from p2pcrew.crew.membership import create_crew, seal_state
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home

NOW = 1_750_000_000_000  # 2025-06-15 15:06:40 UTC
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

ANA = Identity.from_seed(bytes([1]) * 32)
BEN = Identity.from_seed(bytes([2]) * 32)
CLEO = Identity.from_seed(bytes([3]) * 32)


def clock() -> int:
    return NOW


@dataclass(frozen=True)
class Fixture:
    home: Home
    garden: bytes
    tenants: bytes
    seed_swap: bytes
    """The busiest Garden thread (Ben's root, replies by Cleo, Ana and Ben)."""
    drill: bytes
    """Ben's open request in Garden: Ana may claim it."""


def build(home: Home, *, with_identity: bool = True) -> Fixture:
    home.ensure()
    if with_identity:
        save_identity(ANA, home.identity_path)
    store = SqliteStore(home.store_dir)
    try:
        return _fill(home, store)
    finally:
        store.close()


def _fill(home: Home, store: SqliteStore) -> Fixture:
    Keyring.attach(store, ANA)

    def put(who: Identity, *items: c.Content) -> bytes:
        return publishing.publish(store, who, list(items))[-1].id

    for who, name in ((ANA, "Ana"), (BEN, "Ben"), (CLEO, "Cleo")):
        put(who, c.About(name=name, time=NOW - 30 * DAY))
    garden = _crew(store, BEN, "Garden crew", [ANA, CLEO], bytes([7]) * 32, NOW - 20 * DAY)
    tenants = _crew(store, ANA, "Tenants union", [BEN], bytes([8]) * 32, NOW - 19 * DAY)
    put(BEN, c.Post(text="Hello from Ben, in public.", time=NOW - 5 * DAY))
    minutes = put(
        ANA,
        c.Post(
            text="Minutes from last meeting are in the folder.", crew=garden, time=NOW - 3 * DAY
        ),
    )
    compost = put(
        CLEO,
        c.Post(text="The compost bins need turning this week.", crew=garden, time=NOW - 26 * HOUR),
    )
    put(BEN, c.Post(text="I can do Wednesday.", root=compost, crew=garden, time=NOW - 25 * HOUR))
    swap = put(
        BEN,
        c.Post(
            text="Seed swap on Saturday at the community hall?\nBring labelled envelopes.",
            crew=garden,
            time=NOW - 3 * HOUR,
        ),
    )
    cleo_reply = put(
        CLEO,
        c.Post(
            text="Count me in, I have tomato seeds.", root=swap, crew=garden, time=NOW - 2 * HOUR
        ),
    )
    ana_reply = put(
        ANA,
        c.Post(
            text="I can bring the folding table.",
            root=swap,
            reply_to=cleo_reply,
            crew=garden,
            time=NOW - 90 * MIN,
        ),
    )
    put(
        BEN,
        c.Post(
            text="Perfect, thanks!", root=swap, reply_to=ana_reply, crew=garden, time=NOW - HOUR
        ),
    )
    store.mark_read(minutes, store.get(minutes).order)  # type: ignore[union-attr]
    drill = _requests(put, garden)
    rent = put(
        ANA, c.Post(text="Rent strike meeting on Thursday at 7.", crew=tenants, time=NOW - 2 * DAY)
    )
    put(BEN, c.Post(text="I will bring the flyers.", root=rent, crew=tenants, time=NOW - 47 * HOUR))
    return Fixture(home, garden, tenants, swap, drill)


def _crew(
    store: SqliteStore, founder: Identity, name: str, members: list[Identity], key: bytes, time: int
) -> bytes:
    content = create_crew(
        founder.public_key, name, time=time, members=[m.public_key for m in members], key=key
    )
    publishing.publish_payloads(store, founder, [seal_state(content)])
    return content.crew


def _requests(put: Callable[..., bytes], garden: bytes) -> bytes:
    drill = put(
        BEN,
        c.Request(
            kind="ask",
            title="Need a drill on Saturday",
            category="tools",
            body="For the raised beds. I can pick it up.",
            needed_by=NOW + 2 * DAY,
            place="Elm Street",
            crew=garden,
            time=NOW - 4 * HOUR,
        ),
    )
    put(
        CLEO,
        c.Request(
            kind="offer",
            title="Spare seedlings: tomatoes and kale",
            category="food",
            crew=garden,
            time=NOW - 6 * HOUR,
        ),
    )
    lift = put(
        BEN,
        c.Request(
            kind="ask",
            title="Lift to the garden centre",
            category="transport",
            needed_by=NOW + 5 * DAY,
            crew=garden,
            time=NOW - 8 * HOUR,
        ),
    )
    put(CLEO, c.RequestUpdate(request=lift, action="claim", crew=garden, time=NOW - 7 * HOUR))
    put(
        ANA,
        c.Request(
            kind="ask",
            title="Someone to water the plots while I am away",
            category="care",
            needed_by=NOW + 10 * DAY,
            crew=garden,
            time=NOW - 10 * HOUR,
        ),
    )
    return drill
