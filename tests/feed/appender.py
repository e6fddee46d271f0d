"""A process that appends to a store in a loop, reporting each committed append.

Run by the crash test, which kills it with SIGKILL at random moments. A line is
printed only after ``append`` returned, i.e. after the durable commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

from p2pcrew.feed.ids import entry_id_to_text
from p2pcrew.feed.sqlite_store import SqliteStore
from tests.feed.helpers import key


def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    signing_key = key(7)
    group = int(sys.argv[2])
    n = 0
    while True:
        n += 1
        entries = store.append(signing_key, [b"crash-test %d/%d" % (n, i) for i in range(group)])
        for entry in entries:
            sys.stdout.write(f"{entry.seq} {entry_id_to_text(entry.id)}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
