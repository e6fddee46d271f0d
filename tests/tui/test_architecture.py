"""The core never imports textual: only the app's screens and widgets do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CORE = [
    "p2pcrew.replicate",
    "p2pcrew.replicate.node",
    "p2pcrew.queries",
    "p2pcrew.publishing",
    "p2pcrew.crew.service",
    "p2pcrew.control",
    "p2pcrew.cli",
    # the app's own plain layers: the node interface and the view models
    "p2pcrew.tui.facade",
    "p2pcrew.tui.viewmodels",
    "p2pcrew.tui.readmodel",
    "p2pcrew.tui.network",
]


def imported_textual(modules: list[str]) -> bool:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('textual' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


def test_core_leaves_textual_out() -> None:
    assert not imported_textual(CORE)


def test_the_check_can_fail() -> None:
    assert imported_textual(["p2pcrew.tui.app"])
