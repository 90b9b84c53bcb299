"""Shell completion: the `shell_complete=` callbacks of the commands' parameters, and the
PowerShell protocol.

A callback runs on every Tab press, in a process click starts with `_QUEUECTL_COMPLETE`
set, before any command runs (so `ctx.obj` is None). It reads `--home` and `--db` from the
line typed so far, then QUEUECTL_HOME and QUEUECTL_DB, like every command. It opens a
SQLite file only when it is already a queue (it never creates one), and answers nothing on
any error or after DEADLINE_S: a shell's completion must not print a traceback or hang.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import click
from click.shell_completion import (
    CompletionItem,
    ShellComplete,
    add_completion_class,
    split_arg_string,
)

from queuectl import _core
from queuectl.home import Home

# Job ids offered: at most this many, newest first, that start with what was typed.
RECENT_JOBS = 300
# Pages of older jobs are searched for them for up to this long.
SEARCH_S = 1.0
# What is not answered within this many seconds (a PostgreSQL server that accepts the
# connection and then says nothing, a SQLite file locked for long) is not answered at all.
DEADLINE_S = 2.0

Callback = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _store(ctx: click.Context) -> _core.Store | None:
    """The queue the line being typed points at, or None when there is none yet."""
    root = ctx.find_root()
    home = Home.resolve(root.params.get("home"), root.params.get("db"))
    location = home.db
    if "://" not in location and not _is_queue_file(Path(location)):
        return None
    return _core.Store(location, durable=False, busy_timeout_ms=500)


def _is_queue_file(path: Path) -> bool:
    """Whether `path` is a SQLite file in WAL mode (bytes 18 and 19 of the header are 2), as
    every queuectl queue is. Opening anything else would change it: a missing or empty file
    would become a queue, another SQLite file would be switched to WAL mode."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        header = f.read(100)
    return header.startswith(b"SQLite format 3\0") and header[18:20] == b"\x02\x02"


def _quiet(values: Callable[[click.Context, str], Iterable[CompletionItem]]) -> Callback:
    """A callback answering the `values` that start with what was typed; nothing on an error
    or when they take longer than DEADLINE_S. (The store releases the GIL while it waits, so
    the thread left behind does not keep the process from answering and exiting.)"""

    def callback(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        answer: list[CompletionItem] = []

        def run() -> None:
            try:
                items = values(ctx, incomplete)
                answer.extend(item for item in items if item.value.startswith(incomplete))
            except Exception:
                answer.clear()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(DEADLINE_S)
        return list(answer) if not worker.is_alive() else []

    return callback


def _queue_items(ctx: click.Context, incomplete: str) -> Iterable[CompletionItem]:
    store = _store(ctx)
    if store is None:
        return []
    return [CompletionItem(q.name, help="paused" if q.paused else None) for q in store.queues()]


def _schedule_items(ctx: click.Context, incomplete: str) -> Iterable[CompletionItem]:
    store = _store(ctx)
    if store is None:
        return []
    return [CompletionItem(s.name, help=s.cron) for s in store.schedules()]


def _allowing(change: _core._ChangeName) -> tuple[str, ...]:
    """The states whose jobs `change` may apply to, as the core rules."""
    return tuple(s for s in _core.JOB_STATES if _core.change_allowed(change, s))


def _job_items(
    states: tuple[str | None, ...],
) -> Callable[[click.Context, str], list[CompletionItem]]:
    def items(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        store = _store(ctx)
        if store is None:
            return []
        # An id already on the line is not offered again (cancel a b <Tab>).
        given = set(ctx.params.get("ids") or ())
        stop = time.monotonic() + SEARCH_S
        jobs: list[_core.Job] = []
        for state in states:
            # A page holds the jobs whose id or command contains the text, from a bounded
            # window of positions; older pages are read until enough ids start with it.
            found, before = 0, None
            while found < RECENT_JOBS and time.monotonic() < stop:
                page, before = store.jobs_page(state, None, incomplete or None, before, RECENT_JOBS)
                hits = [j for j in page if j.id.startswith(incomplete) and j.id not in given]
                jobs += hits
                found += len(hits)
                if before is None:
                    break
        jobs.sort(key=lambda j: j.created_at_ms, reverse=True)
        return [
            CompletionItem(j.id, help=f"{j.state}: {j.command}"[:80]) for j in jobs[:RECENT_JOBS]
        ]

    return items


def _queue_list_items(ctx: click.Context, incomplete: str) -> Iterable[CompletionItem]:
    """`--queue a,b,c`: complete the name after the last comma."""
    head, comma, _ = incomplete.rpartition(",")
    prefix = head + comma
    return [CompletionItem(prefix + item.value, help=item.help) for item in _queue_items(ctx, "")]


def _config_keys(ctx: click.Context, incomplete: str) -> Iterable[CompletionItem]:
    from queuectl.config import KEYS

    return [CompletionItem(k.name, help=k.help) for k in KEYS.values()]


def _files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(incomplete, type="file")]


def _dirs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(incomplete, type="dir")]


queue_names = _quiet(_queue_items)
queue_name_lists = _quiet(_queue_list_items)
schedule_names = _quiet(_schedule_items)
job_ids = _quiet(_job_items((None,)))
dead_job_ids = _quiet(_job_items(_allowing("retry-dead")))
# cancel: the jobs that have not ended; retry: the ones that ended other than completed.
unfinished_job_ids = _quiet(_job_items(_allowing("cancel")))
retryable_job_ids = _quiet(_job_items(_allowing("retry")))
config_keys = _quiet(_config_keys)
files = _files
dirs = _dirs


# PowerShell: Register-ArgumentCompleter -Native hands the script block the command's
# syntax tree and the cursor; the script sends the text up to the cursor and the index of
# the word being completed, and turns each "type<TAB>value<TAB>help" line of the answer
# into a CompletionResult. Nothing answered (or only files) leaves PowerShell's own path
# completion.
_SOURCE_POWERSHELL = """\
Register-ArgumentCompleter -Native -CommandName %(prog_name)s -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $text = $commandAst.Extent.Text
    $upto = $cursorPosition - $commandAst.Extent.StartOffset
    if ($upto -lt $text.Length) { $text = $text.Substring(0, $upto) }
    $before = @($commandAst.CommandElements |
        Where-Object { $_.Extent.StartOffset -lt $cursorPosition }).Count
    $index = if ($wordToComplete) { $before - 1 } else { $before }
    $names = '%(complete_var)s', 'COMP_WORDS', 'COMP_CWORD'
    $saved = @{}
    foreach ($n in $names) { $saved[$n] = [Environment]::GetEnvironmentVariable($n) }
    try {
        [Environment]::SetEnvironmentVariable('%(complete_var)s', 'powershell_complete')
        [Environment]::SetEnvironmentVariable('COMP_WORDS', $text)
        [Environment]::SetEnvironmentVariable('COMP_CWORD', [string]$index)
        $answer = @(& %(prog_name)s 2>$null)
    } finally {
        foreach ($n in $names) { [Environment]::SetEnvironmentVariable($n, $saved[$n]) }
    }
    foreach ($line in $answer) {
        $kind, $value, $tip = $line -split "`t", 3
        if ($kind -ne 'plain' -or -not $value) { continue }
        if (-not $tip) { $tip = $value }
        $insert = $value
        if ($value -match '[\\s''"`$;,(){}@&|<>#]') {
            $insert = "'" + ($value -replace "'", "''") + "'"
        }
        $type = if ($value.StartsWith('-')) { 'ParameterName' } else { 'ParameterValue' }
        [System.Management.Automation.CompletionResult]::new($insert, $value, $type, $tip)
    }
}
"""


class PowerShellComplete(ShellComplete):
    """`_QUEUECTL_COMPLETE=powershell_complete`: COMP_WORDS is the command line up to the
    cursor, COMP_CWORD the index of the word being completed; one line per answer."""

    name = "powershell"
    source_template = _SOURCE_POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        index = int(os.environ.get("COMP_CWORD", "0") or 0)
        args = words[1:index]
        incomplete = words[index] if index < len(words) else ""
        return args, incomplete

    def format_completion(self, item: CompletionItem) -> str:
        tip = " ".join((item.help or "").split())
        return f"{item.type}\t{item.value}\t{tip}"


# Registered under click's own name for the shell, so it is this protocol whichever click
# is installed (click 8.5 brought one of its own; earlier releases have none).
add_completion_class(PowerShellComplete)

SHELLS = ("bash", "zsh", "fish", "powershell")
