"""Regenerate docs/screenshot-main.svg: the main screen over the fixture store.

Run from the repository root: ``.venv/bin/python -m tests.tui.screenshot``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from p2pcrew.home import Home
from tests.tui import fixture as fx
from tests.tui.conftest import make_app, settle

TARGET = Path(__file__).resolve().parents[2] / "docs" / "screenshot-main.svg"


async def main(size: tuple[int, int] = (100, 30)) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(fx.build(Home(Path(tmp) / "ana")).home)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            app.save_screenshot(TARGET.name, str(TARGET.parent))


if __name__ == "__main__":
    asyncio.run(main())
