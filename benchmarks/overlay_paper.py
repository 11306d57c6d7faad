"""The HyParView and Plumtree reports' experiments at their scale, beside their figures.

Runs ``gossamer.lab.overlay_paper.run_overlay_experiment`` -- what
``gossamer sim overlay`` runs -- and prints one JSON object with exactly the
keys ``nodes, clustering, avg_shortest_path, max_hops,
indegree_at_active_fraction, reliability_by_failed,
healing_periods_by_failed, rmr_stable, rmr_flood,
control_per_broadcast_per_node, ldh_per_sender, ldh_shared, ldh_shared_opt,
reliability_churn, broadcasts_per_level, wall_s`` (the two ``_by_failed``
keys map the failure percentage, as a string, to a number).  The phases'
wall times and the readable report of ``gossamer sim overlay`` (the figures
beside the reports', each goal met or missed) go to stderr.

    python -m benchmarks.overlay_paper [--nodes 10000] [--seed 1] [--broadcasts 1000]

One core, one process.  The same arguments give the same figures (but wall_s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from gossamer.lab.overlay_paper import format_report, timed_experiment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--broadcasts", type=int, default=1_000)
    parser.add_argument("--detect-on-send", action="store_true")
    args = parser.parse_args(argv)
    result, report = timed_experiment(
        args.nodes,
        args.seed,
        broadcasts=args.broadcasts,
        reset=not args.detect_on_send,
        clock=time.perf_counter,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(result))
    print(format_report(result, report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
