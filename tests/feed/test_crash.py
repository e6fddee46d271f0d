"""SIGKILL an appending process at random moments; the store must always reopen whole.

After every kill: SQLite's integrity check passes, every chain verifies, and every
append the process reported as committed is present with the same id.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2pcrew.feed.check import check_store
from p2pcrew.feed.ids import text_to_entry_id
from p2pcrew.feed.sqlite_store import SqliteStore
from tests.feed.helpers import key

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("P2PCREW_CRASH_KILLS", "25"))


def _run_and_kill(store_dir: Path, rng: random.Random, group: int) -> dict[int, bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.feed.appender", str(store_dir), str(group)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    reported: dict[int, bytes] = {}
    # Let it run a random number of appends, then a random extra moment, then kill.
    target = rng.randint(1, 40)
    deadline = time.monotonic() + 30
    while len(reported) < target and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seq, text = line.split()
        reported[int(seq)] = text_to_entry_id(text)
    time.sleep(rng.random() * 0.02)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    for line in rest.splitlines():  # lines already written before the kill landed
        if line.count(" ") == 1:
            seq, text = line.split()
            reported[int(seq)] = text_to_entry_id(text)
    return reported


@pytest.mark.parametrize("group", [1, 16])
def test_sigkill_while_appending_never_loses_committed_entries(tmp_path: Path, group: int) -> None:
    rng = random.Random(1234 + group)
    store_dir = tmp_path / "store"
    committed: dict[int, bytes] = {}
    author = bytes(key(7).verify_key)
    for _ in range(KILLS):
        committed.update(_run_and_kill(store_dir, rng, group))
        store = SqliteStore(store_dir)  # must open: lock released, WAL recovered
        try:
            assert store.integrity_check() == ["ok"]
            assert list(check_store(store)) == []
            for seq, entry_id in committed.items():
                stored = store.get_at(author, seq)
                assert stored is not None, f"committed entry {seq} lost"
                assert stored.entry.id == entry_id
        finally:
            store.close()
    assert len(committed) > KILLS
