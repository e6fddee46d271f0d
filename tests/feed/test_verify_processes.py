"""Large batches are verified in worker processes; the results must be the threads'.

Real spawned processes throughout: the equivalence test compares every field of
every result (entries, index rows, rejection types and locations) with the
in-thread path; the failure tests SIGKILL a worker mid-batch and the parent itself,
and show the batch still completes and no worker is left behind.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcrew.feed import content as c
from p2pcrew.feed import verify
from p2pcrew.feed.entry import create_entry, lipmaa
from p2pcrew.feed.errors import BadSignature, EntryRejected, MalformedEntry
from p2pcrew.feed.indexing import NOT_YET
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.verify import Verifier
from p2pcrew.feed.verify_processes import (
    PROCESS_MIN_BATCH,
    Item,
    Prepared,
    _SharedPool,
    prepare,
)
from tests.feed.helpers import key

REPO = Path(__file__).resolve().parents[2]


def _chain(count: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    signer = key(seed)
    ids: list[bytes] = []
    out: list[tuple[bytes, bytes]] = []
    for seq in range(1, count + 1):
        if seq % 3 == 0:
            payload = c.encode_content(c.Post(text=f"reply {seq}", time=seq, root=ids[0]))
        else:
            payload = c.encode_content(c.Post(text=f"post {seq}", time=seq))
        backlink = ids[-1] if ids else None
        lip = ids[lipmaa(seq) - 1] if seq > 1 else None
        entry = create_entry(signer, seq, backlink, lip, payload)
        ids.append(entry.id)
        out.append((entry.header, payload))
    return out


def _mixed_batch() -> list[Item]:
    """Valid entries interleaved with each kind of trouble the workers must report."""
    items: list[Item] = list(_chain(PROCESS_MIN_BATCH + 40))
    header, payload = items[10]
    items[10] = (header[:-1] + bytes([header[-1] ^ 1]), payload)  # bad signature
    items[20] = (items[20][0][:30], items[20][1])  # truncated header
    items[30] = (items[30][0], items[30][1] + b"!")  # payload size mismatch
    items[40] = (items[40][0], None)  # payload deleted
    return items


def _comparable(results: list[Prepared]) -> list[object]:
    out: list[object] = []
    for decoded, hint in results:
        if isinstance(decoded, EntryRejected):
            out.append((type(decoded), str(decoded), decoded.where, hint))
        else:
            out.append((decoded, hint))
    return out


@pytest.fixture
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[_SharedPool]:
    """A pool of this test's own, so breaking it leaves the shared one alone."""
    pool = _SharedPool()
    monkeypatch.setattr(verify, "SHARED_POOL", pool)
    yield pool
    pool.shutdown()


def test_processes_give_exactly_the_threads_results(fresh_pool: _SharedPool) -> None:
    items = _mixed_batch()
    started = Verifier(workers=2).start_prepare(items)
    assert isinstance(started, verify._InProcesses), "a large batch should go to processes"
    in_processes = [each for chunk in started.chunks() for each in chunk]
    expected = prepare(items)
    assert _comparable(in_processes) == _comparable(expected)
    kinds = [type(d) for d, _ in in_processes]
    assert kinds[10] is BadSignature and kinds[20] is MalformedEntry
    assert in_processes[30][1] is NOT_YET and in_processes[40][1] is NOT_YET


def test_small_batches_and_one_worker_stay_in_this_process(fresh_pool: _SharedPool) -> None:
    items = _chain(PROCESS_MIN_BATCH - 1)
    assert not isinstance(Verifier(workers=2).start_prepare(items), verify._InProcesses)
    big = _chain(PROCESS_MIN_BATCH)
    assert not isinstance(Verifier(workers=1).start_prepare(big), verify._InProcesses)


def test_a_rejection_keeps_its_rule_and_location_across_processes() -> None:
    error = BadSignature("signature does not verify", where="entry 3 of @abc")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is BadSignature
    assert str(back) == str(error) and back.where == error.where


def test_the_switch_turns_processes_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2PCREW_VERIFY_PROCESSES", "0")
    pool = _SharedPool()
    monkeypatch.setattr(verify, "SHARED_POOL", pool)
    items = _chain(PROCESS_MIN_BATCH)
    started = Verifier(workers=2).start_prepare(items)
    assert not isinstance(started, verify._InProcesses)
    assert pool.get() is None


def test_a_killed_worker_costs_speed_not_entries(tmp_path: Path, fresh_pool: _SharedPool) -> None:
    items = _chain(PROCESS_MIN_BATCH * 4, seed=9)
    store = SqliteStore(tmp_path / "store", verifier=Verifier(workers=2))
    try:
        store.ingest(items[:PROCESS_MIN_BATCH])  # starts the workers
        executor = fresh_pool.get()
        assert executor is not None
        victims = list(executor._processes.values())
        assert victims
        started = store.verifier.start_prepare(items[PROCESS_MIN_BATCH:])
        for process in victims:
            os.kill(process.pid, signal.SIGKILL)
        result = store._ingest_started(items[PROCESS_MIN_BATCH:], started, None)
        assert not result.rejected
        assert store.count() == len(items)
        # The pool is given up: later batches verify on threads and still land.
        assert fresh_pool.get() is None
        more = _chain(PROCESS_MIN_BATCH, seed=10)
        assert len(store.ingest(more).accepted) == len(more)
    finally:
        store.close()


_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys, tempfile, time
    from pathlib import Path
    from p2pcrew.feed.sqlite_store import SqliteStore
    from p2pcrew.feed.verify import Verifier
    from tests.feed.test_verify_processes import _chain

    if __name__ == "__main__":
        with tempfile.TemporaryDirectory() as d:
            store = SqliteStore(Path(d) / "store", verifier=Verifier(workers=2))
            store.ingest(_chain(600))
            pids = [p.pid for p in multiprocessing.active_children()]
            print(" ".join(map(str, pids)), flush=True)
            time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_their_parent_is_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        workers = [int(pid) for pid in line.split()]
        assert workers, "the ingest should have started worker processes"
        assert all(_alive(pid) for pid in workers)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "orphaned verify workers"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
