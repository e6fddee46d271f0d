"""Helpers for functional tests that run p2pcrew as separate processes.

Each ``Peer`` is one data directory (``P2PCREW_HOME``) driven through the real CLI.
``Peer.serve`` starts ``p2pcrew serve`` in a subprocess and parses its address from
stdout; a ``Crew`` owns every process it started and stops them all on exit, so a
failing test never leaves a node running. Stores are only ever read read-only from
the test process, beside the writing node, as ``p2pcrew feeds`` does.

Waits poll a condition against a deadline; nothing sleeps a fixed time to "let
things settle".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from p2pcrew.feed import content as c
from p2pcrew.feed.entry import Entry, create_entry, lipmaa
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.ids import feed_id_to_text, text_to_feed_id
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from p2pcrew.publishing import publish
from p2pcrew.replicate.address import Address, parse_address

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60.0
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.05
_LISTENING = re.compile(r"Listening\. Others can reach you at: (\S+)")


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` until it holds; raise AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_SECONDS)


async def async_wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """``wait_until`` for coroutines; ``cond`` must be quick (a read-only store query)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


def signed_chain(identity: Identity, count: int, prefix: str = "x") -> list[tuple[Entry, bytes]]:
    """A valid chain of ``count`` post entries of ``identity``, built in memory."""
    chain: list[tuple[Entry, bytes]] = []
    for seq in range(1, count + 1):
        payload = c.encode_content(c.Post(text=f"{prefix} {seq}", time=1))
        backlink = chain[-1][0].id if chain else None
        lip = chain[lipmaa(seq) - 1][0].id if seq > 1 else None
        chain.append((create_entry(identity.signing_key, seq, backlink, lip, payload), payload))
    return chain


class ServeProcess:
    """A running ``p2pcrew serve``; its stdout is drained by a thread (never blocks)."""

    def __init__(self, proc: subprocess.Popen[str], stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.address = self._await_address()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def _await_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"serve exited before listening: {self.output()}")
            if match := _LISTENING.search(line):
                return match.group(1)
        raise AssertionError(f"serve did not print its address in time: {self.output()}")

    @property
    def parsed(self) -> Address:
        return parse_address(self.address)

    def output(self) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"stdout={self.lines!r} stderr={err!r}"

    def stop(self) -> None:
        """SIGTERM (a clean stop), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)


class Peer:
    """One data directory, driven through the real ``p2pcrew`` command."""

    def __init__(self, crew: Crew, home: Path) -> None:
        self.crew = crew
        self.home = home
        self._feed: str | None = None

    def __repr__(self) -> str:
        return f"<Peer {self.home.name}>"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "P2PCREW_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        env.pop("P2PCREW_PASSPHRASE", None)
        return env

    def run(
        self, *args: str, ok: bool = True, stdin: str | None = None, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "p2pcrew", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
        if ok:
            assert out.returncode == 0, f"p2pcrew {' '.join(args)}: {out.stderr}{out.stdout}"
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    @property
    def feed(self) -> str:
        """Our feed id as text (``feed_...``)."""
        if self._feed is None:
            self._feed = str(self.json("whoami")["feed"])
        return self._feed

    @property
    def key(self) -> bytes:
        return text_to_feed_id(self.feed)

    def serve(self, *connect: str) -> ServeProcess:
        args = ["serve", "--listen", "127.0.0.1:0"]
        for address in connect:
            args += ["--connect", address]
        return self.crew.start(self, args)

    def posts(self, n: int, prefix: str = "post") -> None:
        """Append ``n`` posts straight to the store (fast; no node may be running here)."""
        home = Home(self.home)
        with contextlib.closing(home.open_store()) as store:
            items: list[c.Content] = [c.Post(text=f"{prefix} {i}", time=1) for i in range(n)]
            publish(store, home.load_identity(), items)

    @contextlib.contextmanager
    def reading(self) -> Iterator[SqliteStore]:
        """The store opened read-only (works beside a running node)."""
        store = SqliteStore(self.home, readonly=True)
        try:
            yield store
        finally:
            store.close()

    def latest(self, feed: bytes | str) -> int:
        """Latest stored seq of ``feed`` here, 0 if none."""
        key = text_to_feed_id(feed) if isinstance(feed, str) else feed
        with self.reading() as store:
            return store.latest_seqs().get(key, 0)

    def latest_seqs(self) -> dict[str, int]:
        with self.reading() as store:
            return {feed_id_to_text(k): v for k, v in store.latest_seqs().items()}

    def stored_seqs(self, feed: bytes | str) -> list[int]:
        """Every stored seq of ``feed``, in order (to spot gaps and duplicates)."""
        key = text_to_feed_id(feed) if isinstance(feed, str) else feed
        with self.reading() as store:
            return [s.entry.seq for s in store.iter_feed(key)]

    def check(self) -> None:
        out = self.run("check", "--json", ok=False)
        assert out.returncode == 0, f"p2pcrew check failed: {out.stdout}{out.stderr}"
        assert json.loads(out.stdout)["problems"] == []

    def log_text(self) -> str:
        path = self.home / "logs" / "p2pcrew.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Crew:
    """Creates peers under one directory and owns every process they start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[ServeProcess] = []

    def __enter__(self) -> Crew:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def peer(self, name: str, *, init: bool = True) -> Peer:
        peer = Peer(self, self.root / name)
        if init:
            peer.run("init")
        return peer

    def start(self, peer: Peer, args: list[str]) -> ServeProcess:
        stderr_path = self.root / f"{peer.home.name}-serve-{len(self.processes)}.err"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "p2pcrew", *args],
                cwd=ROOT,
                env=peer.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        try:
            served = ServeProcess(proc, stderr_path)
        except BaseException:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
            raise
        self.processes.append(served)
        return served

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for served in reversed(self.processes):
            try:
                served.stop()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        self.processes.clear()
        if errors:
            raise errors[0]
