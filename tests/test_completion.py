"""Shell completion through the real shells: the scripts `queuectl completion` prints,
sourced in bash, zsh and fish, answering from a real queue with real jobs.

PowerShell is not installed here: its script is checked as text and its protocol by
running queuectl with the variables the script sets.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import QUEUECTL, Queue

BIN = str(Path(QUEUECTL).parent)


def _env(q: Queue, **extra: str) -> dict[str, str]:
    """The queue's environment with this venv's queuectl first on PATH (the scripts call
    `queuectl` by name)."""
    return {**q.env, "PATH": BIN + os.pathsep + q.env.get("PATH", ""), **extra}


def bash_complete(q: Queue, line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash puts in COMPREPLY for `line` (a trailing space: complete a new word)."""
    words = line.split(" ")
    script = (
        "source <(queuectl completion bash)\n"
        "complete -p queuectl\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_queuectl_completion queuectl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    r = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env or _env(q),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    first, *replies = r.stdout.splitlines()
    assert first == "complete -o nosort -F _queuectl_completion queuectl"
    return [x for x in replies if x]


def protocol(q: Queue, shell: str, words: str, cword: str, **extra: str) -> str:
    """Runs queuectl as a completion script does: `_QUEUECTL_COMPLETE=<shell>_complete`."""
    env = _env(
        q, _QUEUECTL_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=cword, **extra
    )
    r = subprocess.run([QUEUECTL], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    return r.stdout


@pytest.fixture
def filled(q: Queue) -> Queue:
    """A queue with jobs in two named queues, one dead job and a schedule."""
    q.run("enqueue", "--command", "exit 3", "--id", "doomed", "--max-retries", "0")
    q.run("worker", "start", "--burst", "--quiet")
    q.run("enqueue", "--command", "echo a", "--id", "alpha1", "--queue", "images")
    q.run("enqueue", "--command", "echo b", "--id", "beta2")
    q.run("enqueue", "--command", "echo c", "--id", "alpha3", "--queue", "video")
    q.run("schedule", "add", "nightly", "--cron", "0 2 * * *", "--command", "./backup.sh")
    assert q.state("doomed") == "dead"
    return q


@pytest.mark.store_independent
def test_bash_completes_commands_subcommands_and_options(q: Queue) -> None:
    assert bash_complete(q, "queuectl sh") == ["show"]
    assert set(bash_complete(q, "queuectl s")) == {"status", "show", "schedule", "service"}
    assert bash_complete(q, "queuectl comp") == ["completion"]
    assert bash_complete(q, "queuectl queue p") == ["pause"]
    assert bash_complete(q, "queuectl schedule re") == ["remove", "resume"]
    assert bash_complete(q, "queuectl list --st") == ["--state"]
    assert bash_complete(q, "queuectl list --state d") == ["dead"]
    assert bash_complete(q, "queuectl enqueue --q") == ["--queue"]
    assert bash_complete(q, "queuectl completion ") == ["bash", "zsh", "fish", "powershell"]
    assert bash_complete(q, "queuectl config get backoff-") == [
        "backoff-base",
        "backoff-max",
        "backoff-jitter",
    ]
    # Nothing was opened or created to answer.
    assert not q.home.exists()


def test_bash_completes_queue_names(filled: Queue) -> None:
    q = filled
    assert bash_complete(q, "queuectl list --queue i") == ["images"]
    assert bash_complete(q, "queuectl queue pause ") == ["default", "images", "video"]
    assert bash_complete(q, "queuectl queue limit v") == ["video"]
    assert bash_complete(q, "queuectl enqueue --command x --queue ") == [
        "default",
        "images",
        "video",
    ]
    # A comma list completes its last name.
    assert bash_complete(q, "queuectl worker start --queue images,v") == ["images,video"]


def test_bash_completes_schedule_names(filled: Queue) -> None:
    q = filled
    for sub in ("show", "next", "pause", "resume", "remove"):
        assert bash_complete(q, f"queuectl schedule {sub} ") == ["nightly"]
    assert bash_complete(q, "queuectl schedule show x") == []


def test_bash_completes_job_ids_newest_first(filled: Queue) -> None:
    q = filled
    assert bash_complete(q, "queuectl show ") == ["alpha3", "beta2", "alpha1", "doomed"]
    assert bash_complete(q, "queuectl logs al") == ["alpha3", "alpha1"]
    assert bash_complete(q, "queuectl explain b") == ["beta2"]
    assert bash_complete(q, "queuectl wait alpha3 ") == ["beta2", "alpha1", "doomed"]
    assert bash_complete(q, "queuectl delete ") == ["alpha3", "beta2", "alpha1", "doomed"]
    assert bash_complete(q, "queuectl enqueue --command x --after a") == ["alpha3", "alpha1"]
    # dlq retry: dead jobs only; retry: jobs that ended other than completed; cancel: the
    # ones that have not ended.
    assert bash_complete(q, "queuectl dlq retry ") == ["doomed"]
    assert bash_complete(q, "queuectl retry ") == ["doomed"]
    assert bash_complete(q, "queuectl cancel ") == ["alpha3", "beta2", "alpha1"]


@pytest.mark.sqlite_only
def test_home_and_db_given_on_the_line_are_honoured(filled: Queue, tmp_path: Path) -> None:
    q = filled
    # The environment points at an empty home; the line at the real one.
    env = _env(q, QUEUECTL_HOME=str(tmp_path / "elsewhere"))
    assert bash_complete(q, "queuectl show ", env) == []
    assert bash_complete(q, f"queuectl --home {q.home} show al", env) == ["alpha3", "alpha1"]
    db = q.home / "qctl.db"
    assert bash_complete(q, f"queuectl --db {db} schedule show ", env) == ["nightly"]
    assert bash_complete(q, f"queuectl --db {db} dlq retry ", env) == ["doomed"]
    env = _env(q, QUEUECTL_HOME=str(tmp_path / "elsewhere"), QUEUECTL_DB=str(db))
    assert bash_complete(q, "queuectl queue resume i", env) == ["images"]
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.sqlite_only
def test_no_database_is_created_and_bad_ones_answer_nothing(q: Queue, tmp_path: Path) -> None:
    # No home at all, then an empty home folder: nothing answered, nothing created.
    assert bash_complete(q, "queuectl show ") == []
    assert bash_complete(q, "queuectl list --queue ") == []
    assert not q.home.exists()
    q.home.mkdir()
    assert bash_complete(q, "queuectl queue pause ") == []
    assert list(q.home.iterdir()) == []
    # A file that is not a database, and a SQLite database of something else.
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    for db in (text, other):
        assert bash_complete(q, f"queuectl --db {db} show ") == []
        assert protocol(q, "bash", f"queuectl --db {db} show ", "4") == "\n"
    assert other.read_bytes() == before
    assert text.read_text() == "not a database\n"


@pytest.mark.store_independent
def test_a_broken_request_exits_quietly(q: Queue) -> None:
    env = _env(q, _QUEUECTL_COMPLETE="bash_complete", COMP_WORDS="queuectl sh", COMP_CWORD="x")
    r = subprocess.run([QUEUECTL], env=env, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    env["_QUEUECTL_COMPLETE"] = "tcsh_complete"
    r = subprocess.run([QUEUECTL], env=env, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")


@pytest.mark.store_independent
def test_a_postgresql_server_that_does_not_answer_gives_nothing(q: Queue) -> None:
    # Port 1: nothing listens there.
    line = "queuectl --db postgresql://nobody@127.0.0.1:1/none show "
    assert bash_complete(q, line) == []
    # A server that accepts the connection and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        line = f"queuectl --db postgresql://nobody@127.0.0.1:{port}/none queue pause "
        assert bash_complete(q, line) == []
        took = time.monotonic() - started
    assert 2 <= took < 10, took


def test_job_ids_are_the_newest_few_hundred_and_come_fast(q: Queue, tmp_path: Path) -> None:
    batch = tmp_path / "jobs.jsonl"
    batch.write_text(
        "".join(json.dumps({"id": f"j{i:05d}", "command": "true"}) + "\n" for i in range(2000))
    )
    q.run("enqueue", "--file", str(batch))
    started = time.monotonic()
    ids = bash_complete(q, "queuectl show ")
    took = time.monotonic() - started
    assert ids == [f"j{i:05d}" for i in range(1999, 1699, -1)]
    # What was typed narrows the search, so an old job is still found by its id.
    assert bash_complete(q, "queuectl show j0001") == [f"j0001{i}" for i in range(9, -1, -1)]
    assert took < 5, took


def test_zsh_registers_and_answers(filled: Queue, tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed")
    q = filled
    # compadd and _describe work only inside a completion widget: stand-ins print what
    # the script hands them, so the script's own function runs in a real zsh.
    script = f"""
autoload -U compinit; compinit -u -d {shlex.quote(str(tmp_path / "zcompdump"))}
source <(queuectl completion zsh)
print -r -- "registered: $_comps[queuectl]"
compadd() {{ print -rl -- "${{(@P)${{@[-1]}}}}" }}
_describe() {{ print -rl -- "${{(@P)3}}" }}
words=(queuectl sh); CURRENT=2; _queuectl_completion
words=(queuectl queue pause ''); CURRENT=4; _queuectl_completion
words=(queuectl schedule show ''); CURRENT=4; _queuectl_completion
words=(queuectl dlq retry ''); CURRENT=4; _queuectl_completion
"""
    r = subprocess.run(
        [zsh, "-f", "-c", script], env=_env(q), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == [
        "registered: _queuectl_completion",
        "show:Show one job with its attempt history.",
        "default",
        "images",
        "video",
        "nightly:0 2 * * *",
        "doomed:dead: exit 3",
    ]
    # The protocol itself: type, value and help on three lines per answer.
    assert protocol(q, "zsh", "queuectl explain al", "2").splitlines() == [
        "plain",
        "alpha3",
        "pending: echo c",
        "plain",
        "alpha1",
        "pending: echo a",
    ]


def test_fish_completes(filled: Queue, tmp_path: Path) -> None:
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish is not installed")
    q = filled
    lines = [
        "source (queuectl completion fish | psub)",
        'complete -C "queuectl sh"',
        'complete -C "queuectl list --queue i"',
        'complete -C "queuectl schedule pause "',
        'complete -C "queuectl logs alpha"',
        'complete -C "queuectl dlq retry "',
    ]
    # fish keeps its own files under the XDG folders: throwaway ones.
    xdg = {f"XDG_{k}_HOME": str(tmp_path / k) for k in ("CONFIG", "DATA", "CACHE")}
    r = subprocess.run(
        [fish, "--no-config", "-c", "; ".join(lines)],
        env=_env(q, **xdg),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == [
        "show\tShow one job with its attempt history.",
        "images",
        "nightly\t0 2 * * *",
        "alpha1\tpending: echo a",
        "alpha3\tpending: echo c",
        "doomed\tdead: exit 3",
    ]


@pytest.mark.store_independent
def test_powershell_script_and_protocol(q: Queue) -> None:
    script = q.run("completion", "powershell").stdout
    assert script.startswith("Register-ArgumentCompleter -Native -CommandName queuectl ")
    assert "'_QUEUECTL_COMPLETE', 'powershell_complete'" in script
    assert "& queuectl 2>$null" in script
    assert "[System.Management.Automation.CompletionResult]::new(" in script
    # What the script sets: the line up to the cursor and the index of the word completed.
    assert protocol(q, "powershell", "queuectl sh", "1") == (
        "plain\tshow\tShow one job with its attempt history.\n"
    )
    # The help is click's short help of each command.
    assert protocol(q, "powershell", "queuectl worker st", "2") == (
        "plain\tstart\tStart COUNT workers: in the foreground...\n"
        "plain\tstop\tStop every running worker, on any host...\n"
    )
    assert protocol(q, "powershell", "queuectl completion p", "2") == "plain\tpowershell\t\n"


def test_powershell_protocol_answers_from_the_queue(filled: Queue) -> None:
    q = filled
    assert protocol(q, "powershell", "queuectl show al", "2") == (
        "plain\talpha3\tpending: echo c\nplain\talpha1\tpending: echo a\n"
    )
    assert protocol(q, "powershell", "queuectl queue resume ", "3") == (
        "plain\tdefault\t\nplain\timages\t\nplain\tvideo\t\n"
    )


@pytest.mark.store_independent
def test_completion_scripts_name_the_protocol(q: Queue) -> None:
    for shell in ("bash", "zsh", "fish"):
        script = q.run("completion", shell).stdout
        assert f"_QUEUECTL_COMPLETE={shell}_complete" in script, shell
    r = q.run("completion", "tcsh", check=False)
    assert r.returncode == 2 and "'tcsh' is not one of" in r.stderr
