"""The command-line tools of systemd and launchd (systemctl, loginctl, journalctl,
launchctl, tail), run the one way both managers run them: a missing tool, or one that
fails, becomes a one-line ServiceError."""

from __future__ import annotations

import subprocess

from queuectl.service.spec import ServiceError


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs a tool with its output captured; with `check`, a non-zero exit is an error that
    quotes the tool's last line."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise ServiceError(f"{argv[0]} is not installed here") from None
    if check and r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        raise ServiceError(
            f"`{' '.join(argv)}` failed: {why[-1] if why else f'exit code {r.returncode}'}"
        )
    return r


def call(argv: list[str]) -> int:
    """Runs a tool on this terminal (a log reader) and returns its exit code."""
    try:
        return subprocess.call(argv)
    except FileNotFoundError:
        raise ServiceError(f"{argv[0]} is not installed here") from None
