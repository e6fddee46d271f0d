"""Pub settings: named defaults, a TOML file, then ``P2PCREW_PUB_*`` environment variables.

Precedence, lowest first: the defaults below, the config file (``--config FILE``, or
``pub.toml`` in the data directory when it exists), environment variables named
``P2PCREW_PUB_`` + the key in capitals (e.g. ``P2PCREW_PUB_MAX_CONNECTIONS=5000``),
and finally the ``--listen`` / ``--http`` command-line options.

The file holds top-level keys only, for example::

    listen = "0.0.0.0:8008"
    http = "127.0.0.1:8080"
    public_urls = ["wss://pub.example.org/ws", "tcp://pub.example.org:8008"]
    member_quota_bytes = 536870912

Every key, its default and its meaning are documented on the field below and in
docs/pub.md; unknown keys are an error (a typo must not silently fall back to a
default). Two limits are protocol constants rather than settings, because both ends
must agree on them: the RPC frame size (``rpc_frames.DEFAULT_MAX_FRAME``, 64 KiB) and
the entry size (``entry.MAX_PAYLOAD_SIZE``, 16 KiB, enforced by the store).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from p2pcrew.errors import P2PCrewError
from p2pcrew.replicate.address import SCHEMES

ENV_PREFIX: Final = "P2PCREW_PUB_"
CONFIG_NAME: Final = "pub.toml"

DEFAULT_LISTEN: Final = "0.0.0.0:8008"
DEFAULT_HTTP: Final = "127.0.0.1:8080"
DEFAULT_MAX_CONNECTIONS: Final = 1000
DEFAULT_MAX_HANDSHAKES: Final = 512
"""A waiting handshake costs a few KB; a low cap let 32 silent sockets lock members out."""
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
DEFAULT_MAX_GUESTS: Final = 64
DEFAULT_GUEST_GRACE: Final = 30.0
DEFAULT_INVITE_ATTEMPTS_PER_MINUTE: Final = 6
DEFAULT_MAX_BUFFERED_BYTES: Final = 128 * 1024
DEFAULT_MAX_WS_MESSAGE: Final = 256 * 1024
DEFAULT_MEMBER_QUOTA_BYTES: Final = 256 * 1024 * 1024
DEFAULT_SHUTDOWN_GRACE: Final = 5.0


class ConfigError(P2PCrewError, ValueError):
    """A setting that cannot be used; the message names the key and where it came from."""


@dataclass(frozen=True, slots=True)
class PubConfig:
    listen: str = DEFAULT_LISTEN
    """HOST:PORT for raw TCP (Secret Handshake) peers; "" turns the TCP listener off."""
    http: str = DEFAULT_HTTP
    """HOST:PORT for HTTP: status page, /healthz, /metrics and the /ws WebSocket; "" = off."""
    public_urls: tuple[str, ...] = ()
    """How members reach this pub, written into invite codes: tcp://, ws:// or wss:// URLs
    without the key (e.g. "wss://pub.example.org/ws"). Empty: the bound addresses."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Peer connections at once (members and guests, TCP and WebSocket together)."""
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES
    """Handshakes in flight; a connection beyond this is closed before anything is read."""
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    """Seconds a new connection has to complete the Secret Handshake."""
    max_guests: int = DEFAULT_MAX_GUESTS
    """Connected non-members (people redeeming an invite) at once."""
    guest_grace: float = DEFAULT_GUEST_GRACE
    """Seconds a non-member may stay connected to call invite.use before being dropped."""
    invite_attempts_per_minute: int = DEFAULT_INVITE_ATTEMPTS_PER_MINUTE
    """invite.use requests per peer key per minute (also the burst size)."""
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    """Per connection: unsent bytes before we wait for a slow reader, and unread bytes
    before we stop reading a fast sender (the RPC windows bound the rest)."""
    max_ws_message: int = DEFAULT_MAX_WS_MESSAGE
    """Largest WebSocket message accepted, in bytes."""
    member_quota_bytes: int = DEFAULT_MEMBER_QUOTA_BYTES
    """Bytes of entries (headers and payloads) stored per member feed; beyond it the pub
    stops replicating that feed and reports it (log, status, metrics). 0 = no quota."""
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    """Seconds a graceful shutdown waits for peers to acknowledge our goodbye."""
    source: str = field(default="defaults", compare=False)
    """Where the settings came from (for messages); not a key."""


_MINIMUMS: Final[dict[str, float]] = {
    "max_connections": 1,
    "max_handshakes": 1,
    "handshake_timeout": 0.1,
    "max_guests": 0,
    "guest_grace": 0.1,
    "invite_attempts_per_minute": 1,
    "max_buffered_bytes": 16 * 1024,
    "max_ws_message": 64 * 1024 + 1024,  # must hold one SEND_CHUNK and framing
    "member_quota_bytes": 0,
    "shutdown_grace": 0.0,
}


def config_keys() -> list[str]:
    """The config keys, in documentation order."""
    return [f.name for f in dataclasses.fields(PubConfig) if f.name != "source"]


def default_path(home_root: Path) -> Path:
    return home_root / CONFIG_NAME


def load_config(
    path: Path | None, *, env: Mapping[str, str] | None = None, required: bool = True
) -> PubConfig:
    """Defaults, then ``path`` (if given), then the environment.

    ``required=False`` ignores a missing file (the implicit ``pub.toml``).
    Raises ConfigError naming the key and the source of a bad value.
    """
    values: dict[str, Any] = {}
    sources = ["defaults"]
    if path is not None and (required or path.exists()):
        values.update(_read_file(path))
        sources.append(str(path))
    env_values = _from_env(os.environ if env is None else env)
    if env_values:
        values.update(env_values)
        sources.append("environment")
    return _build(values, " + ".join(sources))


def with_overrides(config: PubConfig, **overrides: str | None) -> PubConfig:
    """Apply command-line options (None means "not given")."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    values = {k: getattr(config, k) for k in config_keys()}
    values.update(given)
    return _build(values, config.source + " + command line")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(config_keys()))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(config_keys())}"
        )
    return {k: _tagged(v, f"{path}: {k}") for k, v in data.items()}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in config_keys():
        var = ENV_PREFIX + name.upper()
        if var in env:
            out[name] = _tagged(env[var], var)
    return out


@dataclass(frozen=True, slots=True)
class _Tagged:
    value: Any
    where: str


def _tagged(value: Any, where: str) -> _Tagged:
    return _Tagged(value, where)


def _build(values: dict[str, Any], source: str) -> PubConfig:
    parsed: dict[str, Any] = {}
    for f in dataclasses.fields(PubConfig):
        if f.name not in values:
            continue
        raw = values[f.name]
        where, value = (raw.where, raw.value) if isinstance(raw, _Tagged) else (f.name, raw)
        parsed[f.name] = _convert(f.name, value, where)
    return PubConfig(**parsed, source=source)


def _convert(name: str, value: Any, where: str) -> Any:
    default = getattr(PubConfig(), name)
    if isinstance(default, tuple):
        return _urls(value, where)
    if isinstance(default, str):
        return _host_port(value, where)
    kind = type(default)
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if number < _MINIMUMS[name]:
        raise ConfigError(f"{where}: must be at least {_MINIMUMS[name]:g}, got {number}")
    return number


def _host_port(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected "HOST:PORT" as a string, got {value!r}')
    text = value.strip()
    if text == "":
        return ""
    parse_host_port(text, where)
    return text


def parse_host_port(text: str, where: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) to a pair. Raises ConfigError."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: {text!r} is not HOST:PORT (for example 0.0.0.0:8008)")
    return host.strip("[]"), int(port)


def _urls(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where}: expected a list of URLs, got {value!r}")
    urls = tuple(i.strip() for i in items if i.strip())
    for url in urls:
        check_public_url(url, where)
    return urls


def check_public_url(url: str, where: str = "url") -> None:
    """A pub URL for invites: SCHEME://HOST[:PORT][/PATH], no key. Raises ConfigError."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: {url!r} is not a URL: {exc}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{where}: {url!r} must look like tcp://HOST:PORT, ws://HOST:PORT/ws or wss://HOST/ws"
        )
    if parts.fragment or parts.query:
        raise ConfigError(f"{where}: {url!r}: leave out '#...' and '?...'; the key is added")
