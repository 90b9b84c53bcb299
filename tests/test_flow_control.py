"""Flow control as the CLI, the API and the metrics show it (DESIGN.md section 13): the
flags and `queue rate` / `queue key-limit` reach the store, bad input is a one-line error
that changes nothing, the JSON of show, list and queue list carries every field, and
`explain` and `queuectl_jobs_held` name the rule that holds a job back. Whether the rules
hold under races (many workers in several processes) is for the race tests, not these."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Queue
from queuectl import InputError, _core, flow

# Reading what people type: no store involved.


@pytest.mark.store_independent
@pytest.mark.parametrize(
    ("text", "n", "period_ms"),
    [
        ("10/s", 10, 1000),
        ("10/1s", 10, 1000),
        ("100/1m", 100, 60_000),
        ("5/1h", 5, 3_600_000),
        ("30/90s", 30, 90_000),
        ("1/1.5s", 1, 1500),
        ("1/1d", 1, 86_400_000),
        ("1/30d", 1, 30 * 86_400_000),
        ("1/2592000", 1, 30 * 86_400_000),
        (" 7 / 2m ", 7, 120_000),
        ("1000000/s", 1_000_000, 1000),
        ("none", 0, 0),
        ("NONE", 0, 0),
    ],
)
def test_a_rate_is_read_as_typed(text: str, n: int, period_ms: int) -> None:
    assert flow.parse_rate(text) == flow.Rate(n, period_ms)


@pytest.mark.store_independent
@pytest.mark.parametrize(
    "text",
    [
        "10/0s",
        "10/0",
        "0/s",
        "1000001/s",
        "-1/s",
        "10",
        "10/",
        "/s",
        "ten/s",
        "10/x",
        "10/-1s",
        "1/31d",
        "1/2592001",
        "1/0.0001s",
        "\u0661\u0660/s",  # Arabic-Indic digits
        "",
    ],
)
def test_a_bad_rate_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        flow.parse_rate(text)


@pytest.mark.store_independent
def test_a_rate_is_written_as_queue_rate_takes_it() -> None:
    shown = [
        flow.Rate(10, 1000).text,
        flow.Rate(100, 60_000).text,
        flow.Rate(5, 3_600_000).text,
        flow.Rate(3, 90_000).text,
        flow.Rate(1, 1500).text,
        flow.Rate(2, 86_400_000).text,
        flow.Rate(0, 0).text,
    ]
    assert shown == ["10/1s", "100/1m", "5/1h", "3/90s", "1/1.5s", "2/1d", "none"]
    assert [flow.duration_text(ms) for ms in (0, 250, 1000, 90_000, 120_000, 7_200_000)] == [
        "0s",
        "0.25s",
        "1s",
        "90s",
        "2m",
        "2h",
    ]
    for rate in (flow.Rate(10, 1000), flow.Rate(3, 90_000), flow.Rate(1, 1500)):
        assert flow.parse_rate(rate.text) == rate


@pytest.mark.store_independent
def test_exit_codes_delays_and_expiries_are_read_as_typed() -> None:
    assert flow.exit_codes("75,111") == [75, 111]
    assert flow.exit_codes(" 0 , 255,0") == [0, 255]
    assert flow.exit_codes("2,timeout", timeout=True) == [2, "timeout"]
    for bad in ("abc", "", "1,,2", "256", "-1", "+1", "1.0", "timeout"):
        with pytest.raises(ValueError):
            flow.exit_codes(bad)
    assert flow.delay_list("10s,1m,5m") == [10.0, 60.0, 300.0]
    assert flow.delay_list("0,1.5") == [0.0, 1.5]
    for bad in ("10s,-1", "", "1,,2", "soon"):
        with pytest.raises(ValueError):
            flow.delay_list(bad)
    now = _core.parse_time("2030-01-01T00:00:00Z")
    assert flow.expiry("30m", now) == "2030-01-01T00:30:00.000Z"
    assert flow.expiry(90, now) == "2030-01-01T00:01:30.000Z"
    assert flow.expiry("2030-01-01T02:00:00+01:00", now) == "2030-01-01T01:00:00.000Z"
    for bad in ("0", "-5m", "2029-12-31T23:59:59Z", "2030-01-01T00:00:00Z", "soon", ""):
        with pytest.raises(ValueError):
            flow.expiry(bad, now)
    for number in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            flow.expiry(number, now)


# The command line and the store.


def _one_line_error(r: subprocess.CompletedProcess[str], code: int) -> None:
    assert r.returncode == code, (r.args, r.stderr)
    assert r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_flow_input_is_one_line_and_changes_nothing(q: Queue) -> None:
    q.run("enqueue", "--command", "true")
    usage = [
        ["queue", "rate", "q", "10/0s"],
        ["queue", "rate", "q", "0/s"],
        ["queue", "rate", "q", "2000000/s"],
        ["queue", "rate", "q", "1/31d"],
        ["queue", "rate", "q", "ten/s"],
        ["queue", "key-limit", "q", "-1"],
        ["enqueue", "--command", "true", "--slots", "0"],
        ["enqueue", "--command", "true", "--slots", "1025"],
        ["enqueue", "--command", "true", "--slots", "-1"],
        ["enqueue", "--command", "true", "--retry-on", "abc"],
        ["enqueue", "--command", "true", "--retry-on", "256"],
        ["enqueue", "--command", "true", "--retry-on", "-1"],
        ["enqueue", "--command", "true", "--retry-on", "timeout"],
        ["enqueue", "--command", "true", "--no-retry-on", "2,never"],
        ["enqueue", "--command", "true", "--retry-delays", "10s,-1"],
        ["enqueue", "--command", "true", "--retry-delays", "10s,,1m"],
        ["enqueue", "--command", "true", "--expires", "2020-01-01T00:00:00Z"],
        ["enqueue", "--command", "true", "--expires", "-5m"],
        ["enqueue", "--command", "true", "--expires", "0"],
        ["enqueue", "--command", "true", "--expires", "soon"],
        ["enqueue", '{"command": "true"}', "--key", "k"],
        ["worker", "start", "--burst", "--slots", "0"],
        ["worker", "start", "--burst", "--slots", "65537"],
        ["schedule", "add", "s", "--cron", "@daily", "--command", "true", "--slots", "0"],
        ["schedule", "add", "s", "--cron", "@daily", "--command", "true", "--expires", "1h"],
    ]
    for args in usage:
        _one_line_error(q.run(*args, check=False), 2)
    for args in (
        ["config", "set", "backoff-jitter", "-1"],
        ["config", "set", "backoff-jitter", "1.5"],
        ["config", "set", "backoff-jitter", "x"],
        ["enqueue", '{"command": "true", "slots": 0}'],
        ["enqueue", '{"command": "true", "retry_on": ["abc"]}'],
        ["enqueue", '{"command": "true", "no_retry_on": ["never"]}'],
        ["enqueue", '{"command": "true", "retry_delays": []}'],
        ["enqueue", '{"command": "true", "key": ""}'],
        ["enqueue", '{"command": "true", "expires_at": "2020-01-01T00:00:00Z"}'],
        ["queue", "rate", "q" * 65, "1/s"],
        ["queue", "key-limit", "bad/name", "1"],
    ):
        _one_line_error(q.run(*args, check=False), 1)
    assert [r["name"] for r in q.json("queue", "list")] == ["default"]
    assert len(q.json("list")) == 1
    assert q.json("schedule", "list") == []
    assert q.run("config", "get", "backoff-jitter").stdout.strip() == "0"
    assert (
        "retry_on" in q.run("enqueue", '{"command": "true", "retry_on": [256]}', check=False).stderr
    )


def test_the_flags_reach_the_job_and_its_json(q: Queue) -> None:
    before = _core.now_ms()
    job_id = q.run(
        "enqueue",
        "--command",
        "true",
        "--key",
        "acme",
        "--slots",
        "4",
        "--retry-delays",
        "10s,1m,5m",
        "--retry-on",
        "75,111",
        "--no-retry-on",
        "2,timeout",
        "--expires",
        "30m",
    ).stdout.strip()
    shown = q.job(job_id)
    assert shown["key"] == "acme"
    assert shown["slots"] == 4
    assert shown["retry_delays"] == [10, 60, 300]
    assert shown["retry_on"] == [75, 111]
    assert shown["no_retry_on"] == [2, "timeout"]
    expires = _core.parse_time(shown["expires_at"])
    assert before + 1_800_000 <= expires <= _core.now_ms() + 1_800_000
    (listed,) = q.json("list")
    fields = ("key", "slots", "retry_delays", "retry_on", "no_retry_on", "expires_at")
    assert {k: listed[k] for k in fields} == {k: shown[k] for k in fields}
    text = q.run("show", job_id).stdout
    assert re.search(r"^key: +acme$", text, re.M)
    assert re.search(r"^slots: +4$", text, re.M)
    assert re.search(r"^retry_delays: +10s, 1m, 5m$", text, re.M)
    assert re.search(r"^no_retry_on: +2, timeout$", text, re.M)

    # A job without them: defaults, and its JSON enqueues again as it is.
    plain = q.job(q.run("enqueue", "--command", "true").stdout.strip())
    assert {k: plain[k] for k in fields} == {
        "key": None,
        "slots": 1,
        "retry_delays": None,
        "retry_on": None,
        "no_retry_on": None,
        "expires_at": None,
    }
    again = q.enqueue("true", **{k: shown[k] for k in fields})
    assert {k: q.job(again)[k] for k in fields} == {k: shown[k] for k in fields}


def test_queue_rate_and_key_limit_show_in_queue_list(q: Queue) -> None:
    assert q.json("queue", "rate", "api", "10/1m") == {
        "queue": "api",
        "rate": {"n": 10, "period": 60},
    }
    assert q.run("queue", "rate", "mail", "5/s").stdout == (
        "queue mail: at most 5 start(s) in any 1s\n"
    )
    assert q.json("queue", "key-limit", "api", "2") == {"queue": "api", "key_limit": 2}
    assert q.run("queue", "key-limit", "mail", "0").stdout == "queue mail: no key limit\n"
    rows = {r["name"]: r for r in q.json("queue", "list")}
    assert rows["api"]["rate"] == {"n": 10, "period": 60}
    assert rows["api"]["key_limit"] == 2
    assert rows["mail"]["rate"] == {"n": 5, "period": 1}
    assert rows["mail"]["key_limit"] == 0
    table = q.run("queue", "list").stdout.splitlines()
    head = table[0].split()
    assert head[-5:] == ["LIMIT", "RATE", "KEY", "LIMIT", "PAUSED"]
    cells = {line.split()[0]: line.split()[-4:] for line in table[1:]}
    assert cells["api"] == ["-", "10/1m", "2", "no"]
    assert cells["mail"] == ["-", "5/1s", "-", "no"]
    assert q.run("queue", "rate", "api", "none").stdout == "queue api: no rate\n"
    assert {r["name"]: r for r in q.json("queue", "list")}["api"]["rate"] is None


def _held(q: Queue, queue: str, rule: str) -> int:
    text = q.run("metrics").stdout
    found = re.search(rf'^queuectl_jobs_held\{{queue="{queue}",rule="{rule}"\}} (\d+)$', text, re.M)
    assert found, text
    return int(found[1])


def test_explain_names_a_queue_at_its_rate(q: Queue) -> None:
    q.run("queue", "rate", "api", "1/1h")
    first = q.run("enqueue", "--command", "true", "--queue", "api").stdout.strip()
    second = q.run("enqueue", "--command", "true", "--queue", "api").stdout.strip()
    q.start_workers("--quiet")
    q.wait_for(lambda: q.state(first) == "completed", what="the first job")
    time.sleep(0.5)
    assert q.state(second) == "pending"
    why = q.json("explain", second)["explanation"]
    assert "queue api is at its rate 1/1h (1 started in the last 1h): next start at " in why
    assert _held(q, "api", "rate") == 1
    assert _held(q, "api", "key") == 0
    q.run("queue", "rate", "api", "none")
    q.wait_for(lambda: q.state(second) == "completed", what="the job the rate held")


def test_explain_names_a_key_at_its_limit(q: Queue) -> None:
    q.run("queue", "key-limit", "deploys", "1")

    def add(key: str, command: str) -> str:
        args = ("--queue", "deploys", "--key", key, "--command", command)
        return q.run("enqueue", *args).stdout.strip()

    running, held, other = add("acme", "sleep 30"), add("acme", "true"), add("zeta", "true")
    q.start_workers("--count", "3", "--quiet")
    q.wait_for(lambda: q.state(other) == "completed", what="the job with another key")
    q.wait_for(lambda: q.state(running) == "processing", what="the first acme job")
    time.sleep(0.5)
    assert q.state(held) == "pending"
    why = q.json("explain", held)["explanation"]
    assert "1 job(s) with key acme are running, the key limit of queue deploys is 1" in why
    assert _held(q, "deploys", "key") == 1
    q.run("cancel", running)
    q.wait_for(lambda: q.state(held) == "completed", what="the job the key limit held")


def test_explain_names_a_job_bigger_than_every_worker(q: Queue) -> None:
    big = q.run("enqueue", "--command", "true", "--slots", "8").stdout.strip()
    small = q.run("enqueue", "--command", "true", "--slots", "4").stdout.strip()
    q.start_workers("--count", "2", "--slots", "4", "--quiet")
    q.wait_for(lambda: q.state(small) == "completed", what="the job that fits")
    workers = q.json("worker", "list")
    assert [w["slots"] for w in workers] == [4, 4]
    assert "SLOTS" in q.run("worker", "list").stdout.splitlines()[0].split()
    assert q.state(big) == "pending"
    why = q.json("explain", big)["explanation"]
    assert "it needs 8 slots; the largest live worker process serving queue default has 4" in why
    assert "queuectl worker start --slots 8" in why
    assert _held(q, "default", "slots") == 1
    q.run("worker", "start", "--detach", "--count", "1", "--slots", "8")
    q.wait_for(lambda: q.state(big) == "completed", what="the big job")
    assert sorted(w["slots"] for w in q.json("worker", "list")) == [4, 4, 8]


def test_an_expired_job_ends_cancelled_and_never_runs(q: Queue, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job_id = q.run("enqueue", "--command", f"touch {marker}", "--expires", "1s").stdout.strip()
    assert "it expires at " in q.json("explain", job_id)["explanation"]
    time.sleep(1.5)
    # No worker has looked yet: it is still pending, and explain says what comes.
    assert "a running worker cancels it" in q.json("explain", job_id)["explanation"]
    # A burst worker does not start it, and cancels it before it exits.
    q.run("worker", "start", "--burst", "--quiet")
    assert q.state(job_id) == "cancelled" and not marker.exists()
    shown = q.job(job_id)
    assert shown["last_error"] == "expired" and shown["attempt_history"] == []
    assert not marker.exists()
    why = q.json("explain", job_id)["explanation"]
    assert f"when it expired at {shown['expires_at']} before it started" in why


def test_explain_names_a_jobs_own_retry_rules(q: Queue) -> None:
    q.run("config", "set", "backoff-jitter", "0.25")
    delays = q.run(
        "enqueue",
        "--command",
        "exit 75",
        "--retry-delays",
        "30s,1h",
        "--retry-on",
        "75",
        "--no-retry-on",
        "2,timeout",
    ).stdout.strip()
    usage = q.run(
        "enqueue", "--command", "exit 2", "--no-retry-on", "2,timeout", "--max-retries", "3"
    ).stdout.strip()
    other = q.run(
        "enqueue", "--command", "exit 3", "--retry-on", "75,111", "--max-retries", "3"
    ).stdout.strip()
    q.run("worker", "start", "--burst", "--quiet")
    assert (q.state(delays), q.state(usage), q.state(other)) == ("failed", "dead", "dead")
    why = q.json("explain", delays)["explanation"]
    assert (
        "retry_delays are 30s, 1h (the last repeats; backoff-jitter varies each by up to 25%)"
        in why
    )
    assert "this wait is 30s, the next 1h" in why
    assert "only exit code 75 is retried (retry_on)" in why
    assert "exit code 2 and a timeout end it dead without a retry (no_retry_on)" in why
    why = q.json("explain", usage)["explanation"]
    assert (
        "attempt 1 failed (exit code 2) and exit code 2 is in its no_retry_on, so it was not "
        "retried" in why
    )
    why = q.json("explain", other)["explanation"]
    assert (
        "exit code 3 is not in its retry_on (exit codes 75 and 111), so it was not retried" in why
    )


def test_schedule_add_takes_the_flow_flags(q: Queue) -> None:
    s = q.json(
        "schedule",
        "add",
        "nightly",
        "--cron",
        "@daily",
        "--command",
        "true",
        "--key",
        "k",
        "--slots",
        "2",
        "--retry-delays",
        "1m",
        "--no-retry-on",
        "timeout",
    )
    job = s["job"]
    assert (job["key"], job["slots"], job["retry_delays"], job["no_retry_on"]) == (
        "k",
        2,
        [60],
        ["timeout"],
    )


@pytest.mark.store_independent
def test_a_service_passes_slots_on(q: Queue) -> None:
    r = q.run("service", "install", "--print", "--count", "2", "--slots", "6", check=False)
    if r.returncode != 0:
        pytest.skip(f"no service manager preview here: {r.stderr.strip()}")
    words = r.stdout.replace('"', " ").split()
    start = words.index("start")
    assert words[start - 1 : start + 3] == ["worker", "start", "--count", "2"], words
    assert words[words.index("--slots") + 1] == "6", words


# The Python API.


def test_the_api_takes_every_flow_argument(q: Queue) -> None:
    from queuectl.api import Queue as ApiQueue

    with ApiQueue.open(home=str(q.home), db=q.db or str(q.home / "qctl.db")) as queue:
        job_id = queue.enqueue_command(
            "true",
            key="acme",
            slots=3,
            retry_delays=[1, 2.5],
            retry_on=[75],
            no_retry_on=[2, "timeout"],
            expires="10m",
        )
        job = queue.get(job_id)
        assert (job.key, job.slots, job.retry_delays_ms) == ("acme", 3, [1000, 2500])
        assert (job.retry_on, job.no_retry_on, job.no_retry_timeout) == ([75], [2], True)
        assert job.expires_at_ms is not None and job.expires_at_ms > _core.now_ms()
        at = "2099-01-01T00:00:00Z"
        assert queue.get(queue.enqueue_command("true", expires=at)).expires_at_ms == (
            _core.parse_time(at)
        )
        queue.set_rate("api", 10, 60)
        queue.set_key_limit("api", 2)
        (api,) = [x for x in queue.queues() if x.name == "api"]
        assert (api.rate_n, api.rate_period_ms, api.key_limit) == (10, 60_000, 2)
        queue.set_rate("api", 0)
        (api,) = [x for x in queue.queues() if x.name == "api"]
        assert api.rate_n == 0
        for bad in (
            lambda: queue.set_rate("api", 10, 0),
            lambda: queue.set_rate("api", -1, 1),
            lambda: queue.set_rate("api", 10, 30 * 86_400 + 1),
            lambda: queue.set_key_limit("api", -1),
            lambda: queue.enqueue_command("true", expires="-5m"),
            lambda: queue.enqueue_command("true", expires=0),
            lambda: queue.enqueue_command("true", slots=0),
            lambda: queue.enqueue_command("true", retry_on=[256]),
        ):
            with pytest.raises(InputError):
                bad()
        assert len(queue.jobs()) == 2
        assert [x.name for x in queue.queues()] == ["api", "default"]


def test_the_dashboard_shows_rates_key_limits_and_a_jobs_flow_fields(q: Queue) -> None:
    from test_ui import dashboard

    q.run("queue", "rate", "api", "10/1m")
    q.run("queue", "key-limit", "api", "2")
    job_id = q.run(
        "enqueue",
        "--command",
        "true",
        "--queue",
        "api",
        "--key",
        "acme",
        "--slots",
        "4",
        "--retry-delays",
        "10s,1m",
        "--retry-on",
        "75",
        "--no-retry-on",
        "2,timeout",
        "--expires",
        "1h",
    ).stdout.strip()
    expires_at = q.job(job_id)["expires_at"]
    with dashboard(q) as d:
        (api,) = [x for x in d.api("/api/queues") if x["name"] == "api"]
        assert (api["rate"], api["key_limit"]) == ({"n": 10, "period": 60}, 2)
        status, page = d.get("/queues")
        assert status == 200
        row = re.search(
            r"<tr>\s*<td><a href=\"/jobs\?queue=api\">api</a></td>(.*?)</tr>", page, re.S
        )
        assert row, page
        cells = re.findall(r"<td>([^<]*)</td>", row[1])
        assert cells[:4] == ["active", "none", "10/1m", "2"], cells
        status, page = d.get(f"/jobs/{job_id}")
        assert status == 200
        for th, td in (
            ("Key", "acme"),
            ("Slots", "4"),
            ("Retry delays", "10s, 1m"),
            ("Retry on", "exit code 75 only"),
            ("No retry on", "2, timeout"),
            ("Expires", expires_at),
        ):
            assert re.search(rf"<th>{th}</th><td[^>]*>{re.escape(td)}", page), (th, page)


def test_a_backup_carries_every_flow_field_and_setting(q: Queue, tmp_path: Path) -> None:
    q.run("queue", "rate", "api", "10/1m")
    q.run("queue", "key-limit", "api", "2")
    q.run("config", "set", "backoff-jitter", "0.5")
    flags = ["--key", "k", "--slots", "3", "--retry-delays", "5s", "--retry-on", "75"]
    flags += ["--no-retry-on", "timeout", "--expires", "1h"]
    job_id = q.run("enqueue", "--command", "true", "--queue", "api", *flags).stdout.strip()
    q.run("backup", str(tmp_path / "copy.db"))
    copy = Queue(tmp_path / "copy-home", str(tmp_path / "copy.db"))
    fields = ("key", "slots", "retry_delays", "retry_on", "no_retry_on", "expires_at")
    assert {k: copy.job(job_id)[k] for k in fields} == {k: q.job(job_id)[k] for k in fields}
    (api,) = [x for x in copy.json("queue", "list") if x["name"] == "api"]
    assert (api["rate"], api["key_limit"]) == ({"n": 10, "period": 60}, 2)
    assert copy.run("config", "get", "backoff-jitter").stdout.strip() == "0.5"


@pytest.mark.postgres_only
def test_migrate_carries_every_flow_field_and_setting_both_ways(q: Queue, tmp_path: Path) -> None:
    assert q.db
    laptop = Queue(tmp_path / "laptop")
    laptop.run("queue", "rate", "api", "10/1m")
    laptop.run("queue", "key-limit", "api", "2")
    laptop.run("config", "set", "backoff-jitter", "0.5")
    flags = ["--key", "k", "--slots", "3", "--retry-delays", "5s", "--retry-on", "75"]
    flags += ["--no-retry-on", "2,timeout", "--expires", "1h"]
    job_id = laptop.run("enqueue", "--command", "true", "--queue", "api", *flags).stdout.strip()
    fields = ("key", "slots", "retry_delays", "retry_on", "no_retry_on", "expires_at")
    want = {k: laptop.job(job_id)[k] for k in fields}
    laptop.run("migrate", "--to", q.db)
    back = Queue(tmp_path / "back", str(tmp_path / "back.db"))
    q.run("migrate", "--to", str(tmp_path / "back.db"))
    for copy in (q, back):
        assert {k: copy.job(job_id)[k] for k in fields} == want
        (api,) = [x for x in copy.json("queue", "list") if x["name"] == "api"]
        assert (api["rate"], api["key_limit"]) == ({"n": 10, "period": 60}, 2)
        assert copy.run("config", "get", "backoff-jitter").stdout.strip() == "0.5"
