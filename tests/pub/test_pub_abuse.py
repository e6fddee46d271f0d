"""The pub under abuse, at small sizes: a real ``p2pcrew pub serve`` on loopback.

Every abuser of ``tests/pub/abuse.py`` runs at once (half-open flood, slowloris, slow
readers, oversized RPC frames and WebSocket messages, a request flood, a guest repeating
``invite.use``) while real members push and fetch entries. The checks: the members get
through well within the bound (a lock-out lasts ``handshake_timeout``, here 30 s); the
pub's own limits refused each abuser, and its metrics and log name the reason; its memory
stays within the stated formula and returns near baseline once the abusers leave.
Speed is not asserted beyond bounds that catch a lock-out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.pub.abuse import CACHE_MB, FORMULA, RETURN_MB, AbuseSizes, run_abuse

SYNC_BOUND = 10.0
"""Seconds for a member's sync during the abuse: generous for CI, far under the 30 s a
member locked out by silent handshakes would wait (the benchmark measures ~0.2 s)."""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for VmRSS")


@pytest.fixture(scope="module")
def abused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("abuse")
    return run_abuse(AbuseSizes.small(), Path(tmp), lambda _message: None)


@pytest.mark.timeout(120)
def test_real_members_sync_during_the_abuse(abused: dict[str, Any]) -> None:
    sizes = abused["sizes"]
    writer, reader = abused["writer"], abused["reader"]
    assert writer["ok"], writer
    assert reader["ok"], reader
    assert list(reader["held"].values()) == [sizes["posts"]], reader
    assert writer["seconds"] < SYNC_BOUND and reader["seconds"] < SYNC_BOUND, (writer, reader)
    # the abuse was on while they synced
    during = abused["metrics_during"]
    assert during["handshakes_in_flight"] >= sizes["max_handshakes"] // 2, during
    assert abused["slow-readers_result"]["connected"] == sizes["slow_readers"]


@pytest.mark.timeout(120)
def test_each_abuser_was_refused_by_a_named_limit(abused: dict[str, Any]) -> None:
    outcomes = abused["handshake_outcomes"]
    # half-open and slowloris sockets lost their slots to newcomers, not to the timeout
    assert outcomes["evicted"] > abused["sizes"]["half_open"], outcomes
    assert outcomes["timeout"] == 0, outcomes
    slowloris = abused["slowloris_result"]
    assert slowloris["closed_by_pub"] > 0 and slowloris["longest_lived"] < 30.0, slowloris
    # an RPC length prefix over 64 KiB: hung up on at once, counted and logged by name
    oversize = abused["oversize_result"]
    assert oversize["frames"] >= 1 and oversize["frames_hung_up"] == oversize["frames"], oversize
    assert oversize["frame_slowest_hang_up"] < 3.0, oversize
    # (not every hang-up is that one: a reconnect with the same key while the pub is still
    # releasing the previous link is refused as a second session)
    assert abused["peers_closed"]["frame-too-large"] >= 1, abused["peers_closed"]
    assert abused["log"]["frame-too-large"] >= 1
    # a WebSocket message over max_ws_message: closed with 1009, counted and logged
    assert oversize["ws"] >= 1 and oversize["ws_close_codes"] == [1009], oversize
    assert abused["ws_too_big"] >= 1 and abused["log"]["ws-too-big"] >= 1
    # the request flood hit max_streams; the guest's invite.use hit the rate limit
    answers = abused["requests_result"]["answers"]
    assert answers.get("too-many-streams", 0) > 0 and answers.get("response", 0) > 0, answers
    invites = abused["invite_outcomes"]
    assert invites["rate_limited"] > 0 and invites["ok"] == 0, invites
    assert abused["invites_result"]["answers"].get("rate-limited", 0) > 0


@pytest.mark.timeout(120)
def test_memory_stays_within_the_formula_and_returns(abused: dict[str, Any]) -> None:
    sizes = abused["sizes"]
    bound = FORMULA.bound_mb(
        abused["base"],
        abused["store_mb"],
        abused["connections"] + sizes["slow_readers"] + 4,  # + the other abusing members
        abused["handshakes"],
        sizes["slow_readers"],
    )
    assert abused["peak"] <= bound, (abused["peak"], bound)
    assert abused["drained_after"] < 30.0, "connections were left behind"
    cache = min(abused["store_mb"], CACHE_MB)
    assert abused["after"] <= abused["base"] + cache + RETURN_MB, abused
