"""``python -m benchmarks [--quick] [--runs N] [--only GROUP] [--json FILE]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import (
    DEFAULT_CACHE_DIR,
    Config,
    Context,
    Row,
    discover,
    machine_info,
    measure_limits,
)
from benchmarks.report import format_machine, format_table, write_json, write_markdown


def parse_args(argv: list[str] | None, groups: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure p2pcrew against the physical limits of this machine.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: seconds, not minutes (for CI)"
    )
    parser.add_argument(
        "--runs", type=int, default=5, metavar="N", help="runs per figure; the median is shown"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=groups,
        metavar="GROUP",
        help=f"run only this group (repeatable; one of: {', '.join(groups)}); "
        "the limits are always measured",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="write the report as Markdown (a full run of every group writes "
        "docs/performance.md unless --no-docs)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/performance.md")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        metavar="DIR",
        help=f"keep large built stores here between runs (default {DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="build large stores in a temp dir every time"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table, profile one ingest (single verify thread) and print "
        "where the time goes per entry",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    groups = discover()
    args = parse_args(argv, sorted(groups))
    config = Config(
        quick=args.quick,
        runs=args.runs,
        cache_dir=None if args.no_cache else args.cache_dir,
    )
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    if args.profile:
        from benchmarks import feed_bench

        print(feed_bench.profile_ingest(config, progress))
        return 0

    machine = machine_info()
    print(format_machine(machine), flush=True)
    print(flush=True)
    limits = measure_limits(config, progress)
    context = Context(config, limits, progress)
    rows: list[Row] = limits.rows()
    for name in args.only or sorted(groups):
        rows.extend(groups[name].run(context))
    print(format_table(rows))
    print(
        f"\n{'quick' if config.quick else 'full'} configuration, {config.runs} run(s) per "
        f"figure, {time.perf_counter() - started:.0f} s in all"
    )
    if args.json is not None:
        write_json(args.json, machine, config, rows)
    markdown = args.markdown
    if markdown is None and not (args.quick or args.only or args.no_docs):
        markdown = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
    if markdown is not None:
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        write_markdown(markdown, machine, config, rows, command.strip())
        print(f"wrote {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
