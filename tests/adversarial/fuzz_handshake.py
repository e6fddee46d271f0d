"""Coverage-guided fuzz target: the server side of the Secret Handshake (``ServerHandshake``).

    .venv/bin/pip install atheris      # optional tool, not a project dependency
    .venv/bin/python tests/adversarial/fuzz_handshake.py -atheris_runs=200000
    .venv/bin/python tests/adversarial/fuzz_handshake.py -max_total_time=300 CORPUS_DIR

Same flags and fallbacks as ``fuzz_entry.py`` (``--plain``, ``--replay FILE...``).

Input layout, so that mutations reach past msg1 (whose HMAC a fuzzer cannot forge):
byte 0 is a mode, byte 1 a chunk size (0: one write), the rest is fed to the server.

* mode & 1: first feed the reference client's genuine msg1;
* mode & 2: instead, first feed a msg1 with a correct HMAC for the next 32 input bytes
  as the ephemeral key (low-order points, twist points, anything);
* mode & 4: after msg1, feed a msg3 boxed correctly by an attacker who knows the network
  key, holding the next 96 input bytes as ``sig_A || A`` (so the signature check, the
  key conversion and msg4 are reached with hostile keys);
* mode & 8: end with EOF.

Invariants: only ``HandshakeFailed`` escapes; after a failure nothing is queued; msg2 is
sent only after a msg1 whose HMAC verifies (checked independently); completion only ever
authenticates a key whose signature is genuine (the reference client's).
"""

from __future__ import annotations

import hmac
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nacl import bindings as sodium

from p2pcrew.replicate.shs import (
    P2PCREW_NETWORK_KEY,
    ClientHandshake,
    HandshakeState,
    ServerHandshake,
    make_challenge,
)
from p2pcrew.replicate.transport_errors import HandshakeFailed
from tests.adversarial.corpus import forge_msg3, signed_hello
from tests.adversarial.fuzz_entry import plain_loop as _plain_loop
from tests.adversarial.fuzz_entry import run

NET = P2PCREW_NETWORK_KEY
SERVER_SEED = bytes(range(32))
SERVER_EPH = bytes(range(32, 64))
SERVER_PK = sodium.crypto_sign_seed_keypair(SERVER_SEED)[0]
CLIENT_SEED = bytes(range(64, 96))
CLIENT_PK = sodium.crypto_sign_seed_keypair(CLIENT_SEED)[0]
CLIENT_EPH = bytes(range(96, 128))
ATTACKER_EPH = bytes(range(128, 160))


def _reference() -> tuple[bytes, bytes]:
    client = ClientHandshake(NET, CLIENT_SEED, SERVER_PK, ephemeral_secret=CLIENT_EPH)
    server = ServerHandshake(NET, SERVER_SEED, ephemeral_secret=SERVER_EPH)
    msg1 = client.data_to_send()
    server.receive_data(msg1)
    client.receive_data(server.data_to_send())
    return msg1, client.data_to_send()


REAL_MSG1, REAL_MSG3 = _reference()
FORGED_MSG1, _ = forge_msg3(NET, SERVER_PK, SERVER_EPH, ATTACKER_EPH, bytes(96))


def _valid_challenge(msg1: bytes) -> bool:
    return hmac.compare_digest(hmac.digest(NET, msg1[32:64], "sha512")[:32], msg1[:32])


def build_feed(data: bytes) -> list[bytes]:
    """The writes (``b""`` = EOF) an input stands for; see the module docstring."""
    if len(data) < 2:
        return [data] if data else [b""]
    mode, size, rest = data[0], data[1], data[2:]
    stream = b""
    if mode & 2:
        stream += make_challenge(NET, rest[:32].ljust(32, b"\x00"))
        rest = rest[32:]
    elif mode & 1:
        stream += REAL_MSG1
    if mode & 4:
        hello = rest[:96].ljust(96, b"\x00")
        rest = rest[96:]
        msg1, msg3 = forge_msg3(NET, SERVER_PK, SERVER_EPH, ATTACKER_EPH, hello)
        if not mode & 3:
            stream += msg1
        stream += msg3
    stream += rest
    writes = [stream[i : i + size] for i in range(0, len(stream), size)] if size else [stream]
    writes = [w for w in writes if w]
    if mode & 8 or not writes:
        writes.append(b"")
    return writes


def check_input(data: bytes) -> None:
    """One input. Raises (AssertionError or anything unexpected) only on a bug."""
    server = ServerHandshake(NET, SERVER_SEED, ephemeral_secret=SERVER_EPH)
    fed = b""
    for write in build_feed(data):
        state = server.state
        try:
            events = server.receive_data(write)
        except HandshakeFailed:
            assert server.state is HandshakeState.ERROR
            assert server.data_to_send() == b"", "bytes queued after a failure"
            return
        fed += write
        out = server.data_to_send()
        if state is HandshakeState.AWAIT_MSG1 and server.state is HandshakeState.AWAIT_MSG3:
            assert len(out) == 64 and _valid_challenge(fed[:64]), "msg2 after a bad msg1"
        if events:
            assert server.state is HandshakeState.COMPLETE and len(out) == 80
            remote = events[0].remote_public_key
            assert remote == CLIENT_PK, f"authenticated a key nobody signed for: {remote.hex()}"
            return
        if not write:
            raise AssertionError("EOF did not fail the handshake")
    assert server.state in (HandshakeState.AWAIT_MSG1, HandshakeState.AWAIT_MSG3)


def seed_inputs() -> list[bytes]:
    genuine = signed_hello(NET, SERVER_PK, SERVER_EPH, ATTACKER_EPH, CLIENT_SEED)
    return [
        b"\x00\x00" + REAL_MSG1,
        b"\x00\x00" + REAL_MSG1 + REAL_MSG3,
        b"\x01\x00" + REAL_MSG3,
        b"\x01\x07" + REAL_MSG3,
        b"\x09\x00" + REAL_MSG3[:50],
        b"\x02\x00" + bytes(32),
        b"\x02\x00" + b"\x01" + bytes(31),
        b"\x04\x00" + genuine,  # completes: the reference client's genuine signature
        b"\x04\x00" + bytes(32) + bytes(64),
        b"\x06\x00" + bytes(32) + genuine,
    ]


def plain_loop(runs: int = 100_000, seed: int = 0) -> int:
    return _plain_loop(runs, seed, check_input, seed_inputs())


if __name__ == "__main__":
    sys.exit(run(sys.argv, check_input, seed_inputs()))
