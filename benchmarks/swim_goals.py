"""SWIM's goals, measured in the simulator over many seeds (LAN preset).

Every row runs ``gossamer.lab.swim_experiment.run_swim_experiment`` (what
``gossamer sim swim`` runs) once per seed and summarises:

* ``detect``: 100 nodes, 1% loss, ``--detect-seeds`` seeds (100), 45 s
  each.  The crashed node's first and last declaration of death (median and
  p99 of the first, nearest rank; median of last - first), whether every seed
  detected it, and how often all 100 saw each other alive within 2 s of boot.
* ``false_deaths``: 120 s at 1% and 5% loss, 50 and 200 nodes: false deaths.
* ``slow``: 5% of 50 nodes starved, with and without Lifeguard on the same
  seeds: false suspicions (episodes, of healthy members) and the share of
  runs with any false death.
* ``bandwidth``: 200 nodes, no loss, 600 s: bytes per node per second in
  steady state, push-pull syncs included (message payloads as encoded; the
  sealing the runtime adds and IP/UDP headers are not counted).
* ``scale``: 1,000 nodes for 120 simulated seconds, one seed: wall time.

    python -m benchmarks.swim_goals [--seeds 20] [--detect-seeds 100] [--jobs 2] [--skip-scale]

prints one JSON object with a key per row; each row holds its figures and
``goal_met``.  Runs are spread over ``--jobs`` processes; every run is
deterministic in its seed, so the figures (but wall times) repeat exactly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gossamer.lab.swim_experiment import run_swim_experiment

Run = tuple[int, int, float, float, bool, float]  # nodes, seed, loss, slow, lifeguard, duration


def _one(run: Run) -> dict[str, Any]:
    nodes, seed, loss, slow, lifeguard, duration_s = run
    started = time.perf_counter()
    report = run_swim_experiment(
        nodes, seed, loss=loss, slow=slow, lifeguard=lifeguard, duration_s=duration_s
    )
    result = report.as_json(time.perf_counter() - started)
    result["slow_suspicions"] = report.slow_suspicions
    return result


def _p(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method (p99 of 20 values is the largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--detect-seeds", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args(argv)
    seeds = range(1, args.seeds + 1)

    plan: dict[str, list[Run]] = {
        # Detection is over within 45 s; runs are deterministic, so a shorter
        # run of a seed is the first 45 s of the longer one.
        "detect": [(100, s, 0.01, 0.0, True, 45.0) for s in range(1, args.detect_seeds + 1)],
        "false_deaths": [
            (n, s, loss, 0.0, True, 120.0)
            for n in (50, 200)
            for loss in (0.01, 0.05)
            for s in seeds
        ],
        "slow_on": [(50, s, 0.0, 0.05, True, 120.0) for s in seeds],
        "slow_off": [(50, s, 0.0, 0.05, False, 120.0) for s in seeds],
        # Ten minutes: the window holds several push-pull intervals (120 s at 200 nodes).
        "bandwidth": [(200, s, 0.0, 0.0, True, 600.0) for s in seeds],
    }
    if not args.skip_scale:
        plan["scale"] = [(1000, 1, 0.0, 0.0, True, 120.0)]
    runs = [run for rows in plan.values() for run in rows]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        done = dict(zip(runs, pool.map(_one, runs, chunksize=1), strict=True))
    results = {name: [done[r] for r in rows] for name, rows in plan.items()}

    detect = results["detect"]
    firsts = [r["detect_first_s"] for r in detect if r["detect_first_s"] is not None]
    spreads = [
        r["detect_all_s"] - r["detect_first_s"]
        for r in detect
        if r["detect_all_s"] is not None and r["detect_first_s"] is not None
    ]
    joined_2s = sum(1 for r in detect if r["converge_s"] is not None and r["converge_s"] <= 2.0)
    out: dict[str, Any] = {"seeds": args.seeds}
    out["detect"] = {
        "nodes": 100,
        "loss": 0.01,
        "detected": f"{len(firsts)}/{len(detect)}",
        "first_median_s": round(statistics.median(firsts), 2) if firsts else None,
        "first_p95_s": round(_p(firsts, 0.95), 2) if firsts else None,
        "first_p99_s": round(_p(firsts, 0.99), 2) if firsts else None,
        "first_max_s": round(max(firsts), 2) if firsts else None,
        "spread_median_s": round(statistics.median(spreads), 2) if spreads else None,
        "converged_within_2s": f"{joined_2s}/{len(detect)}",
        "converge_median_s": round(
            statistics.median(r["converge_s"] for r in detect if r["converge_s"] is not None), 2
        ),
        "goal_met": bool(
            firsts
            and len(firsts) == len(detect)
            and statistics.median(firsts) <= 10
            and _p(firsts, 0.99) <= 12.5
            and spreads
            and statistics.median(spreads) <= 0.4
            and joined_2s >= 0.95 * len(detect)
        ),
    }
    fd = results["false_deaths"]
    by_case: dict[str, int] = {}
    for r in fd:
        key = f"n{r['nodes']}_loss{r['loss']}"
        by_case[key] = by_case.get(key, 0) + r["false_deaths"]
    out["false_deaths"] = {
        "runs": len(fd),
        "false_deaths_by_case": by_case,
        "false_suspicions_total": sum(r["false_suspicions"] for r in fd),
        "goal_met": all(v == 0 for v in by_case.values()),
    }
    on, off = results["slow_on"], results["slow_off"]
    fs_on = sum(r["false_suspicions"] for r in on)
    fs_off = sum(r["false_suspicions"] for r in off)
    runs_with_death = sum(1 for r in on if r["false_deaths"] > 0)
    out["slow"] = {
        "nodes": 50,
        "slow": 0.05,
        "false_suspicions_lifeguard": fs_on,
        "false_suspicions_no_lifeguard": fs_off,
        "reduction": round(fs_off / fs_on, 1) if fs_on else None,
        "suspicions_of_starved_lifeguard": sum(r["slow_suspicions"] for r in on),
        "suspicions_of_starved_no_lifeguard": sum(r["slow_suspicions"] for r in off),
        "false_deaths_lifeguard": sum(r["false_deaths"] for r in on),
        "false_deaths_no_lifeguard": sum(r["false_deaths"] for r in off),
        "runs_with_false_death_lifeguard": f"{runs_with_death}/{len(on)}",
        "goal_met": (fs_on == 0 or fs_off >= 4 * fs_on) and runs_with_death <= 0.03 * len(on),
    }
    bw = [r["bytes_per_node_per_s"] for r in results["bandwidth"]]
    out["bandwidth"] = {
        "nodes": 200,
        "bytes_per_node_per_s_median": round(statistics.median(bw), 1),
        "bytes_per_node_per_s_max": round(max(bw), 1),
        "msgs_per_node_per_s_median": round(
            statistics.median(r["msgs_per_node_per_s"] for r in results["bandwidth"]), 2
        ),
        "goal_met": max(bw) <= 500,
    }
    if "scale" in results:
        (scale,) = results["scale"]
        out["scale"] = {**scale, "goal_met": scale["converge_s"] is not None}
    out["wall_s"] = round(time.perf_counter() - started, 1)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
