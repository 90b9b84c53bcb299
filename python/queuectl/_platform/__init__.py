"""Everything that differs between POSIX and Windows on the Python side, behind one small
interface: this host's name, is a pid alive, how to start a detached process, which
signals mean stop.

The Rust side has its own split (rust/core/src/runner/unix.rs and windows.rs).
"""

import sys

if sys.platform == "win32":
    from queuectl._platform.windows import (
        detach_options,
        node_name,
        pid_alive,
        prepare_process,
        stop_signals,
    )
else:
    from queuectl._platform.posix import (
        detach_options,
        node_name,
        pid_alive,
        prepare_process,
        stop_signals,
    )

__all__ = ["detach_options", "node_name", "pid_alive", "prepare_process", "stop_signals"]
