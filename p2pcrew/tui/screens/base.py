"""What every screen shares: the facade, loading data in a worker, reporting errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from textual.app import App
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import get_current_worker

from p2pcrew.errors import P2PCrewError
from p2pcrew.tui.facade import Facade
from p2pcrew.tui.widgets.form import FormError
from p2pcrew.tui.widgets.sync_bar import SyncBar

log = logging.getLogger(__name__)
T = TypeVar("T")


def facade_of(node: DOMNode) -> Facade:
    """The app's facade (every p2pcrew app has one)."""
    return cast(Facade, cast(Any, node.app).facade)


def report(app: App[Any], exc: BaseException) -> None:
    """Show an error as a notification: the message for ours, a pointer to the log else."""
    if isinstance(exc, P2PCrewError):
        app.notify(str(exc), title="Could not do that", severity="error")
        return
    log.error("unexpected error in the app", exc_info=exc)
    app.notify(
        f"{type(exc).__name__}: {exc}. This is a bug; details are in the log (p2pcrew locate).",
        title="Internal error",
        severity="error",
    )


def attempt(node: DOMNode, action: Callable[[], T]) -> T | None:
    """Run a command; on failure notify and return None."""
    try:
        return action()
    except Exception as exc:  # shown to the person, never a traceback
        report(node.app, exc)
        return None


class LiveScreen(Screen[Any]):
    """A screen showing store data; ``reload`` fetches it again (in a worker thread)."""

    @property
    def facade(self) -> Facade:
        return facade_of(self)

    def reload(self) -> None:
        """Fetch what the screen shows; override."""

    def on_screen_resume(self) -> None:
        status = self.facade.sync_status()
        for bar in self.query(SyncBar):
            bar.status = status
        self.reload()

    def load(self, fetch: Callable[[], T], apply: Callable[[T], None], group: str = "data") -> None:
        """``fetch`` in a thread, then ``apply`` on the loop. A newer load of the same
        ``group`` supersedes one still running (its result is dropped)."""
        app = self.app  # resolved here: worker threads should not look it up
        self.run_worker(
            lambda: self._fetch(app, fetch, apply),
            thread=True,
            exclusive=True,
            group=f"{group}-{id(self)}",
            exit_on_error=False,
        )

    def _fetch(self, app: App[Any], fetch: Callable[[], T], apply: Callable[[T], None]) -> None:
        worker = get_current_worker()
        try:
            result = fetch()
        except Exception as exc:
            if app.is_running:  # else the store closed under us at exit: nothing to say
                with contextlib.suppress(RuntimeError):
                    app.call_from_thread(report, app, exc)
            return
        if not worker.is_cancelled:
            with contextlib.suppress(RuntimeError):  # the app is closing
                app.call_from_thread(self._apply_if_mounted, apply, result)

    def _apply_if_mounted(self, apply: Callable[[T], None], result: T) -> None:
        if self.is_attached:
            apply(result)


class ComposeScreen(Screen[bytes | None]):
    """What the compose screens share: where it goes, the keys, and how a publish ends.

    Dismisses with the new entry's id, or None when cancelled.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "publish", "Publish", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, crew: bytes | None, crew_name: str) -> None:
        super().__init__()
        self.crew = crew
        self.crew_name = crew_name

    def submit(
        self,
        publish: Callable[[], bytes],
        done: str,
        inline: tuple[type[Exception], ...] = (P2PCrewError,),
    ) -> None:
        """Publish; problems a person can fix show inline, anything else as a report."""
        try:
            entry = publish()
        except inline as exc:
            self.query_one(FormError).show(str(exc))
            return
        except Exception as exc:
            report(self.app, exc)
            return
        self.app.notify(done)
        self.dismiss(entry)

    def action_cancel(self) -> None:
        self.dismiss(None)
