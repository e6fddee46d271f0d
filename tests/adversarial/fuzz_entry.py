"""Coverage-guided fuzz target: entry headers (decode_entry, verify_signature) and the codec.

    .venv/bin/pip install atheris      # optional tool, not a project dependency
    .venv/bin/python tests/adversarial/fuzz_entry.py -atheris_runs=200000
    .venv/bin/python tests/adversarial/fuzz_entry.py -max_total_time=300 -timeout=5 CORPUS_DIR

Any libFuzzer flag works; a directory argument is used as the working corpus (seeded with
valid headers when empty). Without atheris, the same flags ``-atheris_runs=N`` and
``-seed=S`` run a seeded random-mutation loop over the same seeds (``--plain`` forces it).
``--replay FILE...`` runs given inputs once (regressions; exit status 1 on failure).

What counts as a bug: any exception other than the rejections the functions document,
and any broken invariant: an accepted header is exactly the canonical encoding of its
fields, its signing bytes are the canonical 7-item array, its id is BLAKE2b-256 of it.
"""

from __future__ import annotations

import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from nacl.signing import SigningKey

from p2pcrew import codec
from p2pcrew.feed.entry import (
    MAX_HEADER_SIZE,
    Entry,
    blake2b256,
    create_entry,
    decode_entry,
    lipmaa,
    verify_signature,
)
from p2pcrew.feed.errors import (
    BadSignature,
    EntryTooLarge,
    MalformedEntry,
    NonCanonicalEncoding,
    UnknownFormatVersion,
)

DECODE_REJECTIONS = (EntryTooLarge, MalformedEntry, NonCanonicalEncoding, UnknownFormatVersion)


def check_input(data: bytes) -> None:
    """One input. Raises (AssertionError or anything unexpected) only on a bug."""
    try:
        value = codec.decode(data)
    except codec.CodecError:
        value = None
    else:
        assert codec.encode(value) == data, "codec accepted bytes it would not produce"
    try:
        entry = decode_entry(data)
    except DECODE_REJECTIONS:
        return
    assert len(data) <= MAX_HEADER_SIZE
    assert value is not None and type(value) is list and len(value) == 8
    assert entry.header == data
    assert entry.id == blake2b256(data)
    assert entry.signing_bytes == codec.encode(value[:7]), "signing bytes are not canonical"
    assert [entry.author, entry.seq, entry.backlink, entry.lipmaa_link] == value[1:5]
    try:
        verify_signature(entry)
    except BadSignature:
        return


def seed_inputs() -> list[bytes]:
    """Valid headers (first, second, a lipmaa jump) and a few near misses."""
    key = SigningKey(bytes(range(32)))
    chain: list[Entry] = []
    for seq in range(1, 14):
        backlink = chain[-1].id if chain else None
        lip = chain[lipmaa(seq) - 1].id if seq > 1 else None
        chain.append(create_entry(key, seq, backlink, lip, b"payload %d" % seq))
    headers = [chain[0].header, chain[1].header, chain[12].header]
    return [*headers, headers[0][:-1], b"\x9f" + headers[0][1:] + b"\xff", b"\x88", b""]


# ---- the plain loop (no atheris) and shared plumbing ----------------------------------


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    """One libFuzzer-like mutation: flip, set, insert, erase, splice or truncate."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[rng.randrange(len(out))] = rng.choice(
                [
                    0x00,
                    0x01,
                    0x17,
                    0x18,
                    0x1B,
                    0x40,
                    0x58,
                    0x5F,
                    0x80,
                    0x88,
                    0x9F,
                    0xA0,
                    0xC2,
                    0xD8,
                    0xF6,
                    0xF7,
                    0xF9,
                    0xFF,
                    rng.randrange(256),
                ]
            )
        elif op == 2:
            i = rng.randint(0, len(out))
            out[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and out:
            i = rng.randrange(len(out))
            del out[i : i + rng.randint(1, 8)]
        elif op == 4:
            other = rng.choice(seeds)
            i, j = rng.randint(0, len(out)), rng.randint(0, len(other))
            out = out[:i] + other[j : j + rng.randint(1, 64)] + out[i:]
        elif op == 5 and out:
            out = out[: rng.randrange(len(out))]
        else:
            out = bytearray(rng.choice(seeds))
    return bytes(out[:1024])


def plain_loop(
    runs: int = 100_000,
    seed: int = 0,
    target: Callable[[bytes], None] | None = None,
    seeds: Sequence[bytes] | None = None,
) -> int:
    """Run ``runs`` mutated inputs through ``target``; returns how many ran."""
    target = target or check_input
    pool = list(seeds if seeds is not None else seed_inputs())
    rng = random.Random(seed)
    for n in range(runs):
        data = mutate(rng, rng.choice(pool), pool)
        try:
            target(data)
        except BaseException:
            sys.stderr.write(f"input {n} failed: {data.hex()}\n")
            raise
        if len(pool) < 4096 and rng.random() < 0.01:
            pool.append(data)
    return runs


def replay(paths: Sequence[str], target: Callable[[bytes], None]) -> int:
    failed = 0
    for path in paths:
        try:
            target(Path(path).read_bytes())
        except Exception as exc:
            failed += 1
            print(f"{path}: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


def run(argv: list[str], target: Callable[[bytes], None], seeds: list[bytes]) -> int:
    """The command line shared by the fuzz scripts."""
    if argv[1:2] == ["--replay"]:
        return replay(argv[2:], target)
    plain = "--plain" in argv
    argv = [a for a in argv if a != "--plain"]
    try:
        import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        atheris = None
    if plain or atheris is None:
        runs, seed = 100_000, 0
        for arg in argv[1:]:
            if arg.startswith("-atheris_runs=") or arg.startswith("-runs="):
                runs = int(arg.split("=", 1)[1])
            elif arg.startswith("-seed="):
                seed = int(arg.split("=", 1)[1])
        why = "--plain" if plain else "atheris is not installed"
        print(f"{why}: plain random-mutation loop, {runs} runs, seed {seed}")
        plain_loop(runs, seed, target, seeds)
        print("done: no failure")
        return 0
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        tmp = tempfile.mkdtemp(prefix="p2pcrew-fuzz-")
        argv = [*argv, tmp]
        dirs = [tmp]
    corpus_dir = Path(dirs[0])
    corpus_dir.mkdir(parents=True, exist_ok=True)
    if not any(corpus_dir.iterdir()):
        for n, data in enumerate(seeds):
            (corpus_dir / f"seed-{n}").write_bytes(data)
    atheris.instrument_all()
    atheris.Setup(argv, target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv, check_input, seed_inputs()))
