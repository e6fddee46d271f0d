"""The pub as Sam runs it and members use it: real processes, real sockets, loopback only.

One pub process serves the module (``p2pcrew pub serve --listen 127.0.0.1:0 --http
127.0.0.1:0``); members are separate data directories driven through the real CLI.
Nothing sleeps to "let things settle" except where an invite has to expire.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_TCP = re.compile(r"Listening \(tcp\): (\S+)")
_WS = re.compile(r"Listening \(ws\): (\S+)")
_HTTP = re.compile(r"Status page: (\S+)")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "P2PCREW_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("P2PCREW_PASSPHRASE", None)
    return {k: v for k, v in env.items() if not k.startswith("P2PCREW_PUB_")}


class Member:
    def __init__(self, home: Path) -> None:
        self.home = home

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "p2pcrew", *args],
            cwd=ROOT,
            env=_env(self.home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert out.returncode == 0, f"p2pcrew {' '.join(args)}: {out.stderr}{out.stdout}"
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must fail the way the CLI promises: exit 1, one line."""
        out = self.run(*args, ok=False)
        assert out.returncode == 1, f"exit {out.returncode}: {out.stderr}"
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        return lines[0]

    @property
    def feed(self) -> str:
        return str(self.json("whoami")["feed"])

    def latest(self, feed: str) -> int:
        rows = self.json("feeds")
        return next((int(r["latest_seq"]) for r in rows if r["feed"] == feed), 0)


class PubProcess:
    """``p2pcrew pub serve`` in a subprocess; stdout drained by a thread."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "p2pcrew",
                "pub",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ],
            cwd=ROOT,
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.tcp, self.ws, self.http = self._await_ready()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def _await_ready(self) -> tuple[str, str, str]:
        found: dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while len(found) < 3 and (left := deadline - time.monotonic()) > 0:
            line = self._queue.get(timeout=left)
            if line is None:
                raise AssertionError(f"pub exited: {self.lines} {self.stderr()}")
            for name, pattern in (("tcp", _TCP), ("ws", _WS), ("http", _HTTP)):
                if match := pattern.search(line):
                    found[name] = match.group(1)
        return found["tcp"], found["ws"], found["http"]

    def stderr(self) -> str:
        return (
            "" if self.proc.poll() is None or self.proc.stderr is None else self.proc.stderr.read()
        )

    def get(self, path: str) -> tuple[int, str, str]:
        try:
            with urllib.request.urlopen(self.http + path.lstrip("/"), timeout=10) as response:
                body = response.read().decode()
                return response.status, response.headers.get("Content-Type", ""), body
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        return self.proc.returncode

    def invite(self, *args: str) -> str:
        return str(Member(self.home).json("pub", "invite", "--no-qr", *args)["code"])


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubProcess]:
    process = PubProcess(tmp_path_factory.mktemp("pub") / "home")
    try:
        yield process
    finally:
        assert process.stop() == 0, process.stderr()


def member(tmp_path: Path, name: str) -> Member:
    m = Member(tmp_path / name)
    m.run("init", "--name", name)
    return m


def test_store_and_forward_through_the_pub(pub: PubProcess, tmp_path: Path) -> None:
    code = pub.invite("--uses", "2")
    ana, bo = member(tmp_path, "ana"), member(tmp_path, "bo")
    # Ana joins over TCP, posts, syncs to the pub and goes away.
    assert "Joined" in ana.run("join", "--via", "tcp", code).stdout
    for text in ("drill needed", "soup on saturday", "see you"):
        ana.run("post", text)
    ana.run("sync", pub.tcp)
    # Bo follows Ana (they never meet) and joins over WebSocket: Ana's posts arrive.
    bo.run("follow", ana.feed)
    joined = bo.json("join", "--via", "ws", code)
    assert joined["address"].startswith("ws://")
    assert bo.latest(ana.feed) == 4  # about + 3 posts, from the pub while Ana is offline
    assert "(pub)" in bo.run("peers").stdout
    # A member syncing again later with the plain `sync` command is served too.
    ana.run("post", "one more")
    ana.run("sync", pub.tcp)
    bo.run("sync", pub.tcp)
    assert bo.latest(ana.feed) == 5
    # The invite had two uses: a third person gets the refusal, one line, exit 1.
    cy = member(tmp_path, "cy")
    assert "invite not valid" in cy.fails("join", code)
    status, kind, metrics = pub.get("/metrics")
    assert status == 200 and kind.startswith("text/plain")
    for name in (
        "p2pcrew_pub_members 2",
        "p2pcrew_pub_peers_connected",
        'p2pcrew_pub_handshakes_total{transport="ws",outcome="ok"}',
        "p2pcrew_pub_entries_accepted_total",
        "p2pcrew_pub_entries_rejected_total",
        'p2pcrew_pub_invite_redemptions_total{outcome="used_up"} 1',
        'p2pcrew_pub_bytes_received_total{transport="tcp"}',
        "p2pcrew_pub_event_loop_lag_seconds",
    ):
        assert name in metrics, name
    for secret in ("feed_", ana.feed[5:], bo.feed[5:], "127.0.0.1"):
        assert secret not in metrics


def test_status_health_and_ws_endpoint(pub: PubProcess) -> None:
    status, kind, body = pub.get("/healthz")
    assert (status, body) == (200, "ok\n")
    status, kind, body = pub.get("/")
    assert status == 200 and kind.startswith("text/html")
    for label in ("Up for", "Members", "Peers connected", "Entries stored", "Disk used"):
        assert label in body
    assert "feed_" not in body
    status, _, _ = pub.get("/ws")  # plain HTTP, no upgrade
    assert status == 400


def test_expired_invite_says_when(pub: PubProcess, tmp_path: Path) -> None:
    code = pub.invite("--expires", "1s")
    time.sleep(1.1)
    line = member(tmp_path, "late").fails("join", code)
    assert re.fullmatch(
        r"error: this invite expired on \d{4}-\d\d-\d\d \d\d:\d\d UTC; ask for a new one", line
    ), line


def test_malformed_and_unreachable(pub: PubProcess, tmp_path: Path) -> None:
    someone = member(tmp_path, "someone")
    line = someone.fails("join", "p2pcrew-invite:not-base32!")
    assert line.startswith("error: this is not a p2pcrew invite code:"), line
    cut = pub.invite()[:60]
    assert "this is not a p2pcrew invite code" in someone.fails("join", cut)
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    code = pub.invite("--url", f"tcp://127.0.0.1:{dead}")
    line = someone.fails("join", code)
    assert f"could not reach the pub at tcp://127.0.0.1:{dead}" in line, line


def test_graceful_shutdown_with_a_live_member(tmp_path: Path) -> None:
    running = PubProcess(tmp_path / "pub2")
    try:
        ana = member(tmp_path, "ana")
        ana.run("join", running.invite())
        live = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "p2pcrew",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--connect",
                running.tcp,
            ],
            cwd=ROOT,
            env=_env(ana.home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while "p2pcrew_pub_peers_connected 1" not in running.get("/metrics")[2]:
                assert time.monotonic() < deadline, "member never connected"
                time.sleep(0.05)
            with socket.create_connection(
                ("127.0.0.1", int(running.tcp.split(":")[2].split("#")[0]))
            ):
                started = time.monotonic()  # a handshake left hanging must not delay the stop
                assert running.stop() == 0, running.stderr()
                assert time.monotonic() - started < 5.0
        finally:
            live.terminate()
            live.wait(STOP_TIMEOUT)
        assert running.lines[-2:] == ["Stopping.", "Stopped."]
        assert not (running.home / "pub-runtime.json").exists()
    finally:
        running.stop()
