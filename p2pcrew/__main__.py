"""``python -m p2pcrew`` is the same as the ``p2pcrew`` command."""

from p2pcrew.cli import main

if __name__ == "__main__":  # not when a spawned verify worker imports it
    main()
