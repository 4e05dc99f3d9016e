"""``pubsub-jobs dead ...``, ``pubsub-jobs queues`` and ``pubsub-jobs enqueue`` against the
emulator: in-process through ``cli.main`` where output is enough, as subprocesses where
signals, exit codes and imports of a real command line matter."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pubsub_jobs import Settings, cli, dead
from pubsub_jobs.adapters.clients import publisher_client
from tests import jobs_dead
from tests.jobs_dead import Observer

ROOT = Path(__file__).resolve().parents[2]
PUBSUB_JOBS = str(Path(sys.executable).with_name("pubsub-jobs"))


@pytest.fixture
def env(pubsub_jobs_settings: Settings) -> dict[str, str]:
    """Environment for a ``pubsub-jobs`` subprocess using the test's settings."""
    return {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": pubsub_jobs_settings.pubsub_emulator_host or "",
        "PUBSUB_JOBS_PROJECT_ID": pubsub_jobs_settings.require_project(),
        "PUBSUB_JOBS_PREFIX": pubsub_jobs_settings.prefix,
        "PUBSUB_JOBS_LOG_LEVEL": "WARNING",
    }


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def forwarded_copy(queue: str, settings: Settings) -> str:
    """A message as Pub/Sub's own dead-letter policy forwards it; returns its job id."""
    message = jobs_dead.note.using(queue=queue).message("fwd")
    data, attrs = message.encode()
    attrs.update(CloudPubSubDeadLetterSourceDeliveryCount="5",
                 CloudPubSubDeadLetterSourceSubscription=settings.subscription(queue))
    publisher = publisher_client(settings)
    try:
        publisher.publish(settings.dead_letter_topic_path(queue), data, **attrs).result(30)
    finally:
        publisher.stop()
    return message.job_id


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("emulator", "bootstrap", "worker", "enqueue", "dead", "queues"):
        assert command in out


def test_dead_list_and_show(bootstrap_queues, pubsub_jobs_settings, capsys):
    settings = pubsub_jobs_settings
    bootstrap_queues("ops")
    ids = jobs_dead.dead_copies("ops", settings, ["a", "b"])
    fwd = forwarded_copy("ops", settings)

    code, out, _ = run_cli(capsys, "dead", "list", "ops", "--json")
    assert code == 0
    listed = {j["job_id"]: j for j in json.loads(out)}
    assert set(listed) == {*ids, fwd}
    assert listed[ids[0]]["reason"] == "max_attempts"
    assert listed[ids[0]]["args"] == ["a"] and listed[ids[0]]["attempts"] == 5
    assert listed[ids[0]]["error"] == "RuntimeError: a"
    assert listed[fwd]["reason"] == "delivery_limit" and listed[fwd]["reason_derived"]

    code, out, _ = run_cli(capsys, "dead", "list", "ops")
    assert code == 0
    assert out.splitlines()[0].split() == ["JOB_ID", "JOB_NAME", "REASON", "ATTEMPTS",
                                           "DEAD_LETTERED_AT", "ERROR"]
    assert "delivery_limit*" in out and "* derived" in out
    assert "3 dead job(s) in queue ops" in out

    code, out, _ = run_cli(capsys, "dead", "list", "ops", "--reason", "delivery_limit",
                           "--json")
    assert [j["job_id"] for j in json.loads(out)] == [fwd]

    code, out, _ = run_cli(capsys, "dead", "show", "ops", ids[1])
    assert code == 0
    assert f"job_id            {ids[1]}" in out
    assert 'args              ["b"]' in out and "dead_letter_reason" in out
    code, out, _ = run_cli(capsys, "dead", "show", "ops", fwd, "--json")
    shown = json.loads(out)
    assert shown["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"

    code, _, err = run_cli(capsys, "dead", "show", "ops", "nope")
    assert code == 1 and "no dead job 'nope'" in err
    # Listing and showing removed nothing.
    assert len(dead.list_dead("ops")) == 3


def test_dead_retry_and_purge(bootstrap_queues, pubsub_jobs_settings, observers, capsys,
                              monkeypatch):
    settings = pubsub_jobs_settings
    bootstrap_queues("ops")
    ids = jobs_dead.dead_copies("ops", settings, ["a", "b", "c"])
    observer = Observer("ops", settings)
    observers.append(observer)

    code, _, err = run_cli(capsys, "dead", "retry", "ops")
    assert code == 2 and "say which dead jobs" in err

    code, out, _ = run_cli(capsys, "dead", "retry", "ops", ids[0], "missing-id")
    assert code == 1
    assert "retried 1 of 1 dead job(s) of queue ops" in out
    assert "not in the dead set: missing-id" in out
    assert [a["job_id"] for a in observer.take(expect=1)] == [ids[0]]

    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, err = run_cli(capsys, "dead", "purge", "ops", "--all")
    assert code == 1 and "nothing purged" in out
    assert "Purge 2 dead job(s) of queue ops for good (2 max_attempts)? [y/N]" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, _ = run_cli(capsys, "dead", "purge", "ops", ids[1])
    assert code == 0 and "purged 1 dead job(s)" in out
    code, out, _ = run_cli(capsys, "dead", "purge", "ops", "--all", "--yes")
    assert code == 0 and "purged 1 dead job(s)" in out
    assert dead.list_dead("ops") == []
    code, out, _ = run_cli(capsys, "dead", "list", "ops")
    assert code == 0 and "no dead jobs in queue ops" in out


def test_missing_queue_says_to_bootstrap(pubsub_jobs_settings, capsys):
    code, _, err = run_cli(capsys, "dead", "list", "never-made")
    assert code == 1 and "pubsub-jobs bootstrap --queue never-made" in err


def test_retry_interrupted_by_sigint_then_rerun(bootstrap_queues, pubsub_jobs_settings, env,
                                                observers, capsys):
    settings = pubsub_jobs_settings
    bootstrap_queues("bulk")
    job_ids = jobs_dead.dead_copies("bulk", settings, [f"k{i}" for i in range(300)])
    observer = Observer("bulk", settings)
    observers.append(observer)

    proc = subprocess.Popen(
        [PUBSUB_JOBS, "dead", "retry", "bulk", "--all", "--batch-size", "2"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not observer.seen() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    if proc.returncode == 130:
        assert "SIGINT: stopping after the jobs in flight" in err
        assert "run the same command again to carry on" in out

    code, out, _ = run_cli(capsys, "dead", "retry", "bulk", "--all")
    assert code == 0
    published = Counter(a["job_id"] for a in observer.take(expect=300))
    assert set(published) == set(job_ids)
    assert max(published.values()) == 1
    assert dead.list_dead("bulk") == []


def test_enqueue_validates_and_enqueues(bootstrap_queues, pubsub_jobs_settings, env,
                                        drain_queues):
    bootstrap_queues("dead")
    jobs_dead.RAN.clear()

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([PUBSUB_JOBS, "enqueue", *args], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    runs = {
        "ok": start("tests.jobs_dead.some_job", "--args", "[1]", "--kwargs", '{"b": 2}'),
        "bad type": start("tests.jobs_dead.some_job", "--args", '["one"]'),
        "bad keyword": start("tests.jobs_dead.some_job", "--args", "[1]",
                             "--kwargs", '{"c": 2}'),
        "not json": start("tests.jobs_dead.some_job", "--args", "[1"),
        "not a list": start("tests.jobs_dead.some_job", "--args", '{"a": 1}'),
        "unknown": start("tests.jobs_dead.no_such_job"),
    }
    results = {name: (p.wait(60), *p.communicate()) for name, p in runs.items()}

    code, out, err = results["ok"]
    assert code == 0, err
    job_id = out.strip()
    for name in ("bad type", "bad keyword", "not json", "not a list", "unknown"):
        code, out, err = results[name]
        assert code == 2, (name, err)
        assert err.startswith("pubsub-jobs: ") and "Traceback" not in err, (name, err)
    assert "argument 'a' is invalid" in results["bad type"][2]
    assert "unexpected keyword argument 'c'" in results["bad keyword"][2]
    assert "--args takes a JSON array" in results["not a list"][2]
    assert "--args is not valid JSON" in results["not json"][2]
    assert "no job is registered under the name 'tests.jobs_dead.no_such_job'" in (
        results["unknown"][2])

    drain_queues("dead", idle=1.0)
    assert jobs_dead.RAN == [("some_job", 3)]
    assert job_id


def test_queues(bootstrap_queues, pubsub_jobs_settings, capsys):
    settings = pubsub_jobs_settings
    bootstrap_queues("ops", "mail")
    jobs_dead.dead_copies("ops", settings, ["a", "b"])

    code, out, _ = run_cli(capsys, "queues", "--count-dead")
    assert code == 0
    assert "queue mail" in out and "queue ops" in out
    assert re.search(rf"worker subscription +{settings.subscription_path('ops')}\n", out)
    assert "dead-letter to " + settings.dead_letter_topic("ops") + " after 5 deliveries" in out
    assert "unknown on the emulator" in out
    assert re.search(r"dead jobs +2 \(counted by reading the dead set\)", out)

    code, out, _ = run_cli(capsys, "queues", "--queue", "ops", "--queue", "ghost", "--json")
    assert code == 1
    ops, ghost = json.loads(out)
    roles = {s["role"]: s for s in ops["subscriptions"]}
    assert roles["worker"]["max_delivery_attempts"] == 5 and roles["worker"]["drift"] == []
    assert roles["worker"]["backlog"] is None and "emulator" in ops["backlog_note"]
    assert roles["dead-letter"]["exists"]
    assert not ghost["topic_exists"] and not any(s["exists"] for s in ghost["subscriptions"])
    assert len(dead.list_dead("ops")) == 2  # counting removed nothing


def test_retry_all_keeps_different_jobs_that_share_a_job_id(
    bootstrap_queues, pubsub_jobs_settings, observers, capsys
):
    """Only copies of one message are duplicates: two jobs that share a job_id are both
    retried; the worker's second copy and Pub/Sub's forwarded copy of one are not."""
    settings = pubsub_jobs_settings
    bootstrap_queues("ops")
    first = jobs_dead.note.using(queue="ops", job_id="shared").message("first")
    second = jobs_dead.note.using(queue="ops", job_id="shared").message("second")
    (data1, attrs1), (data2, attrs2) = first.encode(), second.encode()
    jobs_dead.publish_dead("ops", settings, [
        (data1, jobs_dead.worker_copy(attrs1, error="RuntimeError: one")),
        (data2, jobs_dead.worker_copy(attrs2, error="RuntimeError: two")),
        # copies of the first message: made twice by the worker, and forwarded by Pub/Sub
        (data1, jobs_dead.worker_copy(attrs1, error="RuntimeError: one again")),
        (data1, {**attrs1, "CloudPubSubDeadLetterSourceDeliveryCount": "5",
                 "CloudPubSubDeadLetterSourceSubscription": settings.subscription("ops")}),
    ])
    observer = Observer("ops", settings)
    observers.append(observer)

    code, out, _ = run_cli(capsys, "dead", "retry", "ops", "--all")
    assert code == 0, out
    assert "retried 2 of 2 dead job(s) of queue ops" in out
    assert "2 duplicate dead copies removed with them" in out
    republished = observer.take_messages(expect=2)
    assert sorted(data for data, _ in republished) == sorted([data1, data2])
    assert {attrs["job_id"] for _, attrs in republished} == {"shared"}
    assert dead.list_dead("ops") == []

    # By id, too: both jobs of the id are retried, and purged.
    jobs_dead.publish_dead("ops", settings, [(data1, jobs_dead.worker_copy(attrs1)),
                                             (data2, jobs_dead.worker_copy(attrs2))])
    summary = dead.retry("ops", ["shared"])
    assert summary.ok and summary.retried == ("shared", "shared") and summary.duplicates == 0
    assert len(observer.take_messages(expect=2)) == 2
    jobs_dead.publish_dead("ops", settings, [(data1, jobs_dead.worker_copy(attrs1)),
                                             (data2, jobs_dead.worker_copy(attrs2))])
    code, out, _ = run_cli(capsys, "dead", "purge", "ops", "shared", "--yes")
    assert code == 0 and "purged 2 dead job(s)" in out
    assert dead.list_dead("ops") == []


def test_every_tool_handles_messages_it_cannot_decode(
    bootstrap_queues, pubsub_jobs_settings, observers, capsys
):
    """A message nested 100,000 deep (json.loads raises RecursionError), data that is not
    UTF-8, and attributes named like PublisherClient.publish()'s own parameters are listed,
    shown, counted, retried and purged like any other."""
    settings = pubsub_jobs_settings
    bootstrap_queues("ops")
    [normal] = jobs_dead.dead_copies("ops", settings, ["a"])
    deep_data = b"[" * 100_000 + b"]" * 100_000
    attrs = jobs_dead.note.using(queue="ops").message("x").encode()[1]
    odd = {  # published as they are by anyone: not our wire format at all
        "deep": (deep_data, jobs_dead.worker_copy({**attrs, "job_id": "deep"},
                                                  reason="invalid_message")),
        "binary": (b"\xff\xfe[[", {**jobs_dead.worker_copy(
            {**attrs, "job_id": "binary"}, reason="invalid_message"),
            "dead_lettered_at": "0001-01-01T00:00:00+01:00", "delivery_attempt": "9" * 5000}),
        "params": (b'{"args": [], "kwargs": {}}', jobs_dead.worker_copy(
            {**attrs, "job_id": "params", "ordering_key": "k", "timeout": "soon",
             "topic": "t", "data": "d", "retry": "r"})),
    }
    # Pub/Sub's 100 attributes, forwarded by its own policy: a retry has no room for its own.
    full = {**attrs, "job_id": "full", **{f"x{i:02d}": "v" for i in range(100 - len(attrs) - 1)},
            "CloudPubSubDeadLetterSourceDeliveryCount": "5"}
    odd["full"] = (b'{"args": ["full"], "kwargs": {}}', full)
    jobs_dead.publish_dead("ops", settings, list(odd.values()))

    code, out, _ = run_cli(capsys, "dead", "list", "ops")
    assert code == 0 and "5 dead job(s) in queue ops" in out
    code, out, _ = run_cli(capsys, "dead", "list", "ops", "--json")
    listed = {j["job_id"]: j for j in json.loads(out)}
    assert listed["deep"]["args"] is None and "nested deeper" in listed["deep"]["decode_error"]
    assert listed["deep"]["data"] == deep_data.decode()
    assert listed["binary"]["data"] is None and listed["binary"]["decode_error"]
    assert listed["binary"]["attempts"] is None  # 5000 digits: not a number Python reads
    assert listed["params"]["args"] == [] and listed[normal]["decode_error"] is None

    code, out, _ = run_cli(capsys, "dead", "show", "ops", "deep")
    assert code == 0
    assert "args              <undecodable: JSON nested deeper than 200 levels>" in out
    assert "data              b'[[[[" in out and "more bytes)" in out
    code, out, _ = run_cli(capsys, "dead", "show", "ops", "binary")
    assert code == 0 and "<undecodable: data is not UTF-8>" in out

    code, out, _ = run_cli(capsys, "queues", "--queue", "ops", "--count-dead")
    assert code == 0 and re.search(r"dead jobs +5 \(counted", out)

    observer = Observer("ops", settings)
    observers.append(observer)
    code, out, _ = run_cli(capsys, "dead", "retry", "ops", "--all")
    assert code == 0, out
    assert "retried 5 of 5 dead job(s)" in out
    republished = {a["job_id"]: (d, a) for d, a in observer.take_messages(expect=5)}
    assert set(republished) == {normal, "deep", "binary", "params", "full"}
    assert len(republished["full"][1]) == 99 and "retried_from" not in republished["full"][1]
    assert republished["deep"][0] == deep_data and republished["binary"][0] == b"\xff\xfe[["
    params = republished["params"][1]
    assert {k: params[k] for k in ("ordering_key", "timeout", "topic", "data", "retry")} == {
        "ordering_key": "k", "timeout": "soon", "topic": "t", "data": "d", "retry": "r"}
    assert dead.list_dead("ops") == []

    jobs_dead.publish_dead("ops", settings, list(odd.values()))
    code, out, _ = run_cli(capsys, "dead", "purge", "ops", "--all", "--yes")
    assert code == 0 and "purged 4 dead job(s)" in out
    assert dead.list_dead("ops") == []


TERMINAL_TRICKS = ("\x1b", "\r", "\x07", "\x9b", "\u202e", "\u2028", "\x00")


def test_dead_list_and_show_escape_what_a_message_carries(
    bootstrap_queues, pubsub_jobs_settings, capsys, monkeypatch
):
    """Escape sequences and control characters of a message never reach the terminal raw."""
    settings = pubsub_jobs_settings
    bootstrap_queues("ops")
    job_id = "evil\x1b[2J\rfake\nline"
    message = jobs_dead.note.using(queue="ops", job_id=job_id).message("\x1b[31mred\u2028")
    data, attrs = message.encode()
    attrs = jobs_dead.worker_copy(
        {**attrs, "job_name": "tests.jobs_dead.note\x1b]0;title\x07", "x\x1bkey": "v\r\x9b"},
        error="RuntimeError: boom\x1b[2K\u202eevil\x00", reason="max_attempts\x1b[8m",
    )
    jobs_dead.publish_dead("ops", settings, [(data, attrs)])

    code, out, _ = run_cli(capsys, "dead", "list", "ops")
    assert code == 0
    assert not [c for c in TERMINAL_TRICKS if c in out], out
    [row] = [line for line in out.splitlines() if line.startswith("evil")]
    assert row.startswith("evil\\x1b[2J\\rfake\\nline  tests.jobs_dead.note\\x1b]0;title\\x07")
    assert "max_attempts\\x1b[8m" in row and "boom\\x1b[2K\\u202eevil\\x00" in row
    assert len(out.splitlines()) == 4  # header, the job, a blank line, the count

    code, out, _ = run_cli(capsys, "dead", "show", "ops", job_id)
    assert code == 0
    assert not [c for c in TERMINAL_TRICKS if c in out], out
    assert "job_id            evil\\x1b[2J\\rfake\\nline\n" in out
    assert 'args              ["\\u001b[31mred\\u2028"]' in out
    assert "x\\x1bkey" in out and "v\\r\\x9b" in out

    code, out, _ = run_cli(capsys, "dead", "show", "ops", job_id, "--json")
    shown = json.loads(out)  # JSON escapes it all, and gives the values back as they are
    assert shown["job_id"] == job_id and shown["attributes"]["x\x1bkey"] == "v\r\x9b"
    assert "\x1b" not in out

    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, _, err = run_cli(capsys, "dead", "purge", "ops", "--all")
    assert code == 1 and "(1 max_attempts\\x1b[8m)?" in err and "\x1b" not in err
