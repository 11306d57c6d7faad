"""The overlay on real sockets: broadcast, links and the death of a process, N nodes on loopback.

N encrypted nodes with the LAN preset (``NodeConfig.lan``: SWIM, HyParView
with heartbeats and knocks, Plumtree) run in worker processes
(``benchmarks._cluster_worker``), ``--per-process`` of them (10) on one
loop, except two that each get a process of their own: the *victim*, to be
killed, and the *stopped* node, to be stopped and continued.

The run, in order:

1. Every node starts, seeded on node 0, and the run waits until every node
   sees all N alive, then ``--settle-s`` (10 s) for the overlay to settle.
2. An idle window of ``--idle-s`` (30 s): ``idle_cpu_pct_per_node`` is the
   CPU time of every worker (all threads) over the window / window / N x
   100, and ``bytes_per_node_per_s`` the sealed bytes the nodes sent (every
   message, datagrams and stream frames, no IP headers) / N / window.  At
   its end, ``max_connections_per_node`` and ``mean_connections_per_node``
   are the TCP streams each node holds (the transport's count, both
   directions; a link both ends opened at once counts twice).
3. ``--broadcasts`` (200) broadcasts from random nodes (seeded), one every
   ``--gap-ms`` (50 ms), each subscribed to on every node:
   ``broadcast_p50_ms`` and ``broadcast_p99_ms`` are the times from the
   call to the last other node's subscriber receiving it (each worker's
   ``time.time()``, one clock), and ``rmr`` is Plumtree's payload messages
   sent over the broadcasts (tree sends and graft answers) / (broadcasts x
   (N - 1)) - 1: 0 when each node gets each payload once.
4. The stopped node's process gets SIGSTOP for ``--stop-s`` (20 s): its
   kernel keeps its links and accepts connections, so
   ``stopped_declared_dead_fast`` is whether any survivor declared a death
   on witnessed refusals meanwhile (SWIM's own suspicion may declare it
   dead; that is expected).  Then SIGCONT, and the run waits (at most 60 s)
   for every node to see it alive again.
5. The victim's process gets SIGKILL: ``kill_detect_first_s`` and
   ``kill_detect_all_s`` run from the kill to the first and the last of the
   N - 1 survivors seeing it dead (null if some survivor has not in 60 s).

``false_deaths`` counts the deaths declared of any node other than the
victim after its kill and the stopped node during its stop.

With Erlang/OTP installed (``erl``, Debian's ``erlang-nox``), the same
invocation then runs the Erlang anchor (``../shared/anchors/erlang``, copied
to a temporary directory) at the same N with its default ``net_ticktime``
of 60 s, in ``failure`` mode (a full mesh, idle traffic, kill -9 and kill
-STOP): its figures go to stderr and the readable report, not the JSON.

    python -m benchmarks.real_overlay --nodes 50 --json [--per-process 10] [--no-anchor]

prints one JSON object: ``nodes, broadcast_p50_ms, broadcast_p99_ms, rmr,
max_connections_per_node, mean_connections_per_node, kill_detect_first_s,
kill_detect_all_s, stopped_declared_dead_fast, idle_cpu_pct_per_node,
bytes_per_node_per_s, false_deaths``.  Without ``--json``, a report against
the goals at N = 50.  Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.real_cluster import BenchmarkError, Controller, Worker, _round, bytes_by_type
from gossamer.runtime.keyring import Keyring, generate_key, save_keyring

_CONVERGE_TIMEOUT_S = 120.0
_DELIVERY_TIMEOUT_S = 10.0
_BACK_TIMEOUT_S = 60.0
TOPIC = "bench"

KEYS = (
    "nodes",
    "broadcast_p50_ms",
    "broadcast_p99_ms",
    "rmr",
    "max_connections_per_node",
    "mean_connections_per_node",
    "kill_detect_first_s",
    "kill_detect_all_s",
    "stopped_declared_dead_fast",
    "idle_cpu_pct_per_node",
    "bytes_per_node_per_s",
    "false_deaths",
)
GOALS = {
    "broadcast_p99_ms": 50.0,
    "rmr": 0.1,
    "max_connections_per_node": 8,
    "kill_detect_all_s": 1.0,
    "idle_cpu_pct_per_node": 1.0,
    "bytes_per_node_per_s": 300.0,
}
ANCHOR = Path(__file__).resolve().parent.parent.parent / "shared" / "anchors" / "erlang"


class OverlayController(Controller):
    """The cluster benchmark's controller, hearing broadcasts too."""

    def __init__(self, size: int, per_process: int, keyring_path: str | None) -> None:
        super().__init__(size, per_process, keyring_path)
        # The victim and the stalled node of the cluster benchmark: here the
        # second is the one stopped.
        self.stopped = self.stalled
        self.sent: dict[str, tuple[str, float]] = {}
        self.delivered: dict[str, dict[str, float]] = {}

    def _handle(self, worker: Worker, message: dict[str, Any] | None) -> None:
        if message is not None and message["type"] == "delivered":
            self.delivered.setdefault(message["id"], {})[message["node"]] = message["t"]
        elif message is not None and message["type"] == "sent":
            self.sent[message["id"]] = (message["node"], message["t"])
        else:
            super()._handle(worker, message)


def run(args: argparse.Namespace, diag: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    n = args.nodes
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="gossamer-bench-") as tmp:
        keyring_path = os.path.join(tmp, "cluster.keys")
        save_keyring(keyring_path, Keyring([generate_key()]))
        ctl = OverlayController(n, args.per_process, keyring_path)
        try:
            ctl.boot(ctl.ready(1))
            ctl.pump(lambda: len(ctl.converged) == n, _CONVERGE_TIMEOUT_S, "convergence")
            diag(f"{n} nodes converged; settling {args.settle_s} s")
            ctl.sleep(args.settle_s)

            # --- idle, and the connections each node holds
            before, after, window, idle_cpu, bandwidth = ctl.idle(args.idle_s)
            streams = {name: c for i in after for name, c in after[i]["streams"].items()}
            bytes_by_type(before, after, n, window, diag)
            diag(
                f"idle: {idle_cpu:.3f}% of a core and {bandwidth:.1f} B/s per node; "
                f"streams per node {sorted(streams.values())}"
            )

            # --- broadcasts
            for worker in ctl.workers:
                worker.send({"cmd": "subscribe", "topic": TOPIC})
            ctl.sleep(1.0)
            before_b = ctl.snapshot(3)
            origins = [name for name in ctl.names if name not in (ctl.victim, ctl.stopped)]
            for k in range(args.broadcasts):
                origin = rng.choice(origins)
                ctl.worker_of(origin).send(
                    {"cmd": "broadcast", "node": origin, "topic": TOPIC, "id": k}
                )
                ctl.sleep(args.gap_ms / 1000)
            ids = [str(k) for k in range(args.broadcasts)]
            ctl.pump(
                lambda: all(len(ctl.delivered.get(i, {})) >= n for i in ids),
                _DELIVERY_TIMEOUT_S,
            )
            after_b = ctl.snapshot(4)
            latencies, missing = [], 0
            for i in ids:
                got = ctl.delivered.get(i, {})
                missing += n - len(got)
                origin = ctl.sent.get(i)
                if origin is None:
                    continue
                others = [t for node, t in got.items() if node != origin[0]]
                if others:
                    latencies.append((max(others) - origin[1]) * 1000)
            payloads = sum(
                after_b[w]["overlay"].get(f, 0) - before_b[w]["overlay"].get(f, 0)
                for w in after_b
                for f in ("gossip_sent", "grafts_answered")
            )
            rmr = payloads / (args.broadcasts * (n - 1)) - 1
            p50 = statistics.median(latencies) if latencies else None
            p99 = _percentile(latencies, 0.99)
            diag(
                f"broadcasts: {len(latencies)} timed, {missing} deliveries missing; "
                f"p50 {p50} ms, p99 {p99} ms, max {max(latencies, default=0):.1f} ms; "
                f"{payloads} payload messages, RMR {rmr:.4f}"
            )
            streams_b = {name: c for i in after_b for name, c in after_b[i]["streams"].items()}
            for name, count in streams_b.items():
                streams[name] = max(streams[name], count)

            # --- SIGSTOP
            stopped = ctl.worker_of(ctl.stopped)
            before_s = ctl.snapshot(5)
            stop_at = time.time()
            os.kill(stopped.proc.pid, signal.SIGSTOP)
            ctl.sleep(args.stop_s)
            os.kill(stopped.proc.pid, signal.SIGCONT)
            back = _everyone_sees_alive(ctl, n, _BACK_TIMEOUT_S)
            back_at = time.time()
            after_s = ctl.snapshot(6)
            fast = sum(
                after_s[w]["swim"].get("fast_deaths", 0) - before_s[w]["swim"].get("fast_deaths", 0)
                for w in after_s
                if w != stopped.index
            )
            dead_stopped = ctl.seen(ctl.stopped, ("dead",), stop_at)
            diag(
                f"SIGSTOP {args.stop_s} s: {len(dead_stopped)} nodes saw it dead "
                f"(SWIM's suspicion), fast deaths {fast}; back alive everywhere: {back}"
            )

            # --- SIGKILL
            killed, detect_first, detect_all = ctl.kill_victim()
            survivors = set(ctl.names) - {ctl.victim}
            dead = ctl.seen(ctl.victim, ("dead",), killed)
            ctl.sleep(2.0)
            after_k = ctl.snapshot(7)
            witnessed = sum(
                after_k[w]["swim"].get("refusals_witnessed", 0)
                - after_s[w]["swim"].get("refusals_witnessed", 0)
                for w in after_k
            )
            knocks = {
                k: sum(
                    after_k[w]["overlay"].get(k, 0) - after_s[w]["overlay"].get(k, 0)
                    for w in after_k
                )
                for k in ("knocks_refused", "knocks_listening", "knocks_silent")
            }
            diag(
                f"SIGKILL: {len(dead)}/{len(survivors)} survivors saw {ctl.victim} dead; "
                f"witnesses {witnessed}, knocks {knocks}"
            )

            false_deaths = [
                e
                for e in ctl.events
                if e["kind"] == "dead"
                and not (e["about"] == ctl.victim and e["t"] >= killed)
                and not (e["about"] == ctl.stopped and stop_at <= e["t"] <= back_at)
            ]
            for e in false_deaths[:10]:
                diag(f"  false death: {e['node']} saw {e['about']} dead at {e['t'] - stop_at:.3f}")
        finally:
            ctl.shutdown()
    diag(f"wall time {time.monotonic() - started:.1f} s")
    return {
        "nodes": n,
        "broadcast_p50_ms": _round(p50),
        "broadcast_p99_ms": _round(p99),
        "rmr": _round(rmr),
        "max_connections_per_node": max(streams.values()),
        "mean_connections_per_node": _round(statistics.fmean(streams.values())),
        "kill_detect_first_s": _round(detect_first),
        "kill_detect_all_s": _round(detect_all),
        "stopped_declared_dead_fast": fast > 0,
        "idle_cpu_pct_per_node": _round(idle_cpu),
        "bytes_per_node_per_s": _round(bandwidth),
        "false_deaths": len(false_deaths),
    }


def _everyone_sees_alive(ctl: Controller, count: int, timeout_s: float) -> bool:
    """Wait until every node sees ``count`` members alive (False after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    ident = 100
    while time.monotonic() < deadline:
        ident += 1
        snap = ctl.snapshot(ident)
        if all(c == count for w in snap.values() for c in w["alive"].values()):
            return True
        ctl.sleep(1.0)
    return False


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------ the Erlang anchor


def run_anchor(n: int, diag: Callable[[str], None]) -> dict[str, float] | None:
    """The Erlang anchor's ``failure`` mode at ``n`` (one run, ``net_ticktime`` 60),
    or None when Erlang is not installed or the run fails."""
    rows = run_anchor_mode(n, 60, "failure", diag)
    if rows is None:
        return None
    figures: dict[str, float] = {}
    for row in rows:
        if isinstance(row.get("value"), int | float):
            figures[str(row["metric"])] = float(row["value"])
    diag(f"Erlang anchor at N = {n}: {figures}")
    return figures


def run_anchor_mode(
    n: int, ticktime: int, mode: str, diag: Callable[[str], None]
) -> list[dict[str, Any]] | None:
    """The Erlang anchor's rows for one run of ``mode`` at ``n`` with
    ``net_ticktime``, or None when Erlang is not installed or the run fails."""
    if shutil.which("erl") is None or not ANCHOR.is_dir():
        diag("Erlang/OTP not installed (apt-get install erlang-nox): no anchor run")
        return None
    with tempfile.TemporaryDirectory(prefix="gossamer-anchor-") as tmp:
        here = Path(tmp) / "erlang"
        shutil.copytree(ANCHOR, here)
        out = here / "results" / "results.jsonl"
        done = subprocess.run(
            ["./run.sh", f"{n}:{ticktime}:1:{mode}"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=1_500,
            check=False,
            env={**os.environ, "OUT": str(out)},
        )
        if not out.is_file():
            diag(
                f"the Erlang anchor produced nothing (rc {done.returncode}):\n{done.stdout[-2000:]}"
            )
            return None
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        for row in rows:
            if row.get("metric") == "run_error":
                diag(f"the Erlang anchor failed: {row}")
        return rows


# ------------------------------------------------------------------ output


def report(result: dict[str, Any], anchor: dict[str, float] | None) -> str:
    lines = [f"gossamer overlay on sockets, N = {result['nodes']} (goals at N = 50)"]
    for key in KEYS[1:]:
        value = result[key]
        goal = GOALS.get(key)
        verdict = ""
        if goal is not None and isinstance(value, int | float):
            verdict = "  met" if value <= goal else "  MISSED"
            verdict += f" (goal <= {goal})"
        elif key == "stopped_declared_dead_fast":
            verdict = "  met" if value is False else "  MISSED"
        elif key == "false_deaths":
            verdict = "  met" if value == 0 else "  MISSED"
        lines.append(f"  {key:28} {value}{verdict}")
    if anchor:
        lines.append("Erlang/OTP, same machine (full mesh, net_ticktime 60):")
        for metric, value in sorted(anchor.items()):
            lines.append(f"  {metric:28} {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--per-process", type=int, default=10)
    parser.add_argument("--settle-s", type=float, default=10.0)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--broadcasts", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--stop-s", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-anchor", action="store_true", help="skip the Erlang anchor")
    args = parser.parse_args(argv)
    if args.nodes < 4:
        parser.error("--nodes must be at least 4")

    def diag(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = run(args, diag)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    anchor = None if args.no_anchor else run_anchor(args.nodes, diag)
    if args.json:
        print(json.dumps({key: result[key] for key in KEYS}))
    else:
        print(report(result, anchor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
