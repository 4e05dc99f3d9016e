"""Benchmarks of pubsub-jobs beside the raw client and its peers: ``python -m bench.run``.

One command reproduces every table; it starts its own Pub/Sub emulators on free ports.

- ``headline`` (:mod:`bench.headline`): pubsub-jobs at its defaults beside the raw client at
  its defaults, dramatiq + dramatiq-gcpubsub and Celery + kombu's gcpubsub at theirs (pinned,
  in virtualenvs the benchmark installs: :mod:`bench.peers`): drain, bulk enqueue, spawn to
  first job, CPU per job, memory; a fresh emulator for every run.
- ``bulk``, ``single``, ``drain``, ``start``, ``rss`` (:mod:`bench.equal`,
  :mod:`bench.equal_worker`): the second table, beside the raw client given the same
  settings, on one shared fresh emulator.
- ``prefetch`` (:mod:`bench.prefetch`): what the worker's prefetch does to draining and to
  how a burst spreads over two workers.
- ``exactly_once`` (:mod:`bench.exactly_once`): draining a plain queue and an exactly-once
  queue, and the ratio.

Results go to ``bench/results/latest.json`` and ``latest.md`` (:mod:`bench.report`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench._common import QUICK, RESULTS, ROOT, Config, Figure, log, machine

HEADLINE = "headline"
EQUAL = ("bulk", "single", "drain", "start", "rss")
PREFETCH = "prefetch"
EXACTLY_ONCE = "exactly_once"
ALL_PHASES = (HEADLINE, *EQUAL, PREFETCH, EXACTLY_ONCE)
#: The emulators' JVM heap (the emulator's own default, 256 MB, is tight for 50,000 jobs).
EMULATOR_HEAP = "-Xmx1g"


def _equal_phases() -> dict[str, Callable[[Any], list[Figure]]]:
    from bench.equal import phase_bulk, phase_single
    from bench.equal_worker import phase_drain, phase_rss, phase_start

    return {"bulk": phase_bulk, "single": phase_single, "drain": phase_drain,
            "start": phase_start, "rss": phase_rss}


def _timed(name: str, work: Callable[[], Any]) -> Any:
    log(f"phase {name} ...")
    started = time.monotonic()
    result = work()
    log(f"phase {name} done in {time.monotonic() - started:.1f} s")
    return result


def run(config: Config, phases: list[str], workdir: Path, host: str | None = None
        ) -> dict[str, Any]:
    """Run the phases; the results as a JSON-ready dict. ``host``: an emulator to use for the
    shared phases instead of a fresh one (the headline always starts its own)."""
    from bench.equal import Bench
    from bench.exactly_once import phase_exactly_once
    from bench.headline import compile_sources, phase_headline
    from bench.prefetch import phase_prefetch
    from pubsub_jobs.emulator import free_port, start_pubsub_emulator

    os.environ.setdefault("CLOUD_PUBSUB_EMULATOR_OPTS", EMULATOR_HEAP)
    load_before = os.getloadavg()
    started = time.monotonic()
    results: dict[str, Any] = {"figures": []}
    compile_sources()  # every process timed runs from bytecode, as installed packages do
    if HEADLINE in phases:
        results["headline"] = _timed(HEADLINE, lambda: phase_headline(config, workdir))
    shared = [p for p in phases if p != HEADLINE]
    emulator = None
    if shared:
        if host is None:
            emulator = start_pubsub_emulator(free_port(), log_path=workdir / "emulator.log")
            host = emulator.host
            log(f"fresh Pub/Sub emulator at {host} for {', '.join(shared)}")
        results["emulator"] = "fresh" if emulator is not None else f"reused at {host}"
        try:
            bench = Bench(config, host)
            try:
                equal = _equal_phases()
                for name in shared:
                    if name == PREFETCH:
                        results["prefetch"] = _timed(name, lambda: phase_prefetch(bench))
                    elif name == EXACTLY_ONCE:
                        results["exactly_once"] = _timed(name,
                                                         lambda: phase_exactly_once(bench))
                    else:
                        figures = _timed(name, lambda name=name: equal[name](bench))
                        results["figures"] += [f.as_dict() for f in figures]
            finally:
                bench.close()
        finally:
            if emulator is not None:
                emulator.stop()
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "duration_seconds": round(time.monotonic() - started, 1),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "phases": phases,
        **results,
    }


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the harness works, measures nothing")
    parser.add_argument("--emulator-host", metavar="HOST:PORT",
                        help="use this running emulator for the shared phases (the headline "
                             "starts a fresh one per run regardless)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory for latest.json and latest.md (default bench/results)")
    parser.add_argument("--phases", default=",".join(ALL_PHASES),
                        help=f"comma-separated subset of {','.join(ALL_PHASES)}")
    defaults = QUICK if "--quick" in (argv if argv is not None else sys.argv[1:]) else Config()
    sizes = [
        ("headline_n", "--headline-n", "jobs per headline run at one stream"),
        ("headline_streams_n", "--headline-streams-n", "jobs per headline run at K streams"),
        ("publish_n", "--publish-n", "messages per bulk publish (second table)"),
        ("latency_n", "--latency-n", "single publishes per repetition (second table)"),
        ("drain_n", "--drain-n", "jobs drained per repetition (second table)"),
        ("start_n", "--start-n", "single jobs per repetition (second table)"),
        ("rss_n", "--rss-n", "jobs before the second RSS reading (second table)"),
        ("prefetch_n", "--prefetch-n", "jobs drained per prefetch value"),
        ("spread_n", "--spread-n", "jobs of the burst spread over two workers"),
        ("exactly_once_n", "--exactly-once-n", "jobs drained per side of the exactly-once "
                                               "phase"),
        ("payload_bytes", "--payload-bytes", "size of the job's string argument"),
        ("reps", "--reps", "repetitions of each run (at least 3 for a report)"),
    ]
    for name, flag, help_text in sizes:
        parser.add_argument(flag, dest=name, type=int, default=getattr(defaults, name),
                            help=f"{help_text} (default {getattr(defaults, name)})")
    tuples = [
        ("headline_streams", "--headline-streams", "stream counts K of the headline"),
        ("streams", "--streams", "stream counts K of the second table's drain"),
        ("prefetch_values", "--prefetch-values", "prefetch values of the prefetch phase"),
    ]
    for name, flag, help_text in tuples:
        default = ",".join(map(str, getattr(defaults, name)))
        parser.add_argument(flag, dest=name, default=default,
                            help=f"{help_text} (default {default})")
    parser.add_argument("--peers", default=",".join(defaults.peers),
                        help="peers in the headline: dramatiq,celery or none "
                             "(default %(default)s)")
    args = parser.parse_args(argv)
    peers = tuple(p for p in args.peers.split(",") if p and p != "none")
    if set(peers) - {"dramatiq", "celery"}:
        parser.error(f"unknown peer(s) in {args.peers!r}")
    config = replace(
        defaults,
        **{name: getattr(args, name) for name, _, _ in sizes},
        **{name: _ints(getattr(args, name)) for name, _, _ in tuples},
        peers=peers,
    )
    unknown = set(args.phases.split(",")) - set(ALL_PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return config, args


#: The pages that show the headline of the latest run (``docs/index.md`` is the README's).
DOCS_PAGES = ("index.md", "benchmarks.md")


def update_docs(results: dict[str, Any]) -> None:
    """The headline block of each of :data:`DOCS_PAGES` from this run, and the README built
    from them (its "Benchmarks" section)."""
    from bench.report import replace_docs_block

    for name in DOCS_PAGES:
        page = ROOT / "docs" / name
        page.write_text(replace_docs_block(page.read_text(), results))
    subprocess.run([sys.executable, str(ROOT / "docs" / "build_readme.py")], check=True)


def main(argv: list[str] | None = None) -> int:
    from bench.report import markdown

    config, args = parse_args(argv)
    phases = [p for p in ALL_PHASES if p in args.phases.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="pubsub-jobs-bench-"))
    log(f"logs of every run in {workdir}")
    results = run(config, phases, workdir, args.emulator_host)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "latest.md").write_text(table)
    if "headline" in results and args.out.resolve() == RESULTS and not args.quick:
        update_docs(results)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
