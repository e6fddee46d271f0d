"""Benchmarks for p2pcrew: ``python -m benchmarks`` prints one table of figures.

Every figure is a throughput or a latency, reported as the MEDIAN of ``--runs``
runs with the minimum and maximum in its note, and (where it makes sense) as a
ratio to a *physical limit* measured in the same process moments earlier: raw
Ed25519 signing and verification through PyNaCl. Absolute numbers drift on a
shared machine; the ratios are what the targets in ``shared/BRIEF.md`` are about.

Adding rows: create a module ``benchmarks/<group>_bench.py`` that defines

* ``GROUP: str`` - the name used with ``--only``;
* ``ROW_NAMES: tuple[str, ...]`` - every row name it produces (the smoke test
  checks that each appears in the table);
* ``run(ctx: Context) -> list[Row]`` - measures and returns its rows. Use
  ``ctx.repeat`` to get one ``Measure`` from ``ctx.config.runs`` runs, or
  ``ctx.repeat_vs`` to also re-measure a limit (``ctx.limits``) just before each
  run and get the per-run ratios (``paired_row`` makes the row);
  ``ctx.tempdir()`` gives scratch space and ``ctx.progress`` prints on stderr.

Modules are found by name; nothing else needs registering.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

import nacl
import nacl.bindings
import nacl.signing

DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "p2pcrew-bench-cache"
MESSAGE_SIZE = 300
"""Bytes signed and verified for the limits: a realistic entry's signing input."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    name: str
    value: float
    unit: str
    ratio: float | None
    """``value`` divided by the limit named ``limit_name`` (both medians)."""
    limit_name: str | None
    note: str


@dataclass(frozen=True, slots=True)
class Config:
    quick: bool
    """Small sizes, so that a run takes seconds (the smoke test uses it)."""
    runs: int
    cache_dir: Path | None
    """Where large fixtures are kept between runs; None builds them in a temp dir."""


@dataclass(frozen=True, slots=True)
class Measure:
    """Samples of one figure, one per run."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def spread_ratio(self) -> str:
        if len(self.samples) == 1:
            return "1 run"
        return f"min {self.low:.2f}, max {self.high:.2f}"

    def spread(self) -> str:
        """``median of 5 (min 1,234, max 1,456)`` for a note."""
        if len(self.samples) == 1:
            return "1 run"
        return f"median of {len(self.samples)} (min {fmt(self.low)}, max {fmt(self.high)})"


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    unit: str
    measure: Measure
    probe: Callable[[], float]
    """A short re-measurement (about 0.2 s), taken beside each run of a figure."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What the hardware allows, measured at the start of the run."""

    sign_1t: Limit
    verify_1t: Limit
    verify_2t: Limit

    def rows(self) -> list[Row]:
        return [
            Row(
                self.sign_1t.name,
                self.sign_1t.measure.median,
                self.sign_1t.unit,
                None,
                None,
                f"limit; {MESSAGE_SIZE}-byte message; {self.sign_1t.measure.spread()}",
            ),
            Row(
                self.verify_1t.name,
                self.verify_1t.measure.median,
                self.verify_1t.unit,
                None,
                None,
                f"limit; crypto_sign_open; {self.verify_1t.measure.spread()}",
            ),
            ratio_row(
                self.verify_2t.name,
                self.verify_2t.measure,
                self.verify_2t.unit,
                self.verify_1t,
                f"limit; 2 threads, PyNaCl releases the GIL; {self.verify_2t.measure.spread()}",
            ),
        ]


LIMIT_ROW_NAMES = (
    "ed25519 sign/s, 1 thread",
    "ed25519 verify/s, 1 thread",
    "ed25519 verify/s, 2 threads",
)


def ratio_row(name: str, measure: Measure, unit: str, limit: Limit | None, note: str) -> Row:
    """A row for ``measure``'s median, with its ratio to ``limit``'s median."""
    if limit is None:
        return Row(name, measure.median, unit, None, None, note)
    return Row(name, measure.median, unit, measure.median / limit.measure.median, limit.name, note)


def paired_row(
    name: str, values: Measure, ratios: Measure, unit: str, limit: Limit, note: str
) -> Row:
    """A row whose ratio is the median of per-run ratios (see ``Context.repeat_vs``)."""
    return Row(
        name,
        values.median,
        unit,
        ratios.median,
        limit.name,
        f"{note}; {values.spread()}; ratio: median of per-run ratios to the limit "
        f"re-measured just before each run ({ratios.spread_ratio()})",
    )


def fmt(value: float) -> str:
    """A figure for people: thousands separators, few decimals."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


class Context:
    """What a benchmark group gets: the configuration, the limits, helpers."""

    def __init__(self, config: Config, limits: Limits, progress: Callable[[str], None]) -> None:
        self.config = config
        self.limits = limits
        self.progress = progress

    def repeat(self, label: str, once: Callable[[], float]) -> Measure:
        """Call ``once`` ``config.runs`` times; each call returns one sample."""
        return repeat(self.config.runs, label, once, self.progress)

    def repeat_vs(
        self, label: str, once: Callable[[], float], limit: Limit
    ) -> tuple[Measure, Measure]:
        """Like ``repeat``, probing ``limit`` before each run: (values, value/limit ratios).

        On a shared, noisy machine the neighbours' load changes from minute to
        minute; a ratio to a limit measured moments earlier is steadier than one
        to the limit measured at the start.
        """
        values: list[float] = []
        ratios: list[float] = []

        def paired() -> float:
            reference = limit.probe()
            value = once()
            values.append(value)
            ratios.append(value / reference)
            return value

        repeat(self.config.runs, label, paired, self.progress)
        return Measure(tuple(values)), Measure(tuple(ratios))

    @contextlib.contextmanager
    def tempdir(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="p2pcrew-bench-") as name:
            yield Path(name)


def repeat(
    runs: int, label: str, once: Callable[[], float], progress: Callable[[str], None]
) -> Measure:
    samples = []
    for run in range(1, runs + 1):
        progress(f"{label}: run {run}/{runs}")
        samples.append(once())
    return Measure(tuple(samples))


# ---- limits ---------------------------------------------------------------------


def _limit_key() -> tuple[nacl.signing.SigningKey, bytes, bytes]:
    key = nacl.signing.SigningKey(bytes(range(32)))
    message = bytes(i % 251 for i in range(MESSAGE_SIZE))
    return key, message, key.sign(message)


def sign_rate(count: int) -> float:
    """Raw Ed25519 signatures per second on this thread."""
    key, message, _ = _limit_key()
    secret = key._signing_key  # the 64-byte libsodium secret key
    sign = nacl.bindings.crypto_sign
    start = time.perf_counter()
    for _ in range(count):
        sign(message, secret)
    return count / (time.perf_counter() - start)


def verify_rate(count: int, threads: int) -> float:
    """Raw Ed25519 verifications per second, ``count`` on each of ``threads`` threads."""
    key, _, signed = _limit_key()
    public = bytes(key.verify_key)
    verify = nacl.bindings.crypto_sign_open
    barrier = threading.Barrier(threads + 1)

    def loop() -> None:
        barrier.wait()
        for _ in range(count):
            verify(signed, public)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return count * threads / (time.perf_counter() - start)


def measure_limits(config: Config, progress: Callable[[str], None]) -> Limits:
    count = 2_000 if config.quick else 20_000
    runs = config.runs
    verify_rate(count // 10, 1)  # warm up: page in libsodium
    sign = repeat(runs, "limits: sign", lambda: sign_rate(count), progress)
    verify1 = repeat(runs, "limits: verify, 1 thread", lambda: verify_rate(count, 1), progress)
    verify2 = repeat(runs, "limits: verify, 2 threads", lambda: verify_rate(count, 2), progress)
    probe = count // 4
    return Limits(
        Limit(LIMIT_ROW_NAMES[0], "sig/s", sign, lambda: sign_rate(probe * 2)),
        Limit(LIMIT_ROW_NAMES[1], "verif/s", verify1, lambda: verify_rate(probe, 1)),
        Limit(LIMIT_ROW_NAMES[2], "verif/s", verify2, lambda: verify_rate(probe, 2)),
    )


# ---- groups -----------------------------------------------------------------------


def discover() -> dict[str, ModuleType]:
    """Every ``benchmarks/*_bench.py`` module, by its ``GROUP`` name."""
    groups: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.endswith("_bench"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        groups[module.GROUP] = module
    return groups


# ---- machine --------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    """What the figures depend on, printed before the table."""
    import importlib.util
    import sqlite3

    compiled = importlib.util.find_spec("_cbor2") or importlib.util.find_spec("cbor2._cbor2")
    cbor_impl = "C extension" if compiled else "pure Python"

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical"
        + (f", {affinity} usable" if affinity is not None else ""),
        "load average": " ".join(f"{x:.2f}" for x in load) if load else "unknown",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "pynacl": nacl.__version__,
        "cbor2": f"{metadata.version('cbor2')} ({cbor_impl})",
        "sqlite": sqlite3.sqlite_version,
        "p2pcrew": metadata.version("p2pcrew"),
        "temp dir": tempfile.gettempdir(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
