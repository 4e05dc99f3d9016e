"""The benchmark's results as a Markdown table (``bench/results/latest.md``)."""

from __future__ import annotations

from typing import Any


def _num(value: float, unit: str) -> str:
    if unit == "msg/s":
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """A table of every figure (min and median of each side, ratio, target), then the
    machine and what each side ran."""
    m = results["machine"]
    lines = [
        f"Measured {results['generated_at']} on {m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']}, Pub/Sub emulator {m['pubsub_emulator']} (same machine), "
        f"google-cloud-pubsub {m['google_cloud_pubsub']}, grpcio {m['grpcio']}; "
        f"load average {results['load_average']['before'][0]} before, "
        f"{results['load_average']['after'][0]} after; "
        f"{results['config']['reps']} repetitions per side, interleaved.",
        "",
        "| figure | unit | raw min | raw median | pubsub-jobs min | pubsub-jobs median "
        "| ratio | target |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for f in results["figures"]:
        unit = f["unit"]
        if f["target"] is None:
            target = ""
        else:
            sign = ">=" if f["higher_is_better"] else "<="
            verdict = "met" if f["meets_target"] else "**missed**"
            target = f"{sign} {f['target']:g}: {verdict}"
        raw, ours = f["raw"], f["pubsub_jobs"]
        lines.append(
            f"| {f['title']} | {unit} | {_num(raw['min'], unit)} | {_num(raw['median'], unit)} "
            f"| {_num(ours['min'], unit)} | {_num(ours['median'], unit)} "
            f"| {f['ratio']:.2f} | {target} |"
        )
    lines += [
        "",
        "Ratio = pubsub-jobs median / raw median. For latency and memory lower is better, "
        "for msg/s higher.",
        "",
        "What each side ran:",
        "",
    ]
    seen: set[tuple[str, str]] = set()
    for f in results["figures"]:
        setup = (f["raw"]["setup"], f["pubsub_jobs"]["setup"])
        if setup in seen:
            continue
        seen.add(setup)
        lines.append(f"- {f['title']}: raw: {setup[0]}; pubsub-jobs: {setup[1]}.")
    return "\n".join(lines) + "\n"
