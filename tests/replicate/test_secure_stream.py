"""asyncio adapter: handshake + box-stream over in-process loopback connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nacl.signing import SigningKey

from p2pcrew.replicate.boxstream import BoxStreamEncoder
from p2pcrew.replicate.secure_stream import SecureStream, client_handshake, server_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY, SSB_MAIN_NETWORK_KEY, ServerHandshake
from p2pcrew.replicate.transport_errors import (
    BadAuthentication,
    BadNetworkKey,
    HandshakeFailed,
    InvalidPeerKey,
    LocalProtocolError,
    PeerTimeout,
    StreamCorrupted,
    StreamTruncated,
    WrongServerKey,
)

NET = P2PCREW_NETWORK_KEY
LIMIT = 5.0  # no test may wait longer than this for anything
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]]
OnServer = Callable[[SecureStream, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]]


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[int, asyncio.Future[object]]]:
    """Serve one connection with ``handler``; yield (port, future of its outcome)."""
    outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            outcome.set_result(await handler(reader, writer))
        except Exception as exc:
            outcome.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], outcome


async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), LIMIT)


def echo_server(server_key: SigningKey, net: bytes = NET) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        stream = await server_handshake(reader, writer, net, server_key, timeout=LIMIT)
        while data := await stream.read():
            stream.write(data)
            await stream.drain()
        await stream.close()
        return stream.remote_public_key

    return handler


async def read_all(stream: SecureStream) -> bytes:
    chunks = []
    while chunk := await stream.read():
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("size", [0, 1, 4096, 4097, 100_000])
async def test_echo_round_trip(size: int) -> None:
    server_key, client_key = SigningKey.generate(), SigningKey.generate()
    payload = bytes(i % 251 for i in range(size))
    async with serve(echo_server(server_key)) as (port, outcome):
        reader, writer = await dial(port)
        stream = await client_handshake(
            reader, writer, NET, client_key, server_key.verify_key.encode(), timeout=LIMIT
        )
        assert stream.remote_public_key == server_key.verify_key.encode()

        async def send() -> None:
            for start in range(0, size, 30_000):
                stream.write(payload[start : start + 30_000])
                await stream.drain()
            await stream.close()

        async with asyncio.timeout(LIMIT):
            _, echoed = await asyncio.gather(send(), read_all(stream))
            assert echoed == payload
            assert await outcome == client_key.verify_key.encode()
        assert await stream.read() == b""  # stays at the clean end
        assert writer.is_closing()  # both goodbyes exchanged: connection closed


async def test_wrong_network_key_fails_on_both_sides() -> None:
    server_key = SigningKey.generate()
    async with serve(echo_server(server_key)) as (port, outcome):
        reader, writer = await dial(port)
        with pytest.raises(BadNetworkKey):
            await client_handshake(
                reader,
                writer,
                SSB_MAIN_NETWORK_KEY,
                SigningKey.generate(),
                server_key.verify_key.encode(),
                timeout=LIMIT,
            )
        with pytest.raises(BadNetworkKey):
            await asyncio.wait_for(outcome, LIMIT)
        assert writer.is_closing()


async def test_wrong_server_key_fails_on_both_sides() -> None:
    async with serve(echo_server(SigningKey.generate())) as (port, outcome):
        reader, writer = await dial(port)
        with pytest.raises(WrongServerKey):
            await client_handshake(
                reader,
                writer,
                NET,
                SigningKey.generate(),
                SigningKey.generate().verify_key.encode(),
                timeout=LIMIT,
            )
        with pytest.raises(BadAuthentication):
            await asyncio.wait_for(outcome, LIMIT)


async def test_server_hangs_up_on_a_bad_challenge_without_answering() -> None:
    async with serve(echo_server(SigningKey.generate())) as (port, outcome):
        reader, writer = await dial(port)
        writer.write(bytes(64))
        assert await asyncio.wait_for(reader.read(), LIMIT) == b""  # EOF, no msg2
        with pytest.raises(BadNetworkKey):
            await asyncio.wait_for(outcome, LIMIT)


async def test_silent_server_makes_the_handshake_time_out() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(release.wait(), LIMIT)

    async with serve(silent) as (port, _):
        reader, writer = await dial(port)
        with pytest.raises(PeerTimeout, match="handshake") as info:
            await client_handshake(
                reader,
                writer,
                NET,
                SigningKey.generate(),
                SigningKey.generate().verify_key.encode(),
                timeout=0.2,
            )
        assert isinstance(info.value, TimeoutError)
        assert writer.is_closing()
        release.set()


@contextlib.asynccontextmanager
async def session(
    on_server: OnServer,
    client_timeout: float = LIMIT,
) -> AsyncIterator[tuple[SecureStream, asyncio.Future[object]]]:
    """A client SecureStream connected to a server running ``on_server``."""
    server_key = SigningKey.generate()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> object:
        stream = await server_handshake(reader, writer, NET, server_key, timeout=LIMIT)
        return await on_server(stream, reader, writer)

    async with serve(handler) as (port, outcome):
        reader, writer = await dial(port)
        stream = await client_handshake(
            reader,
            writer,
            NET,
            SigningKey.generate(),
            server_key.verify_key.encode(),
            timeout=client_timeout,
        )
        yield stream, outcome


async def test_connection_dropped_without_goodbye_is_truncation() -> None:
    async def send_then_drop(
        stream: SecureStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stream.write(b"partial")
        await stream.drain()
        writer.close()

    async with session(send_then_drop) as (stream, _):
        assert await stream.read() == b"partial"
        with pytest.raises(StreamTruncated) as info:
            await stream.read()
        assert isinstance(info.value, EOFError)


async def test_garbage_after_handshake_is_corruption_and_hangs_up() -> None:
    async def send_garbage(
        stream: SecureStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        writer.write(bytes(100))
        await writer.drain()
        return await asyncio.wait_for(reader.read(), LIMIT)

    async with session(send_garbage) as (stream, outcome):
        with pytest.raises(StreamCorrupted):
            await stream.read()
        assert await asyncio.wait_for(outcome, LIMIT) == b""  # we hung up
        with pytest.raises(LocalProtocolError):
            stream.write(b"after abort")


async def test_idle_peer_makes_read_time_out() -> None:
    release = asyncio.Event()

    async def idle(
        stream: SecureStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.wait_for(release.wait(), LIMIT)

    async with session(idle, client_timeout=0.2) as (stream, _):
        with pytest.raises(PeerTimeout, match="nothing"):
            await stream.read()
        release.set()


async def test_write_after_close_is_local_misuse_and_close_is_idempotent() -> None:
    async def drain_all(
        stream: SecureStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        data = await read_all(stream)
        await stream.close()
        return data

    async with session(drain_all) as (stream, outcome):
        stream.write(b"bye")
        await stream.close()
        await stream.close()
        with pytest.raises(LocalProtocolError, match="goodbye"):
            stream.write(b"late")
        assert await asyncio.wait_for(read_all(stream), LIMIT) == b""
        assert await asyncio.wait_for(outcome, LIMIT) == b"bye"


async def test_data_sent_right_after_msg4_is_not_lost() -> None:
    """The server's first box-stream bytes arrive in the same segment as msg4."""
    server_key = SigningKey.generate()

    async def eager(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        machine = ServerHandshake(NET, server_key)
        machine.receive_data(await reader.readexactly(64))
        writer.write(machine.data_to_send())
        (done,) = machine.receive_data(await reader.readexactly(112))
        encoder = BoxStreamEncoder(done.box_keys.encrypt_key, done.box_keys.encrypt_nonce)
        encoder.send_data(b"first words")
        encoder.send_goodbye()
        writer.write(machine.data_to_send() + encoder.data_to_send())
        await writer.drain()
        await reader.read()

    async with serve(eager) as (port, _):
        reader, writer = await dial(port)
        stream = await client_handshake(
            reader, writer, NET, SigningKey.generate(), server_key.verify_key.encode()
        )
        async with asyncio.timeout(LIMIT):
            assert await read_all(stream) == b"first words"
        await stream.close()
        assert writer.is_closing()


async def test_dialling_an_invalid_key_hangs_up_before_the_handshake() -> None:
    async with serve(echo_server(SigningKey.generate())) as (port, outcome):
        reader, writer = await dial(port)
        with pytest.raises(InvalidPeerKey, match="not a valid Ed25519"):
            await client_handshake(reader, writer, NET, SigningKey.generate(), bytes(32))
        assert writer.is_closing()
        with pytest.raises(HandshakeFailed, match="hung up"):
            await asyncio.wait_for(outcome, LIMIT)
