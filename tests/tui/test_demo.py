"""``p2pcrew demo``: three real peers on loopback; the app sees the crew arrive and act."""

from __future__ import annotations

from pathlib import Path

from p2pcrew.cli.demo_cmd import CREW_NAME, DemoCrew
from p2pcrew.tui.app import CrewApp
from p2pcrew.tui.facade import Facade, NetworkOptions
from p2pcrew.tui.widgets.thread_list import ThreadList
from tests.tui.conftest import settle
from tests.tui.screen_text import screen_text
from tests.tui.test_live import wait_until


async def test_demo_crew_replicates_and_answers(tmp_path: Path) -> None:
    crew = DemoCrew(tmp_path, interval=0.2)
    crew.start()
    try:
        network = NetworkOptions(host="127.0.0.1", port=0, lan=False, connect=crew.addresses)
        app = CrewApp(Facade.open(crew.ana_home, network=network))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: f"Threads · {CREW_NAME}" in screen_text(app))
            await wait_until(pilot, lambda: "2 peers connected" in screen_text(app))
            app.facade.post("Hello from the app", app.screen.crew)  # type: ignore[attr-defined]

            def answered() -> bool:
                rows = app.screen.query_one(ThreadList).rows
                mine = [r for r in rows if r.title == "Hello from the app"]
                return bool(mine) and not mine[0].meta.startswith("you · 0 replies")

            await wait_until(pilot, answered, timeout=30)
            await settle(pilot)
    finally:
        crew.stop()
    assert not crew._thread.is_alive()
