"""The adversarial corpus: nothing accepted, nothing unhandled, every rejection for its reason.

Also: the harnesses are sound (a valid input through each one *is* accepted, so a
rejection means something), the corpus is deterministic, the fuzz targets run without
atheris, fuzz regressions replay, and known product bugs stay pinned by failing tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from p2pcrew import codec
from p2pcrew.crew import envelope
from p2pcrew.feed.entry import create_entry, decode_entry
from p2pcrew.feed.errors import EntryTooLarge
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate import messages
from p2pcrew.replicate.boxstream import BoxStreamEncoder
from p2pcrew.replicate.rpc_frames import Frame, FrameType, encode_frame
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY
from tests.adversarial import corpus as c
from tests.adversarial import fuzz_entry, fuzz_handshake

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def corpus() -> c.Corpus:
    return c.generate()


# ---- the corpus ------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_corpus_nothing_accepted_nothing_unhandled_expected_reasons(
    corpus: c.Corpus, store: SqliteStore
) -> None:
    report = c.run_corpus(corpus, store)
    print("\n" + report.table())
    assert report.inputs == len(corpus.cases) >= 5000
    assert report.accepted == 0, report.describe_failures()
    assert report.unhandled == 0, report.describe_failures()
    assert report.unexpected == 0, report.describe_failures()
    preloaded = sum(len(preload) for preload in _distinct_preloads(corpus))
    assert store.count() == len(corpus.base) + preloaded  # only setup entries were stored


def _distinct_preloads(corpus: c.Corpus) -> list[tuple[c.Item, ...]]:
    """The cases' setup chains, each once (several cases share one preloaded chain)."""
    out: dict[bytes, tuple[c.Item, ...]] = {}
    for case in corpus.cases:
        if isinstance(case.input, c.ReplicateInput) and case.input.preload:
            out.setdefault(case.input.preload[0][0], case.input.preload)
    return list(out.values())


def test_corpus_is_deterministic_and_its_counts_do_not_depend_on_the_seed() -> None:
    a, b = c.generate(2026), c.generate(2026)
    other = c.generate(7)
    assert a.digest() == b.digest()
    assert other.digest() != a.digest()
    assert other.counts() == a.counts()


def test_default_seed_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(c.SEED_ENV, raising=False)
    assert c.corpus_seed() == 2026
    monkeypatch.setenv(c.SEED_ENV, "11")
    assert c.corpus_seed() == 11


def test_every_category_is_substantial(corpus: c.Corpus) -> None:
    counts = corpus.counts()
    assert len(counts) >= 30
    small = {k: v for k, v in counts.items() if v < 8}
    assert small == {}, small
    batch_sizes = [len(case.expect) for case in corpus.cases if case.category == "mixed-batch"]
    assert min(batch_sizes) > 64  # more than one verifier chunk: the parallel path


def test_weak_author_headers_are_well_formed(corpus: c.Corpus) -> None:
    """So their rejection comes from the signature check, not from the decoder."""
    for case in corpus.cases:
        if case.category in ("small-order-author", "non-canonical-author"):
            assert isinstance(case.input, c.ReplicateInput)
            header = case.input.body[1][0][0]
            assert decode_entry(header).author == header[4:36]


# ---- the harnesses accept what is valid (controls) -----------------------------------------


def test_control_valid_entry_is_accepted_through_the_network_path(store: SqliteStore) -> None:
    key = SigningKey(bytes(range(32)))
    entry = create_entry(key, 1, None, None, b"payload")
    body = [messages.ENTRIES, [[entry.header, b"payload"]]]
    assert c.run_replicate(store, c.ReplicateInput(body)) == (c.ACCEPTED,)
    assert c.run_replicate(store, c.ReplicateInput(body)) == (c.SEQUENCE_REPEAT,)
    assert c.run_replicate(store, c.ReplicateInput([messages.HELLO, b""])) == (c.ACCEPTED,)


def test_control_recorded_handshake_completes_on_both_sides() -> None:
    s = c.record_session(
        P2PCREW_NETWORK_KEY, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32
    )
    server = c.ShsInput("server", s.net, s.server_seed, s.server_eph, (s.msgs[0], s.msgs[2]))
    client = c.ShsInput(
        "client", s.net, s.client_seed, s.client_eph, (s.msgs[1], s.msgs[3]), s.server_pk
    )
    assert c.run_shs(server) == (c.ACCEPTED,)
    assert c.run_shs(client) == (c.ACCEPTED,)


def test_control_forged_msg3_with_a_genuine_hello_completes() -> None:
    """The forgery helper builds boxes the server opens: only the signature stops weak keys."""
    s = c.record_session(
        P2PCREW_NETWORK_KEY, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32
    )
    attacker = b"\x05" * 32
    hello = c.signed_hello(s.net, s.server_pk, s.server_eph, attacker, b"\x06" * 32)
    msg1, msg3 = c.forge_msg3(s.net, s.server_pk, s.server_eph, attacker, hello)
    inp = c.ShsInput("server", s.net, s.server_seed, s.server_eph, (msg1, msg3))
    assert c.run_shs(inp) == (c.ACCEPTED,)


def test_control_envelope_box_stream_and_rpc_accept_valid_input() -> None:
    key = b"\x07" * 32
    sealed = envelope._seal(b"content", key, [], nonce=b"\x08" * 24)
    assert c.run_envelope(c.EnvelopeInput(sealed, (key,))) == (c.ACCEPTED,)
    assert c.envelope_structure_ok(sealed)
    enc = BoxStreamEncoder(key, b"\x09" * 24)
    enc.send_data(b"hello")
    enc.send_goodbye()
    assert c.run_box(c.BoxInput(key, b"\x09" * 24, (enc.data_to_send(),), eof=True)) == (
        c.NO_DECISION,
    )
    goodbye = encode_frame(Frame(FrameType.GOODBYE))
    assert c.run_rpc(c.RpcInput((c.open_replicate(), goodbye), eof=True)) == (c.NO_DECISION,)


def test_oversize_is_also_refused_by_the_store_itself(store: SqliteStore) -> None:
    """Defence in depth: Store.ingest names too-large even without the message layer."""
    key = SigningKey(bytes(range(32)))
    big = bytes(16_385)
    entry = create_entry(key, 1, None, None, bytes(16_384))
    result = store.ingest([(entry.header + bytes(200), None), (entry.header, big)])
    assert [r.error.rule for r in result.rejected] == [EntryTooLarge.rule] * 2
    assert not result.accepted


# ---- fuzz targets and their regressions ----------------------------------------------------


def test_fuzz_targets_run_without_atheris() -> None:
    for module in (fuzz_entry, fuzz_handshake):
        for data in module.seed_inputs():
            module.check_input(data)
        assert module.plain_loop(runs=300, seed=1) == 300


def _regressions() -> list[Path]:
    return sorted(p for p in REGRESSIONS.iterdir() if p.suffix == ".bin")


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.name)
def test_fuzz_regression_replays_quickly(path: Path) -> None:
    """Each file is an input that once crashed or hung a fuzz target (see the README)."""
    target = {"entry": "fuzz_entry.py", "handshake": "fuzz_handshake.py"}[path.name.split("-")[0]]
    proc = _run_limited(
        [sys.executable, str(Path(__file__).parent / target), "--replay", str(path)]
    )
    assert proc["ok"], proc


# ---- product bugs found by this work (these fail until the product is fixed) -----------------


def _sharing_bomb(depth: int, width: int) -> bytes:
    """tag 28 (shareable) arrays whose items are tag 29 references to the level below.

    ``depth * (3 * width)`` bytes of CBOR decode to a DAG of ``width ** depth`` leaves.
    """
    counter = 0

    def build(level: int) -> bytes:
        nonlocal counter
        index = counter
        counter += 1
        if level == 0:
            return b"\xd8\x1c\x81\x01"
        inner = build(level - 1)
        refs = (b"\xd8\x1d" + c.head(0, index + 1)) * (width - 1)
        return b"\xd8\x1c" + c.head(4, width) + inner + refs

    return build(depth)


def _stringref_bomb(length: int, refs: int) -> bytes:
    """tag 256 (stringref namespace): one long string, then ``refs`` 3-byte references."""
    items = c.head(2, length) + b"x" * length + b"\xd8\x19\x00" * refs
    return b"\xd9\x01\x00" + c.head(4, refs + 1) + items


def test_value_sharing_and_stringref_tags_are_malformed() -> None:
    """§1: no tags. codec.decode documents MalformedCBOR for tags; these come out as
    NonCanonicalCBOR, after cbor2 resolved them (BUG, see docs/reliability.md)."""
    for data in (_sharing_bomb(2, 2), _stringref_bomb(30, 2), b"\xd8\x1c\x81\x01"):
        with pytest.raises(codec.MalformedCBOR):
            codec.decode(data)


_BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    # A 196-byte header decoding to 8**8 leaves: decode_entry, the network entry path.
    "entry header (value sharing)": (
        "from p2pcrew.feed.entry import decode_entry\n"
        "from p2pcrew.feed.errors import EntryRejected\n"
        "try: decode_entry(DATA)\n"
        "except EntryRejected: pass\n",
        lambda: _sharing_bomb(8, 8),
    ),
    # One RPC frame from any peer that completed the handshake: parse_frame -> codec.
    "RPC frame (value sharing)": (
        "from p2pcrew.replicate.rpc import RpcConnection\n"
        "from p2pcrew.replicate.rpc_errors import RpcProtocolError\n"
        "try: RpcConnection(client=False).receive_data(len(DATA).to_bytes(4, 'big') + DATA)\n"
        "except RpcProtocolError: pass\n",
        lambda: _sharing_bomb(10, 6),
    ),
    # A 63 KB frame whose canonical re-encoding is 330 MB.
    "RPC frame (stringref)": (
        "from p2pcrew.replicate.rpc import RpcConnection\n"
        "from p2pcrew.replicate.rpc_errors import RpcProtocolError\n"
        "try: RpcConnection(client=False).receive_data(len(DATA).to_bytes(4, 'big') + DATA)\n"
        "except RpcProtocolError: pass\n",
        lambda: _stringref_bomb(30_000, 11_000),
    ),
}


def _run_limited(argv: list[str], stdin: bytes = b"", seconds: float = 5.0) -> dict[str, object]:
    """Run ``argv`` with a wall-clock limit; report time and peak memory growth.

    Peak memory is VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec,
    so a child of a pytest holding more than the bomb could ever take would report
    no growth at all, and the limit below could never fail.
    """
    wrapper = (
        "import json, resource, runpy, sys, time\n"
        "def hwm():\n"
        "    try:\n"
        "        for line in open('/proc/self/status'):\n"
        "            if line.startswith('VmHWM:'):\n"
        "                return int(line.split()[1])\n"
        "    except OSError:\n"
        "        pass\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "before = hwm()\n"
        "start = time.perf_counter()\n"
        "sys.argv = sys.argv[1:]\n"
        "ok = True\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    ok = not exc.code\n"
        "peak = hwm()\n"
        "print(json.dumps({'seconds': time.perf_counter() - start,\n"
        "                  'extra_mb': (peak - before) // 1024, 'exit_ok': ok}))\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, *argv[1:]],
            input=stdin,
            capture_output=True,
            timeout=seconds,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "why": f"still running after {seconds} s"}
    if proc.returncode != 0:
        return {"ok": False, "why": proc.stderr.decode()[-2000:]}
    stats: dict[str, object] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    extra_mb = stats["extra_mb"]
    stats["ok"] = bool(stats["exit_ok"]) and isinstance(extra_mb, int) and extra_mb < 100
    return stats


@pytest.mark.parametrize("what", list(_BOMBS))
def test_small_cbor_inputs_cannot_demand_unbounded_work(what: str, tmp_path: Path) -> None:
    """A frame or header of at most a few KB must be refused in well under a second, in
    bounded memory. Today it takes seconds to hours (BUG, see docs/reliability.md)."""
    code, make = _BOMBS[what]
    data = make()
    script = tmp_path / "bomb.py"
    script.write_text(f"DATA = bytes.fromhex({data.hex()!r})\n{code}")
    result = _run_limited([sys.executable, str(script)])
    assert result["ok"], f"{what} ({len(data)} bytes): {result}"
