"""Windows: OpenProcess probes a pid; DETACHED_PROCESS detaches; Ctrl-C and Ctrl-Break stop.

Type-checked for Windows on Linux (`mypy --platform win32` in scripts/run_tests.sh), not run
there: no Windows CPython can be had on the build machine. Kept small so it can be read whole.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from typing import Any

# Tells mypy, when it checks the package for POSIX, that this module is not for it.
assert sys.platform == "win32"

_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_STILL_ACTIVE = 259


def node_name() -> str:
    """This host's name."""
    import socket

    return socket.gethostname()


def prepare_process() -> None:
    """Nothing to prepare on Windows."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid is still running."""
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def detach_options() -> dict[str, Any]:
    """Popen options for a background process without a console of its own, outside this
    console's process group (so its Ctrl-C does not reach it)."""
    flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    return {"creationflags": flags}


def stop_signals() -> list[signal.Signals]:
    """Console control events Python turns into signals: Ctrl-C and Ctrl-Break."""
    return [signal.SIGINT, signal.SIGBREAK]
