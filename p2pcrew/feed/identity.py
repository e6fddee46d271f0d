"""A member's long-term identity: an Ed25519 key pair, its secret file and backups.

The secret file is a small JSON document (easy to inspect with a text editor,
no binary tooling needed when helping someone recover)::

    {
      "format": "p2pcrew-identity",
      "version": 1,
      "feed_id": "feed_…",
      "warning": "…",
      "seed": "<base64 of the 32-byte Ed25519 seed>"
    }

or, when protected by a passphrase, ``"encrypted"`` replaces ``"seed"``::

    "encrypted": {
      "kdf": "argon2id", "salt": "<base64>", "opslimit": N, "memlimit": N,
      "cipher": "xsalsa20poly1305", "box": "<base64 of nonce || ciphertext>"
    }

The KDF parameters are stored so a file stays decryptable when the defaults
change. ``feed_id`` is stored in clear (it is public) so the owner of a file can
be shown without the passphrase; it is checked against the decrypted seed so a
swapped id is detected. Unknown extra keys are ignored for forward
compatibility within a version.

Secrets (the seed, the passphrase, the derived key) never appear in reprs,
exception messages or exception chains raised from this module.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, NoReturn

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.signing
import nacl.utils

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.ids import InvalidId, feed_id_to_text, text_to_feed_id

__all__ = [
    "EXPORT_END",
    "EXPORT_HEADER",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CorruptKeyFile",
    "Identity",
    "IdentityError",
    "IdentityExists",
    "IdentityNotFound",
    "InsecureKeyFile",
    "PassphraseRequired",
    "WrongPassphrase",
    "export_identity",
    "feed_key_to_curve25519",
    "import_identity_text",
    "is_encrypted",
    "load_identity",
    "save_identity",
]

FORMAT_NAME: Final = "p2pcrew-identity"
FORMAT_VERSION: Final = 1
EXPORT_HEADER: Final = "p2pcrew-identity-v1"
EXPORT_END: Final = "p2pcrew-identity-end"
SEED_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
EXPORT_LINE_CHARS: Final = 64

#: Production Argon2id cost (~0.5-1 s and 256 MiB). Tests pass the *_MIN limits.
DEFAULT_OPSLIMIT: Final[int] = argon2id.OPSLIMIT_MODERATE
DEFAULT_MEMLIMIT: Final[int] = argon2id.MEMLIMIT_MODERATE

_HEADER_RE: Final = re.compile(r"p2pcrew-identity-v[0-9]+", re.IGNORECASE)
_KDF_NAME: Final = "argon2id"
_CIPHER_NAME: Final = "xsalsa20poly1305"
_MAX_FILE_BYTES: Final = 64 * 1024
_WARNING: Final = (
    "This file is your p2pcrew secret key. Anyone who has it can post as you. "
    "Never share it; keep a backup (p2pcrew export) somewhere safe."
)


# --------------------------------------------------------------------------- errors


class IdentityError(P2PCrewError):
    """Root of all errors raised while handling identity files and backups."""


class IdentityNotFound(IdentityError, FileNotFoundError):
    """The identity file does not exist."""


class IdentityExists(IdentityError, FileExistsError):
    """Refused to overwrite an existing identity file."""


class InsecureKeyFile(IdentityError, PermissionError):
    """The key file is readable or writable by group/other users."""


class PassphraseRequired(IdentityError):
    """The identity is passphrase-protected and no passphrase was given."""


class WrongPassphrase(IdentityError):
    """Decryption failed: wrong passphrase, or the encrypted part was altered."""


class CorruptKeyFile(IdentityError, ValueError):
    """The file or export text is malformed, of an unknown version, or inconsistent."""


# --------------------------------------------------------------------------- identity


class Identity:
    """An Ed25519 signing identity: the secret behind one feed.

    ``repr``/``str`` show only the public feed id, so an ``Identity`` can be
    logged or shown in a debugger without leaking the secret.
    """

    __slots__ = ("_signing_key",)

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        """Wrap an existing nacl ``SigningKey``.

        Raises:
            TypeError: if ``signing_key`` is not a ``nacl.signing.SigningKey``.
        """
        if not isinstance(signing_key, nacl.signing.SigningKey):
            raise TypeError(f"expected nacl.signing.SigningKey, got {type(signing_key).__name__}")
        self._signing_key = signing_key

    @classmethod
    def generate(cls) -> Identity:
        """Create a fresh identity from the OS CSPRNG."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Rebuild an identity from its 32-byte Ed25519 seed.

        Raises:
            ValueError: if ``seed`` is not exactly 32 bytes (the message does not
                include the value).
        """
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            got = f"{len(seed)} bytes" if isinstance(seed, bytes) else type(seed).__name__
            raise ValueError(f"seed must be {SEED_BYTES} bytes, got {got}")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        """The underlying nacl signing key (needed by the handshake)."""
        return self._signing_key

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """The nacl verify key matching :attr:`public_key`."""
        return self._signing_key.verify_key

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key (the binary feed id)."""
        return bytes(self._signing_key.verify_key)

    @property
    def feed_id(self) -> str:
        """The textual feed id, ``feed_…`` (see :mod:`p2pcrew.feed.ids`)."""
        return feed_id_to_text(self.public_key)

    @property
    def seed(self) -> bytes:
        """The 32-byte Ed25519 seed. SECRET: never log or display it."""
        return bytes(self._signing_key)

    @property
    def secret_key_64(self) -> bytes:
        """The 64-byte libsodium secret key form ``seed || public_key``. SECRET."""
        return self.seed + self.public_key

    def sign(self, msg: bytes) -> bytes:
        """Return the 64-byte detached Ed25519 signature of ``msg``."""
        return self._signing_key.sign(msg).signature

    def curve25519_secret(self) -> bytes:
        """The X25519 secret key derived from this identity (32 bytes). SECRET.

        Use with ``nacl.public.PrivateKey(...)`` to decrypt messages that were
        encrypted to :meth:`curve25519_public`.
        """
        return bytes(self._signing_key.to_curve25519_private_key())

    def curve25519_public(self) -> bytes:
        """The X25519 public key derived from this identity (32 bytes)."""
        return feed_key_to_curve25519(self.public_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return self.public_key == other.public_key

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"Identity({self.feed_id}, secret=<redacted>)"

    __str__ = __repr__

    def __copy__(self) -> Identity:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Identity:
        return self  # immutable

    def __reduce__(self) -> NoReturn:
        """Refuse pickling, which would silently copy the secret somewhere."""
        raise TypeError("Identity objects cannot be pickled; use save_identity/export_identity")


def feed_key_to_curve25519(pk: bytes) -> bytes:
    """Convert another member's 32-byte Ed25519 feed key to their X25519 public key.

    Use with ``nacl.public.PublicKey(...)`` to encrypt something to that member.

    Raises:
        ValueError: if ``pk`` is not 32 bytes or is not a valid Ed25519 point.
    """
    if not isinstance(pk, bytes) or len(pk) != SEED_BYTES:
        raise ValueError("feed public key must be 32 bytes")
    try:
        return bytes(nacl.signing.VerifyKey(pk).to_curve25519_public_key())
    except nacl.exceptions.RuntimeError as exc:
        raise ValueError("not a valid Ed25519 public key") from exc


# --------------------------------------------------------------------------- document


def _normalise_passphrase(passphrase: str) -> bytes:
    """Encode a passphrase; NFC so the same text typed on different OSes matches.

    Raises:
        TypeError: if ``passphrase`` is not a ``str``.
        ValueError: if it is empty (use ``None`` for "no passphrase").
    """
    if not isinstance(passphrase, str):
        raise TypeError(f"passphrase must be str or None, got {type(passphrase).__name__}")
    if passphrase == "":
        raise ValueError("empty passphrase; pass None to store the identity unencrypted")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _check_kdf_limits(opslimit: int, memlimit: int) -> None:
    """Raises ValueError if the Argon2id limits are out of libsodium's range."""
    for name, value, lo, hi in (
        ("opslimit", opslimit, argon2id.OPSLIMIT_MIN, argon2id.OPSLIMIT_MAX),
        ("memlimit", memlimit, argon2id.MEMLIMIT_MIN, argon2id.MEMLIMIT_MAX),
    ):
        if type(value) is not int or not lo <= value <= hi:
            raise ValueError(f"argon2id {name} must be an int in [{lo}, {hi}], got {value!r}")


def _derive_key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit, memlimit)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict base64 decode; None on failure so callers raise outside the handler
    (the decode exceptions can hold the secret input)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None


def _build_document(
    identity: Identity,
    passphrase: str | None,
    opslimit: int,
    memlimit: int,
    *,
    warning: bool = True,
) -> dict[str, Any]:
    """Return the secret document for ``identity`` (encrypting if a passphrase is set).

    Raises:
        TypeError, ValueError: bad passphrase type/empty passphrase, or bad
            KDF limits.
    """
    if not isinstance(identity, Identity):
        raise TypeError(f"expected Identity, got {type(identity).__name__}")
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "feed_id": identity.feed_id,
    }
    if warning:
        doc["warning"] = _WARNING
    if passphrase is None:
        doc["seed"] = _b64(identity.seed)
        return doc
    secret = _normalise_passphrase(passphrase)
    _check_kdf_limits(opslimit, memlimit)
    salt = nacl.utils.random(argon2id.SALTBYTES)
    key = _derive_key(secret, salt, opslimit, memlimit)
    box = nacl.secret.SecretBox(key).encrypt(identity.seed)
    doc["encrypted"] = {
        "kdf": _KDF_NAME,
        "salt": _b64(salt),
        "opslimit": opslimit,
        "memlimit": memlimit,
        "cipher": _CIPHER_NAME,
        "box": _b64(bytes(box)),
    }
    return doc


def _corrupt(source: str, problem: str) -> NoReturn:
    raise CorruptKeyFile(f"{source} is not a valid p2pcrew identity: {problem}")


def _parse_document(raw: bytes, source: str) -> dict[str, Any]:
    """Decode and structurally validate a secret document (no decryption).

    Raises:
        CorruptKeyFile: not JSON, wrong format name, unknown version, bad feed
            id, or not exactly one of ``seed``/``encrypted``.
    """
    # Errors are raised *outside* the except blocks: UnicodeDecodeError and
    # JSONDecodeError keep the whole (secret) document, and ``raise ... from
    # None`` would still leave it reachable through ``__context__``.
    problem = None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if problem is not None:
        _corrupt(source, problem)
    if not isinstance(doc, dict):
        _corrupt(source, "expected a JSON object")
    if doc.get("format") != FORMAT_NAME:
        _corrupt(source, f"'format' is not {FORMAT_NAME!r}")
    version = doc.get("version")
    if type(version) is not int:
        _corrupt(source, "missing or non-integer 'version'")
    if version != FORMAT_VERSION:
        newer = " (it was written by a newer p2pcrew; upgrade)" if version > FORMAT_VERSION else ""
        _corrupt(source, f"unsupported version {version}{newer}")
    feed_id = doc.get("feed_id")
    if not isinstance(feed_id, str):
        _corrupt(source, "missing 'feed_id'")
    try:
        text_to_feed_id(feed_id)
    except InvalidId as exc:
        _corrupt(source, f"bad 'feed_id': {exc}")
    if ("seed" in doc) == ("encrypted" in doc):
        _corrupt(source, "expected exactly one of 'seed' or 'encrypted'")
    return doc


def _b64_field(mapping: Mapping[str, Any], key: str, source: str, size: int | None) -> bytes:
    """Decode a base64 field; error messages never echo the (possibly secret) value."""
    value = mapping.get(key)
    if not isinstance(value, str):
        _corrupt(source, f"missing or non-text {key!r}")
    data = _b64decode(value)
    if data is None:
        _corrupt(source, f"{key!r} is not valid base64")
    if size is not None and len(data) != size:
        _corrupt(source, f"{key!r} has the wrong length")
    return data


def _document_is_encrypted(doc: Mapping[str, Any]) -> bool:
    return "encrypted" in doc


def _identity_from_document(
    doc: Mapping[str, Any], passphrase: str | None, source: str
) -> Identity:
    """Turn a validated document into an Identity, decrypting if needed.

    Raises:
        PassphraseRequired: encrypted and ``passphrase`` is None or empty.
        WrongPassphrase: decryption failed.
        CorruptKeyFile: bad fields, or the seed does not match ``feed_id``.
    """
    if _document_is_encrypted(doc):
        enc = doc["encrypted"]
        if not isinstance(enc, dict):
            _corrupt(source, "'encrypted' must be an object")
        if enc.get("kdf") != _KDF_NAME or enc.get("cipher") != _CIPHER_NAME:
            _corrupt(source, f"unsupported encryption (need {_KDF_NAME} + {_CIPHER_NAME})")
        opslimit, memlimit = enc.get("opslimit"), enc.get("memlimit")
        if not isinstance(opslimit, int) or not isinstance(memlimit, int):
            _corrupt(source, "missing or non-integer 'opslimit'/'memlimit'")
        try:
            _check_kdf_limits(opslimit, memlimit)
        except ValueError as exc:
            _corrupt(source, str(exc))
        salt = _b64_field(enc, "salt", source, argon2id.SALTBYTES)
        box = _b64_field(enc, "box", source, None)
        if passphrase is None or passphrase == "":
            raise PassphraseRequired(f"{source} is protected by a passphrase; please provide it")
        key = _derive_key(_normalise_passphrase(passphrase), salt, opslimit, memlimit)
        try:
            seed: bytes | None = nacl.secret.SecretBox(key).decrypt(box)
        except nacl.exceptions.CryptoError:
            seed = None
        if seed is None:
            raise WrongPassphrase(
                f"wrong passphrase for {source} (or its encrypted part was modified)"
            )
        if len(seed) != SEED_BYTES:
            _corrupt(source, "decrypted seed has the wrong length")
    else:
        seed = _b64_field(doc, "seed", source, SEED_BYTES)
    identity = Identity.from_seed(seed)
    if identity.public_key != text_to_feed_id(doc["feed_id"]):
        _corrupt(source, "the stored feed_id does not match the secret key (file was altered)")
    return identity


# --------------------------------------------------------------------------- files


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable; a no-op where unsupported (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_identity(
    identity: Identity,
    path: str | os.PathLike[str],
    passphrase: str | None = None,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
    overwrite: bool = False,
) -> None:
    """Write ``identity`` to ``path`` atomically with mode 0600.

    A crash leaves either no file / the old file, or the complete new file,
    never a half-written key (which would lose the identity). The file is
    first written to a temp file in the same directory (created 0600 with
    ``O_EXCL``) and fsynced, then moved into place and the directory fsynced.
    Without ``overwrite`` the move uses ``os.link`` so a file appearing
    concurrently is still never clobbered. Missing parent directories are
    created with mode 0700.

    With a ``passphrase`` the seed is encrypted with SecretBox under an
    Argon2id key; ``opslimit``/``memlimit`` default to the MODERATE cost and
    are stored in the file.

    Raises:
        IdentityExists: ``path`` exists and ``overwrite`` is false.
        ValueError: empty passphrase or out-of-range KDF limits.
        TypeError: ``identity``/``passphrase`` of the wrong type.
        OSError: the file could not be written.
    """
    target = Path(path)
    doc = _build_document(identity, passphrase, opslimit, memlimit)
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    if not overwrite and os.path.lexists(target):
        raise IdentityExists(
            f"{target} already exists; refusing to overwrite an identity "
            "(that would lose the feed it controls)"
        )
    directory = target.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f".{target.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # the umask may have removed bits; be exact
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            _move_no_clobber(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _move_no_clobber(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` failing if ``target`` exists.

    Raises:
        IdentityExists: ``target`` appeared meanwhile.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise IdentityExists(f"{target} already exists; refusing to overwrite it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # Filesystem without hard links (FAT, some network shares): best effort.
        if os.path.lexists(target):
            raise IdentityExists(f"{target} already exists; refusing to overwrite it") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _read_key_file(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """Read a key file after checking it is a private regular file.

    The mode is checked on the opened descriptor so the file checked is the
    file read. Returns ``(content, display_path)``.

    Raises:
        IdentityNotFound: the file does not exist.
        InsecureKeyFile: group/other have any access (not checked on Windows,
            where POSIX modes are meaningless).
        CorruptKeyFile: not a regular file, or implausibly large.
        IdentityError: any other OS error while reading.
    """
    target = Path(path)
    source = str(target)
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise IdentityNotFound(
            f"no identity at {source}; create one with `p2pcrew init` "
            "(or restore a backup with `p2pcrew import`)"
        ) from None
    except OSError as exc:
        raise IdentityError(f"cannot open {source}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _corrupt(source, "not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if os.name != "nt" and mode & 0o077:
            raise InsecureKeyFile(
                f"{source} has mode {mode:04o}, which lets other users on this "
                f"computer access your secret key; fix it with: chmod 600 {source}"
            )
        if st.st_size > _MAX_FILE_BYTES:
            _corrupt(source, "file is too large")
        chunks: list[bytes] = []
        remaining = _MAX_FILE_BYTES + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except IdentityError:
        raise
    except OSError as exc:
        raise IdentityError(f"cannot read {source}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > _MAX_FILE_BYTES:
        _corrupt(source, "file is too large")
    return data, source


def load_identity(path: str | os.PathLike[str], passphrase: str | None = None) -> Identity:
    """Load the identity stored at ``path``, decrypting it with ``passphrase`` if needed.

    A passphrase given for an unencrypted file is ignored.

    Raises:
        IdentityNotFound: no file at ``path`` (message suggests ``p2pcrew init``).
        InsecureKeyFile: mode allows group/other access (message gives ``chmod 600``).
        PassphraseRequired: encrypted and ``passphrase`` is None or empty
            (an empty answer to a prompt).
        WrongPassphrase: decryption failed.
        CorruptKeyFile: malformed, unknown version, or feed id/seed mismatch.
        IdentityError: other I/O failure.
    """
    data, source = _read_key_file(path)
    doc = _parse_document(data, source)
    return _identity_from_document(doc, passphrase, source)


def is_encrypted(path: str | os.PathLike[str]) -> bool:
    """Return whether the identity at ``path`` is passphrase-protected.

    Lets a UI decide whether to prompt before :func:`load_identity`. Performs
    the same permission and format checks as loading, so problems surface
    before the user is asked for a passphrase.

    Raises:
        IdentityNotFound, InsecureKeyFile, CorruptKeyFile, IdentityError: as
            for :func:`load_identity`.
    """
    data, source = _read_key_file(path)
    return _document_is_encrypted(_parse_document(data, source))


# --------------------------------------------------------------------------- backup


def export_identity(
    identity: Identity,
    passphrase: str | None,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> str:
    """Return a pasteable backup of ``identity``.

    The block is ASCII only: a ``p2pcrew-identity-v1`` header line, the base64
    of the same JSON document as the key file wrapped at 64 columns, and a
    ``p2pcrew-identity-end`` line so a truncated paste is detected. With
    ``passphrase=None`` the backup contains the secret in clear; callers
    should warn the user.

    Raises:
        ValueError: empty passphrase or out-of-range KDF limits.
        TypeError: ``identity``/``passphrase`` of the wrong type.
    """
    # The human-readable warning is left out to keep the block short.
    doc = _build_document(identity, passphrase, opslimit, memlimit, warning=False)
    payload = _b64(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
    lines = [payload[i : i + EXPORT_LINE_CHARS] for i in range(0, len(payload), EXPORT_LINE_CHARS)]
    return "\n".join([EXPORT_HEADER, *lines, EXPORT_END]) + "\n"


def _clean_line(line: str) -> str:
    # Tolerate e-mail quoting ("> ") and indentation; '>' is not base64.
    return line.strip().lstrip(">").strip()


def import_identity_text(text: str, passphrase: str | None) -> Identity:
    """Restore an identity from the text produced by :func:`export_identity`.

    Surrounding whitespace, text before the header and after the end line,
    indentation and e-mail ``>`` quoting are ignored. A passphrase given for an
    unencrypted backup is ignored.

    Raises:
        CorruptKeyFile: no header, truncated (no end line), bad base64, or any
            document problem as for :func:`load_identity`.
        PassphraseRequired: encrypted and ``passphrase`` is None or empty.
        WrongPassphrase: decryption failed.
    """
    source = "the pasted backup"
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    lines = [_clean_line(line) for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if _HEADER_RE.fullmatch(line)), None)
    if start is None:
        _corrupt(source, f"the {EXPORT_HEADER!r} header line was not found; copy the whole block")
    if lines[start].lower() != EXPORT_HEADER:
        _corrupt(
            source,
            f"unsupported backup version {lines[start]!r} (made by a newer p2pcrew?); "
            f"this version reads {EXPORT_HEADER!r}",
        )
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lower() == EXPORT_END), None)
    if end is None:
        _corrupt(source, f"it is truncated (no {EXPORT_END!r} line); copy the whole block")
    raw = _b64decode("".join(lines[start + 1 : end]))
    if raw is None:
        _corrupt(source, "the lines between header and end are not valid base64")
    doc = _parse_document(raw, source)
    return _identity_from_document(doc, passphrase, source)
