"""Throwaway LANs made of Linux network namespaces, for tests of real multicast.

``Lan`` builds, entirely inside namespaces it creates (the host's own interfaces,
routes and firewall are never touched)::

    ns <prefix>-sw:  br0 (a Linux bridge)  -- p0 -- p1 -- ...   (veth ends)
    ns <prefix>-h0:  eth0 10.231.<net>.1/24  (the other end of p0)
    ns <prefix>-h1:  eth0 10.231.<net>.2/24  ...

Each host namespace has ``lo`` and ``eth0`` up, multicast enabled, and a route for
224.0.0.0/4 on ``eth0``. Multicast snooping is off on the bridge so mDNS is simply
flooded, as on a small switch. With ``isolated=True`` every member port is a
bridge "isolated" port: like venue Wi-Fi with client isolation, hosts cannot reach
each other at all (neither unicast nor multicast).

Namespaces need root and iproute2; ``netns_unavailable`` says why they cannot be
made here. ``Lan.close`` (also on context exit) deletes every namespace it made,
which removes the bridge and all veth pairs with them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

PREFIX = "p2pct"
IP_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """An ``ip`` command failed while building or tearing down a test LAN."""


def ip(*args: str) -> str:
    """Run ``ip ARGS`` and return its stdout. Raises NetnsError with its stderr."""
    return _run(["ip", *args])


def _run(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def netns_unavailable() -> str | None:
    """None when namespaces can be created here, else the reason they cannot."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the functional LAN tests as root)"
    if shutil.which("ip") is None or shutil.which("bridge") is None:
        return "iproute2 (`ip`, `bridge`) is not installed"
    probe = f"{PREFIX}-probe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "add", "br0", "type", "bridge")
    except NetnsError as exc:
        return f"cannot create a network namespace with a bridge: {exc}"
    finally:
        with contextlib.suppress(NetnsError):
            ip("netns", "del", probe)
    return None


@dataclass(frozen=True, slots=True)
class Host:
    """One machine on the test LAN: its namespace and its address."""

    ns: str
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]


class Lan:
    """``hosts`` namespaces on one bridge; see the module docstring."""

    def __init__(self, hosts: int, *, isolated: bool = False, net: int = 0) -> None:
        if not 1 <= hosts <= 200 or not 0 <= net <= 255:
            raise ValueError("1..200 hosts on 10.231.NET.0/24")
        self.tag = f"{PREFIX}-{secrets.token_hex(3)}"
        self.switch = f"{self.tag}-sw"
        self.isolated = isolated
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        try:
            self._build(hosts, net)
        except BaseException:
            self.close()
            raise

    def _build(self, count: int, net: int) -> None:
        self._add_ns(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for i in range(count):
            self.hosts.append(self._add_host(i, f"10.231.{net}.{i + 1}"))

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _add_host(self, i: int, address: str) -> Host:
        ns = f"{self.tag}-h{i}"
        self._add_ns(ns)
        port = f"p{i}"
        ip(
            "-n",
            self.switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        ip("-n", self.switch, "link", "set", port, "master", "br0")
        if self.isolated:
            _run(["bridge", "-n", self.switch, "link", "set", "dev", port, "isolated", "on"])
        ip("-n", self.switch, "link", "set", port, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "multicast", "on", "up")
        ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        return Host(ns, address)

    def unplug(self, host: Host) -> None:
        """Take ``host``'s address away, as when a laptop leaves the Wi-Fi."""
        ip("-n", host.ns, "addr", "flush", "dev", "eth0")

    def plug(self, host: Host) -> None:
        """Give ``host`` its address back, as when a laptop (re)joins the Wi-Fi."""
        ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.ns, "route", "replace", "224.0.0.0/4", "dev", "eth0")

    def close(self) -> None:
        """Delete every namespace made here (idempotent; reports the first failure)."""
        failure: NetnsError | None = None
        while self._namespaces:
            name = self._namespaces.pop()
            try:
                ip("netns", "del", name)
            except NetnsError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> Lan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def namespaces() -> list[str]:
    """Names of the namespaces that exist now (to check that none leaked)."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
