"""Invite codes and the invite book: round trips, expiry, uses, forged and malformed codes."""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path

import pytest

from p2pcrew import codec
from p2pcrew.pub import invites as inv
from p2pcrew.pub.config import PubConfig

PUB = bytes(range(32))
SECRET = bytes(range(100, 132))
URLS = ("tcp://pub.example.org:8008", "wss://pub.example.org/ws")
DAY = 86_400_000


def code(**changes: object) -> inv.InviteCode:
    fields: dict[str, object] = {"pub": PUB, "urls": URLS, "secret": SECRET, "expires": 10 * DAY}
    fields.update(changes)
    return inv.InviteCode(**fields)  # type: ignore[arg-type]


def raw(body: object) -> str:
    text = base64.b32encode(codec.encode(body)).decode().rstrip("=").lower()
    return inv.PREFIX + text


# ---- the code ---------------------------------------------------------------------------


@pytest.mark.parametrize("expires", [10 * DAY, None])
def test_round_trip(expires: int | None) -> None:
    original = code(expires=expires)
    text = original.encode()
    assert text.startswith("p2pcrew-invite:") and text == text.lower()
    assert inv.parse_code(text) == original


def test_survives_case_whitespace_and_the_qr_spelling() -> None:
    text = code().encode()
    wrapped = "  " + "\n".join(text[i : i + 40] for i in range(0, len(text), 40)) + "\n"
    assert inv.parse_code(wrapped) == code()
    assert inv.parse_code(code().qr_text()) == code()
    assert set(code().qr_text()) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567P-:")


def test_addresses_carry_the_pub_key() -> None:
    tcp, wss = code().addresses()
    assert (tcp.scheme, tcp.host, tcp.port, tcp.key) == ("tcp", "pub.example.org", 8008, PUB)
    assert (wss.scheme, wss.port, wss.path, wss.is_websocket) == ("wss", 443, "/ws", True)


def test_the_secret_stays_out_of_repr() -> None:
    assert SECRET.hex() not in repr(code()) and repr(SECRET) not in repr(code())


def test_expiry() -> None:
    code(expires=None).check_not_expired(10**15)
    code().check_not_expired(10 * DAY - 1)
    with pytest.raises(inv.InviteExpired) as caught:
        code().check_not_expired(10 * DAY)
    assert str(caught.value) == "this invite expired on 1970-01-11 00:00 UTC; ask for a new one"


GOOD = {"v": 1, "pub": PUB, "urls": list(URLS), "secret": SECRET}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "should start with"),
        ("feed_abc", "should start with"),
        ("p2pcrew-invite:", "damaged"),
        ("p2pcrew-invite:abc$def", "outside a-z and 2-7"),
        ("p2pcrew-invite:" + "a" * 5000, "far too long"),
        (raw([1, 2]), "not an invite"),
        (raw({**GOOD, "v": 2}), "version 2"),
        (raw({**GOOD, "extra": 1}), "fields this version does not know"),
        (raw({**GOOD, "pub": b"short"}), "pub's key"),
        (raw({**GOOD, "secret": SECRET[:31]}), "secret"),
        (raw({**GOOD, "urls": []}), "no pub address"),
        (raw({**GOOD, "urls": ["http://x/"]}), "unusable address"),
        (raw({**GOOD, "exp": -5}), "expiry"),
    ],
)
def test_malformed_codes_say_so(text: str, why: str) -> None:
    with pytest.raises(inv.InviteMalformed) as caught:
        inv.parse_code(text)
    assert str(caught.value).startswith("this is not a p2pcrew invite code: ")
    assert why in str(caught.value)


def test_a_truncated_code_is_malformed() -> None:
    text = code().encode()
    for cut in (len(text) - 1, len(text) - 7, len(text) // 2):
        with pytest.raises(inv.InviteMalformed):
            inv.parse_code(text[:cut])


def test_non_canonical_cbor_is_malformed() -> None:
    body = codec.encode(GOOD)
    longer = body[:1] + b"\x61v\x18\x01" + body[4:]  # "v": 1 with a two-byte integer
    assert longer != body
    text = inv.PREFIX + base64.b32encode(longer).decode().rstrip("=").lower()
    with pytest.raises(inv.InviteMalformed, match="damaged"):
        inv.parse_code(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("never", None)],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert inv.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "0d", "-1d", "7y", "seven days"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(inv.InviteError, match="not a duration"):
        inv.parse_duration(text)


# ---- the book ---------------------------------------------------------------------------


@pytest.fixture
def book(tmp_path: Path) -> inv.InviteBook:
    return inv.InviteBook(tmp_path / "pub-invites.json")


def test_uses_count_down_then_run_out(book: inv.InviteBook) -> None:
    secret = book.create(uses=2, expires=None, now=0)
    assert book.redeem(secret, 1) == 1
    assert book.redeem(secret, 2) == 0
    with pytest.raises(inv.InviteUsedUp):
        book.redeem(secret, 3)
    assert book.live(3) == []


def test_forged_and_used_up_are_both_not_valid(book: inv.InviteBook) -> None:
    secret = book.create(uses=1, expires=None, now=0)
    book.redeem(secret, 1)
    with pytest.raises(inv.InviteUnknown) as forged:
        book.redeem(bytes(32), 1)
    with pytest.raises(inv.InviteUsedUp) as used:
        book.redeem(secret, 1)
    assert isinstance(forged.value, inv.InviteNotValid) and isinstance(
        used.value, inv.InviteNotValid
    )
    assert str(forged.value) == str(used.value)  # what a redeemer would read is identical


def test_expired_in_the_book(book: inv.InviteBook) -> None:
    secret = book.create(uses=5, expires=1000, now=0)
    assert book.redeem(secret, 999) == 4
    with pytest.raises(inv.InviteExpired):
        book.redeem(secret, 1000)


def test_the_book_keeps_only_hashes_privately_and_survives_reopening(
    book: inv.InviteBook, tmp_path: Path
) -> None:
    secret = book.create(uses=3, expires=None, now=0)
    data = book.path.read_text()
    assert secret.hex() not in data and inv.secret_hash(secret) in data
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    again = inv.InviteBook(book.path)
    assert again.redeem(secret, 1) == 2
    assert json.loads(book.path.read_text())["invites"][0]["uses"] == 2


def test_expired_records_are_dropped_on_the_next_write(book: inv.InviteBook) -> None:
    book.create(uses=1, expires=1, now=0)
    book.create(uses=1, expires=None, now=5)  # by now the first one has expired
    assert len(json.loads(book.path.read_text())["invites"]) == 1


def test_concurrent_redeems_never_oversell(book: inv.InviteBook) -> None:
    secret = book.create(uses=5, expires=None, now=0)
    results: list[str] = []

    def redeem() -> None:
        try:
            book.redeem(secret, 1)
            results.append("ok")
        except inv.InviteUsedUp:
            results.append("used")

    threads = [threading.Thread(target=redeem) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 5 and results.count("used") == 7


def test_bad_counts_and_damaged_books(book: inv.InviteBook) -> None:
    with pytest.raises(inv.InviteError):
        book.create(uses=0, expires=None, now=0)
    book.path.write_text("{not json")
    with pytest.raises(inv.InviteError, match="cannot read"):
        book.live(0)


# ---- which addresses go into an invite ------------------------------------------------


def test_advertised_urls(tmp_path: Path) -> None:
    configured = PubConfig(public_urls=("wss://pub.example.org/ws",))
    assert inv.advertised_urls(tmp_path, configured) == ["wss://pub.example.org/ws"]
    with pytest.raises(inv.InviteError, match="no address"):
        inv.advertised_urls(tmp_path, PubConfig())
    runtime = tmp_path / inv.RUNTIME_FILE
    runtime.write_text(json.dumps({"urls": ["tcp://127.0.0.1:9000", "ws://127.0.0.1:9001/ws"]}))
    assert inv.advertised_urls(tmp_path, PubConfig()) == [
        "tcp://127.0.0.1:9000",
        "ws://127.0.0.1:9001/ws",
    ]
    runtime.write_text(json.dumps({"urls": ["tcp://0.0.0.0:8008"]}))
    with pytest.raises(inv.InviteError, match="all interfaces"):
        inv.advertised_urls(tmp_path, PubConfig())
