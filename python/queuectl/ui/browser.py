"""`queuectl ui --open`: the dashboard in an app-style window of a Chromium-family browser
(its `--app=URL` mode: no tabs, no address bar), else in the default browser.

No `--user-data-dir` is given: with that browser already running, `--app` opens the
window in the running instance (the user's profile, logins and window manager as they
are), and with none running it starts one on the user's usual profile. A profile of our
own would only be needed to force a second instance, which nobody asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

#: Names looked up on PATH, in this order.
PATH_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "microsoft-edge",
    "msedge",
    "brave-browser",
)

#: How long a browser that was just started may take to fail (a launcher handing the
#: address to a running instance exits 0 well within it).
SETTLE_S = 3.0


def has_display() -> bool:
    """False on a Linux or BSD session without X11 or Wayland (over SSH, say)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _installed() -> list[Path]:
    """The usual install places outside PATH: macOS app bundles, Windows folders."""
    if sys.platform == "darwin":
        bundles = [
            "Google Chrome.app/Contents/MacOS/Google Chrome",
            "Chromium.app/Contents/MacOS/Chromium",
            "Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
            "Brave Browser.app/Contents/MacOS/Brave Browser",
        ]
        roots = [Path("/Applications"), Path.home() / "Applications"]
        return [root / bundle for bundle in bundles for root in roots]
    if sys.platform == "win32":
        roots = [
            os.environ.get(v)
            for v in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")
            if os.environ.get(v)
        ]
        exes = [
            r"Google\Chrome\Application\chrome.exe",
            r"Microsoft\Edge\Application\msedge.exe",
            r"BraveSoftware\Brave-Browser\Application\brave.exe",
            r"Chromium\Application\chrome.exe",
        ]
        return [Path(str(root)) / exe for exe in exes for root in roots]
    return []


def find_app_browser() -> str | None:
    """A Chromium-family browser's executable: PATH first, then the usual places."""
    for name in PATH_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for path in _installed():
        if path.is_file():
            return str(path)
    return None


def _launch_app(exe: str, url: str) -> bool:
    """Starts `exe --app=URL` detached (stopping the dashboard leaves the browser alone).
    True unless it failed at once; then it is reaped before returning."""
    args = [exe, f"--app={url}"]
    quiet = subprocess.DEVNULL
    try:
        if sys.platform == "win32":
            flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
            p = subprocess.Popen(args, stdin=quiet, stdout=quiet, stderr=quiet, creationflags=flags)
        else:
            p = subprocess.Popen(
                args, stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True
            )
    except OSError:
        return False
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        code = p.poll()
        if code is not None:
            return code == 0
        time.sleep(0.05)
    threading.Thread(target=p.wait, name="queuectl-ui-browser", daemon=True).start()
    return True


def open_dashboard(url: str) -> str | None:
    """Opens `url` as an app window, else in the default browser. Returns None when a
    browser took it, else a one-line reason to show. Blocks for a few seconds at most
    (call it off the server's thread); never raises."""
    display = has_display()
    exe = find_app_browser() if display else None
    if exe is not None and _launch_app(exe, url):
        return None
    # Without a display only a browser the user named in $BROWSER is tried: Python's
    # default choice there is a text browser, which would take over this terminal.
    if display or os.environ.get("BROWSER"):
        import webbrowser

        try:
            if webbrowser.open(url):
                return None
        except Exception:  # webbrowser raises what its launchers raise
            pass
    why = "no display" if not display else "no browser could be started"
    return f"could not open a browser ({why}): open {url} in one"
