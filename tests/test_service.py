"""Worker services (issue 13, Linux and macOS parts): the generated systemd unit and
launchd property list, checked by `systemd-analyze verify` and `plistlib`, and the command
each one runs, started here with the service's own environment, stopped as the service
manager stops it. A real user unit is installed only where systemd runs as PID 1."""

from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import QUEUECTL, Queue
from queuectl import service
from queuectl.home import Home


def _spec(q: Queue, **kw: object) -> service.ServiceSpec:
    home = Home.resolve(str(q.home), q.db)
    spec = service.ServiceSpec.build("t1", home, **kw)  # type: ignore[arg-type]
    # The test's queuectl, by absolute path, as an installed service would have it.
    return spec._replace(command=(str(Path(QUEUECTL).absolute()),))


def _exec_start(unit: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart and Environment of a unit, unquoted as systemd reads them."""
    argv: list[str] = []
    env: dict[str, str] = {}
    for line in unit.splitlines():
        key, _, value = line.partition("=")
        words = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]
        if key == "ExecStart":
            argv = words
        elif key == "Environment":
            for w in words:
                k, _, v = w.partition("=")
                env[k] = v
    return argv, env


def _run_until_sigterm(q: Queue, argv: list[str], env: dict[str, str], job: str) -> None:
    """Starts the service's command as its manager would (its environment only, a notify
    socket), waits for READY=1, runs a job, and sends SIGTERM to the main process while the
    job runs: the job finishes, the workers exit 0."""
    sock_path = q.home.parent / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        proc = subprocess.Popen(
            argv,
            env={**env, "NOTIFY_SOCKET": str(sock_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert sock.recv(64) == b"READY=1"
            assert len(q.json("worker", "list")) == 2, "READY=1 comes once every worker is up"
            q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(64) == b"STOPPING=1"
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert q.state(job) == "completed", err
    assert "stopping: running jobs will finish (for up to 30s)" in err


def test_the_unit_passes_systemd_analyze_and_its_command_stops_gracefully(
    q: Queue, tmp_path: Path
) -> None:
    env_file = tmp_path / "svc.env"
    env_file.write_text("# for the jobs\nGREETING='hello world'\nexport RATE=5%\n")
    spec = _spec(q, count=2, stop_timeout_s=30, env_file=env_file, queues=("default", "io"))
    unit = service.systemd_unit(spec)
    assert "KillMode=mixed" in unit and "Type=notify" in unit and "Restart=on-failure" in unit
    assert "TimeoutStopSec=45" in unit and f"EnvironmentFile={env_file}" in unit
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    path = tmp_path / service.unit_name("t1")
    path.write_text(unit)
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    argv, env = _exec_start(unit)
    assert argv[0] == str(Path(QUEUECTL).absolute())
    assert argv[1:5] == ["--home", str(q.home), "--db", spec.db]
    assert env["PATH"] == os.environ["PATH"] and env["QUEUECTL_HOME"] == str(q.home)
    marker = tmp_path / "done"
    job = q.enqueue(f"sleep 1.5; echo $GREETING > {marker}")
    env.update(service.read_env_file(env_file))
    _run_until_sigterm(q, argv, env, job)
    assert marker.read_text() == "hello world\n"


def test_the_plist_reads_back_and_its_program_stops_gracefully(q: Queue, tmp_path: Path) -> None:
    spec = _spec(q, count=2, stop_timeout_s=30)
    plist = plistlib.loads(service.launchd_plist(spec))
    assert plist["Label"] == "io.queuectl.t1"
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ExitTimeOut"] == 45 and plist["ThrottleInterval"] == 10
    assert plist["StandardErrorPath"].endswith("Library/Logs/queuectl/t1.log")
    assert "UserName" not in plist
    job = q.enqueue("sleep 1.5")
    _run_until_sigterm(q, plist["ProgramArguments"], plist["EnvironmentVariables"], job)
    system = plistlib.loads(service.launchd_plist(_spec(q, system=True, user="svc")))
    assert system["UserName"] == "svc"


def test_a_stop_timeout_kills_and_requeues_what_still_runs(q: Queue) -> None:
    job = q.enqueue("sleep 60")
    proc = subprocess.Popen(
        [QUEUECTL, "worker", "start", "--stop-timeout", "1"],
        env=q.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - started < 15, err
    assert "jobs still running after 1s are killed and requeued" in err
    assert q.job(job)["state"] == "pending" and q.job(job)["attempts"] == 0


def test_service_commands_say_clearly_what_they_cannot_do_here(q: Queue, tmp_path: Path) -> None:
    printed = q.run("service", "install", "--print", "--count", "3", "--name", "img")
    assert "ExecStart=" in printed.stdout and '"--count" "3"' in printed.stdout
    for args, says in (
        (["service", "install", "--name", "bad name", "--print"], "service name"),
        (["service", "install", "--system", "--user", "--print"], "not both"),
        (["service", "install", "--env-file", str(tmp_path / "nope"), "--print"], "env file"),
        (["service", "uninstall", "--name", "never"], "no service named 'never'"),
        (["service", "start", "--name", "never"], "no service named 'never'"),
    ):
        r = q.run(*args, check=False)
        assert r.returncode in (1, 2), args
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert says in r.stderr, (args, r.stderr)
    status = json.loads(q.run("service", "status", "--name", "never", "--json").stdout)
    assert status["installed"] is False and status["workers"] == []
    if not Path("/run/systemd/system").is_dir():
        r = q.run("service", "install", check=False)
        assert r.returncode == 1 and "systemd is not running on this machine" in r.stderr


@pytest.mark.skipif(
    not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None,
    reason="systemd is not PID 1 here: a real user unit cannot be installed",
)
def test_a_real_user_unit_installs_starts_stops_and_uninstalls(q: Queue) -> None:
    name = f"test{os.getpid()}"
    try:
        q.run("service", "install", "--name", name, "--count", "2")
        q.wait_for(lambda: len(q.json("worker", "list")) == 2, what="the service's workers")
        status = json.loads(q.run("service", "status", "--name", name, "--json").stdout)
        assert status["running"] is True and len(status["workers"]) == 2
        q.run("service", "stop", "--name", name)
        q.wait_for(lambda: q.json("worker", "list") == [], what="the workers to stop")
    finally:
        q.run("service", "uninstall", "--name", name, check=False)
    assert not service.systemd_unit_path(name, False).exists()
