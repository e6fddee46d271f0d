"""Offline bundles: round trip, idempotence, and every way a file on a stick goes wrong."""

from __future__ import annotations

import functools
import io
import json
import os
import random
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pcrew import codec
from p2pcrew.bundle import (
    MAX_RECORD,
    PREFIX,
    BundleCorrupt,
    BundleTruncated,
    ImportReport,
    NotABundle,
    UnsupportedBundleVersion,
    export_bundle,
    import_bundle,
    import_stream,
)
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed import content as c
from p2pcrew.feed.check import check_store
from p2pcrew.feed.entry import blake2b256, create_entry
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import Store
from tests.feed.helpers import key, make_chain

ROOT = Path(__file__).resolve().parents[1]
A, B, C = key(1), key(2), key(3)
A_ID, B_ID, C_ID = (bytes(k.verify_key) for k in (A, B, C))
LENGTHS = {A_ID: 7, B_ID: 620, C_ID: 3}  # B spans two ingest batches of 500
TOTAL = sum(LENGTHS.values())


def fill(store: Store) -> None:
    for k, prefix in ((A, b"a"), (B, b"b"), (C, b"c")):
        chain = make_chain(k, LENGTHS[bytes(k.verify_key)], prefix)
        items: list[tuple[bytes, bytes | None]] = [(e.header, p) for e, p in chain]
        if k is C:
            items[1] = (items[1][0], None)  # a deleted payload travels as null
        result = store.ingest(items)
        assert not result.rejected


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "source")
    fill(store)
    yield store
    store.close()


@pytest.fixture
def bundle(source: SqliteStore, tmp_path: Path) -> Path:
    path = tmp_path / "crew.bundle"
    report = export_bundle(source, path, [f.author for f in source.feeds()])
    assert (report.feeds, report.entries, report.size) == (3, TOTAL, path.stat().st_size)
    return path


def records(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every record in a trusted bundle."""
    out, at = [], len(PREFIX)
    while at < len(data):
        end = at + 4 + int.from_bytes(data[at : at + 4], "big")
        out.append((at, end))
        at = end
    return out


def import_bytes(data: bytes, store: Store | None = None) -> tuple[ImportReport, Store]:
    store = store or MemoryStore()
    return import_stream(store, io.BytesIO(data)), store


# ---- round trip -----------------------------------------------------------------


def test_round_trip_into_an_empty_store(source: SqliteStore, bundle: Path, tmp_path: Path) -> None:
    target = SqliteStore(tmp_path / "target")
    try:
        report = import_bundle(target, bundle)
        assert report.ok and report.error is None
        assert (report.entries_read, report.new, report.already_had) == (TOTAL, TOTAL, 0)
        assert report.info is not None and report.info.entries == TOTAL
        assert target.latest_seqs() == source.latest_seqs() == LENGTHS
        assert target.get_at(C_ID, 2).payload is None  # type: ignore[union-attr]
        assert target.get_at(C_ID, 3).payload == b"c" + (3).to_bytes(4, "big")  # type: ignore[union-attr]
        assert list(check_store(target)) == []
    finally:
        target.close()


def test_importing_twice_stores_nothing_new(bundle: Path, tmp_path: Path) -> None:
    target = SqliteStore(tmp_path / "target")
    try:
        first, second = import_bundle(target, bundle), import_bundle(target, bundle)
        assert first.new == TOTAL
        assert second.ok and (second.new, second.already_had) == (0, TOTAL)
        assert target.count() == TOTAL
    finally:
        target.close()


def test_partial_overlap_counts_new_and_known(bundle: Path) -> None:
    store = MemoryStore()
    store.ingest([(e.header, p) for e, p in make_chain(A, 4, b"a")])
    report = import_bundle(store, bundle)
    assert report.ok and (report.new, report.already_had) == (TOTAL - 4, 4)


def test_skipped_feeds_are_not_stored(bundle: Path) -> None:
    store = MemoryStore()
    report = import_bundle(store, bundle, skip={B_ID})
    assert report.ok and report.skipped == LENGTHS[B_ID]
    assert store.latest_seqs() == {A_ID: 7, C_ID: 3}


def test_documented_example_is_what_export_writes(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    match = re.search(r"<!-- check: bundle\.file -->\s*```\w*\n(.*?)```", doc, re.S)
    assert match, "docs/protocol.md lacks the bundle example"
    signer = nacl.signing.SigningKey(bytes(range(32)))
    p1 = c.encode_content(c.Post(text="hello crew", time=1_700_000_000_000))
    e1 = create_entry(signer, 1, None, None, p1)
    p2 = c.encode_content(
        c.Request(kind="ask", title="drill", category="tools", time=1_700_000_060_000)
    )
    e2 = create_entry(signer, 2, e1.id, e1.id, p2)
    store = MemoryStore()
    store.ingest([(e1.header, p1), (e2.header, None)])
    path = tmp_path / "example.bundle"
    export_bundle(store, path, [bytes(signer.verify_key)], created=1_700_000_120_000)
    assert "".join(match[1].split()) == path.read_bytes().hex()
    assert import_bundle(MemoryStore(), path).ok


# ---- truncation and tampering ---------------------------------------------------


def cut_points(data: bytes) -> list[int]:
    recs = records(data)
    (h0, h1), (e0, e1), (z0, z1) = recs[0], recs[5], recs[-1]
    points = {0, 1, 4, 8, len(PREFIX), h0 + 2, h0 + 20, h1, e0 + 1, e0 + 3, e0 + 4, e0 + 50}
    points |= {e1 - 1, e1, z0 - 1, z0, z0 + 2, z0 + 10, z1 - 1}
    mid = recs[len(recs) // 2]
    points |= {mid[0], mid[0] + 2, mid[1] - 1}
    points |= set(range(len(PREFIX), len(data), len(data) // 10))
    return sorted(points)


def test_truncation_anywhere_imports_the_prefix_and_says_so(bundle: Path) -> None:
    data = bundle.read_bytes()
    ends = [end for _, end in records(data)[1:-1]]
    points = cut_points(data)
    assert len(points) >= 30
    for cut in points:
        report, store = import_bytes(data[:cut])
        expected_error = NotABundle if cut == 0 else BundleTruncated
        assert isinstance(report.error, expected_error), (cut, report.error)
        complete = sum(1 for end in ends if end <= cut)
        assert report.new == report.entries_read == complete, cut
        assert not report.ok and not report.rejected_by_rule
        assert sum(store.latest_seqs().values()) == complete
        assert report.error.offset <= cut
        assert list(check_store(store)) == []


def test_flipped_signature_byte_rejects_that_feed_from_there(
    source: SqliteStore, bundle: Path
) -> None:
    data = bytearray(bundle.read_bytes())
    fifth = source.get_at(A_ID, 5)
    assert fifth is not None
    at = bytes(data).find(fifth.entry.header) + len(fifth.entry.header) - 10  # in the signature
    data[at] ^= 0x01
    report, store = import_bytes(bytes(data))
    assert report.rejected_by_rule == {"bad-signature": 1, "sequence-gap": 2}
    assert [r.rule for r in report.rejections] == ["bad-signature", "sequence-gap", "sequence-gap"]
    order = [f.author for f in source.feeds()]  # export order: by feed id
    before = sum(LENGTHS[f] for f in order[: order.index(A_ID)])
    assert report.rejections[0].index == before + 4 and report.rejections[0].feed is not None
    assert store.latest_seqs() == {A_ID: 4, B_ID: 620, C_ID: 3}
    assert isinstance(report.error, BundleCorrupt) and "checksum" in str(report.error)
    assert report.new == TOTAL - 3 and not report.ok


def test_changed_payload_is_rejected_by_its_hash(source: SqliteStore, bundle: Path) -> None:
    data = bytearray(bundle.read_bytes())
    payload = b"b" + (600).to_bytes(4, "big")
    at = bytes(data).find(payload)
    data[at] ^= 0x20
    report, store = import_bytes(bytes(data))
    assert report.rejected_by_rule == {"payload-hash-mismatch": 1, "sequence-gap": 20}
    assert store.latest_seqs()[B_ID] == 599


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is a text file\n" * 20, random.Random(7).randbytes(5000)],
    ids=["empty", "text", "random"],
)
def test_not_a_bundle(data: bytes) -> None:
    report, store = import_bytes(data)
    assert isinstance(report.error, NotABundle) and report.error.offset == 0
    assert report.entries_read == 0 and store.count() == 0


def test_newer_format_version_is_named(bundle: Path) -> None:
    data = bytearray(bundle.read_bytes())
    data[len(PREFIX) - 1] = 2
    report, _ = import_bytes(bytes(data))
    assert isinstance(report.error, UnsupportedBundleVersion) and "upgrade" in str(report.error)


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked = 0

    def read(self, size: int | None = -1) -> bytes:
        self.asked += size if size is not None and size > 0 else 1 << 30
        return super().read(size)


@pytest.mark.parametrize("length", [MAX_RECORD + 1, 2**32 - 1, 0])
def test_bad_record_length_is_refused_before_reading_it(length: int) -> None:
    stream = CountingStream(PREFIX + length.to_bytes(4, "big") + b"\x00" * 100_000)
    report = import_stream(MemoryStore(), stream)
    assert isinstance(report.error, BundleCorrupt) and report.error.offset == len(PREFIX)
    assert stream.asked <= len(PREFIX) + 4


def test_bad_length_mid_file_keeps_the_entries_before(bundle: Path) -> None:
    data = bytearray(bundle.read_bytes())
    start, _ = records(bytes(data))[4]
    data[start : start + 4] = (MAX_RECORD + 1).to_bytes(4, "big")
    report, _ = import_bytes(bytes(data))
    assert isinstance(report.error, BundleCorrupt) and report.error.offset == start
    assert report.new == 3


def reframe(data: bytes, edit: int, body: bytes) -> bytes:
    """Replace record ``edit``'s body and fix the end record, as a careful forger would."""
    recs = records(data)
    out = bytearray(PREFIX)
    for i, (start, end) in enumerate(recs[:-1]):
        chunk = body if i == edit else data[start + 4 : end]
        out += len(chunk).to_bytes(4, "big") + chunk
    count = codec.decode(data[recs[-1][0] + 4 :])[1]
    end_body = codec.encode(["end", count, blake2b256(bytes(out))])
    return bytes(out) + len(end_body).to_bytes(4, "big") + end_body


def test_framing_errors_are_specific(bundle: Path) -> None:
    data = bundle.read_bytes()
    (h0, h1), (e0, e1) = records(data)[:2]
    assert import_bytes(reframe(data, 1, data[e0 + 4 : e1]))[0].ok  # reframe itself is faithful
    header = codec.decode(data[h0 + 4 : h1])
    cases = {
        "not canonical": reframe(data, 1, b"\x82\x58\x01\x00\xf6"),  # 1-byte string, long form
        "not an entry": reframe(data, 1, codec.encode({"x": 1})),
        "bad header": reframe(data, 0, codec.encode({**header, "version": 2})),
        "count": reframe(data, 0, codec.encode({**header, "entries": TOTAL + 1})),
        "trailing": data + b"\x00",
        "end malformed": data[: records(data)[-1][0]] + b"\x00\x00\x00\x02\x81\x63",
    }
    for name, forged in cases.items():
        report, _ = import_bytes(forged)
        assert isinstance(report.error, BundleCorrupt), (name, report.error)


@functools.cache
def small_bundle() -> bytes:
    store = MemoryStore()
    store.ingest([(e.header, p) for e, p in make_chain(A, 4, b"a")])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.bundle"
        export_bundle(store, path, [A_ID], created=1)
        return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damage_gives_a_report_never_an_exception(data: st.DataObject) -> None:
    raw = bytearray(small_bundle())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at : at + data.draw(st.integers(1, 8))]
    report, store = import_bytes(bytes(raw))
    assert report.ok == (report.error is None and not report.rejected)
    assert report.new + report.already_had + report.rejected <= report.entries_read
    assert list(check_store(store)) == []


# ---- export ----------------------------------------------------------------------


def test_export_is_private_and_atomic(source: SqliteStore, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "out" / "crew.bundle"
        path.parent.mkdir()
        export_bundle(source, path, [A_ID])
        export_bundle(source, path, [A_ID, C_ID])  # replacing an older bundle is fine
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["crew.bundle"]  # no temp file left
    assert import_bundle(MemoryStore(), path).new == 10


def test_export_refuses_to_replace_other_files_and_unknown_feeds(
    source: SqliteStore, tmp_path: Path
) -> None:
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("years of work")
    with pytest.raises(P2PCrewError, match="not a bundle"):
        export_bundle(source, thesis, [A_ID])
    assert thesis.read_text() == "years of work"
    with pytest.raises(P2PCrewError, match="no feed"):
        export_bundle(source, tmp_path / "x.bundle", [bytes(32)])
    with pytest.raises(P2PCrewError, match="cannot write"):
        export_bundle(source, tmp_path / "missing-dir" / "x.bundle", [A_ID])
    export_bundle(source, thesis, [A_ID], replace_any=True)
    assert import_bundle(MemoryStore(), thesis).new == 7


def test_missing_file_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(P2PCrewError, match="cannot open"):
        import_bundle(MemoryStore(), tmp_path / "nope.bundle")


# ---- the CLI, as real processes --------------------------------------------------


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "P2PCREW_HOME": str(self.home)}
        env.pop("P2PCREW_PASSPHRASE", None)
        out = subprocess.run(
            [sys.executable, "-m", "p2pcrew", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == code, out.stderr
        assert "Traceback" not in out.stderr
        return out

    def json(self, *args: str, code: int = 0) -> dict[str, object]:
        value = json.loads(self.run(*args, "--json", code=code).stdout)
        assert isinstance(value, dict)
        return value


def test_cli_export_import_end_to_end(tmp_path: Path) -> None:
    ana, bob = Cli(tmp_path / "ana"), Cli(tmp_path / "bob")
    ana.run("init", "--name", "Ana")
    bob.run("init", "--name", "Bob")
    ana.run("post", "meet at the hall")
    ana.run("post", "bring chairs")
    file = tmp_path / "stick" / "meetup.bundle"
    file.parent.mkdir()
    assert ana.json("bundle", "export", str(file)) == {
        "file": str(file),
        "feeds": 1,
        "entries": 3,
        "bytes": file.stat().st_size,
    }
    assert stat.S_IMODE(file.stat().st_mode) == 0o600

    first = bob.json("bundle", "import", str(file))
    assert (first["complete"], first["new"], first["already_had"], first["rejected"]) == (
        True,
        3,
        0,
        0,
    )
    second = bob.json("bundle", "import", str(file))
    assert (second["new"], second["already_had"]) == (0, 3)
    bob.run("check")
    ana_feed = ana.run("whoami", "--json").stdout
    assert json.loads(ana_feed)["feed"] in bob.run("feeds").stdout

    cut = tmp_path / "cut.bundle"
    cut.write_bytes(file.read_bytes()[:-30])
    report = bob.json("bundle", "import", str(cut), code=1)
    assert report["complete"] is False and report["error"]["kind"] == "truncated"  # type: ignore[index]
    text = bob.run("bundle", "import", str(cut), code=1)
    assert text.stderr.startswith("error: ") and len(text.stderr.strip().splitlines()) == 1
    assert "cut short" in text.stderr and "Read 3 entries" in text.stdout

    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    bad = bob.json("bundle", "import", str(notes), code=1)
    assert bad["error"]["kind"] == "not-a-bundle"  # type: ignore[index]
    out = bob.run("bundle", "export", str(tmp_path / "c.bundle"), "--crew", "north", code=1)
    assert "crews are not available yet" in out.stderr


def test_cli_leaves_blocked_feeds_out(tmp_path: Path) -> None:
    ana, bob = Cli(tmp_path / "ana"), Cli(tmp_path / "bob")
    ana.run("init", "--name", "Ana")
    bob.run("init", "--name", "Bob")
    file = tmp_path / "ana.bundle"
    ana.run("bundle", "export", str(file))
    assert bob.json("bundle", "import", str(file))["new"] == 1
    ana_feed = json.loads(ana.run("whoami", "--json").stdout)["feed"]
    bob.run("block", ana_feed)
    assert bob.json("bundle", "export", str(tmp_path / "bob.bundle"))["feeds"] == 1
    out = bob.run("bundle", "export", str(tmp_path / "x.bundle"), "--feed", ana_feed, code=1)
    assert "blocked" in out.stderr

    carol = Cli(tmp_path / "carol")
    carol.run("init")
    carol.run("block", ana_feed)
    report = carol.json("bundle", "import", str(file))  # exit 0: skipping is not an error
    assert (report["new"], report["skipped_blocked"], report["complete"]) == (0, 1, True)
    assert ana_feed not in carol.run("feeds").stdout
