"""Idle cost against hashicorp/memberlist: CPU and bytes per node, same LAN timings.

For each N in ``--nodes`` (50, 100) and each ``--security`` (``sealed``:
both encrypt every packet with AES-256-GCM; ``plain``: neither does) the
two run in turn, ``--runs`` times each (interleaved, the order swapped every
run so a drift in the machine's load hits both alike), on 127.0.0.1 of this
machine:

* gossamer: ``benchmarks.real_cluster``'s ``run`` (N nodes with
  ``NodeConfig.lan`` in worker processes of 10, plus a process each for the
  stalled node and the victim), with no stall (``stall_s = 0``).
* memberlist 0.2.2 (Debian's ``golang-github-hashicorp-memberlist-dev``):
  the anchor harness ``shared/anchors/memberlist/main.go`` with ``-cfg lan``
  (``DefaultLANConfig``), N nodes in one Go process, built here in GOPATH
  mode into ``--cache-dir`` when the binary is missing or main.go changed,
  with one line added so ``MLBENCH_KEY`` sets every node's ``SecretKey``
  (a fresh 32-byte key per sealed run).

Each gives ``idle_cpu_pct_per_node`` (the CPU time of every process hosting
nodes over the idle window / window / N x 100: percent of one core),
``bytes_per_node_per_s`` (payloads sent after sealing or compression and
encryption, UDP and TCP, as each counts them: no IP/UDP/TCP headers),
``converge_s`` (from the joins' start until every node sees all N alive)
and ``detect_first_s`` (from a non-seed node's kill -- SIGKILL, or
``Shutdown()`` without ``Leave()`` -- to the first survivor declaring it
dead).

Timings: memberlist's ``DefaultLANConfig`` and gossamer's
``SwimConfig.lan()`` agree on every interval -- probe 1 s, probe timeout
0.5 s, 3 indirect checks, suspicion x4 (Lifeguard max x6), retransmit x4,
gossip every 0.2 s to 3 nodes, gossip to the dead 30 s, push-pull 30 s
scaled past 32 members (x2 to 64, x3 to 128: 60 s at N = 50, 90 s at
N = 100), awareness x8, 1,400-byte datagrams.  They differ in: memberlist
compresses; gossamer stamps every datagram (8 bytes, replay protection,
sealed or not) and memberlist does not; memberlist falls back to a TCP ping; and the push-pull
phase -- memberlist's first sync comes 0-30 s after ``Create`` then one
every interval exactly, gossamer's 0.5-1.5 s after its seed answers then
one every 0.5-1.5 intervals (jittered).

Steady state: push-pulls carry most of the idle bytes, so the window must
hold each node's share of them.  memberlist's syncs are periodic from the
start, so a window of whole intervals holds exactly one per node per
interval wherever it opens (main.go opens it 3 s after convergence).
gossamer's syncs start in step, a second after the mass join, and drift
apart: a 30 s window opened 5 s after convergence (real_cluster's defaults)
holds about a sixth of the steady-state syncs at N = 50 and none at
N = 100, while one opened an interval after convergence holds them within
about 3%.  So by default gossamer settles one push-pull interval at N, and
both windows last one interval; real_cluster's own steady-state estimate,
from the bytes of the syncs its window held, is on stderr as a cross-check.

    python -m benchmarks.idle_cost [--nodes 50,100] [--runs 1] [--security sealed,plain]
        [--idle-s S] [--settle-s S] [--port 21000] [--cache-dir ~/.cache/gossamer-bench/mlbench]

prints one JSON object: ``nodes`` and ``results``, one per N and security,
each with ``nodes``, ``security``, ``gossamer`` and ``memberlist`` (the four
figures, medians over the runs) and ``cpu_ratio``, ``bytes_ratio``
(gossamer / memberlist).  Diagnostics go
to stderr.  The machine's load counts: on 2 cores, N = 100 is 12 Python
processes, or one Go process, sharing them with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
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

from benchmarks.real_cluster import BenchmarkError
from benchmarks.real_cluster import run as run_gossamer_cluster
from gossamer.failure.lifeguard import push_pull_scale
from gossamer.failure.swim import SwimConfig

SECURITY = ("sealed", "plain")
FIGURES = ("idle_cpu_pct_per_node", "bytes_per_node_per_s", "converge_s", "detect_first_s")
GOPATH = Path("/usr/share/gocode")
APT_PACKAGES = "golang-go golang-github-hashicorp-memberlist-dev"
ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "memberlist" / "main.go"
_PORT_LIMIT = 32768  # the ephemeral range, where gossamer's ports come from, starts here
_ML_WAIT_S = 120 + 120 + 60  # main.go's converge and failure bounds, and start-up


class SetupError(RuntimeError):
    """The memberlist harness cannot be built."""


_KEY_AT = b"\t\tc.AdvertisePort = basePort + i\n"
_KEY_LINES = (
    b'\t\tif key := os.Getenv("MLBENCH_KEY"); key != "" { // added by idle_cost\n'
    b"\t\t\tc.SecretKey = []byte(key)\n"
    b"\t\t}\n"
)


def build_memberlist(anchor: Path, cache: Path, diag: Callable[[str], None]) -> Path:
    """The harness binary in ``cache``, built from ``anchor`` unless it is there already.

    One change is made to the harness: every node's ``SecretKey`` is the
    ``MLBENCH_KEY`` environment variable when it is set, so memberlist can
    run encrypted like gossamer (the harness itself has no such flag)."""
    if not anchor.is_file():
        raise SetupError(f"the memberlist harness {anchor} is missing")
    source = anchor.read_bytes()
    if source.count(_KEY_AT) != 1:
        raise SetupError(f"{anchor} changed: no single {_KEY_AT.strip().decode()!r} to key after")
    source = source.replace(_KEY_AT, _KEY_AT + _KEY_LINES)
    binary, copy = cache / "mlbench", cache / "src" / "main.go"
    if binary.is_file() and copy.is_file() and copy.read_bytes() == source:
        return binary
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/github.com/hashicorp/memberlist").is_dir():
        raise SetupError(f"go or memberlist's sources are missing: apt-get install {APT_PACKAGES}")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(source)
    env = dict(os.environ, GO111MODULE="off", GOPATH=str(GOPATH), GOCACHE=str(cache / "gocache"))
    diag(f"building {binary} from {anchor}")
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=copy.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        lines = built.stderr.strip().splitlines() or ["no output"]
        raise SetupError(f"go build failed: {lines[-1]}")
    return binary


def run_memberlist(
    binary: Path, n: int, idle_s: float, port: int, sealed: bool, diag: Callable[[str], None]
) -> dict[str, float | None]:
    """One fresh memberlist cluster of ``n`` (``-runs 1``, so its idle window is measured),
    encrypted with a fresh AES-256 key when ``sealed``."""
    idle = max(1, round(idle_s))
    env = dict(os.environ)
    env.pop("MLBENCH_KEY", None)
    if sealed:
        env["MLBENCH_KEY"] = secrets.token_hex(16)  # 32 bytes: AES-256, as gossamer seals
    with tempfile.TemporaryDirectory(prefix="mlbench-") as tmp:
        out = Path(tmp) / "results.jsonl"
        command = [str(binary), "-n", str(n), "-runs", "1", "-idle", str(idle)]
        command += ["-cfg", "lan", "-port", str(port), "-out", str(out)]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_ML_WAIT_S + idle,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired as exc:
            message = f"memberlist at N = {n} did not finish in {exc.timeout:.0f} s"
            raise BenchmarkError(message) from None
        for line in done.stdout.splitlines():
            diag(f"memberlist: {line}")
        records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    by_metric = {r["metric"]: r for r in records}
    if done.returncode != 0 or "error" in by_metric or "failure_dead_ms" not in by_metric:
        error = by_metric.get("error", {}).get("error") or done.stderr.strip()[-200:]
        raise BenchmarkError(f"memberlist at N = {n} failed (status {done.returncode}): {error}")
    converge, dead = by_metric["converge_ms"], by_metric["failure_dead_ms"]
    return {
        "idle_cpu_pct_per_node": _round(by_metric["idle_cpu_pct_per_node"]["value"]),
        "bytes_per_node_per_s": _round(by_metric["idle_send_bytes_per_s_per_node"]["value"]),
        "converge_s": None if converge["not_converged"] else _round(converge["value"] / 1000),
        "detect_first_s": None if dead["first_ms"] < 0 else _round(dead["first_ms"] / 1000),
    }


def run_gossamer(
    n: int,
    idle_s: float,
    settle_s: float,
    per_process: int,
    sealed: bool,
    diag: Callable[[str], None],
) -> dict[str, float | None]:
    """One fresh gossamer cluster of ``n``, by ``benchmarks.real_cluster`` without the stall."""
    args = argparse.Namespace(
        plain=not sealed,
        nodes=n,
        per_process=per_process,
        idle_s=idle_s,
        stall_s=0.0,
        seed_nodes=1,
        settle_s=settle_s,
    )
    result = run_gossamer_cluster(args, lambda text: diag(f"gossamer: {text}"))
    return {key: result[key] for key in FIGURES}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _round(statistics.median(known)) if known else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def measure(args: argparse.Namespace, binary: Path, diag: Callable[[str], None]) -> dict[str, Any]:
    port = args.port
    results = []
    for n in args.nodes:
        interval = push_pull_scale(SwimConfig.lan().push_pull_interval_s, n)
        idle_s = args.idle_s if args.idle_s is not None else interval
        settle_s = args.settle_s if args.settle_s is not None else interval
        diag(
            f"N = {n}: push-pull every {interval:.0f} s; idle window {idle_s:.0f} s, "
            f"gossamer settles {settle_s:.0f} s, memberlist 3 s"
        )
        for security in args.security:
            sealed = security == "sealed"
            runs: dict[str, list[dict[str, float | None]]] = {"gossamer": [], "memberlist": []}
            for r in range(args.runs):
                order = ("gossamer", "memberlist") if r % 2 == 0 else ("memberlist", "gossamer")
                for system in order:
                    started = time.monotonic()
                    if system == "gossamer":
                        figures = run_gossamer(n, idle_s, settle_s, args.per_process, sealed, diag)
                    else:
                        if port + n >= _PORT_LIMIT:
                            port = args.port
                        figures = run_memberlist(binary, n, idle_s, port, sealed, diag)
                        port += n + 10  # a fresh range each run, as main.go does between runs
                    runs[system].append(figures)
                    took = time.monotonic() - started
                    diag(f"N = {n} {security} run {r + 1} {system} ({took:.0f} s): {figures}")
            row: dict[str, Any] = {"nodes": n, "security": security}
            for system, figures_list in runs.items():
                row[system] = {key: _median([f[key] for f in figures_list]) for key in FIGURES}
            for key, figure in (("cpu_ratio", FIGURES[0]), ("bytes_ratio", FIGURES[1])):
                row[key] = _ratio(row["gossamer"][figure], row["memberlist"][figure])
            results.append(row)
    return {"nodes": args.nodes, "results": results}


def _securities(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",")]
    if not chosen or any(part not in SECURITY for part in chosen):
        raise argparse.ArgumentTypeError(f"choose from {','.join(SECURITY)}, got {text!r}")
    return chosen


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}") from None
    if any(n < 3 for n in sizes):
        raise argparse.ArgumentTypeError("every size must be at least 3")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=_sizes, default=[50, 100], help="sizes, e.g. 50,100")
    parser.add_argument("--runs", type=int, default=1, help="fresh clusters per size and system")
    parser.add_argument(
        "--security",
        type=_securities,
        default=list(SECURITY),
        help="sealed (both encrypted: gossamer's seal, memberlist's SecretKey), "
        "plain (neither), or both: sealed,plain",
    )
    parser.add_argument(
        "--idle-s", type=float, help="idle window, seconds (default: the push-pull interval at N)"
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        help="gossamer's wait after converging, seconds (default: the push-pull interval)",
    )
    parser.add_argument("--per-process", type=int, default=10, help="gossamer nodes per process")
    parser.add_argument("--port", type=int, default=21000, help="memberlist's first port")
    parser.add_argument("--anchor", type=Path, default=ANCHOR, help="memberlist harness main.go")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "gossamer-bench" / "mlbench",
        help="where the memberlist harness is built",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.per_process < 1:
        parser.error("--runs and --per-process must be at least 1")
    if (args.idle_s is not None and args.idle_s <= 0) or (args.settle_s or 0) < 0:
        parser.error("--idle-s must be positive, --settle-s not negative")
    if not 1024 <= args.port < _PORT_LIMIT - max(args.nodes):
        parser.error(f"--port must leave room for N ports below {_PORT_LIMIT}")

    def diag(text: str) -> None:
        print(f"[idle_cost] {text}", file=sys.stderr, flush=True)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM unwinds like Ctrl-C, so workers and the Go process are stopped on the way out.
    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    try:
        binary = build_memberlist(args.anchor, args.cache_dir, diag)
        result = measure(args, binary, diag)
    except SetupError as exc:
        diag(str(exc))
        return 2
    except BenchmarkError as exc:
        diag(f"failed: {exc}")
        return 1
    except KeyboardInterrupt:
        diag("interrupted; clusters stopped")
        return 130
    diag(f"wall time {time.monotonic() - started:.1f} s")
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
