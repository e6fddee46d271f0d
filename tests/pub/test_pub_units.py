"""Pub pieces without sockets: config loading, metrics text, status page, rate limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from p2pcrew.pub import config as cfg
from p2pcrew.pub.metrics import PubMetrics, Snapshot, render
from p2pcrew.pub.relay import RateLimiter
from p2pcrew.pub.status import directory_size, human_bytes, human_duration, render_status


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pub.toml"
    path.write_text(text)
    return path


# ---- config -----------------------------------------------------------------------------


def test_defaults_are_the_named_constants() -> None:
    config = cfg.load_config(None, env={})
    assert config.max_connections == cfg.DEFAULT_MAX_CONNECTIONS
    assert config.member_quota_bytes == cfg.DEFAULT_MEMBER_QUOTA_BYTES
    assert config.listen == cfg.DEFAULT_LISTEN and config.public_urls == ()


def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'listen = "127.0.0.1:9000"\nmax_connections = 50\nguest_grace = 5\n'
        'public_urls = ["wss://pub.example.org/ws"]\n',
    )
    env = {"P2PCREW_PUB_MAX_CONNECTIONS": "70", "P2PCREW_PUB_PUBLIC_URLS": "tcp://a:1, ws://b:2/ws"}
    config = cfg.load_config(path, env=env)
    assert config.max_connections == 70
    assert config.guest_grace == 5.0 and isinstance(config.guest_grace, float)
    assert config.public_urls == ("tcp://a:1", "ws://b:2/ws")
    assert config.listen == "127.0.0.1:9000"
    overridden = cfg.with_overrides(config, listen="127.0.0.1:0", http=None)
    assert overridden.listen == "127.0.0.1:0" and overridden.max_connections == 70
    assert "command line" in overridden.source


def test_every_key_has_an_environment_variable() -> None:
    env = {
        "P2PCREW_PUB_" + key.upper(): value
        for key, value in {
            "listen": "",
            "http": "[::1]:8080",
            "public_urls": "wss://x/ws",
            "max_connections": "1",
            "max_handshakes": "1",
            "handshake_timeout": "1.5",
            "max_guests": "0",
            "guest_grace": "1",
            "invite_attempts_per_minute": "1",
            "max_buffered_bytes": "20000",
            "max_ws_message": "70000",
            "member_quota_bytes": "0",
            "shutdown_grace": "0",
        }.items()
    }
    assert set(env) == {"P2PCREW_PUB_" + k.upper() for k in cfg.config_keys()}
    config = cfg.load_config(None, env=env)
    assert config.listen == "" and config.http == "[::1]:8080" and config.handshake_timeout == 1.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_conections = 5", "unknown key(s) max_conections"),
        ("max_connections = 0", "at least 1"),
        ("max_connections = 2.5", "whole number"),
        ("max_connections = true", "whole number"),
        ('max_connections = "lots"', "expected a number"),
        ('listen = "8008"', "is not HOST:PORT"),
        ("listen = 8008", 'expected "HOST:PORT"'),
        ('public_urls = ["http://pub.example.org"]', "must look like"),
        ('public_urls = ["wss://pub.example.org/ws#feed_x"]', "leave out"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load_config(path, env={})
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(cfg.ConfigError, match="P2PCREW_PUB_GUEST_GRACE"):
        cfg.load_config(None, env={"P2PCREW_PUB_GUEST_GRACE": "soon"})


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match="no config file"):
        cfg.load_config(tmp_path / "nope.toml", env={})
    assert cfg.load_config(tmp_path / "nope.toml", env={}, required=False) == cfg.PubConfig()


# ---- metrics and status ---------------------------------------------------------------


def snapshot(**changes: object) -> Snapshot:
    values: dict[str, object] = {
        "uptime": 3725.0,
        "members": 3,
        "peers": 2,
        "guests": 1,
        "entries": 12345,
        "disk_bytes": 5 * 1024 * 1024,
        "live_invites": 1,
        "over_quota": 0,
        "accepted": 40,
        "rejected": {"bad-signature": 2},
    }
    values.update(changes)
    return Snapshot(**values)  # type: ignore[arg-type]


def test_metrics_exposition_is_well_formed() -> None:
    metrics = PubMetrics()
    metrics.handshakes.inc("ws", "ok")
    metrics.invites.inc("used_up")
    metrics.over_quota_rejected.inc(amount=3)
    metrics.transfer["tcp"].received += 1000
    text = render(metrics, snapshot())
    assert text.endswith("\n")
    sample = re.compile(r'^[a-z0-9_]+(\{([a-z_]+="[^"\\]*",?)+\})? -?[0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert 'p2pcrew_pub_handshakes_total{transport="ws",outcome="ok"} 1' in text
    assert 'p2pcrew_pub_handshakes_total{transport="tcp",outcome="refused"} 0' in text
    assert 'p2pcrew_pub_entries_rejected_total{reason="over-quota"} 3' in text
    assert 'p2pcrew_pub_entries_rejected_total{reason="bad-signature"} 2' in text
    assert 'p2pcrew_pub_bytes_received_total{transport="tcp"} 1000' in text
    assert "p2pcrew_pub_members 3" in text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert len(names) == len([ln for ln in text.splitlines() if ln.startswith("# TYPE")])


def test_status_page_shows_counts_and_escapes() -> None:
    page = render_status(snapshot())
    assert page.startswith("<!doctype html>")
    assert "1 h 2 min" in page and "12,345" in page and "5.0 MiB" in page
    assert "<script" not in page


def test_human_units(tmp_path: Path) -> None:
    assert human_bytes(10) == "10 B" and human_bytes(2048) == "2.0 KiB"
    assert human_bytes(3 * 1024**4) == "3072.0 GiB"
    assert human_duration(59) == "0 min 59 s" and human_duration(90061) == "1 d 1 h"
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"x" * 5)
    assert directory_size(tmp_path) == 15


# ---- rate limiting ---------------------------------------------------------------------


def test_rate_limiter_buckets_refill_and_stay_bounded() -> None:
    limiter = RateLimiter(per_minute=3, size=2)
    assert [limiter.allow(b"a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow(b"a", 20.0)  # one token back after 20 s
    assert not limiter.allow(b"a", 20.0)
    assert limiter.allow(b"b", 20.0)  # others have their own bucket
    limiter.allow(b"c", 20.0)
    assert len(limiter._buckets) == 2  # the oldest key was forgotten


def test_members_joining_at_the_same_moment_are_all_kept(tmp_path: Path) -> None:
    """The relay calls ``Members.add`` on worker threads; none may overwrite another."""
    import threading

    from p2pcrew.pub.relay import Members

    members = Members(tmp_path / "pub-members.json")
    keys = [bytes([i]) * 32 for i in range(1, 33)]
    start = threading.Barrier(len(keys))

    def join(key: bytes) -> None:
        start.wait()
        members.add(key, 1)

    threads = [threading.Thread(target=join, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert members.keys() == set(keys)
    assert Members(tmp_path / "pub-members.json").keys() == set(keys)  # and on disk
