"""Five laptops and a pub on one switch, with partitions and port isolation on demand.

``ChaosLan`` is ``pub_netns.VenueLan`` with every port *open* to begin with::

    ns <tag>-sw:   br0 -- p0 -- p1 -- p2 -- p3 -- p4 -- uplink   (br1, br2 ... when split)
    ns <tag>-h0 .. <tag>-h4:  eth0 10.231.<net>.1-5/24    the laptops
    ns <tag>-pub:             eth0 10.231.<net>.100/24    the pub

Everything happens inside the switch namespace; the host's own interfaces, routes and
firewall are never touched.

- ``partition(groups)``: every host goes into exactly one group and each group gets a
  bridge of its own in the switch namespace (the first group keeps ``br0``; the ports
  of the others are moved to ``br1``, ``br2`` ...). Nothing connects two bridges, so
  hosts in different groups cannot exchange a single packet, neither unicast nor
  multicast (mDNS). The hosts' own links stay up and established TCP connections are
  not reset: their packets are simply lost, as when a Wi-Fi access point goes away.
  (Bridge VLAN filtering would do the same on one bridge, but this kernel refuses
  ``vlan_filtering``, and there is no nftables here.)
- ``isolate_ports(hosts)``: those ports become bridge *isolated* ports (client
  isolation, as on venue Wi-Fi): they cannot talk to each other, but still reach every
  port that is not isolated, the pub's uplink in particular.
- ``heal()`` puts every port back on ``br0`` and clears isolation.

``probe_matrix`` checks the premise with real TCP connections (``tcp_reachable``)
from inside the namespaces, so a test proves a partition holds before relying on it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.functional.netns import Host, NetnsError, ip
from tests.functional.pub_netns import UPLINK_PORT, VenueLan, tcp_reachable

MAIN_BRIDGE = "br0"
LAPTOPS = 5


def bridge(*args: str) -> str:
    """Run ``bridge ARGS`` and return its stdout. Raises NetnsError with its stderr."""
    done = subprocess.run(
        ["bridge", *args], capture_output=True, text=True, timeout=10.0, check=False
    )
    if done.returncode != 0:
        raise NetnsError(f"bridge {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class Probe:
    """One TCP probe: from ``source`` to ``target``'s address, and what happened."""

    source: Host
    target: Host
    reached: bool
    said: str


class ChaosLan(VenueLan):
    """``laptops`` laptops and a pub, all ports open on one bridge; see above."""

    def __init__(self, laptops: int = LAPTOPS, *, net: int = 0) -> None:
        super().__init__(laptops, net=net)
        try:
            self.ports: dict[Host, str] = {h: f"p{i}" for i, h in enumerate(self.hosts)}
            self.ports[self.pub] = UPLINK_PORT
            for i in range(laptops):
                self._switch_bridge("link", "set", "dev", f"p{i}", "isolated", "off")
            self.isolated = False
            self.bridges: dict[Host, str] = dict.fromkeys(self.ports, MAIN_BRIDGE)
            self._made_bridges = {MAIN_BRIDGE}
            self.isolating: set[Host] = set()
        except BaseException:
            self.close()
            raise

    @property
    def everyone(self) -> list[Host]:
        """The laptops, then the pub."""
        return [*self.hosts, self.pub]

    def _in(self, *args: str) -> None:
        ip("-n", self.switch, *args)

    def _switch_bridge(self, *args: str) -> str:
        return bridge("-n", self.switch, *args)

    def _set_bridge(self, host: Host, name: str) -> None:
        if self.bridges[host] == name:
            return
        if name not in self._made_bridges:
            self._in("link", "add", name, "type", "bridge", "mcast_snooping", "0")
            self._in("link", "set", name, "up")
            self._made_bridges.add(name)
        self._in("link", "set", self.ports[host], "master", name)
        self.bridges[host] = name
        if host in self.isolating:  # a port's bridge flags do not survive the move
            self._switch_bridge("link", "set", "dev", self.ports[host], "isolated", "on")

    def partition(self, groups: Sequence[Collection[Host]]) -> None:
        """Split the LAN: hosts in different groups exchange no packet at all."""
        placed = [h for g in groups for h in g]
        if sorted(placed, key=self.everyone.index) != self.everyone or any(not g for g in groups):
            raise ValueError("every host must be in exactly one non-empty group")
        for g, group in enumerate(groups):
            for host in group:
                self._set_bridge(host, f"br{g}")

    def isolate_ports(self, hosts: Iterable[Host]) -> None:
        """Client isolation for ``hosts``: no traffic among them; the others still reach them."""
        for host in hosts:
            if host is self.pub:
                raise ValueError("the pub's uplink stays open")
            self._switch_bridge("link", "set", "dev", self.ports[host], "isolated", "on")
            self.isolating.add(host)

    def heal(self) -> None:
        """One flat LAN again: every port on ``br0``, no isolated port."""
        for host in self.everyone:
            self._set_bridge(host, MAIN_BRIDGE)
        for host in sorted(self.isolating, key=self.everyone.index):
            self._switch_bridge("link", "set", "dev", self.ports[host], "isolated", "off")
        self.isolating.clear()

    def layout(self) -> str:
        """``bridge -d link show`` in the switch (for failure messages)."""
        return self._switch_bridge("-d", "link", "show")

    def probe_matrix(self, pairs: Iterable[tuple[Host, Host]], port: int) -> list[Probe]:
        """TCP-connect from each source to each target's ``address:port``, side by side."""
        todo = list(pairs)
        if not todo:
            return []
        with ThreadPoolExecutor(min(len(todo), 16)) as pool:
            said = list(pool.map(lambda p: tcp_reachable(p[0], p[1].address, port), todo))
        return [Probe(a, b, r, s) for (a, b), (r, s) in zip(todo, said, strict=True)]

    def expect(
        self, reach: Iterable[tuple[Host, Host]], cut: Iterable[tuple[Host, Host]], port: int
    ) -> None:
        """The premise, checked: every ``reach`` pair connects and no ``cut`` pair does."""
        reach, cut = list(reach), list(cut)
        probes = self.probe_matrix([*reach, *cut], port)
        wrong = [p for p in probes[: len(reach)] if not p.reached]
        wrong += [p for p in probes[len(reach) :] if p.reached]
        if wrong:
            lines = [f"{self.name(p.source)}->{self.name(p.target)}: {p.said}" for p in wrong]
            raise AssertionError(
                "the network is not what the scenario needs: "
                + "; ".join(lines)
                + "\n"
                + self.layout()
            )

    def name(self, host: Host) -> str:
        return "pub" if host is self.pub else f"h{self.hosts.index(host)}"


def split_pairs(groups: Sequence[Collection[Host]]) -> tuple[list[tuple[Host, Host]], ...]:
    """(pairs within a group, pairs across groups), each unordered pair once."""
    where = {h: g for g, group in enumerate(groups) for h in group}
    hosts = list(where)
    within: list[tuple[Host, Host]] = []
    across: list[tuple[Host, Host]] = []
    for i, a in enumerate(hosts):
        for b in hosts[i + 1 :]:
            (within if where[a] == where[b] else across).append((a, b))
    return within, across
