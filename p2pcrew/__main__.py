"""``python -m p2pcrew`` is the same as the ``p2pcrew`` command."""

from p2pcrew.cli import main

main()
