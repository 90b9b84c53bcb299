"""`python -m queuectl`: the same program as the `queuectl` command."""

from queuectl.cli import main

if __name__ == "__main__":
    main()
