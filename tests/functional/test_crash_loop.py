"""SIGKILL a receiving node at random moments while it syncs from a live node.

A (``p2pcrew serve``) holds about 3,000 entries in four feeds and stays up the whole
time. B is a process running ``Node.sync_with`` (what ``p2pcrew sync`` runs) over a
store that prints an ``ACK`` line after every committed ingest batch, naming the
feed tips the batch reached: that line is B's acknowledgement. The test kills B at a
seeded random moment (start-up, handshake, mid-ingest, mid-commit), reopens its
store as the next start would, and requires: SQLite's integrity check passes, every
chain verifies without gaps (``check_store``), every acknowledged tip is present,
and nothing is stored twice. Once B holds everything, a clean sync must succeed and
leave exactly A's feeds; then a fresh B starts over, so kills keep landing mid-sync.

Restarts are cheap: each B is forked from a "zygote" (this module run with
``python -m``) that imported p2pcrew once, so a restart costs a fork, not an
interpreter start. The child is a whole process with its own sockets, threads and
SQLite connection; SIGKILL hits it exactly as it would hit ``p2pcrew sync``.

Zygote protocol, one line each: ``run HOME ADDRESS TIMEOUT FEED...`` -> ``PID pid``;
the child prints ``ACK pid {tips}`` per batch and ``DONE pid ...`` or ``FAIL pid ...``
at the end; ``reap pid`` -> ``REAPED pid status`` once it is gone, so every line
the child wrote comes before that one.

P2PCREW_CRASH_LOOPS (default 100) and P2PCREW_CRASH_SEED (default 4242) override.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from p2pcrew.feed import content as c
from p2pcrew.feed.check import check_store
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.ids import feed_id_to_text, text_to_feed_id
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import IngestResult
from p2pcrew.home import Home
from p2pcrew.publishing import publish
from p2pcrew.replicate.address import parse_address
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.peer import PeerLink
from tests.functional.procs import ROOT, Crew, Peer, signed_chain

LOOPS = int(os.environ.get("P2PCREW_CRASH_LOOPS", "100"))
SEED = int(os.environ.get("P2PCREW_CRASH_SEED", "4242"))
PER_FEED = 750
OTHER_FEEDS = 3
"""A's own feed plus three it follows: 4 x ~750 = ~3,000 entries."""
CHILD_TIMEOUT = 15.0
"""The child's sync deadline; far beyond a whole sync (about 1 s), so it never cuts
one short."""
STALL_LIMIT = 10.0
"""A restarted B that acknowledges nothing and does not finish for this long is stuck."""
LINE_TIMEOUT = 30.0
EARLY_KILL_SHARE = 0.3
"""Share of kills at a random time from start (start-up, handshake, first batch);
the rest wait for 1-4 acknowledgements and then a random moment (mid-ingest)."""
FINAL_ATTEMPTS = 3


# ==== the child side (runs in the zygote and its forks) ==================================


class AckingStore(SqliteStore):
    """A store that acknowledges each committed ingest batch on stdout."""

    def ingest(
        self, items: Sequence[tuple[bytes, bytes | None]], *, expected_author: bytes | None = None
    ) -> IngestResult:
        result = super().ingest(items, expected_author=expected_author)  # committed on return
        tips: dict[str, int] = {}
        for entry in result.accepted:
            name = feed_id_to_text(entry.author)
            tips[name] = max(tips.get(name, 0), entry.seq)
        if tips:
            _say("ACK", json.dumps(tips))
        return result


def _say(kind: str, text: str) -> None:
    sys.stdout.write(f"{kind} {os.getpid()} {text}\n")
    sys.stdout.flush()


async def _sync(node: Node, address: str, timeout: float) -> PeerLink:
    await node.start()
    try:
        return await node.sync_with(parse_address(address), timeout=timeout)
    finally:
        await node.close()


def _receive(home: Path, address: str, timeout: float, feeds: list[str]) -> int:
    store = AckingStore(home)
    try:
        node = Node(store, Home(home).load_identity())
        node.add_feeds(text_to_feed_id(f) for f in feeds)
        link = asyncio.run(_sync(node, address, timeout))
    finally:
        store.close()
    if link.close_reason:
        _say("FAIL", link.close_reason.replace("\n", " "))
        return 1
    _say("DONE", json.dumps({"received": link.entries_received}))
    return 0


def _child(args: list[str]) -> NoReturn:
    code = 1
    try:
        home, address, timeout, *feeds = args
        code = _receive(Path(home), address, float(timeout), feeds)
    except BaseException as exc:
        _say("FAIL", f"{type(exc).__name__}: {exc}".replace("\n", " "))
    finally:
        sys.stdout.flush()
        os._exit(code)


def serve_forks() -> None:
    """Fork one child per ``run`` line; reap on request. Threads none: fork is safe."""
    for line in sys.stdin:
        command, *args = line.split()
        if command == "run":
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(args)
            print(f"PID {pid}", flush=True)
        elif command == "reap":
            pid, status = os.waitpid(int(args[0]), 0)
            print(f"REAPED {pid} {status}", flush=True)


# ==== the test side ===================================================================


class Zygote:
    """The zygote process; its stdout (and its children's) drained by a thread."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.functional.test_crash_loop"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.child: int | None = None
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_line(self, timeout: float) -> str | None:
        """The next line, or None when ``timeout`` passes first."""
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if line is None:
            raise AssertionError(f"the zygote died: exit {self.proc.wait()}")
        return line

    def start(self, home: Path, address: str, feeds: Iterable[str]) -> int:
        self.send(" ".join(["run", str(home), address, str(CHILD_TIMEOUT), *feeds]))
        line = self.next_line(LINE_TIMEOUT)
        assert line is not None and line.startswith("PID "), line
        self.child = int(line.split()[1])
        return self.child

    def kill_child(self) -> None:
        if self.child is not None:
            os.kill(self.child, signal.SIGKILL)  # a zombie until reaped: never a reused pid

    def close(self) -> None:
        self.kill_child()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Run:
    """What one child said before it died or ended."""

    pid: int
    acks: list[dict[str, int]] = field(default_factory=list)
    ended: str = ""
    """The DONE or FAIL line if the child finished on its own."""
    status: int = 0
    stalled: bool = False
    """No acknowledgement and no end within ``STALL_LIMIT``."""

    def take(self, line: str) -> None:
        kind, pid, rest = [*line.split(" ", 2), ""][:3]
        if int(pid) != self.pid:
            raise AssertionError(f"a line from another process: {line}")
        if kind == "ACK":
            self.acks.append(json.loads(rest))
        elif kind in ("DONE", "FAIL"):
            self.ended = line

    @property
    def killed(self) -> bool:
        return os.WIFSIGNALED(self.status) and os.WTERMSIG(self.status) == signal.SIGKILL


def collect(zygote: Zygote, run: Run, until: float, acks: int) -> None:
    """Take the child's lines until ``acks`` acknowledgements, its end, or ``until``."""
    while len(run.acks) < acks and not run.ended:
        line = zygote.next_line(until - time.monotonic())
        if line is None:
            return
        run.take(line)


def reap(zygote: Zygote, run: Run) -> None:
    zygote.send(f"reap {run.pid}")
    while True:
        line = zygote.next_line(LINE_TIMEOUT)
        assert line is not None, f"child {run.pid} was not reaped"
        if line.startswith("REAPED "):
            run.status = int(line.split()[2])
            zygote.child = None
            return
        run.take(line)


def run_and_kill(
    zygote: Zygote, rng: random.Random, home: Path, address: str, feeds: list[str]
) -> Run:
    run = Run(zygote.start(home, address, feeds))
    started = time.monotonic()
    if rng.random() < EARLY_KILL_SHARE:
        collect(zygote, run, started + rng.uniform(0.0, 0.3), acks=10**9)
    else:
        want = rng.randint(1, 4)
        collect(zygote, run, started + STALL_LIMIT, acks=want)
        run.stalled = len(run.acks) < want and not run.ended
        time.sleep(rng.uniform(0.0, 0.06))
    zygote.kill_child()
    reap(zygote, run)
    return run


def run_to_end(zygote: Zygote, home: Path, address: str, feeds: list[str]) -> Run:
    run = Run(zygote.start(home, address, feeds))
    collect(zygote, run, time.monotonic() + CHILD_TIMEOUT + LINE_TIMEOUT, acks=10**9)
    reap(zygote, run)
    return run


def verify(home: Path, acked: dict[str, int]) -> dict[str, int]:
    """Reopen as the next start would; everything must hold. Return the tips."""
    with closing(SqliteStore(home)) as store:  # takes the lock, recovers the WAL
        assert store.integrity_check() == ["ok"]
        assert list(check_store(store)) == []  # every chain verifies, no gaps
        tips = {feed_id_to_text(k): v for k, v in store.latest_seqs().items()}
        lost = {f: (s, tips.get(f, 0)) for f, s in acked.items() if tips.get(f, 0) < s}
        assert not lost, f"acknowledged entries lost (acked, held): {lost}"
        assert store.count() == sum(tips.values()), "entries stored beyond the tips"
        return tips


def fresh_receiver(root: Path, n: int) -> Path:
    """A new identity (a new peer for A), as ``p2pcrew init`` makes, minus the CLI."""
    home = Home(root / f"b{n}")
    home.ensure()
    save_identity(Identity.generate(), home.identity_path)
    return home.root


def build_source(a: Peer) -> None:
    """A's own feed and three followed feeds, ``PER_FEED`` entries each."""
    home = Home(a.home)
    with closing(home.open_store()) as store:
        identity = home.load_identity()
        for n in range(OTHER_FEEDS):
            other = Identity.generate()
            chain = signed_chain(other, PER_FEED, prefix=f"feed {n}")
            result = store.ingest([(entry.header, payload) for entry, payload in chain])
            assert len(result.accepted) == PER_FEED
            publish(store, identity, [c.Contact(contact=other.public_key, action="follow", time=1)])
        posts: list[c.Content] = [c.Post(text=f"a {i}", time=1) for i in range(PER_FEED)]
        publish(store, identity, posts)


@dataclass
class Tally:
    kills: int = 0
    landed: int = 0
    """Kills that hit a live process (not one that had already finished)."""
    mid_transfer: int = 0
    """Landed after at least one acknowledged batch and before the sync ended."""
    acks: int = 0
    failed_runs: int = 0
    rounds: int = 0
    notes: list[str] = field(default_factory=list)


@pytest.fixture
def crew(tmp_path: Path) -> Iterator[Crew]:
    with Crew(tmp_path) as processes:
        yield processes


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    process = Zygote()
    try:
        yield process
    finally:
        process.close()


@pytest.mark.timeout(60 + 3 * LOOPS)
def test_sigkill_during_sync_never_loses_acknowledged_batches(
    crew: Crew, zygote: Zygote, tmp_path: Path
) -> None:
    a = crew.peer("a")
    build_source(a)
    served = crew.start(a, ["serve", "--listen", "127.0.0.1:0", "--no-lan"])
    a_tips = a.latest_seqs()
    assert sum(a_tips.values()) >= 3000 and len(a_tips) == OTHER_FEEDS + 1
    feeds = sorted(a_tips)
    rng = random.Random(SEED)
    tally = Tally()
    home = fresh_receiver(tmp_path, 0)
    acked: dict[str, int] = {}
    started = time.monotonic()
    while tally.kills < LOOPS:
        run = run_and_kill(zygote, rng, home, served.address, feeds)
        tally.kills += 1
        assert not run.stalled, stall_report(run, tally, home, a, a_tips)
        tally.landed += run.killed
        tally.mid_transfer += run.killed and bool(run.acks)
        tally.acks += len(run.acks)
        tally.failed_runs += run.ended.startswith("FAIL")
        for ack in run.acks:
            for feed, seq in ack.items():
                acked[feed] = max(acked.get(feed, 0), seq)
        tips = verify(home, acked)
        if tips == a_tips or tally.kills == LOOPS:
            converge(zygote, home, served.address, feeds, acked, a_tips, tally)
            tally.rounds += 1
            home, acked = fresh_receiver(tmp_path, tally.rounds), {}
    print(
        f"\n{tally.kills} SIGKILLs ({tally.landed} on a live process, {tally.mid_transfer} "
        f"after >=1 acknowledged batch), {tally.acks} acknowledged batches, 0 lost; "
        f"{tally.rounds} receivers synced to completion; {tally.failed_runs} runs ended "
        f"with a sync error; {time.monotonic() - started:.1f} s"
    )
    assert tally.mid_transfer >= LOOPS // 2, "too few kills landed mid-transfer"


def stall_report(run: Run, tally: Tally, home: Path, a: Peer, a_tips: dict[str, int]) -> str:
    with closing(SqliteStore(home, readonly=True)) as store:
        held = {feed_id_to_text(k): v for k, v in store.latest_seqs().items()}
    log = a.log_text().splitlines()[-3:]
    return (
        f"restart {tally.kills} made no progress for {STALL_LIMIT:g} s: {len(run.acks)} "
        f"batch(es) acknowledged, child said {run.ended or 'nothing'!r}; B holds {held}, "
        f"A holds {a_tips}; A's log ends {log}"
    )


def converge(
    zygote: Zygote,
    home: Path,
    address: str,
    feeds: list[str],
    acked: dict[str, int],
    a_tips: dict[str, int],
    tally: Tally,
) -> None:
    """A clean sync succeeds and leaves exactly A's feeds, each entry once."""
    for _ in range(FINAL_ATTEMPTS):
        run = run_to_end(zygote, home, address, feeds)
        if run.ended.startswith("DONE"):
            break
        tally.notes.append(run.ended)  # A may not have seen the last kill's hang-up yet
    else:
        raise AssertionError(f"the final sync kept failing: {tally.notes[-FINAL_ATTEMPTS:]}")
    assert verify(home, acked) == a_tips
    with closing(SqliteStore(home, readonly=True)) as store:
        for feed, tip in a_tips.items():
            seqs = [s.entry.seq for s in store.iter_feed(text_to_feed_id(feed))]
            assert seqs == list(range(1, tip + 1)), f"{feed}: not exactly 1..{tip}"


if __name__ == "__main__":
    serve_forks()
