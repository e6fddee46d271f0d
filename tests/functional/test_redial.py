"""``p2pcrew serve`` keeps in touch: when a peer goes away and comes back on the same
address, the member dials it again by itself (replicate/keep_in_touch.py).

Real processes on loopback: a pub that restarts, and a plain peer that is SIGKILLed and
restarted. Waits poll against deadlines; nothing sleeps to "let things settle".
"""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcrew.feed.ids import text_to_feed_id
from p2pcrew.feed.sqlite_store import SqliteStore
from tests.functional.procs import ROOT, STOP_TIMEOUT, Crew, Peer, ServeProcess, wait_until

REDIAL_WITHIN = 20.0
"""From the peer being back to the member's new entry being stored there. The schedule
needs ~2 s after a link closes plus the backoff of the dials made while the peer was
down (1, 2, 4, 8 s, +-20 %), so 20 s leaves room for a slow, shared machine."""
START_WITHIN = 20.0


@pytest.fixture
def crew(tmp_path: Path) -> Iterator[Crew]:
    with Crew(tmp_path) as processes:
        yield processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Pub:
    """``p2pcrew pub serve`` on a fixed TCP port, so it can come back on the same one."""

    def __init__(self, peer: Peer, port: int) -> None:
        self.peer = peer
        args = ["pub", "serve", "--listen", f"127.0.0.1:{port}", "--http", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2pcrew", *args],
            cwd=ROOT,
            env=peer.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + START_WITHIN
        while not any(line.startswith("Status page") for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the pub did not start: {self.lines}")
            time.sleep(0.05)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)

    def holds(self, feed: bytes) -> int:
        store = SqliteStore(self.peer.home, readonly=True)
        try:
            return store.latest_seqs().get(feed, 0)
        finally:
            store.close()


def serve(crew: Crew, peer: Peer, *args: str, listen: str = "127.0.0.1:0") -> ServeProcess:
    return crew.start(peer, ["serve", "--listen", listen, "--no-lan", *args])


def connects(served: ServeProcess) -> list[str]:
    return [line for line in served.lines if line.startswith("Connected to")]


def failures(served: ServeProcess) -> list[str]:
    text = served.stderr_path.read_text(errors="replace") if served.stderr_path.exists() else ""
    return [line for line in text.splitlines() if line.startswith("Could not connect")]


def test_a_member_redials_the_pub_after_it_restarts(crew: Crew) -> None:
    port = free_port()
    pub_peer = crew.peer("pub", init=False)
    pub = Pub(pub_peer, port)
    try:
        ana = crew.peer("ana")
        code = pub_peer.json("pub", "invite", "--no-qr")["code"]
        ana.run("join", code)
        member = serve(crew, ana)  # no --connect: the pub is a remembered peer
        wait_until(lambda: len(connects(member)) == 1, START_WITHIN, "ana to reach the pub")
        seq = ana.json("post", "before the restart")["seq"]
        wait_until(lambda: pub.holds(ana.key) >= seq, START_WITHIN, "the pub to take it")

        pub.stop()
        pub = Pub(pub_peer, port)
        back = time.monotonic()
        seq = ana.json("post", "after the restart")["seq"]
        wait_until(
            lambda: pub.holds(ana.key) >= seq,
            REDIAL_WITHIN,
            f"ana's new post at the restarted pub; ana's output: {member.output()}",
        )
        took = time.monotonic() - back
        print(f"the restarted pub had ana's new post {took:.1f} s after it was back")
        assert len(connects(member)) == 2, member.output()
        assert len(failures(member)) <= 2, member.output()  # each failure once, not per retry
        rows = ana.json("peers")
        assert [r["source"] for r in rows] == ["pub"]  # re-dialling kept how we learnt it
        assert member.proc.poll() is None
    finally:
        pub.stop()


def test_a_peer_that_is_killed_and_restarted_is_dialled_again(crew: Crew) -> None:
    a, b = crew.peer("a"), crew.peer("b")
    a.run("follow", b.feed)
    b.run("follow", a.feed)
    listen = f"127.0.0.1:{free_port()}"
    served_b = serve(crew, b, listen=listen)
    served_a = serve(crew, a, "--connect", served_b.address)
    wait_until(lambda: len(connects(served_a)) == 1, START_WITHIN, "A to reach B")

    served_b.proc.kill()  # no goodbye: A learns it from the socket
    served_b.proc.wait(STOP_TIMEOUT)
    # A retries while B is down: the failures are reported, but not once per retry.
    wait_until(lambda: len(failures(served_a)) >= 1, START_WITHIN, "A to notice B is gone")
    served_b = serve(crew, b, listen=listen)
    back = time.monotonic()
    seq = b.json("post", "B is back")["seq"]
    wait_until(
        lambda: a.latest(b.key) >= seq,
        REDIAL_WITHIN,
        f"B's new post at A; A's output: {served_a.output()}",
    )
    print(f"A had B's new post {time.monotonic() - back:.1f} s after B was back")
    assert connects(served_a) == [f"Connected to {served_b.address}"] * 2
    assert len(failures(served_a)) <= 2, served_a.output()
    assert text_to_feed_id(b.feed) in {text_to_feed_id(r["feed"]) for r in a.json("peers")}
