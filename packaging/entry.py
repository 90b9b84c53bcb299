"""Entry point of the one-file binary: the same program as `queuectl` and `python -m queuectl`."""

from queuectl.cli import main

main()
