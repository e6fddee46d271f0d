"""Secret Handshake v1 (the Scuttlebutt handshake), sans-IO.

Theory of operation
-------------------
This module does no I/O (like h11/h2). ``ClientHandshake`` and
``ServerHandshake`` take the peer's bytes through ``receive_data()``
(``b""`` means EOF) and hand the bytes they want sent out through
``data_to_send()``. The client's msg1 is queued by the constructor.

    client                                    server
    msg1  hmac(N, a)[:32] || a        ->                        (64 bytes)
                                      <-  msg2  hmac(N, b)[:32] || b  (64)
    msg3  secretbox(sig_A || A, key=sha256(N||ab||aB)) ->       (112 bytes)
                                      <-  msg4  secretbox(sig_B, key=sha256(N||ab||aB||Ab))  (80)

(a/b are the ephemeral Curve25519 keys, A/B the long-term Ed25519 keys, N the
network key, ``ab`` etc. Curve25519 shared secrets, secretbox nonces are zero.)

Each machine moves through ``HandshakeState`` by ``_TRANSITIONS``: a state
names the one message it waits for, its size, and the state that follows.
It buffers at most that one message. Bytes beyond the message in the same
turn are a protocol violation, except after the last message, where they are
the start of the box-stream and are kept in ``trailing_data``. Any failure
moves to the terminal ``ERROR`` state, drops anything queued for sending (so
a server never answers a bad msg1 or msg3) and raises a ``HandshakeFailed``
subclass; the caller then hangs up. On success the machine emits
``HandshakeCompleted`` with the peer's long-term key and the box-stream keys.

The pure functions below (``make_challenge`` ... ``derive_box_keys``) are the
protocol steps; the machines only sequence them. They are public so the
recorded reference vectors can be checked step by step. Steps and machines
share this module (a little over 400 lines) so the protocol reads in one place.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final, NoReturn

import nacl.exceptions
from nacl import bindings as sodium
from nacl.signing import SigningKey

from p2pcrew.replicate.boxstream import BoxStreamKeys
from p2pcrew.replicate.transport_errors import (
    BadAuthentication,
    BadNetworkKey,
    HandshakeFailed,
    InvalidPeerKey,
    LocalProtocolError,
    WrongServerKey,
)

#: The main Scuttlebutt network ("SSB caps.shs").
SSB_MAIN_NETWORK_KEY: Final = bytes.fromhex(
    "d4a1cb88a66f02f8db635ce26441cc5dac1b08420ceaac230839b755845a9ffb"
)
#: p2pcrew's own network: BLAKE2b-256(b"p2pcrew network key v1"). Separate
#: from SSB so p2pcrew peers never handshake with SSB peers by accident.
P2PCREW_NETWORK_KEY: Final = bytes.fromhex(
    "1e32d2cfe894c3e36f80843b9f93cbeb60f41a236919c315ed3f5b7f3e8614bc"
)

NETWORK_KEY_SIZE: Final = 32
MSG1_SIZE: Final = 64
MSG2_SIZE: Final = 64
MSG3_SIZE: Final = 112
MSG4_SIZE: Final = 80
_ZERO_NONCE: Final = bytes(24)
_SIG: Final = 64


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _auth(network_key: bytes, data: bytes) -> bytes:
    """crypto_auth: HMAC-SHA-512 truncated to 32 bytes."""
    return hmac.digest(network_key, data, "sha512")[:32]


def signing_keypair(key: SigningKey | bytes) -> tuple[bytes, bytes]:
    """Return (libsodium 64-byte secret key, 32-byte public key).

    ``key`` is a SigningKey, a 32-byte seed or libsodium's 64-byte seed||pk.
    Raises ValueError if it has another size or its public half is wrong.
    """
    seed = key.encode() if isinstance(key, SigningKey) else bytes(key)
    if len(seed) not in (32, 64):
        raise ValueError("a signing key is a 32-byte seed or a 64-byte seed||public key")
    public, secret = sodium.crypto_sign_seed_keypair(seed[:32])
    if len(seed) == 64 and not hmac.compare_digest(seed, secret):
        raise ValueError("the 64-byte secret key's public half does not match its seed")
    return secret, public


def make_challenge(network_key: bytes, ephemeral_pk: bytes) -> bytes:
    """Build msg1 or msg2: hmac(N, ephemeral pk)[:32] || ephemeral pk."""
    return _auth(network_key, ephemeral_pk) + ephemeral_pk


def open_challenge(network_key: bytes, msg: bytes, sender: str = "peer") -> bytes:
    """Check msg1/msg2 and return the sender's ephemeral key. Raises BadNetworkKey."""
    mac, ephemeral_pk = msg[:32], msg[32:]
    if not hmac.compare_digest(mac, _auth(network_key, ephemeral_pk)):
        raise BadNetworkKey(
            f"the {sender}'s challenge was made with a different network key: it is not a "
            "peer of this network (check that both sides use the same network key)"
        )
    return ephemeral_pk


def shared_secret(secret: bytes, public: bytes) -> bytes:
    """Curve25519 scalar multiplication. Raises InvalidPeerKey on low-order points."""
    try:
        result = sodium.crypto_scalarmult(secret, public)
    except (RuntimeError, nacl.exceptions.CryptoError):
        result = bytes(32)  # libsodium refuses an all-zero result: a low-order point
    if hmac.compare_digest(result, bytes(32)):
        raise InvalidPeerKey(
            f"the peer's Curve25519 key {public.hex()} is a low-order point; "
            "a correct implementation never sends one, so the peer is broken or hostile"
        )
    return result


def public_key_to_curve25519(public_key: bytes) -> bytes:
    """Convert an Ed25519 public key. Raises InvalidPeerKey if it is not a valid point."""
    try:
        return sodium.crypto_sign_ed25519_pk_to_curve25519(public_key)
    except (RuntimeError, ValueError, nacl.exceptions.CryptoError) as exc:
        raise InvalidPeerKey(
            f"{public_key.hex()} is not a valid Ed25519 public key (check the key you dialled)"
        ) from exc


Secrets = tuple[bytes, ...]
"""(ab, aB) for msg3, (ab, aB, Ab) for msg4: the box key is sha256(N || secrets)."""

_MSG3_UNREADABLE: Final = (
    "the client's authentication (msg3) did not decrypt: most likely the client dialled "
    "another public key than ours"
)
_MSG4_UNREADABLE: Final = (
    "the server's acceptance (msg4) did not decrypt: the server does not hold the "
    "secret key for the public key we dialled"
)


def make_auth(
    network_key: bytes, secrets: Secrets, client_sk: bytes, server_pk: bytes
) -> tuple[bytes, bytes]:
    """Client side of msg3. Returns (hello = sig_A || A, msg3)."""
    signed = network_key + server_pk + _sha256(secrets[0])
    hello = sodium.crypto_sign(signed, client_sk)[:_SIG] + client_sk[32:]
    return hello, sodium.crypto_secretbox_easy(hello, _ZERO_NONCE, _sha256(network_key, *secrets))


def open_auth(network_key: bytes, secrets: Secrets, server_pk: bytes, msg3: bytes) -> bytes:
    """Server side of msg3: open it, check sig_A, return hello. Raises BadAuthentication."""
    hello = _open_box(msg3, network_key, secrets, _MSG3_UNREADABLE)
    signed = network_key + server_pk + _sha256(secrets[0])
    _verify(hello[:_SIG], signed, hello[_SIG:], "client")
    return hello


def make_accept(network_key: bytes, secrets: Secrets, hello: bytes, server_sk: bytes) -> bytes:
    """Server side of msg4: secretbox(sig_B over N || hello || sha256(ab))."""
    sig = sodium.crypto_sign(network_key + hello + _sha256(secrets[0]), server_sk)[:_SIG]
    return sodium.crypto_secretbox_easy(sig, _ZERO_NONCE, _sha256(network_key, *secrets))


def verify_accept(
    network_key: bytes, secrets: Secrets, hello: bytes, server_pk: bytes, msg4: bytes
) -> None:
    """Client side of msg4: open it and check sig_B. Raises BadAuthentication."""
    sig = _open_box(msg4, network_key, secrets, _MSG4_UNREADABLE)
    _verify(sig, network_key + hello + _sha256(secrets[0]), server_pk, "server")


def derive_box_keys(
    network_key: bytes,
    secrets: Secrets,
    local: tuple[bytes, bytes],
    remote: tuple[bytes, bytes],
) -> BoxStreamKeys:
    """Box-stream keys from (ab, aB, Ab) and each side's (long-term pk, challenge mac).

    We encrypt with sha256(S || remote pk) and the remote mac's first 24 bytes
    as nonce, where S = sha256(sha256(N||ab||aB||Ab)); decryption mirrors it.
    """
    shared = _sha256(_sha256(network_key, *secrets))
    return BoxStreamKeys(
        encrypt_key=_sha256(shared, remote[0]),
        encrypt_nonce=remote[1][:24],
        decrypt_key=_sha256(shared, local[0]),
        decrypt_nonce=local[1][:24],
    )


def _open_box(boxed: bytes, network_key: bytes, secrets: Secrets, problem: str) -> bytes:
    try:
        return sodium.crypto_secretbox_open_easy(boxed, _ZERO_NONCE, _sha256(network_key, *secrets))
    except nacl.exceptions.CryptoError as exc:
        raise BadAuthentication(f"{problem} (or the data was altered in transit)") from exc


def _verify(sig: bytes, message: bytes, public_key: bytes, who: str) -> None:
    try:
        sodium.crypto_sign_open(sig + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
        raise BadAuthentication(
            f"the {who}'s handshake signature is invalid: it does not own key {public_key.hex()}"
        ) from exc


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The peer proved it holds ``remote_public_key``; box-stream can start."""

    remote_public_key: bytes
    box_keys: BoxStreamKeys


class HandshakeState(enum.Enum):
    AWAIT_MSG1 = "waiting for the client's challenge (msg1)"
    AWAIT_MSG2 = "waiting for the server's challenge (msg2)"
    AWAIT_MSG3 = "waiting for the client's authentication (msg3)"
    AWAIT_MSG4 = "waiting for the server's acceptance (msg4)"
    COMPLETE = "complete"
    ERROR = "failed"


@dataclass(frozen=True, slots=True)
class _Step:
    size: int
    next_state: HandshakeState
    hangup_error: type[HandshakeFailed]
    hangup_hint: str


# What a hang-up in each state most likely means (a correct peer that
# rejects our message just hangs up, so this is the only clue we get).
_NET: Final = "it most likely uses a different network key"
_GONE: Final = "it gave up or is not an SHS peer"
_WRONG: Final = "most likely the key we dialled is not its key (or it refused us)"

_TRANSITIONS: Final[dict[HandshakeState, _Step]] = {
    HandshakeState.AWAIT_MSG1: _Step(MSG1_SIZE, HandshakeState.AWAIT_MSG3, HandshakeFailed, _GONE),
    HandshakeState.AWAIT_MSG2: _Step(MSG2_SIZE, HandshakeState.AWAIT_MSG4, BadNetworkKey, _NET),
    HandshakeState.AWAIT_MSG3: _Step(MSG3_SIZE, HandshakeState.COMPLETE, BadNetworkKey, _NET),
    HandshakeState.AWAIT_MSG4: _Step(MSG4_SIZE, HandshakeState.COMPLETE, WrongServerKey, _WRONG),
}


class _Handshake:
    """Shared driver for both roles; subclasses implement ``_handle``.

    ``ephemeral_secret`` (a Curve25519 secret) is for test vectors only.
    Raises ValueError for keys of the wrong size.
    """

    _initial_state: HandshakeState

    def __init__(
        self,
        network_key: bytes,
        local_key: SigningKey | bytes,
        *,
        ephemeral_secret: bytes | None = None,
    ) -> None:
        if len(network_key) != NETWORK_KEY_SIZE:
            raise ValueError(f"the network key must be {NETWORK_KEY_SIZE} bytes")
        if ephemeral_secret is not None and len(ephemeral_secret) != 32:
            raise ValueError("an ephemeral Curve25519 secret is 32 bytes")
        self._network_key = bytes(network_key)
        self._sk, self._pk = signing_keypair(local_key)
        self._eph_sk = ephemeral_secret or os.urandom(32)
        self._eph_pk = sodium.crypto_scalarmult_base(self._eph_sk)
        self._challenge = make_challenge(self._network_key, self._eph_pk)
        self._remote_challenge = b""
        self._ab = b""
        self._buffer = bytearray()
        self._out = bytearray()
        self.state = self._initial_state
        self.trailing_data = b""
        """Bytes that followed the last handshake message: the start of the box-stream."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.name}>"

    @property
    def local_public_key(self) -> bytes:
        """Our long-term Ed25519 public key."""
        return self._pk

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to send to the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> list[HandshakeCompleted]:
        """Feed bytes from the peer; ``b""`` means the peer hung up.

        Raises a HandshakeFailed subclass if the peer misbehaved (the machine is
        then in ERROR; hang up) and LocalProtocolError if called after the
        handshake completed or failed.
        """
        if self.state in (HandshakeState.COMPLETE, HandshakeState.ERROR):
            raise LocalProtocolError(
                f"the handshake is {self.state.value}; it takes no more data "
                "(feed box-stream bytes to the BoxStreamDecoder)"
            )
        step = _TRANSITIONS[self.state]
        if not data:
            self._fail(
                step.hangup_error(
                    f"the peer hung up while we were {self.state.value} ({len(self._buffer)} "
                    f"of {step.size} bytes received); {step.hangup_hint}"
                )
            )
        take = step.size - len(self._buffer)
        self._buffer += data[:take]
        rest = data[take:]
        if len(self._buffer) < step.size:
            return []
        if rest and step.next_state is not HandshakeState.COMPLETE:
            self._fail(
                HandshakeFailed(
                    f"the peer sent {len(rest)} bytes more than the {step.size}-byte message "
                    f"while we were {self.state.value}: it does not follow SHS v1"
                )
            )
        message = bytes(self._buffer)
        self._buffer.clear()
        try:
            events = self._handle(message)
        except HandshakeFailed as exc:
            self._fail(exc)
        self.state = step.next_state
        self.trailing_data = bytes(rest)
        return events

    def _handle(self, message: bytes) -> list[HandshakeCompleted]:
        raise NotImplementedError

    def _fail(self, error: HandshakeFailed) -> NoReturn:
        self.state = HandshakeState.ERROR
        self._out.clear()
        self._buffer.clear()
        raise error

    def _completed(self, remote_pk: bytes, secrets: Secrets) -> HandshakeCompleted:
        keys = derive_box_keys(
            self._network_key,
            secrets,
            (self._pk, self._challenge),
            (remote_pk, self._remote_challenge),
        )
        return HandshakeCompleted(remote_public_key=remote_pk, box_keys=keys)


class ClientHandshake(_Handshake):
    """The dialling side. ``server_public_key`` is the Ed25519 key we expect.

    Raises InvalidPeerKey if ``server_public_key`` is not a valid key.
    """

    _initial_state = HandshakeState.AWAIT_MSG2

    def __init__(
        self,
        network_key: bytes,
        local_key: SigningKey | bytes,
        server_public_key: bytes,
        *,
        ephemeral_secret: bytes | None = None,
    ) -> None:
        super().__init__(network_key, local_key, ephemeral_secret=ephemeral_secret)
        if len(server_public_key) != 32:
            raise ValueError("the server public key must be 32 bytes")
        self._server_pk = bytes(server_public_key)
        self._server_curve = public_key_to_curve25519(self._server_pk)
        self._a_bob = b""
        self._hello = b""
        self._out += self._challenge

    def _handle(self, message: bytes) -> list[HandshakeCompleted]:
        if self.state is HandshakeState.AWAIT_MSG2:
            remote_eph = open_challenge(self._network_key, message, "server")
            self._remote_challenge = message
            self._ab = shared_secret(self._eph_sk, remote_eph)
            self._a_bob = shared_secret(self._eph_sk, self._server_curve)
            secrets: Secrets = (self._ab, self._a_bob)
            self._hello, msg3 = make_auth(self._network_key, secrets, self._sk, self._server_pk)
            self._out += msg3
            return []
        curve_sk = sodium.crypto_sign_ed25519_sk_to_curve25519(self._sk)
        b_alice = shared_secret(curve_sk, self._remote_challenge[32:])
        secrets_3 = (self._ab, self._a_bob, b_alice)
        verify_accept(self._network_key, secrets_3, self._hello, self._server_pk, message)
        return [self._completed(self._server_pk, secrets_3)]


class ServerHandshake(_Handshake):
    """The accepting side; learns the client's key from msg3."""

    _initial_state = HandshakeState.AWAIT_MSG1

    def _handle(self, message: bytes) -> list[HandshakeCompleted]:
        if self.state is HandshakeState.AWAIT_MSG1:
            remote_eph = open_challenge(self._network_key, message, "client")
            self._ab = shared_secret(self._eph_sk, remote_eph)
            self._remote_challenge = message
            self._out += self._challenge
            return []
        curve_sk = sodium.crypto_sign_ed25519_sk_to_curve25519(self._sk)
        a_bob = shared_secret(curve_sk, self._remote_challenge[32:])
        hello = open_auth(self._network_key, (self._ab, a_bob), self._pk, message)
        client_pk = hello[_SIG:]
        secrets = (
            self._ab,
            a_bob,
            shared_secret(self._eph_sk, public_key_to_curve25519(client_pk)),
        )
        self._out += make_accept(self._network_key, secrets, hello, self._sk)
        return [self._completed(client_pk, secrets)]
