"""`queuectl ui --open`: a Chromium-family browser on PATH gets the dashboard's address in
its `--app=` mode, the token's login address included; without one (or when it fails)
Python's webbrowser is asked, through $BROWSER here; with no browser at all one line
says where to point one. The dashboard serves in every case. The browsers are recording
scripts: each writes its arguments to a file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import QUEUECTL, Queue
from test_ui import Dashboard, free_port

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the recording browsers are sh scripts")


def recorder(folder: Path, name: str, log: Path, exit_code: int = 0) -> Path:
    """An executable `name` that appends its arguments, one a line, to `log`."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> "{log}"; done\nexit {exit_code}\n'
    )
    script.chmod(0o755)
    return script


def wait_for_file(path: Path, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} was never written"
        time.sleep(0.05)
    time.sleep(0.1)  # the script's last line
    return path.read_text().splitlines()


@contextlib.contextmanager
def opened(q: Queue, env: dict[str, str], *args: str) -> Iterator[tuple[Dashboard, str]]:
    """`queuectl ui --open` with env; yields the dashboard and what it printed to stderr
    once the opening is over (at most a few seconds)."""
    port = free_port()
    log = q.home.parent / f"ui-{port}.err"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [QUEUECTL, "ui", "--bind", f"127.0.0.1:{port}", "--open", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while " on http://" not in log.read_text():
            assert proc.poll() is None, f"ui exited {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = log.read_text().split(" on ", 1)[1].split()[0]
        yield Dashboard(proc, "127.0.0.1", port, url), str(log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def env_with(q: Queue, path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in q.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    return {**env, "PATH": str(path), **extra}


def test_a_chromium_on_path_opens_an_app_window_with_the_login_address(
    q: Queue, tmp_path: Path
) -> None:
    bin_dir, argv = tmp_path / "bin", tmp_path / "chromium.args"
    recorder(bin_dir, "chromium", argv)
    browser_log = tmp_path / "browser.args"
    browser = recorder(tmp_path / "other", "default-browser", browser_log)
    token = "a-token-of-enough-length"
    env = env_with(q, bin_dir, DISPLAY=":99", BROWSER=str(browser))
    with opened(q, env, "--token", token) as (d, _):
        args = wait_for_file(argv)
        assert args == [f"--app=http://127.0.0.1:{d.port}/login?token={token}"]
        assert d.url == args[0].removeprefix("--app=")
        assert d.get("/api/status", Authorization=f"Bearer {token}")[0] == 200
        assert not any(a.startswith("--user-data-dir") for a in args)
        time.sleep(0.5)
        assert not browser_log.exists(), "the default browser was asked as well"


@pytest.mark.parametrize("display", [None, ":99"], ids=["no-display", "display"])
def test_without_chromium_the_default_browser_is_asked(
    q: Queue, tmp_path: Path, display: str | None
) -> None:
    empty, browser_log = tmp_path / "empty", tmp_path / "browser.args"
    empty.mkdir()
    browser = recorder(tmp_path / "other", "default-browser", browser_log)
    extra = {"BROWSER": str(browser), **({"DISPLAY": display} if display else {})}
    with opened(q, env_with(q, empty, **extra)) as (d, log):
        assert wait_for_file(browser_log) == [f"http://127.0.0.1:{d.port}/"]
        assert d.get("/api/status")[0] == 200
        assert "could not open" not in Path(log).read_text()


def test_a_chromium_that_fails_falls_back_to_the_default_browser(q: Queue, tmp_path: Path) -> None:
    bin_dir, argv = tmp_path / "bin", tmp_path / "chromium.args"
    recorder(bin_dir, "google-chrome", argv, exit_code=1)
    browser_log = tmp_path / "browser.args"
    browser = recorder(tmp_path / "other", "default-browser", browser_log)
    with opened(q, env_with(q, bin_dir, DISPLAY=":99", BROWSER=str(browser))) as (d, _):
        assert wait_for_file(browser_log) == [f"http://127.0.0.1:{d.port}/"]
        assert wait_for_file(argv) == [f"--app=http://127.0.0.1:{d.port}/"]
        assert d.get("/api/status")[0] == 200


def test_with_no_browser_one_line_says_where_to_go_and_it_serves(q: Queue, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with opened(q, env_with(q, empty)) as (d, log):
        deadline = time.monotonic() + 20
        while "could not open" not in Path(log).read_text():
            assert time.monotonic() < deadline, Path(log).read_text()
            time.sleep(0.05)
        lines = [x for x in Path(log).read_text().splitlines() if "could not open" in x]
        assert lines == [
            f"could not open a browser (no display): open http://127.0.0.1:{d.port}/ in one"
        ]
        assert d.get("/api/status")[0] == 200
        assert d.proc.poll() is None
