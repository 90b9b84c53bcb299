"""POSIX: signal 0 probes a pid; a new session detaches; SIGINT, SIGTERM and SIGHUP stop."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

# Tells mypy, when it checks the package for Windows, that this module is not for it.
assert sys.platform != "win32"


def node_name() -> str:
    """This host's name, without importing socket."""
    return os.uname().nodename


def prepare_process() -> None:
    """Lets a write past a file-size limit (`ulimit -f`) fail with an error that queuectl
    reports, instead of SIGXFSZ killing the process without a word. A handler, not SIG_IGN:
    an ignored signal stays ignored across exec, and job processes should not inherit that."""
    signal.signal(signal.SIGXFSZ, lambda signum, frame: None)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def detach_options() -> dict[str, Any]:
    """Popen options for a background process that no signal of this terminal reaches."""
    return {"start_new_session": True}


def stop_signals() -> list[signal.Signals]:
    """Signals that ask a foreground worker to stop (a second one forces it)."""
    return [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
