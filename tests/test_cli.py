"""The CLI as a person or script uses it: real processes, real stores, exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home

    def run(
        self, *args: str, ok: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "P2PCREW_HOME": str(self.home)}
        env.pop("P2PCREW_PASSPHRASE", None)
        out = subprocess.run(
            [sys.executable, "-m", "p2pcrew", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
        )
        if ok:
            assert out.returncode == 0, out.stderr
        return out

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path / "home")
    c.run("init", "--name", "Ana")
    return c


def test_version_names_the_libraries(tmp_path: Path) -> None:
    out = Cli(tmp_path).run("--version").stdout
    for name in ("p2pcrew", "libsodium", "cbor2", "SQLite"):
        assert name in out


def test_post_reply_request_lifecycle(cli: Cli) -> None:
    root = cli.run("post", "hello crew").stdout.strip()
    reply = cli.json("reply", root, "hi back")
    assert reply["content"]["root"] == root  # type: ignore[index]
    req = cli.json(
        "request",
        "new",
        "need a drill",
        "--category",
        "tools",
        "--needed-by",
        "2026-12-01",
        "--place",
        "north",
    )
    req_id = req["id"]  # type: ignore[index]
    for action in ("claim", "unclaim", "fulfil", "reopen", "withdraw"):
        cli.run("request", action, req_id)
    cli.run("react", root, "+1")
    entries = cli.json("log", "--limit", "100")
    types = [e["content"]["type"] for e in entries]  # type: ignore[union-attr,index]
    assert types == ["about", "post", "post", "request", *["request_update"] * 5, "reaction"]
    assert cli.run("check").returncode == 0


def test_feeds_whoami_show_locate(cli: Cli) -> None:
    me = cli.json("whoami")["feed"]  # type: ignore[index]
    assert me.startswith("feed_")
    [feed] = cli.json("feeds")  # type: ignore[misc]
    assert feed == {"feed": me, "latest_seq": 1, "forked": False}
    first = cli.json("log")[0]["id"]  # type: ignore[index]
    shown = cli.json("show", first)
    assert shown["content"]["name"] == "Ana"  # type: ignore[index]
    where = cli.json("locate")
    assert where["home"] == str(cli.home)  # type: ignore[index]


def test_delete_drops_payload(cli: Cli) -> None:
    post = cli.run("post", "oops").stdout.strip()
    cli.run("delete", post)
    assert cli.json("show", post)["status"] == "deleted"  # type: ignore[index]
    assert cli.run("check").returncode == 0


def test_follow_unfollow_block(cli: Cli, tmp_path: Path) -> None:
    other = Cli(tmp_path / "other")
    other.run("init")
    them = other.json("whoami")["feed"]  # type: ignore[index]
    for action in ("follow", "unfollow", "block", "unblock"):
        assert cli.json(action, them)["content"]["action"] == action  # type: ignore[index]


def test_errors_are_one_line_and_nonzero(cli: Cli) -> None:
    for args in (
        ("show", "entry_nonsense"),
        ("reply", "feed_x", "text"),
        ("post", ""),
        ("log", "entry_" + "a" * 52),
    ):
        out = cli.run(*args, ok=False)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) <= 3, out.stderr


def test_secret_file_mode_and_refusal(cli: Cli) -> None:
    secret = cli.home / "secret.json"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    secret.chmod(0o644)
    out = cli.run("whoami", ok=False)
    assert out.returncode == 1 and "chmod 600" in out.stderr


def test_export_import_pauses_publishing_until_forced(cli: Cli, tmp_path: Path) -> None:
    cli.run("post", "before backup")
    backup = cli.run("export-key").stdout
    restored = Cli(tmp_path / "restored")
    restored.run("import-key", stdin=backup)
    assert restored.json("whoami") == cli.json("whoami")
    out = restored.run("post", "after restore", ok=False)
    assert out.returncode == 1 and "fork" in out.stderr
    restored.run("post", "I know what I am doing", "--force")
    restored.run("post", "and again")


def test_passphrase_protected_identity(tmp_path: Path) -> None:
    c = Cli(tmp_path / "pp")
    env_run = lambda *a, pw=None: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "p2pcrew", *a],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "P2PCREW_HOME": str(c.home),
            **({"P2PCREW_PASSPHRASE": pw} if pw else {}),
        },
    )
    assert env_run("init", "--passphrase", pw="correct horse").returncode == 0
    assert env_run("whoami", pw="correct horse").returncode == 0
    wrong = env_run("whoami", pw="wrong")
    assert wrong.returncode == 1 and "passphrase" in wrong.stderr.lower()


def test_writer_lock_message(cli: Cli) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from p2pcrew.feed.sqlite_store import SqliteStore\n"
            "s = SqliteStore(Path(sys.argv[1]))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
            str(cli.home),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        out = cli.run("post", "while locked", ok=False)
        assert out.returncode == 1 and "only one writing process" in out.stderr
        assert cli.run("feeds").returncode == 0  # reads keep working beside a writer
        assert cli.run("check").returncode == 0
    finally:
        holder.kill()
        holder.wait()


def test_address_qr_and_connect(cli: Cli, tmp_path: Path) -> None:
    me = cli.json("whoami")["feed"]  # type: ignore[index]
    addresses = cli.json("address")
    assert addresses and all(a.endswith("#" + me) for a in addresses)  # type: ignore[union-attr]
    qr = cli.run("address", "--qr").stdout
    assert "█" in qr
    other = Cli(tmp_path / "other")
    other.run("init")
    them = other.json("whoami")["feed"]  # type: ignore[index]
    cli.run("connect", f"tcp://127.0.0.1:9#{them}")
    [peer] = cli.json("peers")  # type: ignore[misc]
    assert peer["feed"] == them and peer["source"] == "manual"
    bad = cli.run("connect", "tcp://127.0.0.1:9", ok=False)
    assert bad.returncode == 1 and "#feed_" in bad.stderr
