"""Venue Wi-Fi with client isolation and a wired uplink, made of network namespaces.

``VenueLan`` is ``netns.Lan`` with every laptop port *isolated* plus one more host,
the pub, on a port that is not::

    ns <tag>-sw:   br0 -- p0 (isolated) -- p1 (isolated) -- ... -- uplink (not isolated)
    ns <tag>-h0:   eth0 10.231.<net>.1/24     a laptop
    ns <tag>-h1:   eth0 10.231.<net>.2/24     a laptop ...
    ns <tag>-pub:  eth0 10.231.<net>.100/24   the pub

A bridge forwards nothing between two isolated ports (neither unicast nor multicast),
but an isolated port still talks to a non-isolated one: laptops cannot see each other,
and every laptop reaches the pub. ``close`` deletes every namespace, the pub's too.

``tcp_reachable`` probes, from inside a namespace, whether a TCP connection to an
address opens: the test checks the premise (isolation holds, the uplink works) rather
than assuming it.
"""

from __future__ import annotations

import subprocess
import sys

from tests.functional.netns import Host, Lan, NetnsError, ip

PUB_OCTET = 100
UPLINK_PORT = "uplink"
PROBE_TIMEOUT = 1.5
_PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(f"closed: {exc!r}")
else:
    print("open")
"""


class VenueLan(Lan):
    """``laptops`` isolated hosts and a non-isolated pub host on one bridge."""

    def __init__(self, laptops: int, *, net: int = 0) -> None:
        if not 1 <= laptops < PUB_OCTET - 1:
            raise ValueError(f"1..{PUB_OCTET - 2} laptops")
        super().__init__(laptops, isolated=True, net=net)
        try:
            self.pub = self._add_uplink_host(f"10.231.{net}.{PUB_OCTET}")
        except BaseException:
            self.close()
            raise

    def _add_uplink_host(self, address: str) -> Host:
        ns = f"{self.tag}-pub"
        self._add_ns(ns)
        ip(
            "-n",
            self.switch,
            "link",
            "add",
            UPLINK_PORT,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        ip("-n", self.switch, "link", "set", UPLINK_PORT, "master", "br0")
        ip("-n", self.switch, "link", "set", UPLINK_PORT, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "multicast", "on", "up")
        ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        return Host(ns, address)

    def port_isolated(self, port: str) -> bool:
        """Whether the bridge reports ``port`` as isolated (``bridge -d link show``)."""
        done = subprocess.run(
            ["bridge", "-n", self.switch, "-d", "link", "show", "dev", port],
            capture_output=True,
            text=True,
            timeout=10.0,
            check=False,
        )
        if done.returncode != 0:
            raise NetnsError(f"bridge link show {port}: {done.stderr.strip()}")
        return "isolated on" in done.stdout


def tcp_reachable(source: Host, address: str, port: int) -> tuple[bool, str]:
    """Whether a TCP connection from ``source``'s namespace to ``address:port`` opens."""
    argv = [sys.executable, "-c", _PROBE, address, str(port), str(PROBE_TIMEOUT)]
    done = subprocess.run(
        source.command(argv),
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT + 10.0,
        check=False,
    )
    said = (done.stdout + done.stderr).strip()
    return done.returncode == 0 and said == "open", said
