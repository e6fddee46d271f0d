"""Interop test peer for Secret Handshake v1 and box-stream.

Run as ``python -m p2pcrew.replicate.shs_peer MODE ARGS...``; keys are hex,
a secret key (SK) is libsodium's 64-byte seed||pk.

``server NET SERVER_SK SERVER_PK PORT``
    Listen on 127.0.0.1:PORT (0 = any free port), accept one connection
    (within 30 s), handshake, echo every byte back over box-stream; answer
    the client's goodbye with ours. Prints ``{"listening": port}`` once listening and
    ``{"ok": true, "remote_pk": "<client pk>"}`` as the last line.
``client NET SERVER_PK CLIENT_SK CLIENT_PK PORT PAYLOAD_BYTES``
    Connect (retrying while refused, up to 10 s), handshake, send
    PAYLOAD_BYTES random bytes and a goodbye while reading the echo, check
    it. Prints ``{"ok": true}`` as the last line.
``stdio-server NET SERVER_SK SERVER_PK`` / ``stdio-client NET SERVER_PK``
    The handshake over stdin/stdout as AljoschaMeyer/shs1-testsuite drives
    it (the stdio client makes its own long-term key). On success, write the
    112-byte outcome: encrypt key, encrypt nonce, decrypt key, decrypt nonce.

Any failure hangs up at once, writes nothing more to the peer, reports on
stderr and exits 1 (2 for bad arguments). Every read has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import sys
from collections.abc import Callable, Sequence
from typing import Final

from nacl.signing import SigningKey

from p2pcrew.replicate.secure_stream import (
    SecureStream,
    client_handshake,
    server_handshake,
)
from p2pcrew.replicate.shs import ClientHandshake, ServerHandshake
from p2pcrew.replicate.transport_errors import PeerTimeout, TransportError

TIMEOUT: Final = 10.0  # for every read, drain and the handshake as a whole
ACCEPT_TIMEOUT: Final = 30.0  # server mode: how long to wait for the client
_CHUNK: Final = 64 * 1024
_MAX_PAYLOAD: Final = 256 * 1024 * 1024


class PeerFailed(Exception):
    """The interop run failed for a reason other than the transport itself."""


def _hex(value: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what} is not hex: {value!r}") from None
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def _int(value: str, low: int, high: int, what: str) -> int:
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{what} must be in {low}..{high}")
    return number


def _secret(sk_hex: str, pk_hex: str, who: str) -> bytes:
    secret = _hex(sk_hex, 64, f"{who} secret key")
    if secret[32:] != _hex(pk_hex, 32, f"{who} public key"):
        raise ValueError(f"{who} public key does not match its secret key")
    return secret


async def _serve(network_key: bytes, secret: bytes, port: int) -> bytes:
    """Accept one connection, echo it, return the client's public key."""
    result: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    connected = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connected.is_set():
            writer.transport.abort()  # one connection only
            return
        connected.set()
        try:
            stream = await server_handshake(reader, writer, network_key, secret, TIMEOUT)
            await _echo(stream)
            result.set_result(stream.remote_public_key)
        except Exception as exc:
            writer.transport.abort()
            result.set_exception(exc)

    server = await asyncio.start_server(on_connect, "127.0.0.1", port)
    async with server:
        print(json.dumps({"listening": server.sockets[0].getsockname()[1]}), flush=True)
        try:
            await asyncio.wait_for(connected.wait(), ACCEPT_TIMEOUT)
        except TimeoutError:
            raise PeerTimeout(f"no client connected within {ACCEPT_TIMEOUT:g} s") from None
        server.close()  # stop listening; the accepted connection carries on
        return await result  # every await in the session has its own timeout


async def _echo(stream: SecureStream) -> None:
    while data := await stream.read():
        stream.write(data)
        await stream.drain()
    await stream.close()


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to 127.0.0.1:port, retrying while refused for up to TIMEOUT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        try:
            return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        except ConnectionRefusedError:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.05)  # the server may still be starting


async def _client(
    network_key: bytes, server_pk: bytes, secret: bytes, port: int, size: int
) -> None:
    reader, writer = await _connect(port)
    stream = await client_handshake(reader, writer, network_key, secret, server_pk, TIMEOUT)
    payload = os.urandom(size)

    async def send() -> None:
        for start in range(0, size, _CHUNK):
            stream.write(payload[start : start + _CHUNK])
            await stream.drain()
        await stream.close()

    async def receive() -> bytes:
        echo = bytearray()
        while chunk := await stream.read():
            echo += chunk
            if len(echo) > size:
                raise PeerFailed(f"the echo is longer than the {size} bytes we sent")
        return bytes(echo)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(send())
            received = group.create_task(receive())
    except BaseExceptionGroup as group_error:
        stream.abort()
        raise group_error.exceptions[0] from None
    if received.result() != payload:
        raise PeerFailed(f"the echo differs from the {size} bytes we sent")


def _stdio_handshake(machine: ClientHandshake | ServerHandshake) -> None:
    """Run the handshake over stdin/stdout and write the 112-byte outcome."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    while True:
        _write_all(stdout, machine.data_to_send())
        ready, _, _ = select.select([stdin], [], [], TIMEOUT)
        if not ready:
            raise PeerTimeout(f"the peer sent nothing for {TIMEOUT:g} s")
        events = machine.receive_data(os.read(stdin, _CHUNK))
        if events:
            _write_all(stdout, machine.data_to_send() + events[0].box_keys.to_bytes())
            return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _run(argv: Sequence[str]) -> Callable[[], None]:
    """Parse the arguments; return the action to run. Raises ValueError."""
    mode, args = (argv[0], list(argv[1:])) if argv else ("", [])
    if mode == "server" and len(args) == 4:
        net, secret = _hex(args[0], 32, "NET"), _secret(args[1], args[2], "server")
        port = _int(args[3], 0, 65535, "PORT")
        return lambda: _report(asyncio.run(_serve(net, secret, port)))
    if mode == "client" and len(args) == 6:
        net, server_pk = _hex(args[0], 32, "NET"), _hex(args[1], 32, "SERVER_PK")
        secret = _secret(args[2], args[3], "client")
        port, size = _int(args[4], 1, 65535, "PORT"), _int(args[5], 0, _MAX_PAYLOAD, "PAYLOAD")
        return lambda: _report(asyncio.run(_client(net, server_pk, secret, port, size)))
    if mode == "stdio-server" and len(args) == 3:
        net, secret = _hex(args[0], 32, "NET"), _secret(args[1], args[2], "server")
        return lambda: _stdio_handshake(ServerHandshake(net, secret))
    if mode == "stdio-client" and len(args) == 2:
        net, server_pk = _hex(args[0], 32, "NET"), _hex(args[1], 32, "SERVER_PK")
        return lambda: _stdio_handshake(ClientHandshake(net, SigningKey.generate(), server_pk))
    raise ValueError(f"unknown mode or wrong number of arguments: {' '.join(argv)!r}")


def _report(remote_pk: bytes | None) -> None:
    line = {"ok": True} if remote_pk is None else {"ok": True, "remote_pk": remote_pk.hex()}
    print(json.dumps(line), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        action = _run(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"shs_peer: {exc}\n\n{__doc__}", file=sys.stderr)
        return 2
    try:
        action()
    except (TransportError, PeerFailed, OSError) as exc:
        print(f"shs_peer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
