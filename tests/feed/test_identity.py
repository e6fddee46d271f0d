"""Tests for p2pcrew.feed.identity: key pair, secret files, passphrase, backups."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import stat
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.public
import nacl.pwhash.argon2id as argon2id
import nacl.signing
import pytest

from p2pcrew.feed.identity import (
    EXPORT_END,
    EXPORT_HEADER,
    CorruptKeyFile,
    Identity,
    IdentityError,
    IdentityExists,
    IdentityNotFound,
    InsecureKeyFile,
    PassphraseRequired,
    WrongPassphrase,
    export_identity,
    feed_key_to_curve25519,
    import_identity_text,
    is_encrypted,
    load_identity,
    save_identity,
)
from p2pcrew.feed.ids import text_to_feed_id

CHEAP: dict[str, Any] = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
PASS = "correct horse battery staple"
# A module constant, so tracebacks (which quote source lines) do not contain it.
WRONG = "incorrect horse"

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


@pytest.fixture
def ident() -> Identity:
    return Identity.from_seed(bytes(range(32)))


def secret_forms(identity: Identity) -> list[str]:
    """Every textual form of the seed that must never leak."""
    seed = identity.seed
    return [
        seed.hex(),
        seed.hex().upper(),
        base64.b64encode(seed).decode(),
        repr(seed),
        identity.secret_key_64.hex(),
        identity.curve25519_secret().hex(),
    ]


def assert_no_secret(identity: Identity, text: str) -> None:
    for form in secret_forms(identity):
        assert form not in text


def exception_text(exc: BaseException) -> str:
    """Message, repr and full formatted traceback including the chain."""
    return "\n".join(
        [str(exc), repr(exc), "".join(traceback.format_exception(exc)), *_chain_reprs(exc)]
    )


def _chain_reprs(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield repr(cur)
        yield repr(vars(cur)) if hasattr(cur, "__dict__") else ""
        yield repr(cur.args)
        cur = cur.__cause__ or cur.__context__


# --------------------------------------------------------------------------- Identity


def test_generate_is_random() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.public_key != b.public_key
    assert len(a.public_key) == 32
    assert len(a.seed) == 32


def test_properties(ident: Identity) -> None:
    assert ident.seed == bytes(range(32))
    assert ident.public_key == bytes(nacl.signing.SigningKey(bytes(range(32))).verify_key)
    assert text_to_feed_id(ident.feed_id) == ident.public_key
    assert ident.feed_id.startswith("feed_")
    assert ident.secret_key_64 == ident.seed + ident.public_key
    assert len(ident.secret_key_64) == 64
    assert isinstance(ident.signing_key, nacl.signing.SigningKey)
    assert bytes(ident.verify_key) == ident.public_key


def test_sign_is_detached_and_verifies(ident: Identity) -> None:
    sig = ident.sign(b"hello")
    assert len(sig) == 64
    nacl.signing.VerifyKey(ident.public_key).verify(b"hello", sig)


def test_curve25519_box_round_trip(ident: Identity) -> None:
    other = Identity.generate()
    assert ident.curve25519_public() == feed_key_to_curve25519(ident.public_key)
    assert len(ident.curve25519_secret()) == 32
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(feed_key_to_curve25519(other.public_key)))
    ct = sealed.encrypt(b"for your eyes")
    opener = nacl.public.SealedBox(nacl.public.PrivateKey(other.curve25519_secret()))
    assert opener.decrypt(ct) == b"for your eyes"
    assert bytes(nacl.public.PrivateKey(other.curve25519_secret()).public_key) == (
        other.curve25519_public()
    )


def test_feed_key_to_curve25519_rejects_bad_length() -> None:
    with pytest.raises(ValueError):
        feed_key_to_curve25519(b"short")


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_from_seed_wrong_length(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_seed(seed)


def test_repr_and_str_redact(ident: Identity) -> None:
    for text in (repr(ident), str(ident), f"{ident}", f"{ident!r}", repr([ident])):
        assert_no_secret(ident, text)
        assert ident.feed_id in text
        assert "redacted" in text


def test_equality_and_hash(ident: Identity) -> None:
    same = Identity.from_seed(ident.seed)
    assert ident == same
    assert hash(ident) == hash(same)
    assert ident != Identity.generate()
    assert copy.deepcopy(ident) == ident
    assert copy.copy(ident) is ident


def test_refuses_pickling(ident: Identity) -> None:
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(ident)


# --------------------------------------------------------------------------- files


def test_round_trip_plain(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    assert not is_encrypted(path)
    loaded = load_identity(path)
    assert loaded == ident
    assert loaded.seed == ident.seed
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert doc["feed_id"] == ident.feed_id
    # A passphrase given for a plain file is ignored.
    assert load_identity(path, "whatever") == ident


def test_round_trip_passphrase(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    assert is_encrypted(path)
    content = path.read_text()
    assert_no_secret(ident, content)
    assert PASS not in content
    doc = json.loads(content)
    enc = doc["encrypted"]
    assert enc["opslimit"] == argon2id.OPSLIMIT_MIN
    assert enc["memlimit"] == argon2id.MEMLIMIT_MIN
    assert len(base64.b64decode(enc["salt"])) == argon2id.SALTBYTES
    assert "seed" not in doc
    assert load_identity(path, PASS) == ident


def test_salt_is_random(tmp_path: Path, ident: Identity) -> None:
    save_identity(ident, tmp_path / "a", PASS, **CHEAP)
    save_identity(ident, tmp_path / "b", PASS, **CHEAP)
    a = json.loads((tmp_path / "a").read_text())["encrypted"]
    b = json.loads((tmp_path / "b").read_text())["encrypted"]
    assert a["salt"] != b["salt"]
    assert a["box"] != b["box"]


def test_passphrase_unicode_normalisation(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, "caf\u00e9", **CHEAP)  # precomposed
    assert load_identity(path, "cafe\u0301") == ident  # decomposed


def test_empty_passphrase_refused(tmp_path: Path, ident: Identity) -> None:
    with pytest.raises(ValueError, match="None"):
        save_identity(ident, tmp_path / "s", "", **CHEAP)
    assert not (tmp_path / "s").exists()


def test_bad_kdf_limits_refused(tmp_path: Path, ident: Identity) -> None:
    with pytest.raises(ValueError, match="opslimit"):
        save_identity(ident, tmp_path / "s", PASS, opslimit=0, memlimit=argon2id.MEMLIMIT_MIN)


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o277, 0o000])
def test_file_mode_is_0600(tmp_path: Path, ident: Identity, umask: int) -> None:
    path = tmp_path / "secret.json"
    old = os.umask(umask)
    try:
        save_identity(ident, path, **CHEAP)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@posix_only
def test_overwrite_keeps_0600(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    other = Identity.generate()
    save_identity(other, path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_identity(path) == other


def test_save_refuses_overwrite(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    before = path.read_bytes()
    with pytest.raises(IdentityExists, match="already exists"):
        save_identity(Identity.generate(), path)
    with pytest.raises(FileExistsError):
        save_identity(Identity.generate(), path)
    assert path.read_bytes() == before


def test_save_refuses_overwrite_of_dangling_symlink(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(IdentityExists):
        save_identity(ident, path)


def test_save_leaves_no_temp_files(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    with pytest.raises(IdentityExists):
        save_identity(ident, path)
    save_identity(ident, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.json"]


def test_save_creates_private_parent_dirs(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "a" / "b" / "secret.json"
    save_identity(ident, path)
    assert load_identity(path) == ident
    if os.name != "nt":
        assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) & 0o077 == 0


def test_save_cleans_up_on_failure(
    tmp_path: Path, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save_identity(ident, tmp_path / "secret.json")
    assert list(tmp_path.iterdir()) == []


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610, 0o601])
def test_load_refuses_insecure_mode(tmp_path: Path, ident: Identity, mode: int) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile) as info:
        load_identity(path)
    msg = str(info.value)
    assert f"chmod 600 {path}" in msg
    assert f"{mode:04o}" in msg
    assert str(path) in msg
    assert isinstance(info.value, PermissionError)
    assert_no_secret(ident, exception_text(info.value))
    with pytest.raises(InsecureKeyFile):
        is_encrypted(path)
    path.chmod(0o600)
    assert load_identity(path) == ident


@posix_only
def test_load_accepts_0400(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    path.chmod(0o400)
    assert load_identity(path) == ident


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(IdentityNotFound, match="p2pcrew init") as info:
        load_identity(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, IdentityError)
    assert str(path) in str(info.value)
    with pytest.raises(IdentityNotFound):
        is_encrypted(path)


def test_directory_is_corrupt(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(CorruptKeyFile, match="regular file"):
        load_identity(d)


def test_wrong_passphrase(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    with pytest.raises(WrongPassphrase) as info:
        load_identity(path, WRONG)
    assert str(path) in str(info.value)
    text = exception_text(info.value)
    assert_no_secret(ident, text)
    assert WRONG not in text
    assert PASS not in text


def test_missing_passphrase(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    with pytest.raises(PassphraseRequired, match="passphrase"):
        load_identity(path)
    with pytest.raises(PassphraseRequired):
        load_identity(path, None)
    with pytest.raises(PassphraseRequired):
        load_identity(path, "")


def test_short_box_is_wrong_passphrase_not_crash(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    doc = doc_of(path)
    doc["encrypted"]["box"] = base64.b64encode(bytes(5)).decode()
    write_private(path, json.dumps(doc))
    with pytest.raises(IdentityError):
        load_identity(path, PASS)


def write_private(path: Path, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def doc_of(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{",
        "not json at all",
        "[]",
        "null",
        b"\xff\xfe\x00garbage",
        '{"format": "p2pcrew-identity"}',
        '{"format": "something-else", "version": 1}',
    ],
)
def test_corrupt_json(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "secret.json"
    write_private(path, content)
    with pytest.raises(CorruptKeyFile) as info:
        load_identity(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_file_does_not_leak(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    data = path.read_bytes()
    write_private(path, data[: data.index(b'"seed"') + 20])
    with pytest.raises(CorruptKeyFile, match="not valid JSON") as info:
        load_identity(path)
    assert_no_secret(ident, exception_text(info.value))
    # The json error (which carries the whole document) must not be chained.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(version=2), "unsupported version 2 .*newer"),
        (lambda d: d.update(version="1"), "version"),
        (lambda d: d.update(version=True), "version"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.pop("feed_id"), "feed_id"),
        (lambda d: d.update(feed_id="feed_nonsense"), "feed_id"),
        (lambda d: d.update(feed_id="entry_" + "a" * 52), "feed_id"),
        (lambda d: d.pop("seed"), "exactly one"),
        (lambda d: d.update(encrypted={}), "exactly one"),
        (lambda d: d.update(seed="!!!not base64!!!"), "base64"),
        (lambda d: d.update(seed=base64.b64encode(bytes(16)).decode()), "wrong length"),
        (lambda d: d.update(seed=12), "seed"),
    ],
)
def test_corrupt_documents(tmp_path: Path, ident: Identity, mutate: Any, match: str) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    doc = doc_of(path)
    mutate(doc)
    write_private(path, json.dumps(doc))
    with pytest.raises(CorruptKeyFile, match=match) as info:
        load_identity(path)
    assert_no_secret(ident, exception_text(info.value))


def test_tampered_public_key_plain(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    doc = doc_of(path)
    doc["feed_id"] = Identity.generate().feed_id
    write_private(path, json.dumps(doc))
    with pytest.raises(CorruptKeyFile, match="does not match") as info:
        load_identity(path)
    assert_no_secret(ident, exception_text(info.value))


def test_tampered_public_key_encrypted(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    doc = doc_of(path)
    doc["feed_id"] = Identity.generate().feed_id
    write_private(path, json.dumps(doc))
    # Still reports the encryption status, but loading detects the swap.
    assert is_encrypted(path)
    with pytest.raises(CorruptKeyFile, match="does not match"):
        load_identity(path, PASS)


@pytest.mark.parametrize(
    ("field", "value", "exc"),
    [
        ("box", None, CorruptKeyFile),
        ("salt", base64.b64encode(bytes(3)).decode(), CorruptKeyFile),
        ("kdf", "scrypt", CorruptKeyFile),
        ("cipher", "aes", CorruptKeyFile),
        ("opslimit", 0, CorruptKeyFile),
        ("memlimit", "lots", CorruptKeyFile),
        ("salt", base64.b64encode(bytes(16)).decode(), WrongPassphrase),
        ("opslimit", argon2id.OPSLIMIT_MIN + 1, WrongPassphrase),
    ],
)
def test_tampered_encryption_params(
    tmp_path: Path, ident: Identity, field: str, value: Any, exc: type[Exception]
) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    doc = doc_of(path)
    if value is None:
        del doc["encrypted"][field]
    else:
        doc["encrypted"][field] = value
    write_private(path, json.dumps(doc))
    with pytest.raises(exc):
        load_identity(path, PASS)


def test_tampered_ciphertext(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    doc = doc_of(path)
    box = bytearray(base64.b64decode(doc["encrypted"]["box"]))
    box[-1] ^= 1
    doc["encrypted"]["box"] = base64.b64encode(bytes(box)).decode()
    write_private(path, json.dumps(doc))
    with pytest.raises(WrongPassphrase):
        load_identity(path, PASS)


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    write_private(path, b" " * (1024 * 1024))
    with pytest.raises(CorruptKeyFile, match="too large"):
        load_identity(path)


def test_unknown_keys_are_ignored(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    doc = doc_of(path)
    doc["note"] = "added by a later minor release"
    write_private(path, json.dumps(doc))
    assert load_identity(path) == ident


# --------------------------------------------------------------------------- backup


@pytest.mark.parametrize("passphrase", [None, PASS])
def test_export_round_trip(ident: Identity, passphrase: str | None) -> None:
    text = export_identity(ident, passphrase, **CHEAP)
    assert text.isascii()
    lines = text.splitlines()
    assert lines[0] == EXPORT_HEADER
    assert lines[-1] == EXPORT_END
    assert all(len(line) <= 64 for line in lines)
    assert import_identity_text(text, passphrase) == ident
    if passphrase is not None:
        assert_no_secret(ident, text)


def test_export_is_same_document_as_file(tmp_path: Path, ident: Identity) -> None:
    text = export_identity(ident, None)
    payload = "".join(text.splitlines()[1:-1])
    doc = json.loads(base64.b64decode(payload))
    path = tmp_path / "secret.json"
    save_identity(ident, path)
    file_doc = doc_of(path)
    file_doc.pop("warning")
    assert doc == file_doc


def test_import_tolerates_mangling(ident: Identity) -> None:
    text = export_identity(ident, PASS, **CHEAP)
    body = text.strip().splitlines()
    mangled = "Hi, here is my backup:\r\n\r\n" + "\r\n".join(
        "> " + ("   " + line + "\t") for line in body
    )
    mangled += "\n\nthanks!\n"
    assert import_identity_text("\n\n  " + mangled + "  \n", PASS) == ident


def test_import_wrong_passphrase(ident: Identity) -> None:
    text = export_identity(ident, PASS, **CHEAP)
    with pytest.raises(WrongPassphrase) as info:
        import_identity_text(text, "nope")
    assert_no_secret(ident, exception_text(info.value))
    with pytest.raises(PassphraseRequired):
        import_identity_text(text, None)


def test_import_truncated(ident: Identity) -> None:
    text = export_identity(ident, None)
    lines = text.splitlines()
    truncated = "\n".join(lines[:3])
    with pytest.raises(CorruptKeyFile, match="truncated") as info:
        import_identity_text(truncated, None)
    assert_no_secret(ident, exception_text(info.value))


def test_import_missing_line_in_middle(ident: Identity) -> None:
    text = export_identity(ident, None)
    lines = text.splitlines()
    del lines[2]
    with pytest.raises(CorruptKeyFile) as info:
        import_identity_text("\n".join(lines), None)
    assert_no_secret(ident, exception_text(info.value))
    assert info.value.__context__ is None


def test_import_truncated_mid_line(ident: Identity) -> None:
    text = export_identity(ident, None)
    lines = text.splitlines()
    lines[-2] = lines[-2][:-3]
    with pytest.raises(CorruptKeyFile):
        import_identity_text("\n".join(lines), None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n  ",
        "hello world",
        f"{EXPORT_HEADER}\n{EXPORT_END}\n",
        f"{EXPORT_HEADER}\n!!!!\n{EXPORT_END}\n",
        f"{EXPORT_HEADER}\naGVsbG8=\n{EXPORT_END}\n",
        f"p2pcrew-identity-v9\nAAAA\n{EXPORT_END}\n",
        EXPORT_END,
    ],
)
def test_import_garbage(text: str) -> None:
    with pytest.raises(CorruptKeyFile):
        import_identity_text(text, None)


def test_import_newer_version_message() -> None:
    with pytest.raises(CorruptKeyFile, match="newer"):
        import_identity_text(f"p2pcrew-identity-v9\nAAAA\n{EXPORT_END}\n", None)


def test_identity_error_hierarchy() -> None:
    for cls in (
        IdentityNotFound,
        IdentityExists,
        InsecureKeyFile,
        PassphraseRequired,
        WrongPassphrase,
        CorruptKeyFile,
    ):
        assert issubclass(cls, IdentityError)


def test_no_secret_in_any_error_message(tmp_path: Path, ident: Identity) -> None:
    """Drive every failure path once and check nothing secret escapes."""
    path = tmp_path / "secret.json"
    save_identity(ident, path, PASS, **CHEAP)
    plain = tmp_path / "plain.json"
    save_identity(ident, plain)
    errors: list[BaseException] = []
    attempts: list[Any] = [
        lambda: load_identity(path),
        lambda: load_identity(path, "bad"),
        lambda: save_identity(ident, path),
        lambda: import_identity_text(export_identity(ident, None)[:200], None),
        lambda: import_identity_text(export_identity(ident, PASS, **CHEAP), "bad"),
    ]
    if os.name != "nt":
        plain.chmod(0o644)
        attempts.append(lambda: load_identity(plain))
    for attempt in attempts:
        try:
            attempt()
        except IdentityError as exc:
            errors.append(exc)
    assert len(errors) == len(attempts)
    for error in errors:
        assert_no_secret(ident, exception_text(error))


def test_default_limits_are_moderate() -> None:
    from p2pcrew.feed import identity as mod

    assert mod.DEFAULT_OPSLIMIT == argon2id.OPSLIMIT_MODERATE
    assert mod.DEFAULT_MEMLIMIT == argon2id.MEMLIMIT_MODERATE
