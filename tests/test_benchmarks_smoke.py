"""`python -m benchmarks --quick --runs 1` runs and reports every row (no timing checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def expected_row_names() -> list[str]:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import LIMIT_ROW_NAMES, discover

        names = list(LIMIT_ROW_NAMES)
        for module in discover().values():
            names.extend(module.ROW_NAMES)
        return names
    finally:
        sys.path.remove(str(REPO))


@pytest.mark.timeout(180)
def test_quick_benchmark_prints_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--runs",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = completed.stdout
    for heading in ("python", "pynacl", "cbor2", "sqlite", "cores"):
        assert heading in table
    names = expected_row_names()
    assert len(names) >= 7
    for name in names:
        assert name in table, f"row {name!r} missing from:\n{table}"

    rows = {row["name"]: row for row in json.loads(out.read_text(encoding="utf-8"))["rows"]}
    assert set(names) <= set(rows)
    for name in names:
        row = rows[name]
        assert row["value"] > 0, row
        assert row["unit"]
        if row["ratio"] is not None:
            assert row["ratio"] > 0 and row["limit_name"] in rows, row
    # every temporary store was cleaned up
    assert list(scratch.iterdir()) == []
