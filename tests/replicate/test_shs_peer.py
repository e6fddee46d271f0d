"""The interop executable, run as real subprocesses (loopback TCP and stdio)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from p2pcrew.replicate.shs import (
    P2PCREW_NETWORK_KEY,
    SSB_MAIN_NETWORK_KEY,
    ClientHandshake,
    HandshakeCompleted,
    ServerHandshake,
    make_challenge,
)

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 20.0  # generous: a CI machine may be slow to start Python
NET = P2PCREW_NETWORK_KEY.hex()
Process = asyncio.subprocess.Process


def keypair() -> tuple[SigningKey, str, str]:
    key = SigningKey.generate()
    secret = (key.encode() + key.verify_key.encode()).hex()
    return key, secret, key.verify_key.encode().hex()


async def start(*args: str, stdin: bool = False) -> Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pcrew.replicate.shs_peer",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )


@contextlib.asynccontextmanager
async def running(*args: str, stdin: bool = False) -> AsyncIterator[Process]:
    """Start the peer; kill it on the way out if a test failed half-way."""
    process = await start(*args, stdin=stdin)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def finish(process: Process) -> tuple[int, list[str], str]:
    """Wait for exit; return (code, stdout lines, stderr)."""
    stdout, stderr = await asyncio.wait_for(process.communicate(), LIMIT)
    assert process.returncode is not None
    return process.returncode, stdout.decode().splitlines(), stderr.decode()


async def listening_port(server: Process) -> int:
    assert server.stdout is not None
    line = await asyncio.wait_for(server.stdout.readline(), LIMIT)
    return int(json.loads(line)["listening"])


@pytest.mark.parametrize("size", [0, 1, 4097, 100_000])
async def test_tcp_echo_between_two_processes(size: int) -> None:
    _, server_sk, server_pk = keypair()
    _, client_sk, client_pk = keypair()
    async with running("server", NET, server_sk, server_pk, "0") as server:
        port = await listening_port(server)
        async with running(
            "client", NET, server_pk, client_sk, client_pk, str(port), str(size)
        ) as client:
            code, lines, err = await finish(client)
            assert code == 0, err
            assert json.loads(lines[-1]) == {"ok": True}
        code, lines, err = await finish(server)
        assert code == 0, err
        assert json.loads(lines[-1]) == {"ok": True, "remote_pk": client_pk}


async def test_client_started_before_the_server_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    _, server_sk, server_pk = keypair()
    _, client_sk, client_pk = keypair()
    async with (
        running("client", NET, server_pk, client_sk, client_pk, port, "5000") as client,
        running("server", NET, server_sk, server_pk, port) as server,
    ):
        client_code, _, client_err = await finish(client)
        server_code, lines, server_err = await finish(server)
    assert (client_code, server_code) == (0, 0), client_err + server_err
    assert json.loads(lines[-1])["remote_pk"] == client_pk


@pytest.mark.parametrize("mistake", ["network key", "server key"])
async def test_wrong_keys_make_both_processes_fail_quickly(mistake: str) -> None:
    _, server_sk, server_pk = keypair()
    _, client_sk, client_pk = keypair()
    net = SSB_MAIN_NETWORK_KEY.hex() if mistake == "network key" else NET
    dialled = keypair()[2] if mistake == "server key" else server_pk
    loop = asyncio.get_running_loop()
    async with running("server", NET, server_sk, server_pk, "0") as server:
        port = await listening_port(server)
        started = loop.time()
        async with running("client", net, dialled, client_sk, client_pk, str(port), "10") as client:
            client_code, client_lines, client_err = await finish(client)
        server_code, server_lines, server_err = await finish(server)
        elapsed = loop.time() - started
    assert client_code != 0 and server_code != 0
    assert elapsed < 5.0
    assert not any('"ok"' in line for line in client_lines + server_lines)
    expected = ("BadNetworkKey", "BadNetworkKey")
    if mistake == "server key":
        expected = ("WrongServerKey", "BadAuthentication")
    assert expected[0] in client_err
    assert expected[1] in server_err


# --- stdio modes, driven like AljoschaMeyer/shs1-testsuite ----------------------


async def exchange(process: Process, data: bytes, expect: int) -> bytes:
    assert process.stdin is not None and process.stdout is not None
    if data:
        process.stdin.write(data)
        await process.stdin.drain()
    return await asyncio.wait_for(process.stdout.readexactly(expect), LIMIT)


async def rest_of_stdout(process: Process) -> tuple[int, bytes]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    remaining = await asyncio.wait_for(process.stdout.read(), LIMIT)
    return await asyncio.wait_for(process.wait(), LIMIT), remaining


def mirrored(done: HandshakeCompleted) -> bytes:
    """The peer's outcome: our decrypt key/nonce are its encrypt key/nonce."""
    keys = done.box_keys
    return keys.decrypt_key + keys.decrypt_nonce + keys.encrypt_key + keys.encrypt_nonce


@pytest.mark.parametrize("net", [P2PCREW_NETWORK_KEY, SSB_MAIN_NETWORK_KEY], ids=["p2pcrew", "ssb"])
async def test_stdio_server_handshake_and_outcome(net: bytes) -> None:
    server_key, server_sk, server_pk = keypair()
    client = ClientHandshake(net, SigningKey.generate(), server_key.verify_key.encode())
    async with running("stdio-server", net.hex(), server_sk, server_pk, stdin=True) as peer:
        client.receive_data(await exchange(peer, client.data_to_send(), 64))
        (done,) = client.receive_data(await exchange(peer, client.data_to_send(), 80))
        outcome = await exchange(peer, b"", 112)
        code, rest = await rest_of_stdout(peer)
    assert (code, rest) == (0, b"")
    assert outcome == mirrored(done)


async def test_stdio_client_handshake_and_outcome() -> None:
    server_key, _, server_pk = keypair()
    server = ServerHandshake(P2PCREW_NETWORK_KEY, server_key)
    async with running("stdio-client", NET, server_pk, stdin=True) as peer:
        server.receive_data(await exchange(peer, b"", 64))
        (done,) = server.receive_data(await exchange(peer, server.data_to_send(), 112))
        outcome = await exchange(peer, server.data_to_send(), 112)
        code, rest = await rest_of_stdout(peer)
    assert (code, rest) == (0, b"")
    assert outcome == mirrored(done)
    assert len(done.remote_public_key) == 32  # the client made its own key


async def test_stdio_server_answers_nothing_to_a_bad_challenge() -> None:
    _, server_sk, server_pk = keypair()
    async with running("stdio-server", NET, server_sk, server_pk, stdin=True) as peer:
        assert peer.stdin is not None
        peer.stdin.write(make_challenge(SSB_MAIN_NETWORK_KEY, bytes(range(1, 33))))
        code, rest = await rest_of_stdout(peer)
    assert code != 0 and rest == b""


async def test_stdio_server_answers_nothing_to_a_bad_msg3() -> None:
    _, server_sk, server_pk = keypair()
    other_server = SigningKey.generate().verify_key.encode()
    client = ClientHandshake(P2PCREW_NETWORK_KEY, SigningKey.generate(), other_server)
    async with running("stdio-server", NET, server_sk, server_pk, stdin=True) as peer:
        client.receive_data(await exchange(peer, client.data_to_send(), 64))
        assert peer.stdin is not None
        peer.stdin.write(client.data_to_send())  # made for another server key
        code, rest = await rest_of_stdout(peer)
    assert code != 0 and rest == b""


@pytest.mark.parametrize("bad", ["msg2", "msg4"])
async def test_stdio_client_writes_nothing_more_after_a_bad_message(bad: str) -> None:
    server_key, _, server_pk = keypair()
    async with running("stdio-client", NET, server_pk, stdin=True) as peer:
        assert peer.stdin is not None
        msg1 = await exchange(peer, b"", 64)
        if bad == "msg2":  # a challenge made with another network key
            peer.stdin.write(make_challenge(SSB_MAIN_NETWORK_KEY, bytes(range(1, 33))))
        else:  # a correct msg2, then 80 bytes that are not a valid msg4
            server = ServerHandshake(P2PCREW_NETWORK_KEY, server_key)
            server.receive_data(msg1)
            await exchange(peer, server.data_to_send(), 112)
            peer.stdin.write(os.urandom(80))
        code, rest = await rest_of_stdout(peer)
    assert code != 0 and rest == b""


@pytest.mark.parametrize("mode", ["stdio-server", "stdio-client"])
async def test_stdio_peer_fails_on_immediate_eof(mode: str) -> None:
    _, server_sk, server_pk = keypair()
    args = (NET, server_sk, server_pk) if mode == "stdio-server" else (NET, server_pk)
    async with running(mode, *args, stdin=True) as peer:
        code, rest = await rest_of_stdout(peer)
    assert code != 0
    assert len(rest) == (0 if mode == "stdio-server" else 64)  # at most the client's msg1


@pytest.mark.parametrize(
    "args",
    [[], ["server"], ["bogus", NET], ["server", NET, "zz", "00", "1"], ["client", *["00"] * 6]],
)
async def test_bad_arguments_exit_with_usage(args: list[str]) -> None:
    async with running(*args) as peer:
        code, _, err = await finish(peer)
    assert code == 2
    assert "stdio-client" in err  # the usage text
