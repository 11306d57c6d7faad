"""SWIM and Lifeguard on real sockets: N encrypted nodes as processes on loopback.

Where ``benchmarks.swim_goals`` runs the protocol in the simulator, this runs
the runtime itself: N nodes on 127.0.0.1 with the LAN preset
(``NodeConfig.lan``), every packet sealed with one generated keyring (written
to a temporary file the workers load), or in plaintext with ``--plain``.
Nodes live in worker processes (``benchmarks._cluster_worker``),
``--per-process`` of them (10) on one asyncio loop with
``engine_thread=False``, except two that each get a process of their own:
the *victim*, to be killed, and the *stalled* node, which runs with its
engine thread as an application would.  Workers talk to this controller in
JSON lines over their stdin and stdout.

The run, in order:

1. Workers start, reserve a port per node and report the addresses.  Nothing
   is timed yet.
2. ``go``: node 0 starts (the seed), then every other node, seeded on the
   first ``--seed-nodes`` nodes.  ``converge_s`` runs from ``go`` until every
   node has seen all N alive (each node's first such moment, by its worker's
   ``time.time()``; the last of them counts).
3. ``--settle-s`` (5 s) for the join news to finish spreading, then an idle
   window of ``--idle-s`` (30 s): ``idle_cpu_pct_per_node`` is the CPU time
   of every worker process (all threads) over the window / window / N x 100,
   and ``bytes_per_node_per_s`` the bytes the nodes sent over the window
   (sealed datagrams and stream frames, every message type, as the
   transport counts them; no IP/UDP headers) / N / window.  A window this
   soon after a mass join holds fewer push-pulls than the steady state
   (every node syncs 0.5-1.5 s after its seed answers, all at once, then
   every 0.5-1.5 sync intervals, 60 s at N = 50, so the syncs bunch up a
   second after the join and drift apart only slowly), so stderr also gives
   a steady-state estimate; ``benchmarks.idle_cost`` waits one interval.
4. The stalled worker blocks its application loop while its engine thread
   runs, twice: in a blocking call (``time.sleep``, which releases the GIL)
   for ``--stall-s`` (20 s), then in pure-Python computation (which holds
   the GIL but for the interpreter's thread switches) for as long:
   ``stalled_node_suspected`` is whether any node saw it suspect or dead
   from either stall's start until 5 s after its end.
5. The victim's process gets SIGKILL: ``detect_first_s`` and
   ``detect_all_s`` run from the kill to the first and to the last of the
   N - 1 survivors seeing it dead (null if some survivor has not within 60 s).

The workers are stopped at the end, and killed if they do not stop, on error
and on Ctrl-C too.  The machine's load counts: on 2 cores, N = 50 is 7
Python processes sharing them with whatever else runs.

    python -m benchmarks.real_cluster --nodes 50 --json [--per-process 10] [--idle-s 30]
        [--stall-s 20] [--seed-nodes 1] [--settle-s 5]

prints one JSON object: ``nodes, converge_s, detect_first_s, detect_all_s,
idle_cpu_pct_per_node, bytes_per_node_per_s, stalled_node_suspected``.
Without ``--json`` it prints a report against the goals at N = 50.
Diagnostics (per-process CPU, bytes by message type, suspicions, wall time)
go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossamer.failure.lifeguard import push_pull_scale
from gossamer.failure.swim import SwimConfig
from gossamer.runtime.keyring import Keyring, generate_key, save_keyring

_READY_TIMEOUT_S = 60.0
_CONVERGE_TIMEOUT_S = 60.0
_STATS_TIMEOUT_S = 10.0
_STALL_GRACE_S = 5.0
_DETECT_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0

GOALS = {
    "converge_s": 2.0,
    "detect_first_s": 10.0,
    "detect_spread_s": 0.5,
    "idle_cpu_pct_per_node": 1.0,
    "bytes_per_node_per_s": 500.0,
}

ANCHORS = (
    "swim-protocol: declared a node dead after an 8 s stall; detected a kill in 7 s at N = 10",
    "kinship: detected a kill in 5.4 s at N = 10; ignored a 20 s stall",
)


class BenchmarkError(RuntimeError):
    """The run could not go on (a worker died, a step timed out)."""


@dataclass
class Worker:
    """One worker process, as the controller sees it."""

    index: int
    names: list[str]
    role: str  # "group", "stalled" or "victim"
    proc: subprocess.Popen[bytes]
    addresses: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    alive: bool = True
    killed: bool = False  # by the benchmark: its end is expected

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()


class Controller:
    def __init__(self, size: int, per_process: int, keyring_path: str | None) -> None:
        self.size = size
        self.names = [f"n{i:02d}" for i in range(size)]
        self.victim = self.names[-1]
        self.stalled = self.names[-2]
        grouped = self.names[:-2]  # the victim and the stalled node run alone
        groups = [grouped[i : i + per_process] for i in range(0, len(grouped), per_process)]
        self.layout = [(g, "group") for g in groups]
        self.layout += [([self.stalled], "stalled"), ([self.victim], "victim")]
        self.keyring_path = keyring_path
        self.workers: list[Worker] = []
        self.inbox: queue.Queue[tuple[Worker, dict[str, Any] | None]] = queue.Queue()
        self.up: dict[str, float] = {}
        self.converged: dict[str, float] = {}
        self.events: list[dict[str, Any]] = []
        self.stats: dict[int, dict[int, dict[str, Any]]] = {}
        self.stall_marks: dict[str, float] = {}

    # ------------------------------------------------------------ processes

    def command(self, index: int, names: list[str], role: str) -> list[str]:
        """How worker ``index`` is started."""
        command = [
            sys.executable,
            "-m",
            "benchmarks._cluster_worker",
            *(["--keyring", self.keyring_path] if self.keyring_path else []),
            "--names",
            ",".join(names),
            "--cluster-size",
            str(self.size),
        ]
        if role == "stalled":
            command.append("--engine-thread")
        return command

    def spawn(self) -> None:
        for index, (names, role) in enumerate(self.layout):
            command = self.command(index, names, role)
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Its own session: a Ctrl-C reaches the controller only, which
                # then stops every worker itself.
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
            worker = Worker(index, names, role, proc)
            self.workers.append(worker)
            threading.Thread(target=self._read, args=(worker,), daemon=True).start()

    def _read(self, worker: Worker) -> None:
        assert worker.proc.stdout is not None
        for line in worker.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                print(f"worker {worker.index}: {line!r}", file=sys.stderr)
                continue
            self.inbox.put((worker, message))
        self.inbox.put((worker, None))

    def shutdown(self) -> None:
        """Stop every worker still running; kill those that do not stop."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                with contextlib.suppress(OSError):
                    worker.send({"cmd": "stop"})
                    assert worker.proc.stdin is not None
                    worker.proc.stdin.close()
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(max(0.1, deadline - time.monotonic()))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for worker in self.workers:
                if worker.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.send_signal(sig)
            for worker in self.workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(2.0)
        for worker in self.workers:
            for pipe in (worker.proc.stdin, worker.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    # ------------------------------------------------------------ messages

    def pump(self, until: Callable[[], bool], timeout_s: float, what: str = "") -> bool:
        """Handle reports until ``until()`` holds (True) or ``timeout_s`` passes (False,
        or BenchmarkError when ``what`` names the step that may not time out)."""
        deadline = time.monotonic() + timeout_s
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                if what:
                    raise BenchmarkError(f"timed out after {timeout_s:.0f} s waiting for {what}")
                return False
            try:
                worker, message = self.inbox.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self._handle(worker, message)
        return True

    def sleep(self, seconds: float) -> None:
        """Handle reports for ``seconds``."""
        self.pump(lambda: False, seconds)

    def _handle(self, worker: Worker, message: dict[str, Any] | None) -> None:
        if message is None:
            worker.alive = False
            if not worker.killed:
                raise BenchmarkError(
                    f"worker {worker.index} ({','.join(worker.names)}) exited "
                    f"with status {worker.proc.wait()}"
                )
            return
        match message["type"]:
            case "ready":
                worker.addresses = message["addresses"]
                worker.ready = True
            case "up":
                self.up[message["node"]] = message["t"]
            case "converged":
                self.converged[message["node"]] = message["t"]
            case "event":
                self.events.append(message)
            case "stats":
                self.stats.setdefault(message["id"], {})[worker.index] = message
            case "stall_begin" | "stall_end":
                self.stall_marks[message["type"]] = message["t"]

    def snapshot(self, ident: int) -> dict[int, dict[str, Any]]:
        """Stats from every running worker."""
        live = [w for w in self.workers if w.alive]
        for worker in live:
            worker.send({"cmd": "stats", "id": ident})
        self.pump(
            lambda: len(self.stats.get(ident, {})) == len(live),
            _STATS_TIMEOUT_S,
            "the workers' stats",
        )
        return self.stats[ident]

    def ready(self, seed_nodes: int) -> list[str]:
        """Spawn the workers, wait for their ports: the first ``seed_nodes``' addresses."""
        self.spawn()
        self.pump(lambda: all(w.ready for w in self.workers), _READY_TIMEOUT_S, "workers")
        address = {name: a for w in self.workers for name, a in w.addresses.items()}
        return [address[name] for name in self.names[:seed_nodes]]

    def boot(self, seeds: list[str]) -> float:
        """Start node 0 alone, then every other node seeded on ``seeds``;
        when it began (the ``time.time()`` convergence is timed from)."""
        go = time.time()
        first = self.names[0]
        self.worker_of(first).send({"cmd": "start", "names": [first], "seeds": []})
        self.pump(lambda: first in self.up, _CONVERGE_TIMEOUT_S, "the seed node")
        for worker in self.workers:
            rest = [name for name in worker.names if name != first]
            if rest:
                worker.send({"cmd": "start", "names": rest, "seeds": seeds})
        return go

    def idle(
        self, seconds: float
    ) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]], float, float, float]:
        """An idle window: the stats before and after, its length, and the
        CPU (% of a core) and bytes a second per node over it."""
        before = self.snapshot(1)
        self.sleep(seconds)
        after = self.snapshot(2)
        window = _window(before, after)
        cpu_s = sum(after[i]["cpu_s"] - before[i]["cpu_s"] for i in after)
        sent = sum(after[i]["bytes_out"] - before[i]["bytes_out"] for i in after)
        return before, after, window, cpu_s / window / self.size * 100, sent / self.size / window

    def kill_victim(self) -> tuple[float, float | None, float | None]:
        """SIGKILL the victim's process and wait (at most 60 s) for every other
        node to see it dead: when, and the first and last detection times
        (the last None if some survivor never saw it)."""
        victim = self.worker_of(self.victim)
        victim.killed = True
        killed = time.time()
        os.kill(victim.proc.pid, signal.SIGKILL)
        survivors = set(self.names) - {self.victim}
        self.pump(
            lambda: survivors <= self.seen(self.victim, ("dead",), killed).keys(),
            _DETECT_TIMEOUT_S,
        )
        dead = self.seen(self.victim, ("dead",), killed)
        first = min(dead.values()) - killed if dead else None
        last = max(dead.values()) - killed if survivors <= dead.keys() else None
        return killed, first, last

    def worker_of(self, name: str) -> Worker:
        return next(w for w in self.workers if name in w.names)

    def seen(self, about: str, kinds: tuple[str, ...], since: float) -> dict[str, float]:
        """The first time each node saw ``about`` in one of ``kinds``, from ``since``."""
        first: dict[str, float] = {}
        for e in self.events:
            if e["about"] == about and e["kind"] in kinds and e["t"] >= since:
                first.setdefault(e["node"], e["t"])
        return first


def run(args: argparse.Namespace, diag: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    n = args.nodes
    with tempfile.TemporaryDirectory(prefix="gossamer-bench-") as tmp:
        keyring_path: str | None = None
        if not args.plain:
            keyring_path = os.path.join(tmp, "cluster.keys")
            save_keyring(keyring_path, Keyring([generate_key()]))
        ctl = Controller(n, args.per_process, keyring_path)
        try:
            seeds = ctl.ready(args.seed_nodes)
            diag(f"{len(ctl.workers)} workers ready; seeds {seeds}")

            # --- convergence
            go = ctl.boot(seeds)
            converged = ctl.pump(lambda: len(ctl.converged) == n, _CONVERGE_TIMEOUT_S)
            converge_s = max(ctl.converged.values()) - go if converged else None
            last_up = max(ctl.up.values(), default=go) - go
            diag(
                f"converged: {len(ctl.converged)}/{n} nodes"
                + (f" in {converge_s:.3f} s" if converge_s is not None else "")
                + f" (last node up {last_up:.3f} s after go)"
            )

            # --- idle
            ctl.sleep(args.settle_s)
            before, after, window, idle_cpu, bandwidth = ctl.idle(args.idle_s)
            _idle_diagnostics(ctl, before, after, window, diag)

            # --- stall: a blocking call, then a computation, each --stall-s long
            stalled = ctl.worker_of(ctl.stalled)
            suspicions: list[dict[str, Any]] = []
            for kind in ("sleep", "busy"):
                ctl.stall_marks.clear()
                stalled.send({"cmd": "stall", "s": args.stall_s, "kind": kind})
                ctl.pump(
                    lambda: "stall_end" in ctl.stall_marks,
                    args.stall_s + _STATS_TIMEOUT_S,
                    "the stall to end",
                )
                ctl.sleep(_STALL_GRACE_S)
                begin, end = ctl.stall_marks["stall_begin"], ctl.stall_marks["stall_end"]
                seen = [
                    e
                    for e in ctl.events
                    if e["about"] == ctl.stalled
                    and e["kind"] in ("suspect", "dead")
                    and begin <= e["t"] <= end + _STALL_GRACE_S
                ]
                suspicions += seen
                diag(
                    f"stall ({kind}): {end - begin:.1f} s; {ctl.stalled} suspected or declared "
                    f"dead {len(seen)} times by {len({e['node'] for e in seen})} nodes"
                )

            # --- kill
            killed, detect_first, detect_all = ctl.kill_victim()
            survivors = set(ctl.names) - {ctl.victim}
            dead = ctl.seen(ctl.victim, ("dead",), killed)
            suspect = ctl.seen(ctl.victim, ("suspect",), killed)
            diag(
                f"kill: {len(dead)}/{len(survivors)} survivors saw {ctl.victim} dead; "
                f"first suspicion {min(suspect.values()) - killed:.3f} s"
                if suspect
                else f"kill: {len(dead)}/{len(survivors)} survivors saw {ctl.victim} dead"
            )
            _event_diagnostics(ctl, go, killed, diag)
        finally:
            ctl.shutdown()
    diag(f"wall time {time.monotonic() - started:.1f} s")
    return {
        "nodes": n,
        "converge_s": _round(converge_s),
        "detect_first_s": _round(detect_first),
        "detect_all_s": _round(detect_all),
        "idle_cpu_pct_per_node": _round(idle_cpu),
        "bytes_per_node_per_s": _round(bandwidth),
        "stalled_node_suspected": bool(suspicions),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _window(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]) -> float:
    """The idle window: the mean over workers of the time between their two reports."""
    spans = [after[i]["t"] - before[i]["t"] for i in after]
    return sum(spans) / len(spans)


def bytes_by_type(
    before: dict[int, dict[str, Any]],
    after: dict[int, dict[str, Any]],
    n: int,
    window: float,
    diag: Callable[[str], None],
) -> Counter[str]:
    """The bytes every node sent between two snapshots, by message type, said
    per node and second on ``diag``."""
    by_type: Counter[str] = Counter()
    for i in after:
        by_type.update(after[i]["bytes_by_type"])
        by_type.subtract(before[i]["bytes_by_type"])
    shares = ", ".join(f"{k} {v / n / window:.1f}" for k, v in by_type.most_common() if v)
    diag(f"idle bytes per node per s by type: {shares}")
    return by_type


def _idle_diagnostics(
    ctl: Controller,
    before: dict[int, dict[str, Any]],
    after: dict[int, dict[str, Any]],
    window: float,
    diag: Callable[[str], None],
) -> None:
    for i in sorted(after):
        w = ctl.workers[i]
        cpu = after[i]["cpu_s"] - before[i]["cpu_s"]
        diag(
            f"worker {i} ({w.role}, {len(w.names)} nodes, pid {w.proc.pid}): "
            f"{cpu / window * 100:.1f}% of a core, "
            f"{cpu / window / len(w.names) * 100:.2f}% per node"
        )
    n = ctl.size
    by_type = bytes_by_type(before, after, n, window, diag)
    swim: Counter[str] = Counter()
    for i in after:
        swim.update(after[i]["swim"])
        swim.subtract(before[i]["swim"])
    diag(f"idle SWIM counters (all nodes, over {window:.1f} s): {dict(swim)}")
    # Every node's first periodic sync falls 0.5-1.5 intervals after its
    # join, so a window that starts just after a mass join holds fewer syncs
    # than the steady state: estimate that from the bytes of those it holds.
    interval = push_pull_scale(SwimConfig.lan().push_pull_interval_s, n)
    syncs = swim["push_pulls"]
    sync_bytes = by_type["PushPull"] + by_type["PushPullReply"]
    steady_syncs = n * window / interval
    if syncs:
        other = sum(by_type.values()) - sync_bytes
        steady = (other + steady_syncs * sync_bytes / syncs) / n / window
        diag(
            f"push-pulls in the window: {syncs}, about {steady_syncs:.0f} in the steady state "
            f"(one per node every {interval:.0f} s); at {sync_bytes / syncs:.0f} B each, "
            f"the steady rate would be about {steady:.0f} B/s per node"
        )
    else:
        diag(f"no push-pull in the window (about {steady_syncs:.0f} in the steady state)")
    short = {
        name: count for i in after for name, count in after[i]["alive"].items() if count != ctl.size
    }
    if short:
        diag(f"nodes not seeing all {ctl.size} alive at the end of the window: {short}")


def _event_diagnostics(
    ctl: Controller, go: float, killed: float, diag: Callable[[str], None]
) -> None:
    before_kill = [e for e in ctl.events if e["t"] < killed and e["kind"] in ("suspect", "dead")]
    if before_kill:
        about = Counter(f"{e['about']} {e['kind']}" for e in before_kill)
        diag(f"suspect/dead events before the kill (by observers): {dict(about)}")
        for e in before_kill[:10]:
            diag(f"  {e['t'] - go:8.3f} s  {e['node']} saw {e['about']} {e['kind']}")
    else:
        diag("no suspicion of any node before the kill")


def report(result: dict[str, Any], plain: bool = False) -> str:
    """The readable report, with the goals at N = 50 and the anchors."""

    def show(value: float | None, unit: str) -> str:
        return "n/a" if value is None else f"{value:.3f}{unit}"

    def verdict(met: bool | None) -> str:
        return "n/a" if met is None else ("met" if met else "MISSED")

    def within(value: float | None, goal: float) -> bool | None:
        return None if value is None else value <= goal

    first, last = result["detect_first_s"], result["detect_all_s"]
    spread = None if first is None or last is None else last - first
    rows = [
        (
            "converge (every node sees all alive)",
            show(result["converge_s"], " s"),
            f"<= {GOALS['converge_s']} s",
            verdict(within(result["converge_s"], GOALS["converge_s"])),
        ),
        (
            "kill detected, first survivor",
            show(first, " s"),
            f"<= {GOALS['detect_first_s']} s",
            verdict(within(first, GOALS["detect_first_s"])),
        ),
        (
            "kill detected, last survivor",
            show(last, " s") + ("" if spread is None else f" (+{spread:.3f} s)"),
            f"<= first + {GOALS['detect_spread_s']} s",
            verdict(within(spread, GOALS["detect_spread_s"])),
        ),
        (
            "idle CPU per node",
            show(result["idle_cpu_pct_per_node"], "% of a core"),
            f"<= {GOALS['idle_cpu_pct_per_node']}%",
            verdict(within(result["idle_cpu_pct_per_node"], GOALS["idle_cpu_pct_per_node"])),
        ),
        (
            "idle bytes sent per node per s",
            show(result["bytes_per_node_per_s"], " B/s"),
            f"<= {GOALS['bytes_per_node_per_s']:.0f} B/s",
            verdict(within(result["bytes_per_node_per_s"], GOALS["bytes_per_node_per_s"])),
        ),
        (
            "stalled application loop suspected",
            "yes" if result["stalled_node_suspected"] else "no",
            "no",
            verdict(not result["stalled_node_suspected"]),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    sealing = "plaintext" if plain else "encrypted"
    lines = [f"gossamer on real sockets: {result['nodes']} nodes, LAN preset, {sealing}"]
    if result["nodes"] != 50:
        lines.append("(the goals are set for N = 50; this run is smaller)")
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    lines.append("anchors (same kind of machine, measured by others):")
    lines += [f"  {anchor}" for anchor in ANCHORS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--per-process", type=int, default=10, help="nodes per worker process")
    parser.add_argument("--idle-s", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--stall-s", type=float, default=20.0, help="application stall, seconds")
    parser.add_argument("--seed-nodes", type=int, default=1, help="nodes everyone joins through")
    parser.add_argument("--plain", action="store_true", help="run without a keyring (unsealed)")
    parser.add_argument(
        "--settle-s", type=float, default=5.0, help="wait after converging, before idle"
    )
    args = parser.parse_args(argv)
    if args.nodes < 3:
        parser.error("--nodes must be at least 3 (a seed, the stalled node and the victim)")
    if args.per_process < 1:
        parser.error("--per-process must be at least 1")
    if not 1 <= args.seed_nodes <= args.nodes - 2:
        parser.error("--seed-nodes must be between 1 and --nodes - 2")
    if args.idle_s <= 0 or args.stall_s < 0 or args.settle_s < 0:
        parser.error("--idle-s must be positive, --stall-s and --settle-s not negative")

    def diag(text: str) -> None:
        print(f"[real_cluster] {text}", file=sys.stderr, flush=True)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM unwinds like Ctrl-C, so the workers are stopped on the way out.
    signal.signal(signal.SIGTERM, on_term)
    try:
        result = run(args, diag)
    except KeyboardInterrupt:
        diag("interrupted; workers stopped")
        return 130
    except BenchmarkError as exc:
        diag(f"failed: {exc}")
        return 1
    if args.json:
        json.dump(result, sys.stdout)
        print()
    else:
        print(report(result, args.plain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
