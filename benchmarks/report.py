"""Printing the table and writing the optional JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks import Config, Row, fmt

HEADINGS = ("benchmark", "value", "unit", "ratio", "ratio to", "note")


def format_machine(info: dict[str, str]) -> str:
    width = max(len(key) for key in info)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in info.items())


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table; the note column is last and never cut."""
    cells = [
        (
            row.name,
            fmt(row.value),
            row.unit,
            "" if row.ratio is None else f"{row.ratio:.2f}",
            row.limit_name or "",
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADINGS[:-1])]
    right = {1, 3}  # numbers

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in right else v.ljust(widths[i])
            for i, v in enumerate(values[:-1])
        ]
        return "  ".join([*parts, values[-1]]).rstrip()

    rule = "  ".join("-" * w for w in widths) + "  " + "-" * len(HEADINGS[-1])
    return "\n".join([line(HEADINGS), rule, *(line(c) for c in cells)])


def write_json(path: Path, machine: dict[str, str], config: Config, rows: Sequence[Row]) -> None:
    document = {
        "machine": machine,
        "config": {
            "quick": config.quick,
            "runs": config.runs,
            "cache_dir": None if config.cache_dir is None else str(config.cache_dir),
        },
        "rows": [asdict(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def write_markdown(
    path: Path, machine: dict[str, str], config: Config, rows: Sequence[Row], command: str
) -> None:
    """docs/performance.md: every figure, its ratio to the limit measured in the same run."""
    lines = [
        "# Performance",
        "",
        "Written by `" + command + "`. Every figure is the median of "
        f"{config.runs} run(s) on the machine below, with its ratio to the physical limit "
        "(raw PyNaCl Ed25519 signing or verification, or raw secretbox) re-measured just "
        "before each run, because these machines are shared and noisy: compare ratios, "
        "not absolute numbers. Seeds: simulations use 2026; generated keys are random.",
        "",
        "## Machine and libraries",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
        "",
        "## Figures",
        "",
        "| benchmark | value | unit | ratio | ratio to | note |",
        "|---|---:|---|---:|---|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        note = row.note.replace("|", "/")
        lines.append(
            f"| {row.name} | {fmt(row.value)} | {row.unit} | {ratio} | {row.limit_name or ''} "
            f"| {note} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
