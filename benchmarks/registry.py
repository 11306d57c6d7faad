"""Groups and names on real processes: visibility, bulk, and agreement after a partition heals.

N encrypted nodes with the LAN preset run in worker processes
(``benchmarks._cluster_worker``, ``--per-process`` (10) to a process).  As
root with ``ip`` and ``tc`` (Debian's iproute2), the first half of the nodes
runs in one network namespace and the second half in another, joined by a
veth pair, so the two halves can be cut apart by dropping every packet
between them (a classic-BPF drop program on a ``clsact`` qdisc, both ends);
without them every node runs on loopback and there is no partition.

The run, in order (every time is ``time.time()`` in the workers, one clock):

1. Every node starts, seeded on node 0; the run waits until every node sees
   all N alive, then ``--settle-s`` (5 s).
2. ``--trials`` (50) single joins, one node after another: a fresh group
   ``single-K`` joined by one member.  ``join_visible_all_ms_p50`` / ``_p99``
   are over the trials of the time from the call to the last other node's
   ``monitor_all`` delivering the join.
3. 20 single registrations, one node after another: every node polls
   ``whereis`` each millisecond; ``register_visible_all_ms`` is the median
   over the registrations of the time from the call to the last other node
   resolving it (the anchor's ``global_resolve_all_ms`` is a median too).
4. The partition (namespaces only): the halves are cut; after 5 s, four
   nodes a side join a group of their side and register names of their
   side, and one node a side claims the same five names (conflicts); at
   ``--partition-s`` (30 s) the cut is healed.  ``heal_converge_s`` is the
   time from the heal until every node reports the same groups and the same
   winner for every name, with every entry of both sides in it (digests
   polled every 100 ms).  The losers' ``NameLost`` events are counted.
5. 10,000 joins on one node (members ``m0`` .. ``m9999`` over 100 groups,
   as the anchor's 10,000 processes do), one call each:
   ``bulk_10k_joins_all_agree_s`` runs from the first call to the last node
   holding all 10,000.
6. 10,000 names registered on one node, one call each:
   ``names_per_s_all_agree`` is 10,000 over the time from the first call to
   the last node holding all of them.

With Erlang/OTP installed (``erl``, Debian's ``erlang-nox``) and N <= 64,
the same invocation then runs the Erlang anchor (``../shared/anchors/erlang``,
copied to a temporary directory) at the same N in ``full`` mode with a
``net_ticktime`` of 4 s (pg and global do not depend on it; it shortens the
failure tests that mode also runs): ``erlang_join_visible_all_ms`` is its
``pg_join_visible_all_ms`` (median over 20 trials),
``erlang_bulk_10k_joins_all_agree_s`` its ``pg_bulk_one_node_all_agree_ms``
and ``erlang_names_per_s`` the ``names_per_s`` of ``global_bulk_one_node``
(1,000 names, one node).  Above 64 nodes the mesh does not run on this
machine, and those keys are null.

    python -m benchmarks.registry --nodes 40 --json [--per-process 10] [--no-anchor]

prints one JSON object: ``nodes, join_visible_all_ms_p50,
join_visible_all_ms_p99, bulk_10k_joins_all_agree_s, names_per_s_all_agree,
register_visible_all_ms, heal_converge_s, erlang_join_visible_all_ms,
erlang_bulk_10k_joins_all_agree_s, erlang_names_per_s``.  Without
``--json``, a report against the goals at N = 40.  Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.real_cluster import BenchmarkError, Controller, Worker, _round
from benchmarks.real_overlay import _percentile, run_anchor_mode
from gossamer.runtime.keyring import Keyring, generate_key, save_keyring

_CONVERGE_TIMEOUT_S = 180.0
_SEEN_TIMEOUT_S = 10.0
_BULK_TIMEOUT_S = 120.0
_HEAL_TIMEOUT_S = 120.0
BULK = 10_000
BULK_GROUPS = 100
NAME_TRIALS = 20
SHARED_NAMES = 5
MAX_ANCHOR_NODES = 64

KEYS = (
    "nodes",
    "join_visible_all_ms_p50",
    "join_visible_all_ms_p99",
    "bulk_10k_joins_all_agree_s",
    "names_per_s_all_agree",
    "register_visible_all_ms",
    "heal_converge_s",
    "erlang_join_visible_all_ms",
    "erlang_bulk_10k_joins_all_agree_s",
    "erlang_names_per_s",
)
GOALS: dict[str, tuple[str, float]] = {
    "join_visible_all_ms_p99": ("<=", 10.0),
    "bulk_10k_joins_all_agree_s": ("<=", 0.5),
    "names_per_s_all_agree": (">=", 10_000.0),
    "register_visible_all_ms": ("<=", 10.0),
    "heal_converge_s": ("<=", 2.0),
}


# ------------------------------------------------------------------ the two halves


class Halves:
    """Two network namespaces joined by a veth pair, which can be cut apart."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100_000}"
        self.ns = (f"gsr{tag}a", f"gsr{tag}b")
        self.dev = (f"gsr{tag}va", f"gsr{tag}vb")
        self.ip = ("10.213.0.1", "10.213.0.2")
        self.cut_now = False

    @staticmethod
    def available() -> str | None:
        """None if namespaces can be made here, else why not."""
        if os.geteuid() != 0:
            return "not root"
        for tool in ("ip", "tc"):
            if shutil.which(tool) is None:
                return f"no {tool} (Debian's iproute2)"
        return None

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=10)

    def up(self) -> None:
        a, b = self.ns
        va, vb = self.dev
        for ns in self.ns:
            self._run("ip", "netns", "add", ns)
        self._run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        for ns, dev, ip in zip(self.ns, self.dev, self.ip, strict=True):
            self._run("ip", "link", "set", dev, "netns", ns)
            self._run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            self._run("ip", "-n", ns, "link", "set", dev, "up")
            self._run("ip", "-n", ns, "link", "set", "lo", "up")
            self._run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "clsact")
        del a, b

    def cut(self) -> None:
        """Drop every packet leaving either half towards the other."""
        for ns, dev in zip(self.ns, self.dev, strict=True):
            # One instruction, "return 2" (TC_ACT_SHOT) in direct-action mode.
            self._run(
                "ip", "netns", "exec", ns, "tc", "filter", "add", "dev", dev,
                "egress", "bpf", "bytecode", "1,6 0 0 2,", "da",
            )  # fmt: skip
        self.cut_now = True

    def heal(self) -> None:
        for ns, dev in zip(self.ns, self.dev, strict=True):
            self._run("ip", "netns", "exec", ns, "tc", "filter", "del", "dev", dev, "egress")
        self.cut_now = False

    def down(self) -> None:
        for ns in self.ns:
            with contextlib.suppress(Exception):
                self._run("ip", "netns", "del", ns)


@contextlib.contextmanager
def halves(diag: Callable[[str], None]) -> Iterator[Halves | None]:
    why = Halves.available()
    if why is not None:
        diag(f"no network namespaces ({why}): every node on loopback, no partition")
        yield None
        return
    made = Halves()
    try:
        made.up()
    except (OSError, subprocess.SubprocessError) as exc:
        made.down()
        diag(f"network namespaces could not be made ({exc}): no partition")
        yield None
        return
    try:
        yield made
    finally:
        made.down()


# ------------------------------------------------------------------ the controller


class RegistryController(Controller):
    """The cluster benchmark's controller, for groups and names, in two halves."""

    def __init__(
        self, size: int, per_process: int, keyring_path: str | None, split: Halves | None
    ) -> None:
        super().__init__(size, per_process, keyring_path)
        self.split = split
        half = size // 2
        sides = (self.names[:half], self.names[half:])
        self.side = {name: i for i, names in enumerate(sides) for name in names}
        self.layout = [
            (names[i : i + per_process], f"side{k}")
            for k, names in enumerate(sides)
            for i in range(0, len(names), per_process)
        ]
        self.seen_at: dict[str, dict[str, float]] = {}  # what -> node -> when
        self.began: dict[str, float] = {}  # what -> when its call began
        self.digests: dict[int, dict[str, tuple[str, int, int]]] = {}
        self.lost: list[dict[str, Any]] = []
        self.alive_seen: dict[int, dict[str, int]] = {}
        self.bulk: dict[str, dict[str, Any]] = {}

    def command(self, index: int, names: list[str], role: str) -> list[str]:
        command = [*super().command(index, names, role), "--max-event-queue", "65536"]
        if self.split is None:
            return command
        k = int(role[-1])
        return ["ip", "netns", "exec", self.split.ns[k], *command, "--host", self.split.ip[k]]

    def _handle(self, worker: Worker, message: dict[str, Any] | None) -> None:
        kind = None if message is None else message["type"]
        assert message is not None or kind is None
        if kind == "gseen":
            assert message is not None
            self.seen_at.setdefault(message["group"], {})[message["node"]] = message["t"]
        elif kind == "nseen":
            assert message is not None
            self.seen_at.setdefault(message["name"], {})[message["node"]] = message["t"]
        elif kind in ("bulk_seen", "names_seen"):
            assert message is not None
            self.seen_at.setdefault(kind, {})[message["node"]] = message["t"]
        elif kind == "joined":
            assert message is not None
            self.began[message["group"]] = message["t"]
        elif kind == "registered":
            assert message is not None
            self.began[message["name"]] = message["t"]
        elif kind in ("bulk_joined", "bulk_registered"):
            assert message is not None
            self.bulk[kind] = message
        elif kind == "digest":
            assert message is not None
            self.digests.setdefault(message["id"], {})[message["node"]] = (
                message["hash"],
                message["entries"],
                message["names"],
            )
            self.alive_seen.setdefault(message["id"], {})[message["node"]] = message["alive"]
        elif kind == "lost":
            assert message is not None
            self.lost.append(message)
        else:
            super()._handle(worker, message)

    def broadcast(self, command: dict[str, Any]) -> None:
        for worker in self.workers:
            worker.send(command)

    def seen_by_all(self, what: str, others: int, timeout_s: float) -> dict[str, float]:
        self.pump(lambda: len(self.seen_at.get(what, {})) >= others, timeout_s)
        return self.seen_at.get(what, {})

    def digest(self, ident: int) -> dict[str, tuple[str, int, int]]:
        self.broadcast({"cmd": "digest", "id": ident})
        self.pump(lambda: len(self.digests.get(ident, {})) == self.size, 60.0, "the digests")
        return self.digests[ident]


# ------------------------------------------------------------------ the run


def run(args: argparse.Namespace, diag: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    n = args.nodes
    with tempfile.TemporaryDirectory(prefix="gossamer-bench-") as tmp, halves(diag) as split:
        keyring_path = os.path.join(tmp, "cluster.keys")
        save_keyring(keyring_path, Keyring([generate_key()]))
        ctl = RegistryController(n, args.per_process, keyring_path, split)
        try:
            ctl.boot(ctl.ready(1))
            ctl.pump(lambda: len(ctl.converged) == n, _CONVERGE_TIMEOUT_S, "convergence")
            diag(f"{n} nodes converged; settling {args.settle_s} s")
            ctl.sleep(args.settle_s)
            joins = single_joins(ctl, args.trials, diag)
            registers = single_registrations(ctl, diag)
            heal = partition(ctl, args.partition_s, diag) if split is not None else None
            bulk_s = bulk_joins(ctl, diag)
            names_per_s = bulk_names(ctl, diag)
        finally:
            ctl.shutdown()
    diag(f"wall time {time.monotonic() - started:.1f} s")
    return {
        "nodes": n,
        "join_visible_all_ms_p50": _round(statistics.median(joins) if joins else None),
        "join_visible_all_ms_p99": _round(_percentile(joins, 0.99)),
        "bulk_10k_joins_all_agree_s": _round(bulk_s),
        "names_per_s_all_agree": _round(names_per_s),
        "register_visible_all_ms": _round(statistics.median(registers) if registers else None),
        "heal_converge_s": _round(heal),
    }


def single_joins(ctl: RegistryController, trials: int, diag: Callable[[str], None]) -> list[float]:
    latencies: list[float] = []
    for k in range(trials):
        origin = ctl.names[k % ctl.size]
        group = f"single-{k}"
        ctl.broadcast({"cmd": "watch_join", "group": group})
        ctl.sleep(0.1)
        ctl.worker_of(origin).send({"cmd": "join", "node": origin, "group": group, "member": "w"})
        seen = ctl.seen_by_all(group, ctl.size, _SEEN_TIMEOUT_S)
        began = ctl.began.get(group)
        others = [t for node, t in seen.items() if node != origin]
        if began is None or len(others) < ctl.size - 1:
            diag(f"  join {group}: seen by {len(others)} of {ctl.size - 1} others")
            continue
        latencies.append((max(others) - began) * 1000)
        ctl.sleep(0.05)
    diag(
        f"single joins: {len(latencies)} timed; p50 {statistics.median(latencies):.2f} ms, "
        f"p99 {_percentile(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms"
    )
    return latencies


def single_registrations(ctl: RegistryController, diag: Callable[[str], None]) -> list[float]:
    latencies: list[float] = []
    for k in range(NAME_TRIALS):
        origin = ctl.names[(3 * k + 1) % ctl.size]
        name = f"single-name-{k}"
        ctl.broadcast({"cmd": "watch_name", "name": name})
        ctl.sleep(0.2)
        ctl.worker_of(origin).send({"cmd": "register", "node": origin, "name": name, "member": "m"})
        seen = ctl.seen_by_all(name, ctl.size, _SEEN_TIMEOUT_S)
        began = ctl.began.get(name)
        others = [t for node, t in seen.items() if node != origin]
        if began is None or len(others) < ctl.size - 1:
            diag(f"  register {name}: seen by {len(others)} of {ctl.size - 1} others")
            continue
        latencies.append((max(others) - began) * 1000)
    diag(
        f"single registrations: {len(latencies)} timed; median "
        f"{statistics.median(latencies):.2f} ms, max {max(latencies):.2f} ms"
    )
    return latencies


def partition(ctl: RegistryController, seconds: float, diag: Callable[[str], None]) -> float | None:
    split = ctl.split
    assert split is not None
    sides = [[name for name in ctl.names if ctl.side[name] == k] for k in (0, 1)]
    split.cut()
    cut_at = time.time()
    diag(f"partition: {len(sides[0])} | {len(sides[1])} nodes cut apart for {seconds:.0f} s")
    ctl.sleep(5.0)
    for k, names in enumerate(sides):
        for i, name in enumerate(names[:4]):
            worker = ctl.worker_of(name)
            worker.send({"cmd": "join", "node": name, "group": f"part-{k}", "member": f"x{i}"})
            worker.send({"cmd": "register", "node": name, "name": f"side{k}-{i}", "member": "m"})
        claimer = names[len(names) // 2]
        for j in range(SHARED_NAMES):
            ctl.worker_of(claimer).send(
                {"cmd": "register", "node": claimer, "name": f"shared-{j}", "member": f"s{k}"}
            )
    ctl.sleep(max(0.0, seconds - (time.time() - cut_at)))
    lost_before = len(ctl.lost)
    # Every entry either side made: the single joins and registrations, then these.
    want_entries = sum(1 for g in ctl.began if g.startswith("single-") and "name" not in g) + 8
    want_names = NAME_TRIALS + 8 + SHARED_NAMES
    split.heal()
    healed = time.time()
    ident = 1000
    converged = None
    whole = None  # when every node saw every member alive again (SWIM)
    while time.time() - healed < _HEAL_TIMEOUT_S:
        ident += 1
        digests = ctl.digest(ident)
        if whole is None and min(ctl.alive_seen[ident].values()) == ctl.size:
            whole = time.time() - healed
        hashes = {h for h, _, _ in digests.values()}
        entries = {e for _, e, _ in digests.values()}
        counts = {m for _, _, m in digests.values()}
        if len(hashes) == 1 and min(entries) >= want_entries and min(counts) >= want_names:
            converged = time.time() - healed
            break
        ctl.sleep(0.1)
    ctl.sleep(2.0)
    lost = ctl.lost[lost_before:]
    diag(
        f"heal: every node sees every member alive after {whole} s (SWIM), "
        f"agrees after {converged} s; losers told {len(lost)} times "
        f"for {SHARED_NAMES} contested names ({sorted({e['name'] for e in lost})})"
    )
    return converged


def bulk_joins(ctl: RegistryController, diag: Callable[[str], None]) -> float | None:
    have = min(e for _, e, _ in ctl.digest(2).values())
    ctl.broadcast({"cmd": "expect_bulk", "count": have + BULK})
    ctl.sleep(0.5)
    origin = ctl.names[1]
    ctl.worker_of(origin).send(
        {"cmd": "bulk_join", "node": origin, "count": BULK, "groups": BULK_GROUPS}
    )
    seen = ctl.seen_by_all("bulk_seen", ctl.size, _BULK_TIMEOUT_S)
    ctl.pump(lambda: "bulk_joined" in ctl.bulk, 10.0)
    done = ctl.bulk.get("bulk_joined")
    if done is None or len(seen) < ctl.size:
        diag(f"bulk joins: held by {len(seen)} of {ctl.size} nodes")
        return None
    t0 = done["t0"]
    diag(
        f"bulk joins: {BULK} calls took {(done['t1'] - t0) * 1000:.1f} ms; all agree "
        f"{max(seen.values()) - t0:.3f} s (median node {statistics.median(seen.values()) - t0:.3f})"
    )
    return max(seen.values()) - float(t0)


def bulk_names(ctl: RegistryController, diag: Callable[[str], None]) -> float | None:
    digests = ctl.digest(1)
    have = min(m for _, _, m in digests.values())
    ctl.broadcast({"cmd": "watch_names_count", "count": have + BULK})
    ctl.sleep(0.5)
    origin = ctl.names[2]
    ctl.worker_of(origin).send(
        {"cmd": "bulk_register", "node": origin, "count": BULK, "prefix": "bulk-name-"}
    )
    seen = ctl.seen_by_all("names_seen", ctl.size, _BULK_TIMEOUT_S)
    ctl.pump(lambda: "bulk_registered" in ctl.bulk, 10.0)
    done = ctl.bulk.get("bulk_registered")
    if done is None or len(seen) < ctl.size:
        diag(f"bulk names: held by {len(seen)} of {ctl.size} nodes")
        return None
    t0 = done["t0"]
    took = max(seen.values()) - t0
    diag(
        f"bulk names: {BULK} calls took {(done['t1'] - t0) * 1000:.1f} ms "
        f"({done['refused']} refused); all agree {took:.3f} s"
    )
    return BULK / took


# ------------------------------------------------------------------ output


def anchor(n: int, diag: Callable[[str], None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "erlang_join_visible_all_ms": None,
        "erlang_bulk_10k_joins_all_agree_s": None,
        "erlang_names_per_s": None,
    }
    if n > MAX_ANCHOR_NODES:
        diag(f"Erlang anchor skipped: its full mesh of {n} nodes does not run on this machine")
        return out
    rows = run_anchor_mode(n, 4, "full", diag)
    if rows is None:
        return out
    for row in rows:
        metric, value = row.get("metric"), row.get("value")
        if metric == "pg_join_visible_all_ms":
            out["erlang_join_visible_all_ms"] = _round(value)
        elif metric == "pg_bulk_one_node_all_agree_ms" and value is not None:
            out["erlang_bulk_10k_joins_all_agree_s"] = _round(value / 1000)
        elif metric == "global_bulk_one_node_ms":
            out["erlang_names_per_s"] = _round(row.get("names_per_s"))
    return out


def report(result: dict[str, Any]) -> str:
    lines = [f"gossamer groups and names, N = {result['nodes']} (goals at N = 40)"]
    for key in KEYS[1:]:
        value = result[key]
        verdict = ""
        goal = GOALS.get(key)
        if goal is not None and isinstance(value, int | float):
            op, bound = goal
            ok = value <= bound if op == "<=" else value >= bound
            verdict = f"  {'met' if ok else 'MISSED'} (goal {op} {bound:g})"
        lines.append(f"  {key:34} {value}{verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--per-process", type=int, default=10)
    parser.add_argument("--settle-s", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--partition-s", type=float, default=30.0)
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
    if args.no_anchor:
        diag("Erlang anchor skipped (--no-anchor)")
        result.update(anchor(10**9, lambda _: None))
    else:
        result.update(anchor(args.nodes, diag))
    if args.json:
        print(json.dumps({key: result[key] for key in KEYS}))
    else:
        print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
