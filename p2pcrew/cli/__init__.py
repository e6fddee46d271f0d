"""The ``p2pcrew`` command: scriptable access to everything the app can do.

Errors that a person can act on (``P2PCrewError``) print one line and exit 1;
anything else is a bug: one line pointing at the log file, exit 70, and the
traceback goes to the log, never to the terminal.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from dataclasses import dataclass

import click

from p2pcrew import __version__
from p2pcrew.errors import P2PCrewError
from p2pcrew.home import Home

EXIT_ERROR = 1
EXIT_INTERNAL = 70


@dataclass
class CliState:
    home: Home


def _version_text() -> str:
    import importlib.metadata as md
    import importlib.util

    c_ext = importlib.util.find_spec("cbor2._cbor2") is not None
    # PyNaCl links libsodium statically and exposes no version call; name the carrier.
    return (
        f"p2pcrew {__version__}\n"
        f"libsodium bundled with PyNaCl {md.version('pynacl')}\n"
        f"cbor2 {md.version('cbor2')}{' (C extension)' if c_ext else ' (pure Python)'}\n"
        f"SQLite {sqlite3.sqlite_version}\n"
        f"Python {sys.version.split()[0]}"
    )


def _setup_logging(home: Home) -> None:
    """Log to a file in the data directory; the terminal only gets one-line errors."""
    try:
        home.ensure()
        home.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler: logging.Handler = logging.FileHandler(
            home.log_dir / "p2pcrew.log", encoding="utf-8"
        )
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("p2pcrew")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    envvar="P2PCREW_HOME",
    type=click.Path(file_okay=False),
    help="Data directory (default: your user data directory). Env: P2PCREW_HOME.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show versions of p2pcrew, libsodium, cbor2 and SQLite.",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Peer-to-peer gossip for small crews. With no command, opens the app."""
    ctx.obj = CliState(Home.locate(home))
    _setup_logging(ctx.obj.home)
    if ctx.invoked_subcommand is None:
        from p2pcrew.cli.app_cmd import open_app

        open_app(ctx.obj.home)


def main() -> None:
    from p2pcrew.cli import (  # noqa: F401 - importing registers the commands
        address_cmds,
        board_cmds,
        bundle_cmds,
        crew_cmds,
        demo_cmd,
        identity_cmds,
        net_cmds,
        pub_cmds,
        publish_cmds,
        read_cmds,
    )

    # Everything we write (store, logs, sockets) is for this user's eyes only.
    os.umask(0o077)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except P2PCrewError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # anything else is a bug; keep the traceback off the screen
        logging.getLogger("p2pcrew").exception("internal error")
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (this is a bug in p2pcrew; "
            "details are in the log: `p2pcrew locate`)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
