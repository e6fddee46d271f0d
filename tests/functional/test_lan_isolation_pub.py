"""Venue Wi-Fi that blocks client-to-client traffic: the meetup converges through a pub.

The venue is ``pub_netns.VenueLan``: every laptop on an *isolated* bridge port (they
cannot reach each other at all, neither mDNS nor unicast) and the pub on the uplink,
a port that is not isolated, so every laptop reaches it. Everything runs as real
``p2pcrew`` processes, each in its own namespace with its own data directory:

1. the pub runs ``p2pcrew pub serve`` and makes one invite with a use per laptop;
2. the laptops ``init``, follow each other and ``join`` the pub with the code, one
   after another (so the first to join cannot have got anything from the others yet);
3. each laptop runs ``p2pcrew serve`` with LAN discovery on: discovery finds nobody
   and prints the fallback hint, yet every laptop ends up holding every other
   laptop's feed at its latest seq, through the pub it dialled as a known peer;
4. a laptop posts through its running node (``p2pcrew post`` with the same data
   directory, which goes through the node's control socket) and the others receive
   the entry live, through the pub, with no restart.

Needs root and iproute2. Without them the test skips locally and FAILS in CI (``CI``
set), like the other namespace tests. Teardown stops every process it started (by its
PID, through its Popen handle) before deleting the namespaces, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from p2pcrew.feed import content as c
from p2pcrew.feed.ids import feed_id_to_text, text_to_entry_id, text_to_feed_id
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from p2pcrew.publishing import publish
from p2pcrew.replicate.discovery import NOBODY_MESSAGE, QUIET_TIMEOUT
from tests.functional.chaos_parts import Proc
from tests.functional.netns import Host, namespaces, netns_unavailable
from tests.functional.pub_netns import UPLINK_PORT, VenueLan, tcp_reachable

ROOT = Path(__file__).resolve().parents[2]
SEEDED = {"ana": 6, "ben": 4, "dee": 2}
"""Posts each laptop writes before the meetup (different lengths, to catch off-by-ones)."""
LAPTOP_PORT = 8008
PUB_TCP_PORT = 8008
PUB_HTTP_PORT = 8080
CLI_TIMEOUT = 30.0
START_WITHIN = 15.0
CONVERGE_WITHIN = 20.0
LIVE_WITHIN = 10.0
STOP_WITHIN = 10.0
POLL = 0.1


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def wait_until(cond: Callable[[], bool], timeout: float, what: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said}")
        time.sleep(POLL)


def cli_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "P2PCREW_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("P2PCREW_PASSPHRASE", None)
    return env


def p2pcrew_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2pcrew", *args]


class Background(Proc):
    """A long-running ``p2pcrew`` command in a namespace; output goes to files we poll."""

    def __init__(self, host: Host, home: Path, log: Path, *args: str) -> None:
        super().__init__(host.command(p2pcrew_argv(*args)), home, log)


class Laptop:
    """One person's data directory, used only from inside their own namespace."""

    def __init__(self, name: str, host: Host, tmp: Path) -> None:
        self.name = name
        self.host = host
        self.home = tmp / name
        self.key = b""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.host.command(p2pcrew_argv(*args)),
            cwd=ROOT,
            env=cli_env(self.home),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{self.name}: p2pcrew {' '.join(args)}: {done}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def seed(self, count: int) -> None:
        """Posts written before the meetup, straight into the store (no node runs yet)."""
        home = Home(self.home)
        with contextlib.closing(home.open_store()) as store:
            items: list[c.Content] = [c.Post(text=f"{self.name} {i}", time=1) for i in range(count)]
            publish(store, home.load_identity(), items)

    def latest_seqs(self) -> dict[bytes, int]:
        """Read-only, beside the running node (WAL), as ``p2pcrew feeds`` does."""
        with contextlib.closing(SqliteStore(self.home, readonly=True)) as store:
            return store.latest_seqs()

    def latest(self, other: Laptop) -> int:
        return self.latest_seqs().get(other.key, 0)

    def holds(self, entry_id: bytes) -> bool:
        with contextlib.closing(SqliteStore(self.home, readonly=True)) as store:
            return store.get(entry_id) is not None


@pytest.fixture
def venue() -> Iterator[Callable[[int], VenueLan]]:
    """Make isolated venue LANs; every namespace is deleted at teardown."""
    reason = netns_unavailable()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"the isolated-venue pub test must run in CI but cannot: {reason}")
        pytest.skip(reason)
    made: list[VenueLan] = []

    def make(laptops: int) -> VenueLan:
        made.append(VenueLan(laptops))
        return made[-1]

    try:
        yield make
    finally:
        for lan in made:
            lan.close()
        left = [n for n in namespaces() for lan in made if n.startswith(lan.tag)]
        assert not left, f"namespaces leaked: {left}"


@pytest.fixture
def background(
    venue: Callable[[int], VenueLan],
) -> Iterator[Callable[..., Background]]:
    """Start long-running processes; all are stopped before their namespaces go."""
    started: list[Background] = []

    def start(host: Host, home: Path, log: Path, *args: str) -> Background:
        started.append(Background(host, home, log, *args))
        return started[-1]

    try:
        yield start
    finally:
        for proc in reversed(started):
            proc.stop()


def pub_cli(host: Host, home: Path, *args: str) -> Any:
    """The operator's ``p2pcrew ARGS --json`` on the pub's machine, parsed."""
    done = subprocess.run(
        host.command(p2pcrew_argv(*args, "--json")),
        cwd=ROOT,
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"pub: p2pcrew {' '.join(args)}: {done}"
    return json.loads(done.stdout)


def in_parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent CLI steps (one per laptop) at once; re-raises the first failure."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def test_isolated_venue_converges_through_the_pub_and_new_posts_flow_live(
    tmp_path: Path, venue: Callable[[int], VenueLan], background: Callable[..., Background]
) -> None:
    lan = venue(len(SEEDED))
    assert all(lan.port_isolated(f"p{i}") for i in range(len(SEEDED)))
    assert not lan.port_isolated(UPLINK_PORT)
    laptops = [Laptop(n, h, tmp_path) for n, h in zip(SEEDED, lan.hosts, strict=True)]
    ana, ben, dee = laptops

    # Before the meetup: identities, a few posts each, everyone follows everyone.
    inits = in_parallel(*[lambda lt=lt: lt.json("init", "--name", lt.name) for lt in laptops])
    for laptop, said in zip(laptops, inits, strict=True):
        laptop.key = text_to_feed_id(said["feed"])
    for laptop in laptops:
        laptop.seed(SEEDED[laptop.name])

    def follow_all(me: Laptop) -> None:
        for other in laptops:
            if other is not me:
                me.json("follow", _feed_text(other))

    in_parallel(*[lambda lt=lt: follow_all(lt) for lt in laptops])
    own = {lt.name: lt.latest(lt) for lt in laptops}
    # the profile ``init --name`` writes, the posts, a follow per other laptop
    assert own == {n: 1 + count + len(laptops) - 1 for n, count in SEEDED.items()}

    # The pub, on the venue's uplink, and one invite with a use per laptop.
    pub_home = tmp_path / "pub"
    pub = background(
        lan.pub,
        pub_home,
        tmp_path / "pub.out",
        "pub",
        "serve",
        "--listen",
        f"{lan.pub.address}:{PUB_TCP_PORT}",
        "--http",
        f"{lan.pub.address}:{PUB_HTTP_PORT}",
    )
    pub.wait_for("Status page:", START_WITHIN)
    invite = pub_cli(lan.pub, pub_home, "pub", "invite", "--uses", str(len(laptops)))
    assert f"tcp://{lan.pub.address}:{PUB_TCP_PORT}" in invite["urls"], invite
    assert invite["uses"] == len(laptops)

    # Joining, one after another: each syncs once with the pub on the way in.
    joined = [lt.json("join", invite["code"]) for lt in laptops]
    assert [j["already_member"] for j in joined] == [False] * len(laptops), joined
    assert ana.latest(ben) == 0 and ana.latest(dee) == 0, "Ana joined first: nothing to get yet"
    assert ben.latest(dee) == 0, "Ben joined before Dee"
    members = pub_cli(lan.pub, pub_home, "pub", "members")
    assert {m["feed"] for m in members} == {_feed_text(lt) for lt in laptops}
    for laptop in laptops:
        sources = {p["source"] for p in laptop.json("peers")}
        assert sources == {"pub"}, f"{laptop.name} knows {sources}"

    # The meetup: every laptop serves with LAN discovery on, on the isolated Wi-Fi.
    serving = {
        lt.name: background(
            lt.host,
            lt.home,
            tmp_path / f"{lt.name}-serve.out",
            "serve",
            "--listen",
            f"0.0.0.0:{LAPTOP_PORT}",
        )
        for lt in laptops
    }
    for node in serving.values():
        node.wait_for("Looking for your crew on this network (mDNS).", START_WITHIN)
    discovery_started = time.monotonic()
    for node in serving.values():
        node.wait_for(f"Connected to tcp://{lan.pub.address}:{PUB_TCP_PORT}", START_WITHIN)

    # The premise, checked: each laptop's node answers on its own address, yet no
    # other laptop reaches it; every laptop reaches the pub.
    pairs = [(a, b) for a in laptops for b in laptops if a is not b]
    probes = in_parallel(
        *[lambda a=a, b=b: tcp_reachable(a.host, b.host.address, LAPTOP_PORT) for a, b in pairs],
        *[lambda a=a: tcp_reachable(a.host, a.host.address, LAPTOP_PORT) for a in laptops],
        *[lambda a=a: tcp_reachable(a.host, lan.pub.address, PUB_TCP_PORT) for a in laptops],
    )
    for (a, b), (reached, said) in zip(pairs, probes, strict=False):
        assert not reached, f"{a.name} reached {b.name} through the isolation: {said}"
    for reached, said in probes[len(pairs) :]:
        assert reached, f"a laptop's own node or the pub did not answer: {said}"

    def converged() -> bool:
        return all(me.latest(o) == own[o.name] for me in laptops for o in laptops)

    def state() -> str:
        seqs = {me.name: {o.name: me.latest(o) for o in laptops} for me in laptops}
        return f"every laptop at {own}; have {seqs}; " + " | ".join(
            n.describe() for n in serving.values()
        )

    wait_until(converged, CONVERGE_WITHIN, lambda: "convergence through the pub: " + state())

    left = QUIET_TIMEOUT - (time.monotonic() - discovery_started)
    for node in serving.values():
        node.wait_for(NOBODY_MESSAGE, max(left, 0.0) + START_WITHIN)
    for name, node in serving.items():
        out = node.text()
        assert "Found" not in out, f"{name} found someone through the isolation: {out}"
        assert out.splitlines().count(NOBODY_MESSAGE) == 1, out

    # Live: Ana posts through her running node; Ben and Dee get it through the pub.
    before = {name: node.proc.pid for name, node in serving.items()}
    posted = ana.json("post", "live from the isolated Wi-Fi, via the pub")
    assert posted["author"] == _feed_text(ana) and posted["seq"] == own["ana"] + 1, posted
    entry = text_to_entry_id(posted["id"])
    wait_until(
        lambda: ben.holds(entry) and dee.holds(entry),
        LIVE_WITHIN,
        lambda: "Ana's live post at Ben and Dee: " + state(),
    )
    assert ben.latest(ana) == dee.latest(ana) == own["ana"] + 1
    assert all(node.proc.poll() is None for node in serving.values()), state()
    assert {name: node.proc.pid for name, node in serving.items()} == before

    for node in serving.values():
        assert node.stop() == 0, node.describe()
        assert "Stopping." in node.text(), node.describe()
    assert pub.stop() == 0, pub.describe()
    assert "Stopped." in pub.text(), pub.describe()
    for laptop in laptops:
        sources = {p["source"] for p in laptop.json("peers")}
        assert "lan" not in sources, f"{laptop.name} learnt a LAN peer: {sources}"


def _feed_text(laptop: Laptop) -> str:
    return feed_id_to_text(laptop.key)
