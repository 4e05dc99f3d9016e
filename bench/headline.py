"""The headline: pubsub-jobs at its defaults beside the raw client at its defaults and the
peers at theirs, each started as a user starts it, in one run.

One run of a system, on a fresh emulator (warmed up with a few unrecorded messages):

1. its own bulk enqueue of N ``count(i, payload)`` jobs, in its own interpreter, timed until
   Pub/Sub confirmed every message (:mod:`bench._enqueue`);
2. its worker process is spawned with the command a user types (:mod:`bench.peers`); every
   job counts itself (:mod:`bench._marks`), and the first and the N-th write a mark with the
   clock, the process's CPU time and, at the end, its memory;
3. the worker is stopped (SIGTERM to its process group, SIGKILL after 30 s).

Figures: drain jobs/s = N over spawn to the last job's mark; spawn to first job; worker CPU
per job between the first and the last mark; resident memory of the process that ran the
jobs after the last. Runs go round by round, each round every system and stream count once
in a rotated order, and each figure is the median of its rounds.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import ROOT, Config, log
from bench.peers import OURS, PEERS, RAW, System, pinned, prepare

#: A worker that runs no further job (of every ``bench._marks.PROGRESS``) for this long has
#: stalled: the run fails and says so.
STALL_SECONDS = 90.0
#: Figures of one run, and whether higher is better.
METRICS = {"drain": True, "enqueue": True, "first_s": False, "cpu_us": False, "rss_mib": False}

#: Targets of the headline: ``(key, title, numerator, denominator, metric, case, target)``.
TARGETS = [
    ("drain_vs_raw", "drain at defaults / raw at defaults, 1 stream", "ours", "raw", "drain",
     "k1", 1.0),
    ("drain_vs_dramatiq", "drain at defaults / dramatiq-gcpubsub p1 t8", "ours", "dramatiq",
     "drain", "k1", 2.0),
    ("drain_vs_celery", "drain at defaults / Celery threads x 8", "ours", "celery", "drain",
     "k1", 3.0),
    ("enqueue_vs_raw", "bulk enqueue / raw batched publish", "ours", "raw", "enqueue", "k1",
     1.5),
    ("first_vs_raw", "spawn to first job / raw", "ours", "raw", "first_s", "k1", 1.2),
    ("cpu_vs_raw", "worker CPU per job / raw", "ours", "raw", "cpu_us", "k1", 1.1),
    ("rss_vs_raw", "worker RSS / raw", "ours", "raw", "rss_mib", "k1", 1.2),
]


def _env(host: str, project: str, marks: Path, n: int) -> dict[str, str]:
    """The environment of every system's processes: the emulator, the project id, the
    marks; none of the caller's PUBSUB_JOBS_* settings, so pubsub-jobs runs at its defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSUB_JOBS_")}
    return {**env, "PUBSUB_EMULATOR_HOST": host, "BENCH_PROJECT": project,
            "PUBSUB_JOBS_PROJECT_ID": project, "PYTHONPATH": str(ROOT),
            "BENCH_MARKS": str(marks), "BENCH_EXPECT": str(n)}


@contextlib.contextmanager
def fresh_emulator(log_path: Path, warmup_n: int) -> Iterator[str]:
    """A Pub/Sub emulator on a free port, warmed up, stopped afterwards; yields its host."""
    from pubsub_jobs.emulator import free_port, start_pubsub_emulator

    emulator = start_pubsub_emulator(free_port(), log_path=log_path)
    try:
        if warmup_n:
            _warm_up(emulator.host, warmup_n)
        yield emulator.host
    finally:
        emulator.stop()


def _warm_up(host: str, n: int) -> None:
    """Publish and pull ``n`` messages on a topic of their own, so that every system meets
    an emulator whose JIT has compiled the paths a run takes."""
    from google.cloud import pubsub_v1

    os.environ["PUBSUB_EMULATOR_HOST"] = host  # the harness talks to one emulator at a time
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic, sub = "projects/bench/topics/warm-up", "projects/bench/subscriptions/warm-up"
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic)
    for future in [publisher.publish(topic, b"x" * 300) for _ in range(n)]:
        future.result(timeout=60)
    received: list[int] = []

    def callback(message: Any) -> None:
        received.append(1)
        message.ack()

    stream = subscriber.subscribe(sub, callback)
    deadline = time.monotonic() + 60
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    stream.cancel()
    with contextlib.suppress(Exception):
        stream.result(timeout=10)
    subscriber.delete_subscription(subscription=sub)
    publisher.delete_topic(topic=topic)
    publisher.stop()
    subscriber.close()


def _read_marks(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    marks = {}
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            mark = json.loads(line)
            marks[mark["event"]] = mark
    return marks


def _tail(path: Path, lines: int = 6) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group (ours: it runs in a session of its own), wait up to
    30 s, then SIGKILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # children outliving the leader too
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _emulator_cpu(host: str) -> float:
    """CPU seconds the emulator listening on ``host``'s port has used (0 if not found)."""
    flag = f"--port={host.rsplit(':', 1)[1]}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if flag in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run_once(system: System, python: Path, n: int, streams: int, host: str, workdir: Path,
             payload_bytes: int) -> dict[str, float]:
    """Enqueue ``n`` jobs with ``system``, then drain them with its worker; its figures."""
    marks = workdir / "marks.jsonl"
    env = _env(host, f"bench-{workdir.name}", marks, n)
    enqueue_log = workdir / "enqueue.log"
    with open(enqueue_log, "wb") as err:
        done = subprocess.run(
            [str(python), "-m", "bench._enqueue", system.key, str(n), str(payload_bytes)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
            timeout=120 + n / 100, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"enqueue exited with {done.returncode}: {_tail(enqueue_log)}")
    enqueue_seconds = json.loads(done.stdout.decode().strip().splitlines()[-1])["seconds"]

    worker_log = workdir / "worker.log"
    timeout = 60 + n / 50
    emulator_cpu = _emulator_cpu(host)
    with open(worker_log, "wb") as out:
        spawned = time.monotonic()
        proc = subprocess.Popen(
            system.worker_argv(python, streams), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    progress, progress_at = -1, spawned
    try:
        while "last" not in (found := _read_marks(marks)):
            now = time.monotonic()
            got = found.get("count", {}).get("n", 1 if "first" in found else 0)
            if got != progress:
                progress, progress_at = got, now
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode} before the last "
                                   f"job: {_tail(worker_log)}")
            if now - spawned > timeout or now - progress_at > STALL_SECONDS:
                raise TimeoutError(f"worker stalled: at least {got:,} of {n:,} jobs ran, "
                                   f"then none for {now - progress_at:.0f} s")
            time.sleep(0.02)
    finally:
        emulator_cpu = _emulator_cpu(host) - emulator_cpu
        _stop(proc)
    first, last = found["first"], found["last"]
    return {
        "drain": n / (last["t"] - spawned),
        "enqueue": n / enqueue_seconds,
        "first_s": first["t"] - spawned,
        "steady": (n - 1) / max(1e-9, last["t"] - first["t"]),
        "cpu_us": (last["cpu"] - first["cpu"]) / max(1, n - 1) * 1e6,
        "cpu_total_us": last["cpu"] / n * 1e6,
        "system_us": (last["system"] - first["system"]) / max(1, n - 1) * 1e6,
        # the emulator's CPU while this worker drained (it shares the machine's cores)
        "emulator_cpu_us": emulator_cpu / n * 1e6,
        "rss_mib": last["rss_mib"],
        "hwm_mib": last["hwm_mib"],
        "duplicates": last["duplicates"],
        "load1": os.getloadavg()[0],
    }


def _cases(config: Config) -> list[tuple[System, int, int]]:
    """Every (system, streams, N) of a round: all systems at one stream, the raw client and
    pubsub-jobs at each K."""
    cases = [(RAW, 1, config.headline_n), (OURS, 1, config.headline_n)]
    cases += [(PEERS[name], 1, config.headline_n) for name in config.peers]
    for k in config.headline_streams:
        cases += [(RAW, k, config.headline_streams_n), (OURS, k, config.headline_streams_n)]
    return cases


def compile_sources() -> None:
    """Write the bytecode of this checkout's package and of ``bench`` before any process is
    timed, as ``pip install`` does for the peers (and for pubsub-jobs from a wheel). An
    editable install has none, and with ``PYTHONDONTWRITEBYTECODE`` set (as on this machine)
    every spawn would compile pubsub-jobs' sources again: 0.2-0.3 s of start-up that no
    installed worker pays."""
    for package in ("pubsub_jobs", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)


def phase_headline(config: Config, workdir: Path) -> dict[str, Any]:
    """Every run of every case; the medians, the ratios and the targets."""
    cases = _cases(config)
    systems = {s.key: s for s, _, _ in cases}
    pythons: dict[str, Path | str] = {}
    for key, system in systems.items():
        if system.requirements is not None:
            log(f"headline: preparing {key}'s virtualenv ...")
        pythons[key] = prepare(system)
        if isinstance(pythons[key], str):
            log(f"headline: {key} not measured: {pythons[key]}")
    runs: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, list[str]] = {}
    with contextlib.ExitStack() as stack:
        shared = None
        if not config.headline_fresh_emulator:
            shared = stack.enter_context(fresh_emulator(workdir / "emulator.log",
                                                        config.emulator_warmup_n))
        _rounds(config, cases, pythons, workdir, shared, runs, errors)
    return summarize(config, cases, pythons, runs, errors)


def _rounds(config: Config, cases: list[tuple[System, int, int]],
            pythons: dict[str, Path | str], workdir: Path, shared: str | None,
            runs: dict[str, list[dict[str, float]]], errors: dict[str, list[str]]) -> None:
    for rep in range(config.reps):
        shift = rep % len(cases)
        for number, (system, k, n) in enumerate(cases[shift:] + cases[:shift]):
            python, case = pythons[system.key], f"{system.key}/k{k}"
            if isinstance(python, str):
                continue
            where = workdir / f"r{rep}-{number}-{system.key}-k{k}"
            where.mkdir(parents=True)
            try:
                with contextlib.ExitStack() as stack:
                    host = shared or stack.enter_context(
                        fresh_emulator(where / "emulator.log", config.emulator_warmup_n))
                    result = run_once(system, python, n, k, host, where, config.payload_bytes)
            except Exception as exc:
                errors.setdefault(case, []).append(f"{type(exc).__name__}: {exc}"[:400])
                log(f"headline {case} round {rep + 1}: FAILED {exc} (logs in {where})")
                continue
            runs.setdefault(case, []).append(result)
            log(f"headline {case} round {rep + 1}: drain {result['drain']:,.0f}/s, enqueue "
                f"{result['enqueue']:,.0f}/s, first job {result['first_s']:.2f} s, cpu "
                f"{result['cpu_us']:.0f} us/job, rss {result['rss_mib']:.0f} MiB")


def _median(values: list[float]) -> float:
    return statistics.median(values)


def summarize(config: Config, cases: list[tuple[System, int, int]],
              pythons: dict[str, Path | str], runs: dict[str, list[dict[str, float]]],
              errors: dict[str, list[str]]) -> dict[str, Any]:
    rows = []
    for system, k, n in cases:
        case = f"{system.key}/k{k}"
        done = runs.get(case, [])
        python = pythons[system.key]
        row: dict[str, Any] = {
            "case": case, "system": system.key, "title": system.title, "streams": k, "n": n,
            "setup": system.setup, "versions": pinned(system), "runs": done,
            "errors": errors.get(case, []),
            "status": python if isinstance(python, str) else ("ok" if done else "failed"),
        }
        if done:
            row["median"] = {m: round(_median([r[m] for r in done]), 3) for m in done[0]}
        rows.append(row)
    by_case = {row["case"]: row for row in rows}

    def ratio(num: str, den: str, metric: str, k: int) -> float | None:
        a, b = by_case.get(f"{num}/k{k}", {}), by_case.get(f"{den}/k{k}", {})
        if "median" not in a or "median" not in b or not b["median"][metric]:
            return None
        return float(a["median"][metric] / b["median"][metric])

    def why_not(num: str, den: str, k: int) -> str:
        for key in (den, num):
            row = by_case.get(f"{key}/k{k}")
            if row is None:
                return f"{key} not run"
            if "median" not in row:
                return f"{key}: {row['status']}"
        return ""

    targets = []
    for key, title, num, den, metric, case, target in TARGETS:
        k = int(case[1:])
        targets.append(_target(key, title, ratio(num, den, metric, k), target, METRICS[metric],
                               why_not(num, den, k)))
    for k in config.headline_streams:
        targets.append(_target(f"drain_k{k}_vs_raw", f"drain with K={k} streams "
                               f"(`bench={10 * k}x{k}`) / raw with {k} `subscribe()` calls",
                               ratio("ours", "raw", "drain", k), 0.95, True,
                               why_not("ours", "raw", k)))
    emulator = "fresh per run" if config.headline_fresh_emulator else "one for all runs"
    return {"n": config.headline_n, "n_streams": config.headline_streams_n,
            "reps": config.reps, "emulator": emulator, "rows": rows, "targets": targets}


def _target(key: str, title: str, ratio: float | None, target: float, higher: bool,
            why_not: str) -> dict[str, Any]:
    met = None if ratio is None else (ratio >= target if higher else ratio <= target)
    return {"key": key, "title": title, "target": target, "higher_is_better": higher,
            "ratio": None if ratio is None else round(ratio, 3), "met": met,
            **({} if ratio is not None else {"why_not": why_not or "not measured"})}
