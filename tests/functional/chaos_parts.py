"""The pieces the chaos runner (``chaos.py``) is built from: its configurations, the
nodes it drives (real ``p2pcrew`` processes in network namespaces), the snapshots the
oracle compares and the report it prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from tests.functional.netns import Host

T = TypeVar("T")
R = TypeVar("R")

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("ana", "ben", "cal", "dee", "eve")
CREW = "tenants"
PORT = 8008
PUB_HTTP_PORT = 8080
CLI_TIMEOUT = 60.0
START_WITHIN = 20.0
STOP_WITHIN = 10.0
STEP_WITHIN = 30.0
"""Bound for one scenario's own convergence (isolation through the pub, the bulk batch)."""
POLL = 0.1
KILL_POLL = 0.005
AHEAD, BEHIND = "+2h", "-3d"
SKEW_MS = {AHEAD: 2 * 3600 * 1000, BEHIND: -3 * 86400 * 1000}
SKEW_TOLERANCE_MS = 10 * 60 * 1000
_FOUND = re.compile(r"Found (feed_[a-z0-9]+) on this network")


@dataclass(frozen=True, slots=True)
class Config:
    """How big a run is. ``SMALL`` runs in CI; ``LONG`` behind a flag."""

    name: str
    posts: int
    """Public posts per laptop per workload step."""
    crew_posts: int
    """Crew posts per member per workload step."""
    partitions: int
    hold: float
    """Seconds each partition is held (the scenario is about time: a real wait)."""
    bulk: int
    """Entries in the batch being synced to the node that is SIGKILLed."""
    converge_within: float
    """The bound: seconds after the last heal by which every node must agree."""


SMALL = Config(
    "small", posts=1, crew_posts=1, partitions=3, hold=3.0, bulk=2000, converge_within=30.0
)
LONG = Config(
    "long", posts=4, crew_posts=2, partitions=6, hold=25.0, bulk=8000, converge_within=60.0
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]`` side by side (one thread each; re-raises the first error)."""
    todo = list(items)
    if len(todo) <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(len(todo)) as pool:
        return list(pool.map(fn, todo))


def wait_until(cond: Callable[[], bool], timeout: float, what: Callable[[], str] | str) -> float:
    """Poll ``cond`` against a deadline; the seconds it took. AssertionError on timeout."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said}")
        time.sleep(POLL)
    return time.monotonic() - start


def faketime_env(offset: str) -> dict[str, str]:
    """Environment that preloads libfaketime with a constant ``offset`` ("+2h", "-3d")."""
    import libfaketime  # type: ignore[import-untyped]  # the test extra; ships the .so

    _, env = libfaketime.get_reload_information()
    lib = Path(str(env["LD_LIBRARY_PATH"])) / str(env["LD_PRELOAD"])
    if not lib.exists():
        raise AssertionError(f"libfaketime is not where the package says: {lib}")
    return {
        "LD_PRELOAD": str(lib),
        "FAKETIME": offset,
        "DONT_FAKE_MONOTONIC": "1",  # asyncio's timers run on the real monotonic clock
        "FAKETIME_NO_CACHE": "1",
    }


def p2pcrew_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2pcrew", *args]


def host_argv(host: Host, argv: Sequence[str], extra_env: dict[str, str]) -> list[str]:
    """``argv`` in ``host``'s namespace, with ``extra_env`` for that process only (not ``ip``)."""
    if extra_env:
        argv = ["env", *(f"{k}={v}" for k, v in extra_env.items()), *argv]
    return host.command(argv)


def cli_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "P2PCREW_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("P2PCREW_PASSPHRASE", None)
    for name in ("LD_PRELOAD", "FAKETIME"):
        env.pop(name, None)
    return env


class Proc:
    """A long-running ``p2pcrew`` command in a namespace; its output goes to files we poll."""

    def __init__(self, argv: list[str], home: Path, log: Path) -> None:
        self.log = log
        self.err = log.with_suffix(".err")
        with self.log.open("w") as out, self.err.open("w") as err:
            # ``ip netns exec`` and ``env`` exec: this PID ends up being p2pcrew itself.
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=cli_env(home),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def describe(self) -> str:
        err = self.err.read_text(errors="replace")[-3000:]
        return f"{self.log.name} (exit {self.proc.poll()}): {self.text()[-3000:]!r} {err!r}"

    def wait_for(self, needle: str, timeout: float = START_WITHIN) -> None:
        def seen() -> bool:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"exited before printing {needle!r}: {self.describe()}")
            return False

        wait_until(seen, timeout, lambda: f"{needle!r} from {self.describe()}")

    def stop(self) -> int:
        """SIGTERM (a clean stop) to this PID, SIGKILL if it hangs; the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_WITHIN)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, no goodbye."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_WITHIN)


@dataclass(eq=False)
class Node:
    """One machine: a namespace, a data directory, maybe a skewed clock, maybe a process."""

    name: str
    host: Host
    home: Path
    skew: str | None = None
    key: bytes = b""
    proc: Proc | None = None
    runs: list[Proc] = field(default_factory=list)

    @property
    def feed(self) -> str:
        return feed_id_to_text(self.key)

    @property
    def env(self) -> dict[str, str]:
        return faketime_env(self.skew) if self.skew else {}

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            host_argv(self.host, p2pcrew_argv(*args), self.env),
            cwd=ROOT,
            env=cli_env(self.home),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        if ok:
            assert done.returncode == 0, f"{self.name}: p2pcrew {' '.join(args)}: {done}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def start(self, *args: str) -> Proc:
        log = self.home.parent / f"{self.name}-{len(self.runs)}.out"
        self.proc = Proc(host_argv(self.host, p2pcrew_argv(*args), self.env), self.home, log)
        self.runs.append(self.proc)
        return self.proc

    @contextlib.contextmanager
    def reading(self) -> Iterator[SqliteStore]:
        """The store, read-only, beside the running node (WAL), as ``p2pcrew feeds`` does."""
        store = Home(self.home).open_store(readonly=True)
        try:
            yield store
        finally:
            store.close()

    def latest_seqs(self) -> dict[bytes, int]:
        with self.reading() as store:
            return store.latest_seqs()

    def latest(self, feed: bytes) -> int:
        return self.latest_seqs().get(feed, 0)

    def output(self) -> str:
        return "\n".join(p.text() for p in self.runs)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a node holds: per feed, its seqs in order and its entry ids."""

    seqs: dict[bytes, list[int]]
    ids: dict[bytes, list[bytes]]

    @property
    def heads(self) -> dict[bytes, int]:
        return {f: s[-1] for f, s in self.seqs.items() if s}

    def feed_digest(self, feed: bytes) -> str:
        return hashlib.sha256(b"".join(sorted(self.ids[feed]))).hexdigest()

    def digest(self, feeds: Iterable[bytes]) -> str:
        return hashlib.sha256(b"".join(sorted(i for f in feeds for i in self.ids[f]))).hexdigest()

    @property
    def entries(self) -> int:
        return sum(len(s) for s in self.seqs.values())


def snapshot(node: Node) -> Snapshot:
    seqs: dict[bytes, list[int]] = {}
    ids: dict[bytes, list[bytes]] = {}
    with node.reading() as store:
        for feed in store.latest_seqs():
            rows = list(store.iter_feed(feed))
            seqs[feed] = [s.entry.seq for s in rows]
            ids[feed] = [s.entry.id for s in rows]
    return Snapshot(seqs, ids)


@dataclass(frozen=True, slots=True)
class Written:
    """An entry the workload wrote through a node, as the CLI reported it."""

    author: Node
    id: bytes
    seq: int
    text: str
    crew: bool


@dataclass
class Report:
    """What a run did and measured (``summary`` prints it)."""

    config: Config
    seed: int
    order: list[str] = field(default_factory=list)
    timeline: list[tuple[str, float, str]] = field(default_factory=list)
    """(what, monotonic time, detail); the detail starts with the wall-clock time."""
    roles: dict[str, str] = field(default_factory=dict)
    converged_after_heal: float = 0.0
    entries_per_node: dict[str, int] = field(default_factory=dict)
    feeds_per_node: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    check_failures: int = 0
    checks_run: int = 0
    post_removal_crew_posts: int = 0
    removed_opened: int = 0
    removed_held: int = 0
    remaining_opened: int = 0
    removed_opened_before: int = 0
    pre_removal_crew_posts: int = 0
    killed_at: tuple[int, int, int] = (0, 0, 0)
    """(victim's seq of the batch's feed before, at the kill, the batch's last seq)."""
    kill_attempts: int = 0
    skew_seen_ms: dict[str, int] = field(default_factory=dict)
    found: dict[str, list[str]] = field(default_factory=dict)
    nobody: list[str] = field(default_factory=list)
    refused: int = 0
    """Log lines of a node dropping a peer for sending an invalid entry (must stay 0)."""
    """Laptops whose discovery printed the "No one found on this network" hint."""
    partitions_checked: int = 0
    heals: list[tuple[str, float]] = field(default_factory=list)
    """Each heal and how long after it every node agreed."""
    wall_seconds: float = 0.0
    workdir: str = ""

    def note(self, what: str, detail: str = "") -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        self.timeline.append((what, time.monotonic(), f"[{stamp}] {detail}"))

    def summary(self) -> str:
        start = self.timeline[0][1] if self.timeline else 0.0
        lines = [
            f"chaos run: {self.config.name} configuration, seed {self.seed}, "
            f"{self.wall_seconds:.1f} s wall clock",
            "roles: " + ", ".join(f"{k}={v}" for k, v in self.roles.items()),
            "scenario order: " + " -> ".join(self.order),
            "",
            f"{'t (s)':>7}  event",
        ]
        lines += [f"{t - start:7.1f}  {what}  {detail}" for what, t, detail in self.timeline]
        lines += [
            "",
            f"{'node':<6}{'feeds':>6}{'entries':>9}  digest (SHA-256 over sorted entry ids)",
        ]
        for name, count in self.entries_per_node.items():
            digest = self.digests.get(name, "")
            lines.append(f"{name:<6}{self.feeds_per_node[name]:>6}{count:>9}  {digest}")
        before, at, target = self.killed_at
        lines += [
            "",
            f"converged {self.converged_after_heal:.1f} s after the last heal "
            f"(bound {self.config.converge_within:g} s); after each heal: "
            + ", ".join(f"{what} {took:.1f} s" for what, took in self.heals),
            f"p2pcrew check: {self.checks_run} runs, {self.check_failures} failures; "
            f"invalid entries refused on the wire: {self.refused}",
            f"partitions proven by probes and a post that did not cross: {self.partitions_checked}",
            f"SIGKILL mid-sync: victim held {at} of the batch's feed (had {before}, "
            f"batch ends at {target}); attempts {self.kill_attempts}",
            f"removed member opened {self.removed_opened} of {self.post_removal_crew_posts} "
            f"post-removal crew posts (holds {self.removed_held} as ciphertext); the remaining "
            f"members opened {self.remaining_opened} of "
            f"{self.post_removal_crew_posts * (len(NAMES) - 1)}; before the removal it "
            f"opened {self.removed_opened_before} of {self.pre_removal_crew_posts}",
            "clock skew seen (claimed time - pub's receive time): "
            + ", ".join(f"{k} {v / 3_600_000:+.2f} h" for k, v in self.skew_seen_ms.items()),
            "LAN discovery (who found whom by mDNS): "
            + "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in self.found.items())
            + f"; printed the nobody-found hint: {', '.join(self.nobody) or '-'}",
        ]
        return "\n".join(lines)
