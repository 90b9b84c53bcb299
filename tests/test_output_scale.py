"""Output at scale (issue 28, item 5), with real workers, real jobs and a real dashboard:
one job writing 2 GB, 100 jobs writing 10 MB each at once, `logs --follow` and the
dashboard's live output while the worker caps the log under them.

What "right" means here is what docs/guide/retries.md says of `log-max-bytes`: a log keeps
each attempt's newest output, at least the cap and at most twice it, after a line saying
how many earlier bytes were dropped; the database keeps the last 4 KiB (`output_tail`).

The 2 GB job runs in full on every run (about 8 s here); QUEUECTL_TEST_FLOOD_LINES sets how
many `seq` lines it writes instead (211,111,111 lines is 2,000,000,008 bytes). Run with
`-s` for the figures (worker RSS, times, lag) that docs/dev/reliability.md quotes.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import queuectl
from conftest import QUEUECTL, Queue
from test_ui import dashboard

FLOOD_LINES = int(os.environ.get("QUEUECTL_TEST_FLOOD_LINES", "211111111"))
MIB = 1024 * 1024
#: The log cap when it is not set (config `log-max-bytes`).
DEFAULT_CAP = 10 * MIB
TAIL_BYTES = 4096
DROPPED = re.compile(rb"\[queuectl: +(\d+) earlier bytes of output dropped: log-max-bytes\]\n")


def vm_kb(pid: int, field: str) -> int:
    """A figure of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def started(q: Queue, *args: str) -> int:
    """Starts a worker process and returns its pid once its workers run."""
    p = q.start_workers(*args, "--quiet")
    assert p.stderr is not None
    line = p.stderr.readline()
    assert f"in process {p.pid}:" in line, line
    return p.pid


def seq_length(last: int) -> int:
    """The length of `seq 1 last`'s output."""
    total, digits, low = 0, 1, 1
    while low <= last:
        high = min(last, low * 10 - 1)
        total += (high - low + 1) * (digits + 1)
        digits, low = digits + 1, low * 10
    return total


def seq_tail(last: int, n: int) -> bytes:
    """The last `n` bytes of `seq 1 last`'s output."""
    lines: list[bytes] = []
    size = 0
    k = last
    while size < n and k >= 1:
        lines.append(b"%d\n" % k)
        size += len(lines[-1])
        k -= 1
    return b"".join(reversed(lines))[-n:]


def split_log(log: bytes) -> tuple[bytes, int, bytes, bytes]:
    """One attempt's log: (header, bytes dropped, output kept, footer)."""
    header, _, rest = log.partition(b"\n")  # === attempt 1 at ...
    command, _, rest = rest.partition(b"\n")  # $ command
    dropped = 0
    m = DROPPED.match(rest)
    if m:
        dropped, rest = int(m.group(1)), rest[m.end() :]
    body, sep, footer = rest.rpartition(b"\n=== ")
    assert sep, log[-200:]
    return header + b"\n" + command + b"\n", dropped, body + b"\n", b"=== " + footer


def test_a_job_writing_2_gb_keeps_the_worker_small_and_the_end_of_its_output(q: Queue) -> None:
    pid = started(q, "--count", "1")
    time.sleep(1.0)
    idle_kb = vm_kb(pid, "VmRSS")
    last_line = b"END-OF-OUTPUT\n"
    t = time.monotonic()
    job = q.enqueue(f"seq 1 {FLOOD_LINES}; echo END-OF-OUTPUT")
    q.wait_for(lambda: q.state(job) not in ("pending", "processing"), 300, "the 2 GB job")
    secs = time.monotonic() - t
    peak_kb = vm_kb(pid, "VmHWM")
    assert q.state(job) == "completed"
    total = seq_length(FLOOD_LINES) + len(last_line)

    # The log: capped, and holding the newest output exactly, after the "dropped" line.
    (path,) = (q.home / "logs").iterdir()
    log = path.read_bytes()
    header, dropped, kept, footer = split_log(log)
    assert header.startswith(b"=== attempt 1 at ")
    print(
        f"\n{total:,} bytes written in {secs:.1f}s; log {len(log):,} bytes; worker RSS "
        f"{idle_kb / 1024:.1f} MiB idle, peak {peak_kb / 1024:.1f} MiB"
    )
    assert footer.startswith(b"=== exit code 0 after ")
    if total > 2 * DEFAULT_CAP:
        assert DEFAULT_CAP <= len(kept) <= 2 * DEFAULT_CAP
        assert dropped + len(kept) == total
    else:
        assert (dropped, len(kept)) == (0, total)
    assert kept == seq_tail(FLOOD_LINES, len(kept) - len(last_line)) + last_line
    # `logs` prints that file; `show` has the last 4 KiB of the output.
    assert q.run("logs", job).stdout.encode() == log
    expected_tail = (seq_tail(FLOOD_LINES, TAIL_BYTES - len(last_line)) + last_line).decode()
    (attempt,) = q.job(job)["attempt_history"]
    assert attempt["output_tail"] == expected_tail
    assert "| END-OF-OUTPUT" in q.run("show", job).stdout

    # The worker copies through one 64 KiB buffer: its memory does not follow the output.
    assert peak_kb - idle_kb < 16 * 1024, (idle_kb, peak_kb)
    assert peak_kb < 64 * 1024, peak_kb


def test_a_hundred_jobs_writing_10_mb_each_at_once(q: Queue, tmp_path: Path) -> None:
    """Each job waits for the gate, then writes 1,000,000 lines of its own numbers: job i
    writes 1ii000000 to 1ii999999 (10,000,000 bytes), then END-i. 100 workers in one
    process run them all at once; on PostgreSQL 50 do, in two rounds, since each worker
    holds a connection and the server here takes 100 in all (the worker's side of the
    output does not touch the store)."""
    gate = tmp_path / "gate"
    jobs = []
    for i in range(100):
        first = 100_000_000 + i * 1_000_000
        command = (
            f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; "
            f"seq {first} {first + 999_999}; echo END-{i}"
        )
        jobs.append({"id": f"out-{i:02d}", "command": command})
    q.run("enqueue", "--file", "-", input="\n".join(json.dumps(j) for j in jobs))
    workers = 50 if q.db else 100
    pid = started(q, "--count", str(workers))
    q.wait_for(
        lambda: q.json("status")["jobs"]["processing"] == workers, 60, f"{workers} jobs running"
    )
    time.sleep(0.5)
    before_kb = vm_kb(pid, "VmRSS")
    t = time.monotonic()
    gate.touch()
    q.wait_for(lambda: q.json("status")["jobs"]["completed"] == 100, 120, "100 jobs completed")
    secs = time.monotonic() - t
    peak_kb = vm_kb(pid, "VmHWM")
    print(
        f"\n100 x 10,000,000 bytes in {secs:.1f}s; worker RSS {before_kb / 1024:.1f} MiB with "
        f"{workers} jobs running, peak {peak_kb / 1024:.1f} MiB"
    )
    assert peak_kb - before_kb < 32 * 1024, (before_kb, peak_kb)
    assert peak_kb < 128 * 1024, peak_kb

    # Every log holds its job's output whole and nothing else (under the 10 MiB cap);
    # every tail is that output's end. Lines are "1" + two digits of the job + six.
    template = b"".join(b"1XX%06d\n" % k for k in range(1_000_000))
    with queuectl.Queue.open(home=str(q.home), db=q.db or str(q.home / "qctl.db")) as queue:
        for i in range(100):
            job = f"out-{i:02d}"
            expected = template.replace(b"XX", b"%02d" % i) + b"END-%d\n" % i
            path = queue.log_path(job)
            _, dropped, kept, footer = split_log(path.read_bytes())
            assert (dropped, kept == expected) == (0, True), job
            assert footer.startswith(b"=== exit code 0 after "), job
            (attempt,) = queue.attempts(job)
            assert attempt.output_tail == expected[-TAIL_BYTES:].decode(), job
            path.unlink()  # a gigabyte in all: not kept in pytest's last three tmp folders
    assert q.json("show", "out-42")["attempt_history"][0]["output_tail"].endswith(
        "142999999\nEND-42\n"
    )


def test_logs_follow_prints_a_capped_log_in_order_while_it_is_moved(q: Queue) -> None:
    """The worker moves the newest output back to the start of the attempt's output each
    time it passes twice the cap (here 256 KiB, so about a hundred times in 25 MB):
    `logs --follow` reads on across every move, printing more than the log ever holds.
    Each line it prints is the line after the one before, except after the worker's
    "dropped" line (output dropped before the follower got to it), where the numbers go on
    higher, from wherever the cut fell."""
    q.run("config", "set", "log-max-bytes", "256K")
    last = 3_500_000
    # 50 bursts of 70,000 lines (about 0.5 MB), 20 ms apart.
    command = (
        "for i in $(seq 0 49); do seq $((i * 70000 + 1)) $((i * 70000 + 70000)); sleep 0.02; "
        "done; echo END"
    )
    job = q.enqueue(command)
    reader = subprocess.Popen([QUEUECTL, "logs", "--follow", job], env=q.env, stdout=PIPE)
    t = time.monotonic()
    started(q, "--count", "1")
    out, _ = reader.communicate(timeout=120)
    secs = time.monotonic() - t
    assert reader.returncode == 0
    assert q.state(job) == "completed"
    lines = out.split(b"\n")
    assert lines[0].startswith(b"=== attempt 1 at ") and lines[1] == f"$ {command}".encode()
    assert lines[-3] == b"END" and lines[-2].startswith(b"=== exit code 0 ") and lines[-1] == b""
    previous = 0
    dropped_lines = 0
    body = lines[2:-3]
    for i, line in enumerate(body):
        if DROPPED.fullmatch(line + b"\n"):
            dropped_lines += 1
        elif i + 1 < len(body) and DROPPED.fullmatch(body[i + 1] + b"\n"):
            # Printed before the worker dropped the rest of this line.
            assert str(previous + 1).encode().startswith(line), (previous, line)
        elif i > 0 and DROPPED.fullmatch(body[i - 1] + b"\n"):
            pass  # the kept output starts where the cut fell, maybe within a line
        elif i > 1 and DROPPED.fullmatch(body[i - 2] + b"\n"):
            assert int(line) > previous, (previous, line)
            previous = int(line)
        else:
            assert int(line) == previous + 1, (previous, line)
            previous = int(line)
    assert previous == last
    log = q.run("logs", job).stdout.encode()
    (total_dropped,) = DROPPED.findall(log)
    assert len(out) > len(log) + 1_000_000
    print(
        f"\nlogs --follow: {len(out):,} bytes in {secs:.1f}s with {dropped_lines} 'dropped' "
        f"lines; the log: {len(log):,} bytes, {int(total_dropped):,} dropped"
    )


def test_logs_follow_that_keeps_up_prints_all_the_output_though_the_log_drops_it(
    q: Queue,
) -> None:
    """Bursts of about 70 KB, 0.15 s apart, the log capped at 256 KiB: the worker moves
    the output back several times while `logs --follow` (which looks five times a second)
    is never more than a burst or two behind, so it finds its place again after each move
    and prints the whole output, exactly, though the log keeps only its end."""
    q.run("config", "set", "log-max-bytes", "256K")
    command = (
        "for i in $(seq 0 23); do seq $((i * 10000 + 1)) $((i * 10000 + 10000)); sleep 0.15; "
        "done; echo END"
    )
    job = q.enqueue(command)
    reader = subprocess.Popen([QUEUECTL, "logs", "--follow", job], env=q.env, stdout=PIPE)
    started(q, "--count", "1")
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0
    header, dropped, kept, footer = split_log(out)
    assert header.startswith(b"=== attempt 1 at ") and header.endswith(f"$ {command}\n".encode())
    assert (dropped, kept) == (0, b"".join(b"%d\n" % k for k in range(1, 240_001)) + b"END\n")
    log = q.run("logs", job).stdout.encode()
    (log_dropped,) = DROPPED.findall(log)
    assert int(log_dropped) > 1_000_000 and log.endswith(footer)


WRITER = """\
import sys, time
secs, pad, burst, gap = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = sys.stdout.buffer
end = time.time() + secs
n = 0
while time.time() < end:
    for _ in range(burst):
        out.write(b"%d %.6f %s\\n" % (n, time.time(), b"p" * pad))
        n += 1
    out.flush()
    time.sleep(gap)
out.write(b"LAST %d\\n" % n)
"""
STAMPED = re.compile(r"(\d+) (\d+\.\d+) (p*)")
NOT_SHOWN = re.compile(
    r"\[queuectl: [\d,]+ bytes of the log not shown here; `queuectl logs` has them\]"
)


def writer_job(q: Queue, tmp_path: Path, secs: float, pad: int, burst: int, gap: float) -> str:
    """A job that writes `<n> <time written> <pad p's>` lines for `secs`, `burst` lines
    every `gap` seconds, then `LAST <count>`."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    python = shlex.quote(sys.executable)
    return q.enqueue(f"{python} {shlex.quote(str(script))} {secs} {pad} {burst} {gap}")


def live_output(port: int, host: str, job: str) -> Iterator[tuple[float, str, str]]:
    """The dashboard's live output of `job`: (time received, event, text) for every event."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/api/jobs/{job}/output", headers={"Host": f"{host}:{port}"})
    r = conn.getresponse()
    assert r.status == 200
    event = "message"
    try:
        while line := r.fp.readline():
            if line.startswith(b"event: "):
                event = line[7:].strip().decode()
            elif line.startswith(b"data: "):
                yield time.time(), event, json.loads(line[6:])
            elif line == b"\n":
                event = "message"
    finally:
        conn.close()


def test_the_dashboards_live_output_keeps_up_with_a_steady_writer(q: Queue, tmp_path: Path) -> None:
    """A line every 5 ms for 5 s: every line reaches the page's stream, in order, within
    1.5 s of being written (the stream looks at the log four times a second)."""
    job = writer_job(q, tmp_path, 5.0, 60, 1, 0.005)
    with dashboard(q) as d:
        events = live_output(d.port, d.host, job)
        started(q, "--count", "1")
        received: list[tuple[float, str]] = []
        partial = ""
        end = None
        for at, event, text in events:
            if event == "end":
                end = text
                break
            lines = (partial + text).split("\n")
            partial = lines.pop()
            received += [(at, line) for line in lines]
    assert end == "completed"
    stamped = [(at, STAMPED.fullmatch(line)) for at, line in received]
    lags = sorted(at - float(m.group(2)) for at, m in stamped if m)
    numbers = [int(m.group(1)) for _, m in stamped if m]
    last = int(received[-2][1].split()[1])  # LAST n, then the footer
    assert numbers == list(range(last)), "every line once, in order"
    median, worst = lags[len(lags) // 2], lags[-1]
    print(f"\nsteady writer: {last} lines, lag median {median * 1000:.0f} ms, max {worst:.2f} s")
    assert worst < 1.5


def test_the_dashboards_live_output_keeps_up_with_a_fast_writer_in_little_memory(
    q: Queue, tmp_path: Path
) -> None:
    """A job writes 2 KB lines for 6 s, 50 KB every millisecond or so (about 40 MB/s
    here), its log capped at 1 MiB, so the worker moves its output back 40 times a second.
    The stream never shows a line older than 2 s for long: at every moment until the job
    ends, the newest line received was written at most 2 s before. Lines arrive whole and
    in order (skips are said), the last line arrives, and the dashboard's memory stays
    flat."""
    q.run("config", "set", "log-max-bytes", "1M")
    job = writer_job(q, tmp_path, 6.0, 2000, 25, 0.001)
    with dashboard(q) as d:
        d.api("/api/jobs/" + job)
        before_kb = vm_kb(d.proc.pid, "VmRSS")
        events = live_output(d.port, d.host, job)
        started(q, "--count", "1")
        newest = None  # (time received, time written) of the newest line so far
        stale = 0.0  # the oldest the newest line received got before the next event
        received = 0
        texts = []
        end = None
        for at, event, text in events:
            if event == "end":
                end = text
                break
            received += len(text)
            texts.append(text)
            stamps = [float(m.group(2)) for m in STAMPED.finditer(text)]
            if newest is not None:
                stale = max(stale, at - newest)
            if stamps:
                newest = max(stamps) if newest is None else max(newest, max(stamps))
        peak_kb = vm_kb(d.proc.pid, "VmHWM")
    assert end == "completed"
    log = q.run("logs", job).stdout
    assert re.search(r"\nLAST \d+\n=== exit code 0 after \S+\n\Z", log), log[-300:]
    lines = "".join(texts).split("\n")
    assert lines[-3].startswith("LAST "), ("".join(texts)[-300:], log[-300:])
    assert lines[-3].startswith("LAST ") and lines[-2].startswith("=== exit code 0 ")
    written = int(lines[-3].split()[1])
    previous = -1
    skips = dropped = 0
    body = lines[:-3]

    def restart(line: str) -> bool:
        return bool(NOT_SHOWN.fullmatch(line) or DROPPED.fullmatch(line.encode() + b"\n"))

    for i, line in enumerate(body):
        if NOT_SHOWN.fullmatch(line):
            skips += 1
        elif DROPPED.fullmatch(line.encode() + b"\n"):
            dropped += 1
        elif i + 1 < len(body) and restart(body[i + 1]):
            assert re.fullmatch(r"[\d. p]*", line), line[:100]  # cut by the restart
        elif i > 0 and DROPPED.fullmatch(body[i - 1].encode() + b"\n"):
            pass  # the kept output starts where the worker's cut fell, maybe within a line
        elif line.startswith(("=== attempt 1 at ", "$ ")):
            assert previous == -1, line  # the header, unless skipped
        else:
            m = STAMPED.fullmatch(line)
            assert m and len(m.group(3)) == 2000, line[:100]
            assert int(m.group(1)) > previous, (previous, line[:100])
            previous = int(m.group(1))
    print(
        f"\nfast writer: {written:,} lines ({written * 2018 / 1e6:,.0f} MB) in 6 s; the stream "
        f"sent {received / 1e6:.1f} MB in {skips} stretches, newest line at most {stale:.2f} s "
        f"old; dashboard RSS {before_kb / 1024:.1f} MiB before, peak {peak_kb / 1024:.1f} MiB"
    )
    assert stale < 2.0
    assert peak_kb - before_kb < 32 * 1024, (before_kb, peak_kb)
