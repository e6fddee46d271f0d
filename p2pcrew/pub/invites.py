"""Invite codes (what a person pastes or scans) and the pub's invite book.

Code: ``p2pcrew-invite:`` followed by lowercase base32 (no padding) of a canonical
CBOR map::

    {"v": 1, "pub": <pub feed key, 32 bytes>, "urls": ["tcp://...", "wss://.../ws"],
     "secret": <32 random bytes>, "exp": <expiry, ms since the epoch>}   # exp optional

Base32 survives chat apps, e-mail and terminals (a double click selects it all), and
in capitals it fits a QR code's compact alphanumeric mode, so the QR code carries the
upper-case spelling; parsing ignores case and white space.

The pub stores only BLAKE2b-256 of each secret (personalised), with the uses left and
the expiry, so its invite book leaks nothing that could be redeemed. Lookups go by
that hash; since secrets are 256-bit random values there is nothing to learn from
timing.

What a redeemer learns: the expiry is inside the code, so an expired invite is
reported by the member's own client, with its date, before connecting. Everything the
pub refuses (used up, never issued, or expired by the pub's clock) gets the one answer
``invite-invalid``: the pub never says whether a secret existed. ``InviteUsedUp`` and
``InviteUnknown`` exist only on the pub side, for its log and metrics.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from p2pcrew import codec
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.pub.config import PubConfig, check_public_url
from p2pcrew.replicate.address import Address, BadAddress, parse_address

PREFIX: Final = "p2pcrew-invite:"
VERSION: Final = 1
SECRET_BYTES: Final = 32
MAX_CODE_CHARS: Final = 4096
MAX_URLS: Final = 8
MAX_USES: Final = 10_000
REASON_INVALID: Final = "invite-invalid"
REASON_RATE: Final = "rate-limited"
_PERSON: Final = b"p2pcrew-invite"
RUNTIME_FILE: Final = "pub-runtime.json"
"""Written by ``pub serve``: where it listens now (used when no public_urls are set)."""
_BOOK_FORMAT: Final = "p2pcrew-pub-invites"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class InviteError(P2PCrewError):
    """Root of invite problems; each message says what to do next."""


class InviteMalformed(InviteError, ValueError):
    """The text is not an invite code (truncated, mangled, or something else)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"this is not a p2pcrew invite code: {why}")


class InviteExpired(InviteError):
    def __init__(self, expires: int) -> None:
        self.expires = expires
        super().__init__(f"this invite expired on {format_time(expires)}; ask for a new one")


class InviteNotValid(InviteError):
    """The pub refused the secret (used up, never issued, or expired by its clock)."""

    reason = REASON_INVALID

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "invite not valid: the pub does not accept it (it may be used up or was not "
            "issued by this pub); ask for a new one" + (f" ({detail})" if detail else "")
        )


class InviteUsedUp(InviteNotValid):
    """Pub side only: the secret is known but has no uses left."""


class InviteUnknown(InviteNotValid):
    """Pub side only: no such secret."""


class InviteRateLimited(InviteError):
    reason = REASON_RATE

    def __init__(self) -> None:
        super().__init__("too many invite attempts from this key; wait a minute and retry")


class PubUnreachable(InviteError, ConnectionError):
    """None of the pub's addresses answered; the message lists what was tried."""


def format_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_duration(text: str) -> int | None:
    """``90s``, ``15m``, ``12h``, ``7d``, ``2w`` to seconds; ``never`` to None.

    Raises InviteError for anything else.
    """
    if text.strip().lower() == "never":
        return None
    match = _DURATION.match(text.lower())
    if match is None or int(match.group(1)) == 0:
        raise InviteError(f"{text!r} is not a duration: use e.g. 90s, 30m, 12h, 7d, 2w or never")
    return int(match.group(1)) * _UNITS[match.group(2)]


def secret_hash(secret: bytes) -> str:
    return hashlib.blake2b(secret, digest_size=32, person=_PERSON).hexdigest()


# ---- the code -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InviteCode:
    pub: bytes
    urls: tuple[str, ...]
    secret: bytes = field(repr=False)
    expires: int | None = None
    """Milliseconds since the epoch; None: never."""

    def addresses(self) -> list[Address]:
        """Raises InviteMalformed if a URL is unusable."""
        key = feed_id_to_text(self.pub)
        try:
            return [parse_address(f"{url}#{key}") for url in self.urls]
        except BadAddress as exc:
            raise InviteMalformed(f"it holds an unusable address ({exc})") from None

    def check_not_expired(self, now: int) -> None:
        if self.expires is not None and now >= self.expires:
            raise InviteExpired(self.expires)

    def encode(self) -> str:
        body: dict[str, Any] = {
            "v": VERSION,
            "pub": self.pub,
            "urls": list(self.urls),
            "secret": self.secret,
        }
        if self.expires is not None:
            body["exp"] = self.expires
        text = base64.b32encode(codec.encode(body)).decode("ascii").rstrip("=").lower()
        return PREFIX + text

    def qr_text(self) -> str:
        """Upper case: a QR code holds it in the denser alphanumeric mode."""
        return self.encode().upper()


def parse_code(text: str) -> InviteCode:
    """Raises InviteMalformed naming what is wrong."""
    compact = "".join(text.split()).lower()
    if len(compact) > MAX_CODE_CHARS:
        raise InviteMalformed("it is far too long")
    if not compact.startswith(PREFIX):
        raise InviteMalformed(f"it should start with {PREFIX!r}, got {text.strip()[:20]!r}")
    body = compact[len(PREFIX) :].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise InviteMalformed("it has characters outside a-z and 2-7, or was cut short") from None
    try:
        value = codec.decode(raw)
    except codec.CodecError:
        raise InviteMalformed("its contents are damaged (was it cut short?)") from None
    return _from_map(value)


def _from_map(value: Any) -> InviteCode:
    if not isinstance(value, dict):
        raise InviteMalformed("its contents are not an invite")
    if value.get("v") != VERSION:
        raise InviteMalformed(f"it is version {value.get('v')!r}; this p2pcrew reads {VERSION}")
    if set(value) - {"v", "pub", "urls", "secret", "exp"}:
        raise InviteMalformed("it has fields this version does not know")
    pub, secret = value.get("pub"), value.get("secret")
    urls, exp = value.get("urls"), value.get("exp")
    if not (isinstance(pub, bytes) and len(pub) == 32):
        raise InviteMalformed("the pub's key is missing or wrong")
    if not (isinstance(secret, bytes) and len(secret) == SECRET_BYTES):
        raise InviteMalformed("the secret is missing or wrong")
    if not (isinstance(urls, list) and 1 <= len(urls) <= MAX_URLS):
        raise InviteMalformed("it holds no pub address")
    if not all(isinstance(u, str) and len(u) < 300 for u in urls):
        raise InviteMalformed("a pub address is not text")
    if exp is not None and not (isinstance(exp, int) and exp >= 0):
        raise InviteMalformed("the expiry is not a time")
    code = InviteCode(pub, tuple(urls), secret, exp)
    code.addresses()
    return code


# ---- the pub's book ---------------------------------------------------------------------


@dataclass(slots=True)
class InviteRecord:
    hash: str
    uses: int
    expires: int | None
    created: int

    def live(self, now: int) -> bool:
        return self.uses > 0 and (self.expires is None or now < self.expires)


class InviteBook:
    """The pub's invites in a JSON file, shared by ``pub serve`` and ``pub invite``.

    Every change is read-modify-write under an exclusive ``flock`` and written
    atomically (temporary file, fsync, rename), so the two processes never lose an
    update and a crash leaves the old or the new file. Expired records are dropped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def create(self, *, uses: int, expires: int | None, now: int) -> bytes:
        """A fresh secret; only its hash is kept. Raises InviteError for bad counts."""
        if not 1 <= uses <= MAX_USES:
            raise InviteError(f"--uses must be 1..{MAX_USES}")
        secret = secrets.token_bytes(SECRET_BYTES)
        with self._locked(now) as records:
            records.append(InviteRecord(secret_hash(secret), uses, expires, now))
        return secret

    def redeem(self, secret: bytes, now: int) -> int:
        """Use the secret once; returns the uses left.

        Raises InviteUnknown, InviteUsedUp or InviteExpired (pub-side detail; all are
        answered ``invite-invalid``).
        """
        digest = secret_hash(secret)
        with self._locked(now) as records:
            record = next((r for r in records if r.hash == digest), None)
            if record is None:
                raise InviteUnknown()
            if record.expires is not None and now >= record.expires:
                raise InviteExpired(record.expires)
            if record.uses <= 0:
                raise InviteUsedUp()
            record.uses -= 1
            return record.uses

    def live(self, now: int) -> list[InviteRecord]:
        return [r for r in self._read() if r.live(now)]

    @contextlib.contextmanager
    def _locked(self, now: int) -> Iterator[list[InviteRecord]]:
        """The records, locked; written back (expired ones dropped) if no exception."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = self._read()
            yield records
            kept = [r for r in records if r.expires is None or r.expires > now]
            write_json_atomic(self.path, _book_document(kept))
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> list[InviteRecord]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise InviteError(f"cannot read the invite book {self.path}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != _BOOK_FORMAT:
            raise InviteError(f"{self.path} is not a p2pcrew invite book")
        try:
            return [InviteRecord(**item) for item in doc["invites"]]
        except (KeyError, TypeError) as exc:
            raise InviteError(f"{self.path} is damaged: {exc}") from exc


def _book_document(records: list[InviteRecord]) -> dict[str, Any]:
    return {
        "format": _BOOK_FORMAT,
        "version": 1,
        "invites": [
            {"hash": r.hash, "uses": r.uses, "expires": r.expires, "created": r.created}
            for r in records
        ],
    }


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON so that a crash leaves either the old or the new file (mode 0600)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def advertised_urls(root: Path, config: PubConfig) -> list[str]:
    """URLs to put in invites: ``public_urls`` of ``config``, else what the running pub
    published in its runtime file (its own ``public_urls``, or where it listens).

    Raises InviteError with advice when neither gives an address others can use.
    """
    if config.public_urls:
        return list(config.public_urls)
    try:
        urls = json.loads((root / RUNTIME_FILE).read_text(encoding="utf-8"))["urls"]
    except (OSError, ValueError, KeyError, TypeError):
        urls = []
    if not urls:
        raise InviteError(
            "no address to put in the invite: start `p2pcrew pub serve` first, set "
            "public_urls in the pub's config, or pass --url"
        )
    for url in urls:
        check_public_url(url)
        if "://0.0.0.0:" in url or "://[::]:" in url:
            raise InviteError(
                f"the pub listens on all interfaces ({url}), which is no address for others: "
                "set public_urls in the pub's config or pass --url"
            )
    return [str(u) for u in urls]


def is_local_only(url: str) -> bool:
    """A loopback address: an invite with only such URLs works on this machine alone."""
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"
