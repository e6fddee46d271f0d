"""The data directory: where the identity, store, config and logs live.

One directory holds everything for one person, so that ``--home DIR`` (or
``P2PCREW_HOME``) gives a second identity on the same machine, which is what tests,
the demo and people with two roles need. The default is the platform's user data
directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from p2pcrew.feed.identity import Identity, is_encrypted, load_identity
from p2pcrew.feed.sqlite_store import SqliteStore

ENV_HOME = "P2PCREW_HOME"
ENV_PASSPHRASE = "P2PCREW_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret


@dataclass(frozen=True, slots=True)
class Home:
    root: Path

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        chosen = explicit or os.environ.get(ENV_HOME)
        if chosen:
            return cls(Path(chosen).expanduser().resolve())
        return cls(Path(platformdirs.user_data_dir("p2pcrew", appauthor=False)))

    @property
    def identity_path(self) -> Path:
        return self.root / "secret.json"

    @property
    def store_dir(self) -> Path:
        return self.root

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def identity_is_encrypted(self) -> bool:
        return is_encrypted(self.identity_path)

    def load_identity(self, passphrase: str | None = None) -> Identity:
        """Raises the identity module's errors (missing, insecure mode, passphrase)."""
        if passphrase is None:
            passphrase = os.environ.get(ENV_PASSPHRASE)
        return load_identity(self.identity_path, passphrase)

    def open_store(self, *, readonly: bool = False) -> SqliteStore:
        """Raises StoreLocked when another process writes here, StoreMissing when none."""
        return SqliteStore(self.store_dir, readonly=readonly)
