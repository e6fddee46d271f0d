"""Feed benchmarks: own appends, batched ingest, and opening a big store.

Entries are signed beforehand in a process pool (one task per feed, since a chain
is sequential), so only the operation under test is timed. The big store for the
"first screen" figure is cached under ``--cache-dir`` keyed by a version string
that changes with the fixture, the entry format and the first (base) schema
migration; later migrations are applied to a cached store by an untimed open, as
they would be for a person upgrading p2pcrew, so adding one costs no rebuild.
"""

from __future__ import annotations

import contextlib
import cProfile
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import pstats
import random
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from benchmarks import Config, Context, Measure, Row, fmt, paired_row, ratio_row
from p2pcrew.feed import content as c
from p2pcrew.feed.entry import FORMAT_VERSION, create_entry, decode_entry, lipmaa
from p2pcrew.feed.indexing import NOT_YET
from p2pcrew.feed.sqlite_store import DB_NAME, SqliteStore, migrations
from p2pcrew.feed.store import IngestResult
from p2pcrew.feed.verify import Decoded, Prepared, Started, Verifier
from p2pcrew.feed.verify_processes import SHARED_POOL

GROUP = "feed"

SINGLE_APPENDS = "durable single appends/s"
GROUPED_APPENDS = "durable grouped appends/s (64/commit)"
INGEST = "batched ingest/s (validate+store)"
OPEN_FIRST_SCREEN = "open store + first screen"
ROW_NAMES = (SINGLE_APPENDS, GROUPED_APPENDS, INGEST, OPEN_FIRST_SCREEN)

FIXTURE_VERSION = 1
"""Bump when the entries built for the cached big store change."""
BASE_TIME_MS = 1_750_000_000_000
POST_TEXT_CHARS = (250, 290)
"""A post text of this many characters makes a payload of about 280-320 bytes."""

Item = tuple[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class Sizes:
    single_appends: int
    append_groups: int
    group_size: int
    ingest_entries: int
    ingest_feeds: int
    ingest_batch: int
    big_entries: int
    big_feeds: int


FULL = Sizes(
    single_appends=300,
    append_groups=200,
    group_size=64,
    ingest_entries=100_000,
    ingest_feeds=10,
    ingest_batch=1_000,
    big_entries=1_000_000,
    big_feeds=1_000,
)
QUICK = Sizes(
    single_appends=30,
    append_groups=10,
    group_size=64,
    ingest_entries=5_000,
    ingest_feeds=10,
    ingest_batch=1_000,
    big_entries=50_000,
    big_feeds=100,
)


def sizes_for(config: Config) -> Sizes:
    return QUICK if config.quick else FULL


# ---- building entries -------------------------------------------------------------

_WORDS = (
    "the",
    "crew",
    "meets",
    "at",
    "garden",
    "on",
    "saturday",
    "bring",
    "tools",
    "gloves",
    "seeds",
    "water",
    "and",
    "snacks",
    "we",
    "still",
    "need",
    "a",
    "van",
    "for",
    "move",
    "someone",
    "asked",
    "about",
    "childcare",
    "rides",
    "from",
    "station",
    "are",
    "sorted",
    "thanks",
    "everyone",
    "showing",
    "up",
    "last",
    "week",
)


def feed_key(seed: int) -> nacl.signing.SigningKey:
    """A deterministic signing key per feed, so cached fixtures are reproducible."""
    secret = hashlib.blake2b(b"p2pcrew-bench" + seed.to_bytes(8, "big"), digest_size=32)
    return nacl.signing.SigningKey(secret.digest())


def post_text(rng: random.Random) -> str:
    target = rng.randint(*POST_TEXT_CHARS)
    words: list[str] = []
    length = 0
    while length < target:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:target].rstrip()


def post_payload(
    rng: random.Random, time_ms: int, root: bytes | None = None, reply_to: bytes | None = None
) -> bytes:
    """A realistic post: about 300 bytes of canonical CBOR."""
    return c.encode_content(c.Post(text=post_text(rng), time=time_ms, root=root, reply_to=reply_to))


def mixed_payload(
    rng: random.Random, time_ms: int, ids: list[bytes], roots: list[bytes]
) -> tuple[bytes, bool]:
    """What a real feed holds: mostly posts and replies, some reactions and contacts.

    Returns the payload and whether it is a thread root (a post that is no reply).
    """
    draw = rng.random()
    if draw < 0.70 or not ids:
        if roots and rng.random() < 0.3:
            root = rng.choice(roots[-50:])
            return post_payload(rng, time_ms, root=root, reply_to=rng.choice(ids[-5:])), False
        return post_payload(rng, time_ms), True
    if draw < 0.90:
        item: c.Content = c.Reaction(time=time_ms, target=rng.choice(ids[-20:]), emoji="+1")
    elif draw < 0.98:
        item = c.Contact(time=time_ms, contact=rng.randbytes(32), action="follow")
    else:
        item = c.About(time=time_ms, name=f"member {rng.randint(1, 999)}")
    return c.encode_content(item), False


@dataclass(frozen=True, slots=True)
class ChainTask:
    seed: int
    count: int
    mixed: bool
    """Mixed content types (the big store) rather than ~300-byte root posts only."""


def build_chain(task: ChainTask) -> list[Item]:
    """A valid feed of ``task.count`` entries as (header, payload) pairs."""
    key = feed_key(task.seed)
    rng = random.Random(task.seed)
    ids: list[bytes] = []
    roots: list[bytes] = []
    chain: list[Item] = []
    for seq in range(1, task.count + 1):
        time_ms = BASE_TIME_MS + seq * 60_000
        if task.mixed:
            payload, is_root = mixed_payload(rng, time_ms, ids, roots)
        else:
            payload, is_root = post_payload(rng, time_ms), False
        backlink = ids[-1] if ids else None
        lip = ids[lipmaa(seq) - 1] if seq > 1 else None
        entry = create_entry(key, seq, backlink, lip, payload)
        if is_root:
            roots.append(entry.id)
        ids.append(entry.id)
        chain.append((entry.header, payload))
    return chain


def generate(tasks: Sequence[ChainTask]) -> Iterator[list[Item]]:
    """Chains for ``tasks`` in order, built on every core, a few at a time in memory."""
    workers = max(1, os.cpu_count() or 1)
    # forkserver: never fork a process that has run thread pools
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        todo = iter(tasks)
        pending: deque[Future[list[Item]]] = deque(
            pool.submit(build_chain, task) for task in itertools.islice(todo, workers * 2)
        )
        while pending:
            chain = pending.popleft().result()
            task = next(todo, None)
            if task is not None:
                pending.append(pool.submit(build_chain, task))
            yield chain


def chunks(items: Sequence[Item], size: int) -> list[Sequence[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def ingest_batches(sizes: Sizes) -> list[Sequence[Item]]:
    """The ingest workload: batches of one feed each, feeds taking turns."""
    per_feed = sizes.ingest_entries // sizes.ingest_feeds
    tasks = [ChainTask(100 + i, per_feed, mixed=False) for i in range(sizes.ingest_feeds)]
    per_chain = [chunks(chain, sizes.ingest_batch) for chain in generate(tasks)]
    return [
        batch for turn in itertools.zip_longest(*per_chain) for batch in turn if batch is not None
    ]


def check_accepted(results: Sequence[IngestResult], expected: int) -> None:
    accepted = sum(len(r.accepted) for r in results)
    if accepted != expected:
        rejected = [r.rejected[0].error for r in results if r.rejected][:1]
        raise RuntimeError(f"benchmark fixture: {accepted} of {expected} accepted; {rejected}")


class PreverifiedVerifier(Verifier):
    """Decodes without checking signatures: only for entries this process just signed.

    Used to build the big fixture store faster; never for a measured figure.
    """

    def verify(self, headers: Sequence[bytes]) -> list[Decoded]:
        return [decode_entry(header) for header in headers]

    def verify_chunks(self, headers: Sequence[bytes]) -> Iterator[list[Decoded]]:
        yield self.verify(headers)

    def start_prepare(self, items: Sequence[Item]) -> Started[Prepared]:
        """What ``Store.ingest`` calls: decoded headers, payloads left for the store."""
        return Started(lambda: [(decode_entry(header), NOT_YET) for header, _ in items], [])


# ---- the figures ----------------------------------------------------------------------


def run(ctx: Context) -> list[Row]:
    sizes = sizes_for(ctx.config)
    return [
        bench_single_appends(ctx, sizes),
        bench_grouped_appends(ctx, sizes),
        bench_ingest(ctx, sizes),
        bench_open(ctx, sizes),
    ]


def _append_rate(ctx: Context, groups: int, group_size: int) -> float:
    """Appends per second, ``groups`` calls of ``group_size`` payloads, fresh store."""
    rng = random.Random(7)
    payloads = [post_payload(rng, BASE_TIME_MS + i * 1000) for i in range(groups * group_size + 1)]
    key = feed_key(7)
    with ctx.tempdir() as directory:
        store = SqliteStore(directory / "store")
        try:
            store.append(key, payloads[:1])  # creates the feed; not timed
            start = time.perf_counter()
            for i in range(1, len(payloads), group_size):
                store.append(key, payloads[i : i + group_size])
            elapsed = time.perf_counter() - start
            if store.count() != len(payloads):
                raise RuntimeError("benchmark: appends went missing")
        finally:
            store.close()
    return groups * group_size / elapsed


def bench_single_appends(ctx: Context, sizes: Sizes) -> Row:
    limit = ctx.limits.sign_1t
    values, ratios = ctx.repeat_vs(
        SINGLE_APPENDS, lambda: _append_rate(ctx, sizes.single_appends, 1), limit
    )
    return paired_row(
        SINGLE_APPENDS,
        values,
        ratios,
        "entries/s",
        limit,
        f"{sizes.single_appends} x append(key, [~300 B post]), fsync each",
    )


def bench_grouped_appends(ctx: Context, sizes: Sizes) -> Row:
    limit = ctx.limits.sign_1t
    values, ratios = ctx.repeat_vs(
        GROUPED_APPENDS, lambda: _append_rate(ctx, sizes.append_groups, sizes.group_size), limit
    )
    return paired_row(
        GROUPED_APPENDS,
        values,
        ratios,
        "entries/s",
        limit,
        f"{sizes.append_groups} x append(key, {sizes.group_size} posts), one fsync each; "
        "target 15,000/s",
    )


def bench_ingest(ctx: Context, sizes: Sizes) -> Row:
    ctx.progress(f"{INGEST}: signing {sizes.ingest_entries:,} entries (not timed)")
    batches = ingest_batches(sizes)
    total = sum(len(batch) for batch in batches)
    workers: list[int] = []

    def once() -> float:
        SHARED_POOL.shutdown()  # so every run pays for starting the worker processes
        with ctx.tempdir() as directory:
            store = SqliteStore(directory / "store")
            workers.append(os.cpu_count() or 1)
            try:
                start = time.perf_counter()
                results = list(store.ingest_batches(batches))
                elapsed = time.perf_counter() - start
            finally:
                store.close()
        check_accepted(results, total)
        return total / elapsed

    limit = ctx.limits.verify_1t
    values, ratios = ctx.repeat_vs(INGEST, once, limit)
    return paired_row(
        INGEST,
        values,
        ratios,
        "entries/s",
        limit,
        f"{total:,} pre-signed posts, {sizes.ingest_feeds} feeds, batches of "
        f"{sizes.ingest_batch:,} (Store.ingest_batches: the next batch is verified while "
        f"one commits), fresh store, verified in {workers[0]} worker processes whose "
        "start-up is timed; "
        "target ratio >= 0.6",
    )


# ---- the big store ----------------------------------------------------------------------


def fixture_key(sizes: Sizes) -> str:
    """Changes whenever a cached big store could not be brought up to date by opening it.

    Only the base migration counts: a store built before a later migration existed
    gets it on its first (untimed) open. Edit migration 001 and the key changes.
    """
    schema = hashlib.blake2b(digest_size=4)
    for number, name, sql in migrations()[:1]:
        schema.update(f"{number}:{name}:{sql}".encode())
    return (
        f"store-fx{FIXTURE_VERSION}-fmt{FORMAT_VERSION}-schema{schema.hexdigest()}-"
        f"{sizes.big_entries}e-{sizes.big_feeds}f"
    )


def build_big_store(directory: Path, sizes: Sizes, progress: Callable[[str], None]) -> float:
    """Fill a store in ``directory``; return the seconds it took."""
    start = time.perf_counter()
    per_feed = sizes.big_entries // sizes.big_feeds
    tasks = [ChainTask(10_000 + i, per_feed, mixed=True) for i in range(sizes.big_feeds)]
    store = SqliteStore(directory, verifier=PreverifiedVerifier())
    done = 0
    step = max(1, sizes.big_feeds // 10)
    try:
        for number, chain in enumerate(generate(tasks), 1):
            results = [store.ingest(batch) for batch in chunks(chain, 1_000)]
            check_accepted(results, len(chain))
            done += len(chain)
            if number % step == 0:
                progress(f"building big store: {done:,} of {sizes.big_entries:,} entries")
    finally:
        store.close()
    return time.perf_counter() - start


@contextlib.contextmanager
def big_store(ctx: Context, sizes: Sizes) -> Iterator[tuple[Path, str]]:
    """A store of ``sizes.big_entries`` entries and a note on how it was built."""
    cache = ctx.config.cache_dir
    if cache is None:
        with ctx.tempdir() as directory:
            ctx.progress(f"building big store of {sizes.big_entries:,} entries")
            seconds = build_big_store(directory / "store", sizes, ctx.progress)
            yield directory / "store", f"built in {seconds:.1f} s (not cached)"
        return
    path = cache / fixture_key(sizes)
    marker = path / "built.json"
    if marker.exists():
        seconds = float(json.loads(marker.read_text(encoding="utf-8"))["build_seconds"])
        yield path, f"built in {seconds:.1f} s by an earlier run (cached in {path})"
        return
    cache.mkdir(parents=True, exist_ok=True)
    # Stores of this size built by older code are stale and large: drop them.
    for stale in cache.glob(f"store-*-{sizes.big_entries}e-{sizes.big_feeds}f*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial = path.with_name(path.name + ".partial")
    ctx.progress(f"building big store of {sizes.big_entries:,} entries into {path}")
    seconds = build_big_store(partial, sizes, ctx.progress)
    (partial / "built.json").write_text(
        json.dumps({"build_seconds": seconds, "entries": sizes.big_entries}), encoding="utf-8"
    )
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)
    yield path, f"built in {seconds:.1f} s (now cached in {path})"


def evict_from_page_cache(directory: Path) -> bool:
    """Ask the kernel to drop the store's cached pages (this file only); True if it could."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in directory.glob(DB_NAME + "*"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def bench_open(ctx: Context, sizes: Sizes) -> Row:
    """Open a big store and run the first screen's queries, cold and warm."""
    with big_store(ctx, sizes) as (path, built):
        parts: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        evicts = True

        def once(cold: bool) -> float:
            nonlocal evicts
            if cold:
                evicts = evict_from_page_cache(path) and evicts
            start = time.perf_counter()
            store = SqliteStore(path)
            try:
                opened = time.perf_counter()
                seqs = store.latest_seqs()
                tips = time.perf_counter()
                posts = store.by_type("post", limit=50)
                end = time.perf_counter()
            finally:
                store.close()
            if len(seqs) != sizes.big_feeds or len(posts) != 50:
                raise RuntimeError(f"benchmark: big store at {path} is incomplete")
            parts[cold].append((opened - start, tips - opened, end - tips))
            return (end - start) * 1000

        SqliteStore(path).close()  # untimed: applies migrations newer than the cached store
        cold = ctx.repeat(f"{OPEN_FIRST_SCREEN} (cold)", lambda: once(True))
        warm = ctx.repeat(f"{OPEN_FIRST_SCREEN} (warm)", lambda: once(False))
        megabytes = (path / DB_NAME).stat().st_size / 1e6

    def breakdown(kind: bool) -> str:
        opening, latest, by_type = (
            Measure(tuple(p[i] * 1000 for p in parts[kind])).median for i in range(3)
        )
        return (
            f"open {fmt(opening)} + latest_seqs() {fmt(latest)} + "
            f"by_type('post', 50) {fmt(by_type)} ms"
        )

    how = "store file evicted from the OS page cache" if evicts else "page cache NOT evicted"
    return ratio_row(
        OPEN_FIRST_SCREEN,
        cold,
        "ms",
        None,
        f"{sizes.big_entries:,} entries, {sizes.big_feeds:,} feeds, {megabytes:,.0f} MB; "
        f"cold ({how} before each run): {breakdown(True)}, {cold.spread()}; "
        f"warm: {fmt(warm.median)} ms ({breakdown(False)}), {warm.spread()}; "
        f"target < 1,000 ms; store {built}",
    )


# ---- profiling --------------------------------------------------------------------------

_PARTS = (
    ("decode header (CBOR + checks + BLAKE2b id)", "entry.py", "decode_entry"),
    ("verify signature (libsodium)", "entry.py", "verify_signature"),
    ("chain rules (check_successor)", "validate.py", "check_successor"),
    ("payload hash + size (check_payload)", "validate.py", "check_payload"),
    ("content indexing (index_row: decode payload)", "indexing.py", "index_row"),
    ("SQL: read feed tip (_feed)", "sqlite_store.py", "_feed"),
    ("SQL: lipmaa target lookup (_entry_id_at)", "sqlite_store.py", "_entry_id_at"),
    ("SQL: tombstone lookup (_tombstone_author)", "sqlite_store.py", "_tombstone_author"),
    ("SQL: INSERT entries + content (_insert)", "sqlite_store.py", "_insert"),
    ("SQL: tips (_set_tip)", "sqlite_store.py", "_set_tip"),
    ("transaction + COMMIT (_transaction)", "sqlite_store.py", "_transaction"),
)


def profile_ingest(config: Config, progress: Callable[[str], None]) -> str:
    """Where ingest time goes per entry, with one verify thread so cProfile sees it all."""
    sizes = sizes_for(config)
    progress(f"signing {sizes.ingest_entries:,} entries")
    batches = ingest_batches(sizes)
    total = sum(len(batch) for batch in batches)
    lines: list[str] = []
    for label, profiled in (("without profiler", False), ("under cProfile", True)):
        with tempfile.TemporaryDirectory(prefix="p2pcrew-bench-") as name:
            store = SqliteStore(Path(name) / "store", verifier=Verifier(workers=1))
            profiler = cProfile.Profile()
            progress(f"ingesting {total:,} entries {label}")
            try:
                start = time.perf_counter()
                if profiled:
                    profiler.enable()
                results = list(store.ingest_batches(batches))
                profiler.disable()
                elapsed = time.perf_counter() - start
            finally:
                store.close()
        check_accepted(results, total)
        lines.append(
            f"ingest {label}, 1 verify thread: {total / elapsed:,.0f} entries/s "
            f"({elapsed / total * 1e6:.1f} us/entry)"
        )
    stats = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    ingest_time = sum(
        v[3] for k, v in table.items() if k[0].endswith("store.py") and k[2] == "ingest"
    )
    lines.append(f"\nper entry under cProfile (total {ingest_time / total * 1e6:.1f} us):")
    accounted = 0.0
    for label, filename, function in _PARTS:
        seconds = sum(
            v[3] for k, v in table.items() if k[0].endswith(filename) and k[2] == function
        )
        accounted += seconds
        lines.append(f"  {seconds / total * 1e6:7.1f} us  {seconds / ingest_time:6.1%}  {label}")
    rest = ingest_time - accounted
    lines.append(f"  {rest / total * 1e6:7.1f} us  {rest / ingest_time:6.1%}  everything else")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    lines.append("\ntop functions by own time:\n" + out.getvalue())
    return "\n".join(lines)
