"""The multi-host chaos runner: five laptops and a pub, partitions, a SIGKILL, clock skew.

Every node is a real ``p2pcrew`` process in its own network namespace with its own data
directory, on the switch of ``chaos_net.ChaosLan``:

- the pub runs ``p2pcrew pub serve``; the laptops ``join`` it with one invite, one after
  another, then run ``p2pcrew serve`` with LAN discovery on (mDNS), the pub being their
  one known peer;
- every laptop follows every other, and all five are members of one crew (founded
  before the run by the first laptop, as ``crew create`` + ``crew invite`` would);
- one laptop runs with its wall clock two hours ahead and another three days behind:
  libfaketime is preloaded into their processes (``FAKETIME=+2h`` / ``-3d``), so Python
  and SQLite alike see the skewed clock; monotonic clocks are left alone;
- the workload: in every step each laptop posts through its running node with the CLI
  (``p2pcrew post``, which goes through the node's control socket), publicly and in
  the crew.

The scenarios run in an order drawn from the seed: partition and heal (``partitions``
times, the split drawn from the seed; the run proves each partition holds with TCP
probes and by a post that must not cross it, and after each heal waits, bounded, until
every node agrees again); every laptop port isolated so that the LAN converges through
the pub only; a laptop SIGKILLed while a big batch is being synced to it, checked at
rest, restarted; a member removed from the crew mid-run.

The oracle, checked at the end:

1. within ``converge_within`` seconds of the last heal (or of the SIGKILLed node's
   restart, if that came later) every node holds the same head of every feed (the pub:
   of every feed it holds, which must be every laptop's) and the same digest: SHA-256
   over the sorted entry ids, per feed and overall; every feed is stored as exactly
   seqs 1..n (no gap, no duplicate); no node logged refusing an invalid entry;
2. ``p2pcrew check`` passes on every store (and passed on the SIGKILLed store at rest):
   no invalid entry was ever stored;
3. the removed member holds every crew post written after the removal took effect (as
   ciphertext) yet opened none of them, and none of their texts occurs anywhere in its
   database files; the remaining members opened all of them;
4. the SIGKILLed node was killed with part of the batch stored, passed ``check``, and
   converged without duplicates;
5. the skew is real: the skewed laptops' posts claim times 2 h ahead / 3 d behind the
   pub's clock.

``python -m tests.functional.chaos [--long] [--seed N] [--hold S] [--keep]`` runs it and
prints a summary;
``tests/functional/test_chaos.py`` runs the small configuration. Needs root and iproute2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from p2pcrew import publishing
from p2pcrew.crew import service
from p2pcrew.crew.directory import crew_states
from p2pcrew.crew.keyring import Keyring
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.ids import text_to_entry_id
from p2pcrew.feed.sqlite_store import DB_NAME
from p2pcrew.home import Home
from p2pcrew.replicate.discovery import NOBODY_MESSAGE
from tests.functional.chaos_net import ChaosLan, split_pairs
from tests.functional.chaos_parts import (
    _FOUND,
    AHEAD,
    BEHIND,
    CLI_TIMEOUT,
    CREW,
    KILL_POLL,
    LONG,
    NAMES,
    PORT,
    PUB_HTTP_PORT,
    ROOT,
    SKEW_MS,
    SKEW_TOLERANCE_MS,
    SMALL,
    STEP_WITHIN,
    Config,
    Node,
    Report,
    Written,
    cli_env,
    each,
    host_argv,
    p2pcrew_argv,
    snapshot,
    wait_until,
)
from tests.functional.netns import namespaces, netns_unavailable


class Run:
    """One chaos run; owns the LAN and every process; ``close`` tears everything down."""

    def __init__(self, config: Config, seed: int, workdir: Path) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.report = Report(config, seed, workdir=str(workdir))
        self.lan = ChaosLan(len(NAMES))
        self.laptops: list[Node] = []
        self.pub = Node("pub", self.lan.pub, workdir / "pub")
        self.written: list[Written] = []
        self.removed: Node | None = None
        self.removal_epoch: int | None = None
        self.removal_index = 0
        """Everything ``written`` from here on was written after the removal took effect."""
        self.last_heal = time.monotonic()
        self.kill_check_ok = False
        self._lock = threading.Lock()
        self.roles: dict[str, str] = {}
        """Role (ahead, behind, victim, removed, bulk) to laptop name, drawn from the seed."""

    # ---- set-up ---------------------------------------------------------------------

    def setup(self) -> None:
        cast = list(NAMES)
        self.rng.shuffle(cast)
        ahead, behind, victim, removed, bulk = cast
        self.roles = {
            "ahead": ahead,
            "behind": behind,
            "victim": victim,
            "removed": removed,
            "bulk": bulk,
        }
        self.report.roles = {
            **self.roles,
            "ahead": f"{ahead} ({AHEAD})",
            "behind": f"{behind} ({BEHIND})",
        }
        skews = {ahead: AHEAD, behind: BEHIND}
        for name, host in zip(NAMES, self.lan.hosts, strict=True):
            self.laptops.append(Node(name, host, self.workdir / name, skews.get(name)))
        self.report.note(
            "start", f"{len(self.laptops)} laptops + pub in namespaces {self.lan.tag}-*"
        )
        # Not under test: identities, follows and the crew, written before any node runs.
        identities = {}
        for laptop in self.laptops:
            home = Home(laptop.home)
            home.ensure()
            identities[laptop.name] = Identity.generate()
            save_identity(identities[laptop.name], home.identity_path, None)
            laptop.key = identities[laptop.name].public_key
        for laptop in self.laptops:
            home = Home(laptop.home)
            others: list[c.Content] = [
                c.Contact(contact=o.key, action="follow", time=c.now_ms())
                for o in self.laptops
                if o is not laptop
            ]
            with contextlib.closing(home.open_store()) as store:
                publishing.publish(store, identities[laptop.name], others)
        founder = self.laptops[0]
        with contextlib.closing(Home(founder.home).open_store()) as store:
            Keyring.attach(store, identities[founder.name])
            _, payload = service.create(
                identities[founder.name], CREW, members=[lt.key for lt in self.laptops]
            )
            publishing.publish_payloads(store, identities[founder.name], [payload])
        self.check_clocks()

        pub = self.pub.start(
            "pub",
            "serve",
            "--listen",
            f"{self.lan.pub.address}:{PORT}",
            "--http",
            f"{self.lan.pub.address}:{PUB_HTTP_PORT}",
        )
        pub.wait_for("Status page:")
        invite = self.pub_cli("pub", "invite", "--uses", str(len(self.laptops)))
        # One after another: concurrent ``invite.use`` calls can lose a member at the pub
        # (``Members.add`` runs in worker threads and the last write wins; see the report
        # in docs/reliability.md), and that member's node is then dropped as a guest.
        joined = [lt.json("join", invite["code"]) for lt in self.laptops]
        assert not any(j["already_member"] for j in joined), joined
        members = self.pub_cli("pub", "members")
        assert sorted(m["feed"] for m in members) == sorted(lt.feed for lt in self.laptops), (
            f"the pub lost a member: {members}"
        )
        each(self.start_laptop, self.laptops)
        self.report.note("all nodes up", "every laptop connected to the pub")

    def pub_cli(self, *args: str) -> Any:
        """The operator's ``p2pcrew ARGS --json`` on the pub's machine, parsed."""
        done = subprocess.run(
            self.lan.pub.command(p2pcrew_argv(*args, "--json")),
            cwd=ROOT,
            env=cli_env(self.pub.home),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"pub: p2pcrew {' '.join(args)}: {done}"
        return json.loads(done.stdout)

    def check_clocks(self) -> None:
        """The premise: a skewed process sees the skewed clock, in Python and in SQLite."""
        probe = (
            "import time, sqlite3; "
            "print(int(time.time()), sqlite3.connect(':memory:')"
            ".execute(\"select strftime('%s','now')\").fetchone()[0])"
        )
        for laptop in self.laptops:
            if not laptop.skew:
                continue
            done = subprocess.run(
                host_argv(laptop.host, [sys.executable, "-c", probe], laptop.env),
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
                check=False,
            )
            py, sql = (int(x) for x in done.stdout.split())
            want = SKEW_MS[laptop.skew] // 1000
            for seen in (py, sql):
                off = seen - int(time.time())
                assert abs(off - want) < 60, f"{laptop.name}: clock off by {off} s, not {want}"

    def start_laptop(self, laptop: Node) -> None:
        proc = laptop.start("serve", "--listen", f"0.0.0.0:{PORT}")
        proc.wait_for("Looking for your crew on this network (mDNS).")
        proc.wait_for(f"Connected to tcp://{self.lan.pub.address}:{PORT}")

    # ---- the workload -----------------------------------------------------------------

    def crew_members(self) -> list[Node]:
        return [lt for lt in self.laptops if lt is not self.removed]

    def workload(self, tag: str, laptops: Sequence[Node] | None = None) -> list[Written]:
        """Each laptop posts through its running node: public posts, then crew posts."""
        members = self.crew_members()

        def one(laptop: Node) -> list[Written]:
            out = []
            for i in range(self.config.posts):
                text = f"{tag} {laptop.name} {i} {secrets.token_hex(4)}"
                said = laptop.json("post", text)
                out.append(Written(laptop, text_to_entry_id(said["id"]), said["seq"], text, False))
            if laptop in members:
                for i in range(self.config.crew_posts):
                    text = f"crew secret {tag} {laptop.name} {i} {secrets.token_hex(6)}"
                    said = laptop.json("post", "--crew", CREW, text)
                    out.append(
                        Written(laptop, text_to_entry_id(said["id"]), said["seq"], text, True)
                    )
            return out

        made = [w for ws in each(one, laptops or self.laptops) for w in ws]
        self.written += made
        return made

    def holds_all(self, nodes: Iterable[Node], written: Iterable[Written]) -> bool:
        want: dict[bytes, int] = {}
        for w in written:
            want[w.author.key] = max(want.get(w.author.key, 0), w.seq)
        return all(node.latest_seqs().get(f, 0) >= s for node in nodes for f, s in want.items())

    def seqs_table(self) -> str:
        rows = []
        for node in [*self.laptops, self.pub]:
            seqs = node.latest_seqs()
            rows.append(
                f"{node.name}: "
                + " ".join(f"{lt.name}={seqs.get(lt.key, 0)}" for lt in self.laptops)
            )
        return "; ".join(rows)

    # ---- the scenarios ---------------------------------------------------------------

    def scenario_partition(self, n: int) -> None:
        hosts = list(self.lan.everyone)
        self.rng.shuffle(hosts)
        cut = self.rng.randint(2, len(hosts) - 2)
        groups = [hosts[:cut], hosts[cut:]]
        names = " | ".join(",".join(sorted(self.lan.name(h) for h in g)) for g in groups)
        self.lan.partition(groups)
        started = time.monotonic()
        within, across = split_pairs(groups)
        self.lan.expect(within, across, PORT)
        self.report.note(f"partition {n}", f"{names} (probes: {len(across)} pairs cut)")
        made = self.workload(f"p{n}")
        # The partition holds for the replication too: nothing written in one group
        # reaches the other while it lasts.
        by_host = {lt.host: lt for lt in self.laptops}
        by_host[self.lan.pub] = self.pub
        side = {by_host[h]: g for g, group in enumerate(groups) for h in group}
        left = self.config.hold - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)  # the scenario is about time: the partition is held this long
        for w in made:
            for node, g in side.items():
                if g != side[w.author]:
                    with node.reading() as store:
                        assert store.get(w.id) is None, (
                            f"{w.author.name}'s post crossed partition {n} to {node.name}"
                        )
        self.report.partitions_checked += 1
        self.heal(f"heal {n}")

    def heal(self, what: str) -> None:
        """One LAN again; then wait (bounded) until every node holds what was written.

        Waiting here keeps each scenario's own disruption separate: a laptop cut from
        the pub by two partitions in a row would otherwise hear nothing from it for
        longer than the 60 s idle timeout, and its node never dials the pub again.
        """
        self.lan.heal()
        self.last_heal = time.monotonic()
        everyone = self.lan.everyone
        self.lan.expect([(a, b) for a in everyone for b in everyone if a is not b], [], PORT)
        own = {lt.key: lt.latest(lt.key) for lt in self.laptops}
        wait_until(
            lambda: self.agreed(own),
            self.config.converge_within,
            lambda: f"every node to hold every feed after {what}: " + self.seqs_table(),
        )
        took = time.monotonic() - self.last_heal
        self.report.heals.append((what, took))
        self.report.note(what, f"every host reaches every host; all nodes agree {took:.1f} s later")

    def agreed(self, own: dict[bytes, int]) -> bool:
        """Every laptop holds the same heads, at least ``own``; the pub the same for them."""
        first = self.laptops[0].latest_seqs()
        if any(first.get(f, 0) < s for f, s in own.items()):
            return False
        if any(lt.latest_seqs() != first for lt in self.laptops[1:]):
            return False
        at_pub = self.pub.latest_seqs()
        return all(at_pub.get(f) == first[f] for f in own)

    def scenario_isolation(self) -> None:
        laptops = self.lan.hosts
        self.lan.isolate_ports(laptops)
        cut = [(a, b) for a in laptops for b in laptops if a is not b]
        reach = [(a, self.lan.pub) for a in laptops] + [(self.lan.pub, a) for a in laptops]
        self.lan.expect(reach, cut, PORT)
        self.report.note("isolate", "every laptop port isolated: only the pub connects them")
        made = self.workload("iso")
        took = wait_until(
            lambda: self.holds_all(self.laptops, made),
            STEP_WITHIN,
            lambda: "the isolated laptops to converge through the pub: " + self.seqs_table(),
        )
        self.report.note("isolated LAN converged", f"through the pub in {took:.1f} s")
        self.heal("un-isolate")

    def scenario_sigkill(self) -> None:
        victim = self.node(self.roles["victim"])
        author = self.node(self.roles["bulk"])
        batch = self.config.bulk
        for attempt in range(1, 4):
            self.report.kill_attempts = attempt
            assert victim.proc is not None and author.proc is not None
            assert victim.proc.stop() == 0, victim.proc.describe()
            assert author.proc.stop() == 0, author.proc.describe()
            home = Home(author.home)
            with contextlib.closing(home.open_store()) as store:
                items: list[c.Content] = [
                    c.Post(text=f"bulk {attempt} {author.name} {i}", time=c.now_ms())
                    for i in range(batch)
                ]
                publishing.publish(store, home.load_identity(), items)
                target = store.latest_seqs()[author.key]
            self.start_laptop(author)

            def pub_has_batch(t: int = target) -> bool:
                return self.pub.latest(author.key) >= t

            wait_until(
                pub_has_batch,
                STEP_WITHIN,
                lambda: f"the pub to hold {author.name}'s batch: {self.seqs_table()}",
            )
            before = victim.latest(author.key)
            self.report.note(
                "bulk ready",
                f"{author.name} wrote {batch} entries (to seq {target}); "
                f"{victim.name} (stopped) holds {before}",
            )
            # Killed once it holds a seeded share of the batch (the first commit at or
            # past it), never before it got anything nor after it got everything.
            share = self.rng.uniform(0.05, 0.5)
            threshold = before + max(1, int(share * (target - before)))
            proc = victim.start("serve", "--listen", f"0.0.0.0:{PORT}")
            deadline = time.monotonic() + STEP_WITHIN
            at = before
            while time.monotonic() < deadline:
                at = victim.latest(author.key)
                if threshold <= at < target:
                    proc.kill()
                    break
                if at >= target:
                    break
                time.sleep(KILL_POLL)
            if proc.proc.returncode == -signal.SIGKILL:
                break
            self.report.note("kill missed", f"{victim.name} already held {at}; a bigger batch")
            batch *= 2
        else:
            raise AssertionError("never caught the victim mid-sync")
        at_rest = victim.latest(author.key)
        self.report.killed_at = (before, at_rest, target)
        self.report.note(
            "SIGKILL", f"{victim.name} mid-sync at {at_rest} of {target} (seen {at} just before)"
        )
        self.check(victim)
        self.kill_check_ok = True
        self.start_laptop(victim)
        self.last_heal = time.monotonic()  # a disruption ended: the node is back
        took = wait_until(
            lambda: victim.latest(author.key) >= target,
            STEP_WITHIN,
            lambda: f"{victim.name} to finish the batch after restart: {self.seqs_table()}",
        )
        seqs = snapshot(victim).seqs[author.key]
        assert seqs == list(range(1, len(seqs) + 1)), "gaps or duplicates after the restart"
        self.report.note(
            "restarted",
            f"{victim.name} passed check and finished the batch {took:.1f} s after restart",
        )

    def scenario_removal(self) -> None:
        removed = self.node(self.roles["removed"])
        remover = self.rng.choice([lt for lt in self.laptops if lt is not removed])
        pre = [w for w in self.written if w.crew]
        remover.json("crew", "remove", CREW, removed.feed)
        self.removed = removed
        with remover.reading() as store:
            [state] = crew_states(store)
        self.removal_epoch = state.epoch
        assert removed.key not in state.members

        def took_effect() -> bool:
            for lt in self.crew_members():
                with lt.reading() as store:
                    states = crew_states(store)
                if not states or states[0].epoch < state.epoch or removed.key in states[0].members:
                    return False
            return True

        took = wait_until(took_effect, STEP_WITHIN, "every remaining member to see the removal")
        self.report.note(
            "removal",
            f"{remover.name} removed {removed.name} (epoch {state.epoch}); every "
            f"remaining member saw it in {took:.1f} s",
        )
        self.report.pre_removal_crew_posts = len(pre)
        self.removal_index = len(self.written)
        self.workload("after-removal")

    def node(self, name: str) -> Node:
        return next(lt for lt in self.laptops if lt.name == name)

    # ---- the run and its oracle --------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        self.setup()
        self.workload("start")
        self.check_skew()
        order = [f"partition-{i + 1}" for i in range(self.config.partitions)]
        order += ["isolation", "sigkill", "removal"]
        self.rng.shuffle(order)
        self.report.order = order
        for step in order:
            if step.startswith("partition-"):
                self.scenario_partition(int(step.split("-")[1]))
            else:
                getattr(self, f"scenario_{step}")()
        self.workload("end")
        self.report.note("workload stopped")
        self.converge()
        self.finish()
        self.report.wall_seconds = time.monotonic() - started
        return self.report

    def check_skew(self) -> None:
        """The skewed laptops' posts claim times 2 h ahead / 3 d behind the pub's clock."""
        start_posts = [w for w in self.written if not w.crew]
        wait_until(
            lambda: self.holds_all([self.pub], start_posts),
            STEP_WITHIN,
            lambda: "the pub to hold the first posts: " + self.seqs_table(),
        )
        with self.pub.reading() as store:
            for w in start_posts:
                if w.author.skew is None:
                    continue
                stored = store.get(w.id)
                assert stored is not None and stored.payload is not None
                claimed = c.decode_content(stored.payload)
                assert isinstance(claimed, c.Post)
                seen = claimed.time - stored.received_at
                self.report.skew_seen_ms[f"{w.author.name} ({w.author.skew})"] = seen
                assert abs(seen - SKEW_MS[w.author.skew]) < SKEW_TOLERANCE_MS, (
                    f"{w.author.name}'s post claims {seen} ms off the pub's clock"
                )

    def converge(self) -> None:
        own = {lt.key: lt.latest(lt.key) for lt in self.laptops}
        bound = self.config.converge_within - (time.monotonic() - self.last_heal)
        wait_until(
            lambda: self.agreed(own),
            max(bound, 0.0),
            lambda: "every node to hold the same heads: " + self.seqs_table(),
        )
        self.report.converged_after_heal = time.monotonic() - self.last_heal
        assert self.report.converged_after_heal <= self.config.converge_within
        self.report.note(
            "converged", f"{self.report.converged_after_heal:.1f} s after the last heal"
        )

    def finish(self) -> None:
        snaps = {n.name: snapshot(n) for n in [*self.laptops, self.pub]}
        ref = snaps[self.laptops[0].name]
        laptop_feeds = [lt.key for lt in self.laptops]
        for name, snap in snaps.items():
            for seqs in snap.seqs.values():
                assert seqs == list(range(1, len(seqs) + 1)), f"{name}: gap/dup in a feed"
            feeds = set(snap.seqs)
            if name == "pub":
                assert set(laptop_feeds) <= feeds, "the pub is missing a laptop's feed"
                assert all(snap.ids[f] == ref.ids[f] for f in feeds), "pub differs"
            else:
                assert snap.heads == ref.heads, f"{name} heads differ"
                assert all(snap.feed_digest(f) == ref.feed_digest(f) for f in feeds)
            self.report.entries_per_node[name] = snap.entries
            self.report.feeds_per_node[name] = len(snap.seqs)
            self.report.digests[name] = snap.digest(laptop_feeds)
        assert len(set(self.report.digests.values())) == 1, self.report.digests
        self.removal_oracle()
        self.report.found = self.lan_found()
        self.report.nobody = [lt.name for lt in self.laptops if NOBODY_MESSAGE in lt.output()]
        logs = [Home(n.home).log_dir / "p2pcrew.log" for n in [*self.laptops, self.pub]]
        refused = [
            line
            for log in logs
            if log.exists()
            for line in log.read_text(errors="replace").splitlines()
            if "dropping peer" in line
        ]
        self.report.refused = len(refused)
        assert not refused, f"a node was sent an invalid entry: {refused[:3]}"
        # Stop every node cleanly, then check every store at rest.
        nodes = [*self.laptops, self.pub]
        for node, code in zip(
            nodes, each(lambda n: n.proc.stop() if n.proc else -1, nodes), strict=True
        ):
            assert code == 0, node.proc.describe() if node.proc else node.name
        each(self.check, nodes)
        assert self.kill_check_ok
        self.report.note("checked", f"p2pcrew check on {self.report.checks_run} stores")

    def check(self, node: Node) -> None:
        """``p2pcrew check`` on ``node``'s store at rest (no process may run on it)."""
        done = node.run("check", "--json", ok=False)
        problems = json.loads(done.stdout)["problems"] if done.stdout.strip() else ["no output"]
        failed = done.returncode != 0 or bool(problems)
        with self._lock:
            self.report.checks_run += 1
            self.report.check_failures += failed
        if failed:
            raise AssertionError(f"p2pcrew check failed on {node.name}: {done}")

    def removal_oracle(self) -> None:
        removed = self.removed
        assert removed is not None
        after = [w for w in self.written[self.removal_index :] if w.crew]
        assert all(w.author is not removed for w in after)
        before = [w for w in self.written[: self.removal_index] if w.crew]
        self.report.post_removal_crew_posts = len(after)
        assert after, "no crew post was written after the removal"
        with removed.reading() as store:
            got = [store.get(w.id) for w in after]
            was = [store.get(w.id) for w in before]
        self.report.removed_held = sum(s is not None for s in got)
        self.report.removed_opened = sum(s is not None and s.plaintext is not None for s in got)
        self.report.removed_opened_before = sum(
            s is not None and s.plaintext is not None for s in was
        )
        opened = 0
        for lt in self.crew_members():
            with lt.reading() as store:
                opened += sum(
                    (s := store.get(w.id)) is not None and s.plaintext is not None for w in after
                )
        self.report.remaining_opened = opened
        main = Path(removed.home) / DB_NAME
        raw = b"".join(
            p.read_bytes() for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()
        )
        leaked = [w.text for w in after if w.text.encode() in raw]
        assert self.report.removed_opened == 0, "the removed member opened post-removal posts"
        assert leaked == [], f"post-removal plaintext in the removed member's files: {leaked}"
        assert self.report.removed_held == len(after), "the removed member lacks ciphertext"
        assert opened == len(after) * len(self.crew_members()), "a member could not open"
        assert self.report.removed_opened_before == len(before), "control: opened before"

    def lan_found(self) -> dict[str, list[str]]:
        names = {lt.feed: lt.name for lt in self.laptops}
        return {
            lt.name: sorted({names.get(f, f[:12]) for f in _FOUND.findall(lt.output())})
            for lt in self.laptops
        }

    def close(self) -> None:
        """Stop every process (by its own PID), then delete every namespace."""
        for node in [*self.laptops, self.pub]:
            for proc in node.runs:
                with contextlib.suppress(Exception):
                    proc.stop()
        self.lan.close()


LAST: Report | None = None
"""The report of the latest run, also when it failed (what happened up to the failure)."""


def run(config: Config, seed: int, workdir: Path) -> Report:
    """One chaos run in ``workdir``; raises AssertionError when the oracle fails."""
    reason = netns_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    global LAST
    chaos = Run(config, seed, workdir)
    LAST = chaos.report
    try:
        return chaos.run()
    finally:
        tag = chaos.lan.tag
        chaos.close()
        left = [n for n in namespaces() if n.startswith(tag)]
        assert not left, f"namespaces leaked: {left}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.functional.chaos")
    parser.add_argument("--long", action="store_true", help="the long configuration")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--hold", type=float, help="seconds each partition is held")
    args = parser.parse_args(argv)
    config = LONG if args.long else SMALL
    if args.hold is not None:
        config = dataclasses.replace(config, hold=args.hold)
    workdir = Path(tempfile.mkdtemp(prefix="p2pcrew-chaos-"))
    try:
        report = run(config, args.seed, workdir)
    except BaseException:
        print(f"FAILED; data directories and logs kept in {workdir}", file=sys.stderr)
        if LAST is not None:
            print(LAST.summary(), file=sys.stderr)
        raise
    print(report.summary())
    if args.keep:
        print(f"data directories kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
