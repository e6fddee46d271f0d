"""Crews: decrypt-and-index throughput, thread list and board build, trial decryption.

* ``crew ingest``: entries of a 32-member crew (posts, replies, requests, claims)
  ingested into a member's store with the keyring attached: verify, open, index.
  Ratio: to raw XSalsa20-Poly1305 ``secretbox_open`` of the same payloads.
* ``crew thread list`` and ``crew requests board``: time to build what the app shows
  first for that crew, from a store holding 50,000 of its entries (quick: 5,000).
* ``trial decryption``: cost of offering an envelope of another crew to a keyring
  holding 20 crews' keys (the price every non-member entry pays).
"""

from __future__ import annotations

import time
from pathlib import Path

import nacl.bindings

from benchmarks import Context, Row, ratio_row
from p2pcrew import publishing
from p2pcrew.crew import service
from p2pcrew.crew.directory import crew_state
from p2pcrew.crew.envelope import open_envelope, seal_for_crew
from p2pcrew.crew.keyring import Keyring
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.queries import Queries

GROUP = "crew"
ROW_NAMES = (
    "secretbox open/s (limit)",
    "crew ingest (verify+open+index)",
    "crew thread list, 32 members",
    "crew requests board, 32 members",
    "trial decryption, 20 crews",
)
MEMBERS = 32


def _build(tmp: Path, count: int) -> tuple[list[tuple[bytes, bytes | None]], Identity, list[bytes]]:
    """A crew of 32 and ``count`` of its entries; returns them as (header, payload)."""
    people = [Identity.generate() for _ in range(MEMBERS)]
    founder = people[0]
    store = SqliteStore(tmp / "build")
    Keyring.attach(store, founder)
    crew_id, payload = service.create(
        founder, "bench crew", members=[p.public_key for p in people[1:]]
    )
    publishing.publish_payloads(store, founder, [payload])
    key = crew_state(store, crew_id).key
    roots: list[bytes] = []
    payloads_by_person: list[list[bytes]] = [[] for _ in people]
    for i in range(count - 1):
        who = i % MEMBERS
        if i % 10 == 0 or not roots:
            item: c.Content = c.Post(text=f"thread {i}: meeting notes " * 4, crew=crew_id, time=i)
        elif i % 10 == 5:
            item = c.Request(
                kind="ask", title=f"need help {i}", category="tools", crew=crew_id, time=i
            )
        else:
            root = roots[(i * 7) % len(roots)]
            item = c.Post(text=f"reply {i}", root=root, reply_to=root, crew=crew_id, time=i)
        sealed = seal_for_crew(c.encode_content(item), key)
        payloads_by_person[who].append(sealed)
        if isinstance(item, c.Post) and item.root is None:
            # Roots need ids for replies: publish the founder's roots right away.
            entries = store.append(people[who].signing_key, payloads_by_person[who])
            payloads_by_person[who] = []
            roots.append(entries[-1].id)
    for person, pending in zip(people, payloads_by_person, strict=True):
        for start in range(0, len(pending), 500):
            store.append(person.signing_key, pending[start : start + 500])
    items = []
    for person in people:
        items += store.raw_range(person.public_key, 1, 2**62)
    store.close()
    sealed_payloads = [p for _, p in items if p is not None]
    return items, people[1], sealed_payloads


def _secretbox_rate(payloads: list[bytes], key_guess: bytes) -> float:
    """Raw secretbox opens/s of the same sizes (key is wrong on purpose: same work)."""
    nonce = bytes(24)
    boxes = [nacl.bindings.crypto_secretbox(p[:300], nonce, key_guess) for p in payloads[:2000]]
    start = time.perf_counter()
    for box in boxes:
        nacl.bindings.crypto_secretbox_open(box, nonce, key_guess)
    return len(boxes) / (time.perf_counter() - start)


def run(ctx: Context) -> list[Row]:
    count = 5_000 if ctx.config.quick else 50_000
    with ctx.tempdir() as tmp:
        ctx.progress(f"building a 32-member crew with {count:,} entries")
        items, member, payloads = _build(tmp, count)
        limit = ctx.repeat("secretbox open", lambda: _secretbox_rate(payloads, bytes(32)))
        stores: list[SqliteStore] = []

        def ingest_once() -> float:
            store = SqliteStore(tmp / f"member{len(stores)}")
            stores.append(store)
            Keyring.attach(store, member)
            start = time.perf_counter()
            for i in range(0, len(items), 1000):
                store.ingest(items[i : i + 1000])
            return len(items) / (time.perf_counter() - start)

        ingest = ctx.repeat("crew ingest", ingest_once)
        store = stores[-1]
        crew = next(iter(store.crew_keys()))
        q = Queries(store, member.public_key)
        threads = ctx.repeat("thread list", lambda: _timed(lambda: q.threads(crew)))
        board = ctx.repeat("requests board", lambda: _timed(lambda: q.requests(crew, "open")))
        ordinary = min(payloads, key=len)  # content, not a key-distribution envelope
        trial = ctx.repeat("trial decryption", lambda: _trial_cost(ordinary))
        for s in stores:
            s.close()
    ingest_row = Row(
        ROW_NAMES[1],
        ingest.median,
        "entries/s",
        ingest.median / limit.median,
        ROW_NAMES[0],
        f"{count:,} entries, 32 feeds; signature checks dominate: "
        f"{ingest.median / ctx.limits.verify_1t.measure.median:.2f}x single-core verify; "
        f"{ingest.spread()}",
    )
    return [
        ratio_row(ROW_NAMES[0], limit, "opens/s", None, f"limit; 300-byte boxes; {limit.spread()}"),
        ingest_row,
        Row(
            ROW_NAMES[2],
            threads.median * 1000,
            "ms",
            None,
            None,
            f"{count:,} entries; {threads.spread()}",
        ),
        Row(
            ROW_NAMES[3],
            board.median * 1000,
            "ms",
            None,
            None,
            f"{count:,} entries; {board.spread()}",
        ),
        Row(
            ROW_NAMES[4],
            trial.median * 1e6,
            "µs/entry",
            None,
            None,
            f"20 crews x 3 epochs; {trial.spread()}",
        ),
    ]


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def _trial_cost(payload: bytes, crews: int = 20, epochs: int = 3) -> float:
    keys = [bytes([i % 256, i // 256]) * 16 for i in range(crews * epochs)]
    me = Identity.generate()
    secret, public = me.curve25519_secret(), me.curve25519_public()
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        open_envelope(payload, keys, secret, public)
    return (time.perf_counter() - start) / n
