"""A pub under load: idle members' memory, live fan-out latency, a half-open flood.

Three processes on loopback: the pub (``p2pcrew pub serve``, exactly as deployed, its
limits raised through ``P2PCREW_PUB_*`` environment variables), a load generator
(``benchmarks.pub_load``: many light members in one process) and, for the flood, a real
member running ``Node.sync_with``. Members are real: their feed ids are written into the
pub's members file before it starts (with the pub's own code), and every connection
completes the Secret Handshake as that member and replicates (HELLO, NOTES asking for
the publisher's feed, pings). Figures:

* the pub's resident memory (VmRSS) with no connections, with 1,000 and with 5,000 idle
  members connected (quick: 50 and 100), and the marginal memory per member; targets
  1,000 under 300 MB and 10,000 under 1 GB. Each step has a time budget (150 s, 120 s):
  a pub too slow to admit them all in time is measured at the count it reached, and the
  note says so (the pub's work per connection grows with the number of members);
* fan-out: one member pushes a new entry to the pub; for each of 1,000 connected members
  (quick: 50) the time until its ENTRIES message arrives, p50 and p99 over a few
  entries (target p99 under 1 s). Sender and receivers share the load generator's clock;
* a flood of 2,000 half-open connections (half a handshake message, then silence;
  reopened when the pub closes them) against a pub with its default handshake limits:
  the pub's memory before, during and after, how long a real member's ``sync`` takes
  (retrying) during the flood, and how many handshakes the pub took on versus refused
  (from its own ``/metrics``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from benchmarks import Context, Measure, Row, fmt
from benchmarks.pub_load import member_key, rss_mb
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.pub.config import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HANDSHAKES
from p2pcrew.pub.invites import write_json_atomic
from p2pcrew.pub.relay import MEMBERS_FILE, Members, _members_document

GROUP = "pub"
ROW_NAMES = (
    "pub RSS, baseline",
    "pub RSS, 1,000 idle members",
    "pub RSS, up to 5,000 idle members",
    "pub memory per idle member",
    "pub member connects/s",
    "pub fan-out to 1,000 members, p50",
    "pub fan-out to 1,000 members, p99",
    "pub half-open flood: RSS before",
    "pub half-open flood: RSS during (peak)",
    "pub half-open flood: RSS after",
    "pub half-open flood: member sync time",
    "pub half-open flood: handshakes taken on",
    "pub half-open flood: connections evicted or refused",
    "pub abuse: member push time",
    "pub abuse: member fetch time",
    "pub abuse: RSS baseline",
    "pub abuse: RSS peak",
    "pub abuse: RSS after the abusers left",
    "pub abuse: memory per connection",
    "pub abuse: memory per handshake in flight",
    "pub abuse: memory per slow reader",
    "pub abuse: handshakes evicted",
    "pub abuse: flood requests answered",
)
ROOT: Final = Path(__file__).resolve().parents[1]
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 60.0
FLOOD_SYNC_DELAY: Final = 0.5
"""The member starts its sync this long after every flood connection was dialled."""


@dataclass(frozen=True, slots=True)
class Sizes:
    step1: int
    step2: int
    concurrency: int
    fanout_entries: int
    flood: int
    flood_seconds: float
    handshake_timeout: float
    """The flood pub's handshake_timeout: the default, shortened in quick mode only."""
    budget1: float
    budget2: float
    """Seconds allowed for connecting each step; a slow pub is measured where it got to."""
    settle: float
    """Pause before reading the pub's memory (its loop finishes the work)."""

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(50, 100, 32, 2, 200, 2.0, 1.0, 60.0, 60.0, 0.5)
        return cls(1000, 5000, 64, 5, 2000, 12.0, DEFAULT_HANDSHAKE_TIMEOUT, 150.0, 120.0, 2.0)


# ---- processes ---------------------------------------------------------------------------


def _raise_nofile(wanted: int) -> Callable[[], None]:
    def raise_limit() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

    return raise_limit


class _Lines:
    """A child's stdout, line by line, with a timeout (a thread does the reading)."""

    def __init__(self, stream: IO[str], what: str) -> None:
        self.what = what
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                self._lines.put(line)
        self._lines.put("")

    def next(self, timeout: float) -> str:
        """The next line; RuntimeError after ``timeout`` seconds or at the end."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.what}: no answer within {timeout:g} s") from None
        if not line:
            raise RuntimeError(f"{self.what}: the process exited")
        return line


class Pub:
    """``p2pcrew pub serve`` on loopback ports, in its own process."""

    def __init__(self, home: Path, env: dict[str, str], fds: int) -> None:
        self.home = home
        self.log = home.parent / f"{home.name}-stderr.txt"
        with self.log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "p2pcrew",
                    "--home",
                    str(home),
                    "pub",
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--http",
                    "127.0.0.1:0",
                ],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=_raise_nofile(fds),
            )
        assert self.proc.stdout is not None
        lines = _Lines(self.proc.stdout, "pub serve")
        self.address = ""
        self.ws = ""
        self.http = ""
        try:
            while not (self.address and self.http):
                line = lines.next(START_TIMEOUT).strip()
                if line.startswith("Listening (tcp): "):
                    self.address = line.split(": ", 1)[1]
                elif line.startswith("Listening (ws): "):
                    self.ws = line.split(": ", 1)[1]
                elif line.startswith("Status page: "):
                    self.http = line.split(": ", 1)[1]
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"the pub did not start: {self.stderr_tail()}") from None

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def metrics(self) -> dict[str, float]:
        """The pub's ``/metrics``, as ``name{labels}`` to value."""
        with urllib.request.urlopen(self.http + "metrics", timeout=10) as response:
            text = response.read().decode("utf-8")
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def stderr_tail(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _handshake_counts(metrics: dict[str, float]) -> dict[str, float]:
    """tcp handshakes by outcome (ok, failed, timeout, refused)."""
    pattern = re.compile(r"^p2pcrew_pub_handshakes_total\{(.*)\}$")
    counts: dict[str, float] = {}
    for name, value in metrics.items():
        match = pattern.match(name)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("transport") == "tcp":
            outcome = labels.get("outcome", "")
            counts[outcome] = counts.get(outcome, 0.0) + value
    return counts


class Crowd:
    """The load generator's members process (``benchmarks.pub_load members``)."""

    def __init__(self, address: str, seed: bytes, publisher: int, fds: int) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.pub_load",
                "members",
                address,
                seed.hex(),
                str(publisher),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_raise_nofile(fds),
        )
        assert self.proc.stdout is not None
        self._lines = _Lines(self.proc.stdout, "load generator")

    def ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._lines.next(timeout))
        return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _pub_home(home: Path, members: list[bytes]) -> None:
    """A pub data directory whose members file already lists ``members``."""
    home.mkdir(mode=0o700)
    save_identity(Identity.generate(), home / "secret.json")
    path = home / MEMBERS_FILE
    joined = int(time.time() * 1000)
    write_json_atomic(path, _members_document(dict.fromkeys(members, joined)))
    if len(Members(path)) != len(set(members)):  # read back with the pub's own reader
        raise RuntimeError("the members file did not round-trip")


def _feeds(seed: bytes, indices: range) -> list[bytes]:
    return [bytes(member_key(seed, i).verify_key) for i in indices]


# ---- idle members and fan-out ----------------------------------------------------------


def _crowd_run(ctx: Context, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    seed = os.urandom(32)
    publisher = sizes.step2  # one more member: the one who publishes
    _pub_home(tmp / "pub", _feeds(seed, range(sizes.step2 + 1)))
    fds = sizes.step2 + 512
    env = {
        "P2PCREW_PUB_MAX_CONNECTIONS": str(sizes.step2 + 64),
        "P2PCREW_PUB_MAX_HANDSHAKES": str(sizes.concurrency * 2),
    }
    pub = Pub(tmp / "pub", env, fds)
    crowd: Crowd | None = None
    try:
        time.sleep(sizes.settle)
        result: dict[str, Any] = {"baseline": pub.rss_mb()}
        crowd = Crowd(pub.address, seed, publisher, fds)
        for step, total, budget in (
            ("step1", sizes.step1, sizes.budget1),
            ("step2", sizes.step2, sizes.budget2),
        ):
            ctx.progress(f"pub: connecting {total:,} members (at most {budget:g} s)")
            connected = crowd.ask(
                {
                    "cmd": "connect",
                    "total": total,
                    "concurrency": sizes.concurrency,
                    "budget": budget,
                },
                timeout=budget + 180,
            )
            if connected["new"] == 0:
                raise RuntimeError(
                    f"no member could connect: {connected['errors']}; "
                    f"pub stderr: {pub.stderr_tail()}"
                )
            time.sleep(sizes.settle)
            result[step] = pub.rss_mb()
            result[f"{step}_connect"] = connected
            if step == "step1":
                watchers = connected["connected"]
                ctx.progress(f"pub: fan-out of {sizes.fanout_entries} entries to {watchers:,}")
                fanout = crowd.ask(
                    {"cmd": "fanout", "entries": sizes.fanout_entries, "watchers": watchers},
                    timeout=60 + sizes.fanout_entries * 25,
                )
                result["fanout"] = fanout
        ctx.progress("pub: hanging up and stopping the pub")
        result["hwm"] = _vm_hwm(pub.proc.pid)
        return result
    finally:
        try:
            if crowd is not None:
                crowd.stop()
        finally:
            pub.stop()


def _vm_hwm(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


# ---- the half-open flood ----------------------------------------------------------------


def _flood_cap(sizes: Sizes) -> int:
    """The default cap, except that the small quick flood must still reach a cap."""
    return min(DEFAULT_MAX_HANDSHAKES, sizes.flood // 4)


def _flood_run(ctx: Context, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    seed = os.urandom(32)
    member = member_key(seed, 0)
    _pub_home(tmp / "pub", [bytes(member.verify_key)])
    env = {
        "P2PCREW_PUB_HANDSHAKE_TIMEOUT": str(sizes.handshake_timeout),
        "P2PCREW_PUB_MAX_HANDSHAKES": str(_flood_cap(sizes)),
    }
    pub = Pub(tmp / "pub", env, sizes.flood + 512)
    try:
        time.sleep(sizes.settle)
        before_counts = _handshake_counts(pub.metrics())
        result: dict[str, Any] = {"before": pub.rss_mb()}
        ctx.progress(f"pub: {sizes.flood:,} half-open connections for {sizes.flood_seconds:g} s")
        flood = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.pub_load",
                "flood",
                pub.address,
                str(sizes.flood),
                str(sizes.flood_seconds),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_raise_nofile(sizes.flood + 512),
        )
        peak = [result["before"]]
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.25):
                with contextlib.suppress(OSError, ValueError):
                    peak[0] = max(peak[0], pub.rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert flood.stdout is not None
        flood_lines = _Lines(flood.stdout, "flood")
        try:
            result["flood_start"] = json.loads(flood_lines.next(START_TIMEOUT))
            time.sleep(FLOOD_SYNC_DELAY)
            deadline = sizes.flood_seconds + sizes.handshake_timeout + 15
            synced = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.pub_load",
                    "sync",
                    str(tmp / "member"),
                    pub.address,
                    member.encode().hex(),
                    str(deadline),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=deadline + 60,
                check=True,
            )
            result["sync"] = json.loads(synced.stdout.strip().splitlines()[-1])
            result["flood"] = json.loads(flood_lines.next(sizes.flood_seconds + 60))
            flood.wait(timeout=30)
        finally:
            if flood.poll() is None:
                flood.kill()
                flood.wait(timeout=10)
            flood.stdout.close()
            stop_sampling.set()
            sampler.join(timeout=5)
        result["during"] = peak[0]
        time.sleep(sizes.settle)
        result["after"] = pub.rss_mb()
        after_counts = _handshake_counts(pub.metrics())
        result["handshakes"] = {
            k: after_counts.get(k, 0.0) - before_counts.get(k, 0.0)
            for k in ("ok", "failed", "timeout", "refused", "evicted")
        }
        return result
    finally:
        pub.stop()


# ---- rows -------------------------------------------------------------------------------


def _measure(samples: list[float]) -> Measure:
    return Measure(tuple(samples))


def run(ctx: Context) -> list[Row]:
    sizes = Sizes.of(ctx.config.quick)
    from tests.pub.abuse import AbuseSizes, run_abuse  # imports this module: not at the top

    abuse_sizes = AbuseSizes.small() if ctx.config.quick else AbuseSizes.full()
    crowds: list[dict[str, Any]] = []
    floods: list[dict[str, Any]] = []
    abuses: list[dict[str, Any]] = []
    for index in range(1, ctx.config.runs + 1):
        ctx.progress(f"pub: idle members and fan-out, run {index}/{ctx.config.runs}")
        with ctx.tempdir() as tmp:
            crowds.append(_crowd_run(ctx, sizes, tmp))
        ctx.progress(f"pub: half-open flood, run {index}/{ctx.config.runs}")
        with ctx.tempdir() as tmp:
            floods.append(_flood_run(ctx, sizes, tmp))
        ctx.progress(f"pub: under abuse, run {index}/{ctx.config.runs}")
        with ctx.tempdir() as tmp:
            abuses.append(run_abuse(abuse_sizes, tmp, ctx.progress))
    return _crowd_rows(sizes, crowds) + _flood_rows(sizes, floods) + _abuse_rows(abuses)


def _reached(connects: list[dict[str, Any]], goal: int, budget: float) -> str:
    """'' when every run reached ``goal`` members, else what the runs reached instead."""
    counts = [c["connected"] for c in connects]
    if min(counts) >= goal:
        return ""
    failed = sum(c["failed"] for c in connects)
    return (
        f"BUDGET: {'/'.join(f'{n:,}' for n in counts)} of {goal:,} connected in {budget:g} s "
        f"({failed} failed), so measured at that count; "
    )


def _crowd_rows(sizes: Sizes, runs: list[dict[str, Any]]) -> list[Row]:
    quick = "QUICK sizes; " if sizes.step1 != 1000 else ""
    n1 = [r["step1_connect"]["connected"] for r in runs]
    n2 = [r["step2_connect"]["connected"] for r in runs]
    short1 = _reached([r["step1_connect"] for r in runs], sizes.step1, sizes.budget1)
    short2 = _reached([r["step2_connect"] for r in runs], sizes.step2, sizes.budget2)
    base = _measure([r["baseline"] for r in runs])
    rss1 = _measure([r["step1"] for r in runs])
    rss2 = _measure([r["step2"] for r in runs])
    marginal = _measure(
        [
            (r["step2"] - r["step1"]) * 1024 / max(1, b - a)
            for r, a, b in zip(runs, n1, n2, strict=True)
        ]
    )
    average = _measure(
        [(r["step2"] - r["baseline"]) * 1024 / b for r, b in zip(runs, n2, strict=True)]
    )
    rate = _measure([r["step2_connect"]["new"] / r["step2_connect"]["seconds"] for r in runs])
    p50s: list[float] = []
    p99s: list[float] = []
    missing = 0
    for r in runs:
        entries = r["fanout"]["latencies_ms"]
        pooled = [ms for entry in entries for ms in entry]
        p50s.append(statistics.median(pooled) if pooled else 0.0)
        p99s.append(_percentile(pooled, 0.99))
        missing += r["fanout"]["missing"]
    p50, p99 = _measure(p50s), _measure(p99s)
    per_entry = "/".join(
        fmt(statistics.median(_percentile(r["fanout"]["latencies_ms"][i], 0.99) for r in runs))
        for i in range(min(len(r["fanout"]["latencies_ms"]) for r in runs))
    )
    at_10k = base.median + marginal.median * 10_000 / 1024
    loader = statistics.median(r["step2_connect"]["rss_mb"] for r in runs)
    hwm = statistics.median(r["hwm"] for r in runs)
    watchers = statistics.median(r["fanout"]["watchers"] for r in runs)
    fanout_note = (
        f"{quick}{short1}{sizes.fanout_entries} entries x {watchers:,.0f} members, pooled; "
        f"{'all delivered' if missing == 0 else f'{missing} deliveries MISSING (>20 s)'}; "
        "includes the load generator's own event loop"
    )
    return [
        Row(
            ROW_NAMES[0],
            base.median,
            "MB",
            None,
            None,
            f"{quick}VmRSS, {sizes.step2 + 1:,} registered members, no connections; "
            f"{base.spread()}",
        ),
        Row(
            ROW_NAMES[1],
            rss1.median,
            "MB",
            None,
            None,
            f"{quick}{short1}VmRSS with {statistics.median(n1):,.0f} authenticated replicating "
            f"members; target < 300 MB; {rss1.spread()}",
        ),
        Row(
            ROW_NAMES[2],
            rss2.median,
            "MB",
            None,
            None,
            f"{quick}{short2}VmRSS with {statistics.median(n2):,.0f}; peak (VmHWM) {fmt(hwm)} MB; "
            f"load generator {fmt(loader)} MB; {rss2.spread()}",
        ),
        Row(
            ROW_NAMES[3],
            marginal.median,
            "KB",
            None,
            None,
            f"{quick}marginal, between the two steps (average over baseline "
            f"{fmt(average.median)} KB); 10,000 would need ~{fmt(at_10k)} MB, target < 1,024; "
            f"{marginal.spread()}",
        ),
        Row(
            ROW_NAMES[4],
            rate.median,
            "members/s",
            None,
            None,
            f"{quick}second step: handshake, HELLO/NOTES answered, {sizes.concurrency} at a "
            f"time; {rate.spread()}",
        ),
        Row(ROW_NAMES[5], p50.median, "ms", None, None, f"{fanout_note}; {p50.spread()}"),
        Row(
            ROW_NAMES[6],
            p99.median,
            "ms",
            None,
            None,
            f"{fanout_note}; p99 of each entry in turn {per_entry} ms; target < 1,000; "
            f"{p99.spread()}",
        ),
    ]


def _flood_rows(sizes: Sizes, runs: list[dict[str, Any]]) -> list[Row]:
    quick = "QUICK sizes; " if sizes.flood != 2000 else ""
    before = _measure([r["before"] for r in runs])
    during = _measure([r["during"] for r in runs])
    after = _measure([r["after"] for r in runs])
    sync = _measure([r["sync"]["seconds"] for r in runs])
    taken = _measure(
        [
            r["handshakes"]["timeout"]
            + r["handshakes"]["failed"]
            + r["handshakes"]["ok"]
            + r["handshakes"]["evicted"]
            for r in runs
        ]
    )
    refused = _measure(
        [max(r["handshakes"]["refused"] + r["handshakes"]["evicted"], 0.0) for r in runs]
    )
    split = "; ".join(
        f"{r['handshakes']['evicted']:.0f}/{r['handshakes']['refused']:.0f}" for r in runs
    )
    attempts = statistics.median(r["flood"]["attempts"] for r in runs)
    peak_open = statistics.median(r["flood"]["peak_open"] for r in runs)
    dial_errors = statistics.median(r["flood"]["connect_errors"] for r in runs)
    outcomes = "; ".join(
        "/".join(f"{r['handshakes'][k]:.0f}" for k in ("evicted", "timeout", "failed", "ok"))
        for r in runs
    )
    synced = sum(1 for r in runs if r["sync"]["ok"])
    tries = statistics.median(r["sync"]["attempts"] for r in runs)
    what = (
        f"{quick}{sizes.flood:,} half-open for {sizes.flood_seconds:g} s, max_handshakes "
        f"{_flood_cap(sizes)}, handshake_timeout {sizes.handshake_timeout:g} s"
    )
    return [
        Row(ROW_NAMES[7], before.median, "MB", None, None, f"{quick}VmRSS; {before.spread()}"),
        Row(
            ROW_NAMES[8],
            during.median,
            "MB",
            None,
            None,
            f"{what}; sampled every 0.25 s; {during.spread()}",
        ),
        Row(
            ROW_NAMES[9],
            after.median,
            "MB",
            None,
            None,
            f"{quick}{sizes.settle:g} s after the flood; {after.spread()}",
        ),
        Row(
            ROW_NAMES[10],
            sync.median,
            "s",
            None,
            None,
            f"{quick}member `sync` from {FLOOD_SYNC_DELAY:g} s after all were dialled, retrying; "
            f"completed in {synced}/{len(runs)} runs, median {tries:g} attempts; "
            f"{sync.spread()}",
        ),
        Row(
            ROW_NAMES[11],
            taken.median,
            "handshakes",
            None,
            None,
            f"{what}; pub metrics per run, evicted/timed out/failed/ok: {outcomes} (failed: cut "
            f"when the flood ended, some still in the listen backlog; ok: the member); "
            f"{taken.spread()}",
        ),
        Row(
            ROW_NAMES[12],
            refused.median,
            "connections",
            None,
            None,
            f"{quick}evicted (a newcomer took the silent socket's slot) or closed unread at "
            f"the gate, pub metrics; evicted/refused per run: "
            f"{split}; "
            f"{attempts:,.0f} dials, "
            f"{dial_errors:,.0f} failed outright, peak {peak_open:,.0f} open at once; "
            f"{refused.spread()}",
        ),
    ]


def _abuse_rows(runs: list[dict[str, Any]]) -> list[Row]:
    """Rows for ``tests.pub.abuse.run_abuse``: members' sync times, the memory formula's
    constants, and what the pub's limits did."""
    from tests.pub.abuse import CACHE_MB, FORMULA

    sizes = runs[0]["sizes"]
    quick = "QUICK sizes; " if sizes["half_open"] != 2000 else ""
    what = (
        f"{quick}{sizes['idle_members']:,} idle members, {sizes['half_open']:,} half-open, "
        f"{sizes['slowloris']} slowloris, {sizes['slow_readers']} slow readers, oversized "
        f"frames, a request flood and an invite flood at once; max_handshakes "
        f"{sizes['max_handshakes']}, handshake_timeout {sizes['handshake_timeout']:g} s"
    )
    push = _measure([r["writer"]["seconds"] for r in runs])
    fetch = _measure([r["reader"]["seconds"] for r in runs])
    synced = sum(1 for r in runs if r["writer"]["ok"] and r["reader"]["ok"])
    base = _measure([r["base"] for r in runs])
    peak = _measure([r["peak"] for r in runs])
    after = _measure([r["after"] for r in runs])
    per_conn = _measure(
        [(r["rss_connections"] - r["base"]) * 1024 / max(1.0, r["connections"]) for r in runs]
    )
    per_handshake = _measure(
        [
            (r["rss_handshakes"] - r["rss_connections"]) * 1024 / max(1.0, r["handshakes"])
            for r in runs
        ]
    )
    unmeasurable = (
        " (0.01: no growth measurable, freed memory reused)" if per_handshake.median <= 0.01 else ""
    )
    per_slow = _measure(
        [(r["rss_slow"] - r["rss_warm"]) * 1024 / sizes["slow_readers"] for r in runs]
    )
    cache = _measure([r["rss_warm"] - r["rss_handshakes"] for r in runs])
    evicted = _measure([r["handshake_outcomes"].get("evicted", 0.0) for r in runs])
    refused = statistics.median(r["handshake_outcomes"].get("refused", 0.0) for r in runs)
    timed_out = statistics.median(r["handshake_outcomes"].get("timeout", 0.0) for r in runs)
    answered = _measure([r["requests_result"]["per_second"] for r in runs])
    answers = runs[0]["requests_result"]["answers"]
    bounds = [
        FORMULA.bound_mb(
            r["base"],
            r["store_mb"],
            r["connections"] + sizes["slow_readers"] + 4,
            r["handshakes"],
            sizes["slow_readers"],
        )
        for r in runs
    ]
    store = statistics.median(r["store_mb"] for r in runs)
    closed = runs[0]["peers_closed"]
    oversize = runs[0]["oversize_result"]
    return [
        Row(
            ROW_NAMES[13],
            push.median,
            "s",
            None,
            None,
            f"{what}; a member (Node, own process) pushes {sizes['posts']} entries; "
            f"{synced}/{len(runs)} runs completed; {push.spread()}",
        ),
        Row(
            ROW_NAMES[14],
            fetch.median,
            "s",
            None,
            None,
            f"{quick}another member fetches them from the pub, meanwhile; {fetch.spread()}",
        ),
        Row(ROW_NAMES[15], base.median, "MB", None, None, f"{quick}VmRSS; {base.spread()}"),
        Row(
            ROW_NAMES[16],
            peak.median,
            "MB",
            None,
            None,
            f"{what}; sampled every 0.25 s; formula bound {fmt(statistics.median(bounds))} MB "
            f"(store {fmt(store)} MB, its page cache grew {fmt(cache.median)} MB); "
            f"{peak.spread()}",
        ),
        Row(
            ROW_NAMES[17],
            after.median,
            "MB",
            None,
            None,
            f"{quick}no connection or handshake left, then one malloc_trim period; includes "
            f"the store's page cache (<= min(store, {CACHE_MB:g} MB)); {after.spread()}",
        ),
        Row(
            ROW_NAMES[18],
            max(per_conn.median, 0.01),
            "KB",
            None,
            None,
            f"{quick}{sizes['idle_members']:,} idle replicating members over baseline; "
            f"formula uses {FORMULA.per_connection_kb:g}; {per_conn.spread()}",
        ),
        Row(
            ROW_NAMES[19],
            max(per_handshake.median, 0.01),
            "KB",
            None,
            None,
            f"{quick}{statistics.median(r['handshakes'] for r in runs):,.0f} in flight (half-open "
            f"flood, slots churning){unmeasurable}; "
            f"see the half-open flood rows; formula uses {FORMULA.per_handshake_kb:g}; "
            f"{per_handshake.spread()}",
        ),
        Row(
            ROW_NAMES[20],
            max(per_slow.median, 0.01),
            "KB",
            None,
            None,
            f"{quick}members asking for a feed of 16 KB entries, never reading; the pub holds "
            f"the batch being sent and its RPC and socket buffers; formula uses "
            f"{FORMULA.per_slow_reader_kb:g}; {per_slow.spread()}",
        ),
        Row(
            ROW_NAMES[21],
            evicted.median,
            "handshakes",
            None,
            None,
            f"{quick}silent or stalled handshakes that lost their slot to a newcomer; "
            f"refused {refused:,.0f}, timed out {timed_out:,.0f}; oversized: "
            f"{oversize['frames']} RPC frames hung up on (slowest "
            f"{fmt(oversize['frame_slowest_hang_up'] * 1000)} ms), {oversize['ws']} WebSocket "
            f"messages closed {oversize['ws_close_codes']}; peers closed by reason: "
            f"{', '.join(f'{k} {v:,.0f}' for k, v in sorted(closed.items()) if v)}; "
            f"{evicted.spread()}",
        ),
        Row(
            ROW_NAMES[22],
            answered.median,
            "requests/s",
            None,
            None,
            f"{quick}one member, 256 requests and streams outstanding (max_streams 64): "
            f"{', '.join(f'{k} {v:,}' for k, v in sorted(answers.items()))}; invite.use "
            f"from a guest: {runs[0]['invites_result']['answers']}; {answered.spread()}",
        ),
    ]
