"""Secret Handshake v1: reference vectors, wired client/server pairs, abuse."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium
from nacl.signing import SigningKey

from p2pcrew.replicate.boxstream import BoxStreamDecoder, BoxStreamEncoder, DataReceived
from p2pcrew.replicate.shs import (
    MSG1_SIZE,
    MSG2_SIZE,
    MSG3_SIZE,
    MSG4_SIZE,
    P2PCREW_NETWORK_KEY,
    SSB_MAIN_NETWORK_KEY,
    ClientHandshake,
    HandshakeCompleted,
    HandshakeState,
    ServerHandshake,
    derive_box_keys,
    make_accept,
    make_auth,
    make_challenge,
    open_auth,
    open_challenge,
    public_key_to_curve25519,
    shared_secret,
    signing_keypair,
    verify_accept,
)
from p2pcrew.replicate.transport_errors import (
    BadAuthentication,
    BadNetworkKey,
    HandshakeFailed,
    InvalidPeerKey,
    LocalProtocolError,
    TransportError,
    WrongServerKey,
)

VECTOR_DIR = Path(__file__).resolve().parent.parent / "vectors"
STEPS: list[dict[str, Any]] = json.loads(
    (VECTOR_DIR / "test-secret-handshake.data.json").read_text()
)
SESSIONS: list[dict[str, Any]] = json.loads(
    (VECTOR_DIR / "shs1-sessions.generated.json").read_text()
)["sessions"]
h = bytes.fromhex
ZERO_NONCE = bytes(24)
_P = 2**255 - 19
# Curve25519 points of small order (libsodium's blacklist), each also with
# the ignored top bit set: every one must be refused, never crash.
LOW_ORDER_POINTS = [
    (x | top).to_bytes(32, "little")
    for x in (
        0,
        1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
        _P - 1,
        _P,
        _P + 1,
    )
    for top in (0, 1 << 255)
]


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def ephemeral_from_seed(seed: bytes) -> tuple[bytes, bytes]:
    """How the reference makes its ephemeral Curve25519 keypair: (pk, sk)."""
    pk, sk = sodium.crypto_sign_seed_keypair(seed)
    return (
        sodium.crypto_sign_ed25519_pk_to_curve25519(pk),
        sodium.crypto_sign_ed25519_sk_to_curve25519(sk),
    )


# --- a wired client/server pair (h11's ConnectionPair) -----------------------


@dataclasses.dataclass
class Pair:
    client: ClientHandshake
    server: ServerHandshake
    client_key: SigningKey
    server_key: SigningKey

    @classmethod
    def new(
        cls, client_net: bytes = P2PCREW_NETWORK_KEY, server_net: bytes = P2PCREW_NETWORK_KEY
    ) -> Pair:
        ck, sk = SigningKey.generate(), SigningKey.generate()
        return cls(
            ClientHandshake(client_net, ck, sk.verify_key.encode()),
            ServerHandshake(server_net, sk),
            ck,
            sk,
        )

    def messages(self) -> list[bytes]:
        """Run a correct handshake, returning msg1..msg4."""
        msg1 = self.client.data_to_send()
        self.server.receive_data(msg1)
        msg2 = self.server.data_to_send()
        self.client.receive_data(msg2)
        msg3 = self.client.data_to_send()
        self.server.receive_data(msg3)
        msg4 = self.server.data_to_send()
        self.client.receive_data(msg4)
        return [msg1, msg2, msg3, msg4]


def test_network_key_constants() -> None:
    derived = hashlib.blake2b(b"p2pcrew network key v1", digest_size=32).digest()
    assert derived == P2PCREW_NETWORK_KEY
    assert SSB_MAIN_NETWORK_KEY.hex() == (
        "d4a1cb88a66f02f8db635ce26441cc5dac1b08420ceaac230839b755845a9ffb"
    )


# --- shs1-sessions.generated.json: complete sessions --------------------------


@pytest.mark.parametrize("session", SESSIONS, ids=[s["name"] for s in SESSIONS])
def test_full_session_vector(session: dict[str, Any]) -> None:
    net = h(session["network_key"])
    c, s = session["client"], session["server"]
    for side in (c, s):
        assert signing_keypair(h(side["longterm_seed"])) == (
            h(side["longterm_sk"]),
            h(side["longterm_pk"]),
        )
        assert ephemeral_from_seed(h(side["ephemeral_seed"])) == (
            h(side["ephemeral_pk"]),
            h(side["ephemeral_sk"]),
        )
    client = ClientHandshake(
        net, h(c["longterm_sk"]), h(s["longterm_pk"]), ephemeral_secret=h(c["ephemeral_sk"])
    )
    server = ServerHandshake(net, h(s["longterm_sk"]), ephemeral_secret=h(s["ephemeral_sk"]))
    pair = Pair(
        client, server, SigningKey(h(c["longterm_seed"])), SigningKey(h(s["longterm_seed"]))
    )
    assert [m.hex() for m in pair.messages()] == [session[f"msg{i}"] for i in range(1, 5)]
    assert client.state is server.state is HandshakeState.COMPLETE

    inter = session["intermediate"]
    ab, a_bob, b_alice = (h(inter[f"shared_secret_{k}"]) for k in ("ab", "aB", "Ab"))
    assert shared_secret(h(c["ephemeral_sk"]), h(s["ephemeral_pk"])) == ab
    assert sha256(net, ab, a_bob).hex() == inter["msg3_secretbox_key"]
    assert sha256(net, ab, a_bob, b_alice).hex() == inter["msg4_secretbox_key"]
    hello = sodium.crypto_secretbox_open_easy(
        h(session["msg3"]), ZERO_NONCE, sha256(net, ab, a_bob)
    )
    assert hello.hex() == inter["detached_signature_A"] + c["longterm_pk"]
    sig_b = sodium.crypto_secretbox_open_easy(
        h(session["msg4"]), ZERO_NONCE, sha256(net, ab, a_bob, b_alice)
    )
    assert sig_b.hex() == inter["detached_signature_B"]


def _completed(machine: ClientHandshake | ServerHandshake, msg: bytes) -> HandshakeCompleted:
    events = machine.receive_data(msg)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize("session", SESSIONS, ids=[s["name"] for s in SESSIONS])
def test_session_keys_outcome_and_first_box_stream_messages(session: dict[str, Any]) -> None:
    net = h(session["network_key"])
    c, s = session["client"], session["server"]
    client = ClientHandshake(
        net, h(c["longterm_sk"]), h(s["longterm_pk"]), ephemeral_secret=h(c["ephemeral_sk"])
    )
    server = ServerHandshake(net, h(s["longterm_sk"]), ephemeral_secret=h(s["ephemeral_sk"]))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server_done = _completed(server, client.data_to_send())
    client_done = _completed(client, server.data_to_send())
    assert client_done.remote_public_key.hex() == s["longterm_pk"]
    assert server_done.remote_public_key.hex() == c["longterm_pk"]
    for done, name in ((client_done, "client"), (server_done, "server")):
        keys = done.box_keys
        expected = session[f"{name}_session"]
        assert keys.encrypt_key.hex() == expected["encrypt_key"]
        assert keys.encrypt_nonce.hex() == expected["encrypt_nonce"]
        assert keys.decrypt_key.hex() == expected["decrypt_key"]
        assert keys.decrypt_nonce.hex() == expected["decrypt_nonce"]
        assert keys.to_bytes().hex() == session[f"shs1_testsuite_{name}_outcome"]
        assert len(keys.to_bytes()) == 112

    directions = (
        ("client_to_server", client_done, server_done),
        ("server_to_client", server_done, client_done),
    )
    for direction, sender, receiver in directions:
        vector = session["box_stream"][direction]
        encoder = BoxStreamEncoder(sender.box_keys.encrypt_key, sender.box_keys.encrypt_nonce)
        for message in vector["messages"]:
            encoder.send_data(h(message))
        encoder.send_goodbye()
        assert encoder.data_to_send().hex() == vector["stream"]
        keys = receiver.box_keys
        events = BoxStreamDecoder(keys.decrypt_key, keys.decrypt_nonce).receive_data(
            h(vector["stream"])
        )
        assert [e.data.hex() for e in events if isinstance(e, DataReceived)] == vector["messages"]


# --- test-secret-handshake.data.json: every recorded step --------------------


def _is_client(state: dict[str, Any]) -> bool:
    return "seed" in state  # only the client's options carry a seed field


def _fresh_server(state: dict[str, Any]) -> ServerHandshake:
    local = state["local"]
    return ServerHandshake(
        h(state["app_key"]), h(local["secretKey"]), ephemeral_secret=h(local["kx_sk"])
    )


def _replayed_server(state: dict[str, Any]) -> ServerHandshake:
    """A server that already accepted msg1 (rebuilt from the recorded state)."""
    server = _fresh_server(state)
    server.receive_data(h(state["remote"]["app_mac"] + state["remote"]["kx_pk"]))
    return server


def _fresh_client(state: dict[str, Any]) -> ClientHandshake:
    local = state["local"]
    return ClientHandshake(
        h(state["app_key"]),
        h(local["secretKey"]),
        h(state["remote"]["publicKey"]),
        ephemeral_secret=h(local["kx_sk"]),
    )


def _replayed_client(state: dict[str, Any]) -> ClientHandshake:
    """A client that already accepted msg2 (rebuilt from the recorded state)."""
    client = _fresh_client(state)
    client.receive_data(h(state["remote"]["app_mac"] + state["remote"]["kx_pk"]))
    return client


def _secrets(state: dict[str, Any], *names: str) -> tuple[bytes, ...]:
    return tuple(h(state[n]) for n in names)


def check_initialize(state: dict[str, Any], result: Any, _msg: list[Any]) -> None:
    local = state["local"]
    assert ephemeral_from_seed(h(state["random"])) == (h(local["kx_pk"]), h(local["kx_sk"]))
    assert sodium.crypto_scalarmult_base(h(local["kx_sk"])) == h(local["kx_pk"])
    assert make_challenge(h(state["app_key"]), h(local["kx_pk"]))[:32] == h(local["app_mac"])
    assert signing_keypair(h(local["secretKey"]))[1] == h(local["publicKey"])
    assert result["local"] == local


def check_create_challenge(state: dict[str, Any], result: Any, _msg: list[Any]) -> None:
    assert make_challenge(h(state["app_key"]), h(state["local"]["kx_pk"])) == h(result)
    if _is_client(state):
        assert _fresh_client(state).data_to_send() == h(result)
    else:
        assert _replayed_server(state).data_to_send() == h(result)


def check_verify_challenge(state: dict[str, Any], result: Any, msg: list[Any]) -> None:
    net, challenge = h(state["app_key"]), h(msg[0])
    machine = _fresh_client(state) if _is_client(state) else _fresh_server(state)
    machine.data_to_send()
    if result is None:
        with pytest.raises(BadNetworkKey):
            open_challenge(net, challenge)
        with pytest.raises(BadNetworkKey):
            machine.receive_data(challenge)
        assert machine.data_to_send() == b""  # no answer to a bad challenge
        return
    remote_kx = open_challenge(net, challenge)
    assert remote_kx == h(result["remote"]["kx_pk"])
    assert challenge[:32] == h(result["remote"]["app_mac"])
    ab = shared_secret(h(state["local"]["kx_sk"]), remote_kx)
    assert ab == h(result["secret"])
    assert sha256(ab) == h(result["shash"])
    assert machine.receive_data(challenge) == []


def check_client_verify_challenge(state: dict[str, Any], result: Any, msg: list[Any]) -> None:
    if result is None:
        with pytest.raises(BadNetworkKey):
            _fresh_client(state).receive_data(h(msg[0]))
        return
    net, local = h(state["app_key"]), state["local"]
    server_pk = h(state["remote"]["publicKey"])
    a_bob = shared_secret(h(local["kx_sk"]), public_key_to_curve25519(server_pk))
    assert a_bob == h(result["a_bob"])
    assert sha256(net, h(result["secret"]), a_bob) == h(result["secret2"])
    hello, _ = make_auth(net, _secrets(result, "secret", "a_bob"), h(local["secretKey"]), server_pk)
    assert hello == h(result["local"]["hello"])


def check_client_create_auth(state: dict[str, Any], result: Any, _msg: list[Any]) -> None:
    net, local = h(state["app_key"]), state["local"]
    secrets = _secrets(state, "secret", "a_bob")
    _, msg3 = make_auth(net, secrets, h(local["secretKey"]), h(state["remote"]["publicKey"]))
    assert msg3 == h(result)
    assert len(msg3) == MSG3_SIZE
    assert _replayed_client(state).data_to_send()[MSG1_SIZE:] == h(result)


def check_server_verify_auth(state: dict[str, Any], result: Any, msg: list[Any]) -> None:
    net, local, msg3 = h(state["app_key"]), state["local"], h(msg[0])
    server = _replayed_server(state)
    assert len(server.data_to_send()) == MSG2_SIZE
    secrets = _secrets(state, "secret", "a_bob")
    if result is None:
        with pytest.raises(BadAuthentication):
            open_auth(net, secrets, h(local["publicKey"]), msg3)
        with pytest.raises(BadAuthentication):
            server.receive_data(msg3)
        assert server.data_to_send() == b""  # never msg4 after a bad msg3
        return
    hello = open_auth(net, secrets, h(local["publicKey"]), msg3)
    assert hello == h(result["remote"]["hello"])
    assert hello[64:] == h(result["remote"]["publicKey"])
    b_alice = shared_secret(h(local["kx_sk"]), public_key_to_curve25519(hello[64:]))
    assert b_alice == h(result["b_alice"])
    assert sha256(net, *secrets, b_alice) == h(result["secret3"])
    assert _completed(server, msg3).remote_public_key == hello[64:]


def check_server_create_accept(state: dict[str, Any], result: Any, _msg: list[Any]) -> None:
    net, hello = h(state["app_key"]), h(state["remote"]["hello"])
    secrets = _secrets(state, "secret", "a_bob", "b_alice")
    assert make_accept(net, secrets, hello, h(state["local"]["secretKey"])) == h(result)
    server = _replayed_server(state)
    server.receive_data(sodium.crypto_secretbox_easy(hello, ZERO_NONCE, h(state["secret2"])))
    assert server.data_to_send()[MSG2_SIZE:] == h(result)


def check_client_verify_accept(state: dict[str, Any], result: Any, msg: list[Any]) -> None:
    net, local, remote = h(state["app_key"]), state["local"], state["remote"]
    curve_sk = sodium.crypto_sign_ed25519_sk_to_curve25519(h(local["secretKey"]))
    assert shared_secret(curve_sk, h(remote["kx_pk"])) == h(result["b_alice"])
    secrets = _secrets(result, "secret", "a_bob", "b_alice")
    assert sha256(net, *secrets) == h(result["secret3"])
    verify_accept(net, secrets, h(local["hello"]), h(remote["publicKey"]), h(msg[0]))
    client = _replayed_client(state)
    assert _completed(client, h(msg[0])).remote_public_key == h(remote["publicKey"])


def check_clean(state: dict[str, Any], result: Any, _msg: list[Any], index: int) -> None:
    # Per the vector README: the secrets are zeroed in `clean`, so take them
    # from the last earlier vector of the same session (same local kx_pk).
    earlier = next(
        v["args"][0]
        for v in reversed(STEPS[:index])
        if isinstance(v["args"][0], dict)
        and v["args"][0].get("local", {}).get("kx_pk") == state["local"]["kx_pk"]
        and v["args"][0].get("secret3")
    )
    assert sha256(h(earlier["secret3"])) == h(state["secret"])
    local, remote = state["local"], state["remote"]
    keys = derive_box_keys(
        h(state["app_key"]),
        _secrets(earlier, "secret", "a_bob", "b_alice"),
        (h(local["publicKey"]), h(local["app_mac"])),
        (h(remote["publicKey"]), h(remote["app_mac"])),
    )
    assert keys.encrypt_key == h(result["encryptKey"])
    assert keys.decrypt_key == h(result["decryptKey"])


def check_to_keys(arg: Any, result: Any) -> None:
    key = h(arg) if isinstance(arg, str) else h(arg["secretKey"])
    assert signing_keypair(key) == (h(result["secretKey"]), h(result["publicKey"]))


CHECKS = {
    "initialize": check_initialize,
    "createChallenge": check_create_challenge,
    "verifyChallenge": check_verify_challenge,
    "clientVerifyChallenge": check_client_verify_challenge,
    "clientCreateAuth": check_client_create_auth,
    "serverVerifyAuth": check_server_verify_auth,
    "serverCreateAccept": check_server_create_accept,
    "clientVerifyAccept": check_client_verify_accept,
}


def test_step_vector_file_is_complete() -> None:
    assert len(STEPS) == 159
    assert sum(v["result"] is None for v in STEPS) == 7
    assert {v["name"] for v in STEPS} == {*CHECKS, "clean", "toKeys"}


@pytest.mark.parametrize(
    "index", range(len(STEPS)), ids=[f"{i}-{v['name']}" for i, v in enumerate(STEPS)]
)
def test_step_vector(index: int) -> None:
    vector = STEPS[index]
    name, args, result = vector["name"], vector["args"], vector["result"]
    if name == "toKeys":
        check_to_keys(args[0], result)
    elif name == "clean":
        check_clean(args[0], result, args[1:], index)
    else:
        CHECKS[name](args[0], result, args[1:])


# --- wired pairs: success, wrong keys, wrong messages, bit flips -------------


def test_pair_completes_with_random_ephemeral_keys() -> None:
    pair = Pair.new()
    msgs = pair.messages()
    assert [len(m) for m in msgs] == [MSG1_SIZE, MSG2_SIZE, MSG3_SIZE, MSG4_SIZE]
    assert pair.client.state is pair.server.state is HandshakeState.COMPLETE
    assert pair.client.local_public_key == pair.client_key.verify_key.encode()
    other = Pair.new().messages()
    assert msgs[0] != other[0]  # fresh ephemeral keys every time


def test_pair_box_keys_mirror_each_other() -> None:
    pair = Pair.new()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    server_done = _completed(pair.server, pair.client.data_to_send())
    client_done = _completed(pair.client, pair.server.data_to_send())
    assert server_done.remote_public_key == pair.client_key.verify_key.encode()
    assert client_done.remote_public_key == pair.server_key.verify_key.encode()
    ck, sk = client_done.box_keys, server_done.box_keys
    assert (ck.encrypt_key, ck.encrypt_nonce) == (sk.decrypt_key, sk.decrypt_nonce)
    assert (ck.decrypt_key, ck.decrypt_nonce) == (sk.encrypt_key, sk.encrypt_nonce)
    assert ck.encrypt_key != ck.decrypt_key


def test_wrong_network_key_fails_on_both_sides() -> None:
    pair = Pair.new(client_net=SSB_MAIN_NETWORK_KEY)
    msg1 = pair.client.data_to_send()
    with pytest.raises(BadNetworkKey, match="different network key"):
        pair.server.receive_data(msg1)
    assert pair.server.data_to_send() == b""  # never msg2 after a bad msg1
    with pytest.raises(BadNetworkKey, match="hung up"):
        pair.client.receive_data(b"")  # what the client sees: the server hangs up


def test_wrong_network_key_detected_by_client_from_msg2() -> None:
    pair = Pair.new(server_net=SSB_MAIN_NETWORK_KEY)
    other = ServerHandshake(SSB_MAIN_NETWORK_KEY, SigningKey.generate())
    other.receive_data(make_challenge(SSB_MAIN_NETWORK_KEY, bytes(range(1, 33))))
    with pytest.raises(BadNetworkKey):
        pair.client.receive_data(other.data_to_send())
    assert pair.client.data_to_send()[MSG1_SIZE:] == b""


def test_wrong_server_key_fails_on_both_sides() -> None:
    server_key, impostor_target = SigningKey.generate(), SigningKey.generate()
    client = ClientHandshake(
        P2PCREW_NETWORK_KEY, SigningKey.generate(), impostor_target.verify_key.encode()
    )
    server = ServerHandshake(P2PCREW_NETWORK_KEY, server_key)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    with pytest.raises(BadAuthentication, match="another public key"):
        server.receive_data(client.data_to_send())
    assert server.data_to_send() == b""  # never msg4 after a bad msg3
    with pytest.raises(WrongServerKey, match="key we dialled"):
        client.receive_data(b"")


def test_impostor_server_cannot_forge_msg4() -> None:
    """A server that relays someone else's msg2 cannot produce a valid msg4."""
    pair = Pair.new()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    with pytest.raises(BadAuthentication):
        pair.client.receive_data(Pair.new().messages()[3])


@pytest.mark.parametrize(
    ("state", "wrong", "error"),
    [
        (HandshakeState.AWAIT_MSG1, "msg3", HandshakeFailed),  # too long: out of turn
        (HandshakeState.AWAIT_MSG1, "random64", BadNetworkKey),
        (HandshakeState.AWAIT_MSG2, "msg4", HandshakeFailed),  # 80 bytes: out of turn
        (HandshakeState.AWAIT_MSG2, "random64", BadNetworkKey),
        (HandshakeState.AWAIT_MSG3, "msg1+msg1", BadAuthentication),
        (HandshakeState.AWAIT_MSG3, "replayed msg3", BadAuthentication),
        (HandshakeState.AWAIT_MSG3, "random112", BadAuthentication),
        (HandshakeState.AWAIT_MSG4, "reflected msg3", BadAuthentication),
        (HandshakeState.AWAIT_MSG4, "replayed msg4", BadAuthentication),
        (HandshakeState.AWAIT_MSG4, "random80", BadAuthentication),
    ],
)
def test_wrong_message_at_every_step(
    state: HandshakeState, wrong: str, error: type[HandshakeFailed]
) -> None:
    pair = Pair.new()
    other = Pair.new().messages()
    msg1 = pair.client.data_to_send()
    if state is not HandshakeState.AWAIT_MSG1:
        pair.server.receive_data(msg1)
    if state is HandshakeState.AWAIT_MSG4:
        pair.client.receive_data(pair.server.data_to_send())
    machine = pair.server if state.name in ("AWAIT_MSG1", "AWAIT_MSG3") else pair.client
    assert machine.state is state
    pending = machine.data_to_send()
    payload = {
        "msg3": other[2],
        "msg4": other[3],
        "random64": bytes(range(64)),
        "random80": bytes(range(80)),
        "random112": bytes(range(112)),
        "msg1+msg1": msg1 + msg1,
        "replayed msg3": other[2],
        "reflected msg3": pending,
        "replayed msg4": other[3],
    }[wrong]
    with pytest.raises(error):
        machine.receive_data(payload)
    assert machine.state is HandshakeState.ERROR
    assert machine.data_to_send() == b""
    with pytest.raises(LocalProtocolError, match="failed"):
        machine.receive_data(b"x")


def test_client_rejects_its_own_reflected_challenge() -> None:
    client = Pair.new().client
    msg1 = client.data_to_send()
    client.receive_data(msg1)  # valid MAC, so accepted as a challenge...
    msg3 = client.data_to_send()
    with pytest.raises(BadAuthentication):  # ...but it cannot authenticate itself
        client.receive_data(msg3[:MSG4_SIZE])


@pytest.mark.parametrize("which", [0, 1, 2, 3], ids=["msg1", "msg2", "msg3", "msg4"])
def test_a_bit_flip_anywhere_in_any_message_is_caught(which: int) -> None:
    size = [MSG1_SIZE, MSG2_SIZE, MSG3_SIZE, MSG4_SIZE][which]
    expected = BadNetworkKey if which < 2 else BadAuthentication
    for index in range(size):
        pair = Pair.new()
        senders = [pair.client, pair.server, pair.client, pair.server]
        receivers = [pair.server, pair.client, pair.server, pair.client]
        for step in range(which):
            receivers[step].receive_data(senders[step].data_to_send())
        message = bytearray(senders[which].data_to_send())
        message[index] ^= 1 << (index % 8)
        with pytest.raises(expected):
            receivers[which].receive_data(bytes(message))
        assert receivers[which].data_to_send() == b""


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8] + p.hex()[-2:])
def test_low_order_ephemeral_key_is_refused_by_the_server(point: bytes) -> None:
    server = ServerHandshake(P2PCREW_NETWORK_KEY, SigningKey.generate())
    with pytest.raises(InvalidPeerKey, match="low-order"):
        server.receive_data(make_challenge(P2PCREW_NETWORK_KEY, point))
    assert server.data_to_send() == b""


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8] + p.hex()[-2:])
def test_low_order_ephemeral_key_is_refused_by_the_client(point: bytes) -> None:
    client = Pair.new().client
    client.data_to_send()
    with pytest.raises(InvalidPeerKey):
        client.receive_data(make_challenge(P2PCREW_NETWORK_KEY, point))
    assert client.data_to_send() == b""
    with pytest.raises(InvalidPeerKey):
        shared_secret(bytes(range(32)), point)


@pytest.mark.parametrize("point", [*LOW_ORDER_POINTS[:7], b"\xff" * 32])
def test_invalid_long_term_key_of_the_client_is_a_handshake_failure(point: bytes) -> None:
    """A client that knows the network key sends a box with a bad identity in it."""
    server_key = SigningKey.generate()
    server = ServerHandshake(P2PCREW_NETWORK_KEY, server_key)
    eph_sk = bytes(range(32))
    server.receive_data(make_challenge(P2PCREW_NETWORK_KEY, sodium.crypto_scalarmult_base(eph_sk)))
    server_eph = open_challenge(P2PCREW_NETWORK_KEY, server.data_to_send())
    server_curve = public_key_to_curve25519(server_key.verify_key.encode())
    ab, a_bob = shared_secret(eph_sk, server_eph), shared_secret(eph_sk, server_curve)
    hello = bytes(64) + point
    msg3 = sodium.crypto_secretbox_easy(hello, ZERO_NONCE, sha256(P2PCREW_NETWORK_KEY, ab, a_bob))
    with pytest.raises((InvalidPeerKey, BadAuthentication)):
        server.receive_data(msg3)
    assert server.data_to_send() == b""


@pytest.mark.parametrize("point", [*LOW_ORDER_POINTS[:7], b"\xff" * 32])
def test_dialling_an_invalid_server_key_is_refused(point: bytes) -> None:
    with pytest.raises(InvalidPeerKey, match="not a valid Ed25519"):
        ClientHandshake(P2PCREW_NETWORK_KEY, SigningKey.generate(), point)


@pytest.mark.parametrize(
    ("machine_state", "error", "hint"),
    [
        (HandshakeState.AWAIT_MSG1, HandshakeFailed, "gave up"),
        (HandshakeState.AWAIT_MSG2, BadNetworkKey, "network key"),
        (HandshakeState.AWAIT_MSG3, BadNetworkKey, "network key"),
        (HandshakeState.AWAIT_MSG4, WrongServerKey, "key we dialled"),
    ],
)
def test_hang_up_in_every_state(
    machine_state: HandshakeState, error: type[HandshakeFailed], hint: str
) -> None:
    pair = Pair.new()
    msg1 = pair.client.data_to_send()
    if machine_state is not HandshakeState.AWAIT_MSG1:
        pair.server.receive_data(msg1[:10] + msg1[10:])
    if machine_state is HandshakeState.AWAIT_MSG4:
        pair.client.receive_data(pair.server.data_to_send())
    machine = pair.server if machine_state.name in ("AWAIT_MSG1", "AWAIT_MSG3") else pair.client
    assert machine.state is machine_state
    machine.receive_data(b"\x00")  # a partial message, then EOF
    with pytest.raises(error, match=hint) as info:
        machine.receive_data(b"")
    assert "1 of" in str(info.value)


def test_trailing_box_stream_bytes_after_msg4_are_kept() -> None:
    pair = Pair.new()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    server_done = _completed(pair.server, pair.client.data_to_send())
    keys = server_done.box_keys
    encoder = BoxStreamEncoder(keys.encrypt_key, keys.encrypt_nonce)
    encoder.send_data(b"early bird")
    client_done = _completed(pair.client, pair.server.data_to_send() + encoder.data_to_send())
    decoder = BoxStreamDecoder(client_done.box_keys.decrypt_key, client_done.box_keys.decrypt_nonce)
    assert decoder.receive_data(pair.client.trailing_data) == [DataReceived(b"early bird")]
    with pytest.raises(LocalProtocolError, match="BoxStreamDecoder"):
        pair.client.receive_data(b"more")


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_any_chunking_completes_and_never_overbuffers(data: st.DataObject) -> None:
    pair = Pair.new()
    sizes = [MSG1_SIZE, MSG2_SIZE, MSG3_SIZE, MSG4_SIZE]
    route = [
        (pair.client, pair.server),
        (pair.server, pair.client),
        (pair.client, pair.server),
        (pair.server, pair.client),
    ]
    for (sender, receiver), size in zip(route, sizes, strict=True):
        message = sender.data_to_send()
        assert len(message) == size
        cuts = sorted(data.draw(st.lists(st.integers(1, size - 1), max_size=6), label="cuts"))
        for start, end in zip([0, *cuts], [*cuts, size], strict=True):
            if end > start:
                receiver.receive_data(message[start:end])
            assert len(receiver._buffer) < size  # white-box: at most one message
    assert pair.client.state is pair.server.state is HandshakeState.COMPLETE


@given(state_index=st.integers(0, 3), junk=st.binary(min_size=1, max_size=300))
@settings(max_examples=150, deadline=None)
def test_random_input_in_every_state_only_raises_handshake_failures(
    state_index: int, junk: bytes
) -> None:
    pair = Pair.new()
    machines = [pair.server, pair.client, pair.server, pair.client]
    sequence = [pair.client, pair.server, pair.client]
    for step in range(state_index):
        machines[step].receive_data(sequence[step].data_to_send())
    target = machines[state_index]
    target.data_to_send()
    try:
        target.receive_data(junk)
        target.receive_data(b"")
    except HandshakeFailed:
        assert target.state is HandshakeState.ERROR
        assert target.data_to_send() == b""
    else:  # pragma: no cover - a random message passing a MAC is 2**-256
        pytest.fail("random bytes were accepted")


def test_local_misuse_and_bad_configuration() -> None:
    key = SigningKey.generate()
    with pytest.raises(ValueError, match="32 bytes"):
        ServerHandshake(bytes(31), key)
    with pytest.raises(ValueError, match="does not match"):
        ServerHandshake(P2PCREW_NETWORK_KEY, key.encode() + bytes(32))
    with pytest.raises(ValueError, match="32-byte seed"):
        ServerHandshake(P2PCREW_NETWORK_KEY, bytes(16))
    with pytest.raises(ValueError, match="ephemeral"):
        ServerHandshake(P2PCREW_NETWORK_KEY, key, ephemeral_secret=bytes(5))
    assert signing_keypair(key.encode()) == signing_keypair(key)
    assert not issubclass(LocalProtocolError, TransportError)
    for error in (BadNetworkKey, BadAuthentication, InvalidPeerKey, WrongServerKey):
        assert issubclass(error, HandshakeFailed)
        assert issubclass(error, TransportError)


def test_completed_event_is_frozen_and_keeps_secrets_out_of_repr() -> None:
    pair = Pair.new()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    done = _completed(pair.server, pair.client.data_to_send())
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.remote_public_key = b""  # type: ignore[misc]
    assert not hasattr(done, "__dict__")  # slots
    assert done.box_keys.encrypt_key.hex() not in repr(done)
    assert "ServerHandshake COMPLETE" in repr(pair.server)
