"""One worker process of ``benchmarks.real_cluster``: some gossamer nodes on one loop.

Started by the controller as ``python -m benchmarks._cluster_worker [--keyring
FILE] --names n00,n01 --cluster-size N [--engine-thread]``.  It talks to the
controller in JSON lines: commands on stdin, reports on stdout.

* On start it reserves a port for every node it hosts (a bound, not
  listening, TCP socket and a UDP socket on the same number, so the address
  is known before any node runs) and reports ``{"type": "ready",
  "addresses": {name: "127.0.0.1:port"}}``.
* ``{"cmd": "start", "names": [...], "seeds": [...]}`` releases those
  names' ports and starts their nodes (``NodeConfig.lan``, the keyring
  file's keys), reporting ``up`` for each.  Nodes are built only now, so the
  interpreter's start-up is never timed.
* Every node's event stream is watched: ``converged`` when the node first
  sees ``cluster-size`` members alive, and ``event`` (suspect, alive, dead,
  left) for news about other members, each with its ``time.time()``.
* ``{"cmd": "stats", "id": k}`` answers with the process's CPU time (every
  thread, so an engine thread is counted), the bytes the nodes sent (sealed,
  all message types) and how many members each node sees alive.
* ``{"cmd": "stall", "s": S}`` blocks this process's loop with
  ``time.sleep(S)`` -- the application's loop; a node with its own engine
  thread keeps running -- between ``stall_begin`` and ``stall_end``.
* ``{"cmd": "subscribe", "topic": T}`` subscribes every node here to ``T``
  and reports ``delivered`` (node, the payload as text, ``time.time()``)
  for each broadcast; ``{"cmd": "broadcast", "node": name, "topic": T,
  "id": k}`` has that node broadcast ``k`` and reports ``sent``.
  (``benchmarks.real_overlay``.)
* Groups and names (``benchmarks.registry``): ``watch_join`` has every
  node here monitor one group and report ``gseen`` (node, group,
  ``time.time()``) at its first join; ``expect_bulk`` polls every node's
  count of entries each 2 ms and reports ``bulk_seen`` once it reaches the
  count given; ``join``,
  ``bulk_join``, ``register`` and ``bulk_register`` make a node do so and
  report when they began; ``watch_name`` polls every node's ``whereis`` each
  millisecond and reports ``nseen``; ``watch_names_count`` polls the number
  of names every 2 ms and reports ``names_seen``; ``digest`` reports a hash
  of every node's groups and name winners; every ``NameLost`` is reported
  as ``lost``.
* ``{"cmd": "stop"}``, SIGTERM, or the end of stdin (the controller is gone)
  stops the nodes and exits, so a worker never outlives its controller for
  long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from typing import Any

from gossamer.crdt.groups import GroupJoined
from gossamer.crdt.names import NameLost
from gossamer.debug.source import Counters
from gossamer.membership.members import (
    MemberAlive,
    MemberDead,
    MemberLeft,
    MemberSuspect,
    Status,
)
from gossamer.ring import RingChanged
from gossamer.runtime.keyring import load_keyring
from gossamer.runtime.node import Node, NodeEvent
from gossamer.runtime.nodeconfig import NodeConfig

_REPORTED: dict[type, str] = {
    MemberSuspect: "suspect",
    MemberAlive: "alive",
    MemberDead: "dead",
    MemberLeft: "left",
}


def _busy(seconds: float) -> int:
    """Compute for ``seconds`` without yielding: a long computation on the loop."""
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        for i in range(10_000):
            total += i * i
    return total


def emit(message: dict[str, Any]) -> None:
    """One report to the controller (a blocking write of one short line)."""
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def reserve_port(host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket, int]:
    """A port free for both TCP and UDP on ``host``, held until the node binds it."""
    for _ in range(100):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The node's listener binds with SO_REUSEADDR too, so it may take the
        # port while this socket still exists; neither ever listened.
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((host, port))
        except OSError:
            tcp.close()
            udp.close()
            continue
        return tcp, udp, port
    raise OSError(f"no port free for both TCP and UDP on {host}")


async def _counters(node: Node) -> Counters:
    return node._engine.counters()


class Worker:
    def __init__(
        self,
        names: list[str],
        keyring_path: str | None,
        size: int,
        engine_thread: bool,
        host: str = "127.0.0.1",
        max_event_queue: int = 1_024,
    ) -> None:
        self.keyring = load_keyring(keyring_path) if keyring_path else None
        self.size = size
        self.engine_thread = engine_thread
        self.max_event_queue = max_event_queue
        self.reserved = {name: reserve_port(host) for name in names}
        self.addresses = {name: f"{host}:{port}" for name, (_, _, port) in self.reserved.items()}
        self.nodes: dict[str, Node] = {}
        self.watchers: list[asyncio.Task[None]] = []

    async def start(self, names: list[str], seeds: list[str]) -> None:
        for name in names:
            tcp, udp, _ = self.reserved.pop(name)
            tcp.close()
            udp.close()
            address = self.addresses[name]
            config = NodeConfig.lan(
                name,
                address,
                keyring=self.keyring,
                plaintext=self.keyring is None,
                seeds=tuple(s for s in seeds if s != address),
                engine_thread=self.engine_thread,
                max_event_queue=self.max_event_queue,
            )
            node = await Node.start(config)
            self.nodes[name] = node
            stream = node.events()
            emit({"type": "up", "node": name, "t": time.time()})
            self.watchers.append(asyncio.create_task(self.watch(node, stream)))

    async def watch(self, node: Node, stream: Any) -> None:
        name = node.name
        converged = False
        event: NodeEvent
        async for event in stream:
            if isinstance(event, RingChanged):
                continue  # about no one member; its moves are computed only if read
            if isinstance(event, NameLost):
                emit({"type": "lost", "node": name, "name": event.name, "t": time.time()})
                continue
            about = event.member.name
            kind = _REPORTED.get(type(event))
            if kind is not None and about != name:
                emit(
                    {"type": "event", "node": name, "about": about, "kind": kind, "t": time.time()}
                )
            if not converged:
                alive = sum(1 for m in node.members() if m.status is Status.ALIVE)
                if alive >= self.size:
                    converged = True
                    emit({"type": "converged", "node": name, "t": time.time()})

    def subscribe(self, topic: str) -> None:
        for node in self.nodes.values():
            self.watchers.append(asyncio.create_task(self.deliveries(node, topic)))

    async def deliveries(self, node: Node, topic: str) -> None:
        name = node.name
        async for _, payload in node.subscribe(topic):
            emit({"type": "delivered", "node": name, "id": payload.decode(), "t": time.time()})

    async def broadcast(self, name: str, topic: str, ident: str) -> None:
        t = time.time()
        await self.nodes[name].broadcast(topic, ident.encode())
        emit({"type": "sent", "node": name, "id": ident, "t": t})

    # ------------------------------------------------------------ groups and names

    def watch_join(self, group: str) -> None:
        for node in self.nodes.values():
            monitor = node.groups.monitor(group)
            self.watchers.append(asyncio.create_task(self.first_join(node.name, monitor, group)))

    async def first_join(self, name: str, monitor: Any, group: str) -> None:
        async for event in monitor:
            if isinstance(event, GroupJoined):
                emit({"type": "gseen", "node": name, "group": group, "t": time.time()})
                break
        monitor.close()

    def expect_bulk(self, count: int) -> None:
        for node in self.nodes.values():
            self.watchers.append(asyncio.create_task(self.poll_entries(node, count)))

    async def poll_entries(self, node: Node, count: int) -> None:
        deadline = time.monotonic() + 120
        while node.groups.count() < count and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        emit({"type": "bulk_seen", "node": node.name, "t": time.time()})

    def join(self, name: str, group: str, member: str) -> None:
        t = time.time()
        self.nodes[name].groups.join(group, member)
        emit({"type": "joined", "node": name, "group": group, "t": t})

    async def bulk_join(self, name: str, count: int, groups: int) -> None:
        node = self.nodes[name]
        t0 = time.time()
        for i in range(count):
            node.groups.join(f"bulk-{i % groups}", f"m{i}")
        emit({"type": "bulk_joined", "node": name, "t0": t0, "t1": time.time()})

    def register(self, name: str, key: str, member: str) -> None:
        t = time.time()
        result = self.nodes[name].names.register(key, member)
        emit({"type": "registered", "node": name, "name": key, "ok": result.registered, "t": t})

    async def bulk_register(self, name: str, count: int, prefix: str) -> None:
        node = self.nodes[name]
        t0 = time.time()
        refused = 0
        for i in range(count):
            refused += not node.names.register(f"{prefix}{i}", "m").registered
        emit({"type": "bulk_registered", "t0": t0, "t1": time.time(), "refused": refused})

    def watch_name(self, key: str) -> None:
        for node in self.nodes.values():
            self.watchers.append(asyncio.create_task(self.poll_name(node, key)))

    async def poll_name(self, node: Node, key: str) -> None:
        deadline = time.monotonic() + 30
        while node.names.whereis(key) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        emit({"type": "nseen", "node": node.name, "name": key, "t": time.time()})

    def watch_names_count(self, count: int) -> None:
        for node in self.nodes.values():
            self.watchers.append(asyncio.create_task(self.poll_count(node, count)))

    async def poll_count(self, node: Node, count: int) -> None:
        deadline = time.monotonic() + 120
        while node.names.count() < count and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        emit({"type": "names_seen", "node": node.name, "t": time.time()})

    def digest(self, ident: int) -> None:
        for name, node in self.nodes.items():
            mirror = node._registry_mirror()
            with mirror.lock:
                groups = mirror.groups.groups()
                names = [(n, mirror.names.winner(n)) for n in mirror.names.names()]
            text = repr((groups, names)).encode()
            emit(
                {
                    "type": "digest",
                    "id": ident,
                    "node": name,
                    "hash": hashlib.blake2b(text, digest_size=8).hexdigest(),
                    "entries": node.groups.count(),
                    "alive": sum(1 for m in node.members() if m.status is Status.ALIVE),
                    "names": len(names),
                }
            )

    async def stats(self, ident: int) -> None:
        sent = 0
        by_type: Counter[str] = Counter()
        swim: Counter[str] = Counter()
        overlay: Counter[str] = Counter()
        alive: dict[str, int] = {}
        streams: dict[str, int] = {}
        for name, node in self.nodes.items():
            counters = await node._on_engine(_counters(node))
            sent += sum(counters.bytes_out.values())
            by_type.update(counters.bytes_out)
            for field in (
                "probes",
                "suspicions",
                "refutations",
                "deaths_declared",
                "push_pulls",
                "fast_deaths",
                "refusals_witnessed",
            ):
                swim[field] += getattr(counters.swim, field)
            broadcast = counters.parts.get("broadcast")
            if broadcast is not None:
                overlay["gossip_sent"] += broadcast.gossip_sent  # type: ignore[attr-defined]
                overlay["grafts_answered"] += broadcast.grafts_answered  # type: ignore[attr-defined]
            links = counters.parts.get("overlay")
            if links is not None:
                overlay["links_silent"] += links.links_silent  # type: ignore[attr-defined]
                overlay["links_lost"] += links.links_lost  # type: ignore[attr-defined]
            streams[name] = counters.streams_open
            for answer, count in counters.knocks.items():
                overlay[f"knocks_{answer}"] += count
            alive[name] = sum(1 for m in node.members() if m.status is Status.ALIVE)
        emit(
            {
                "type": "stats",
                "id": ident,
                "t": time.time(),
                "cpu_s": time.process_time(),
                "bytes_out": sent,
                "bytes_by_type": dict(by_type),
                "swim": dict(swim),
                "overlay": dict(overlay),
                "streams": streams,
                "alive": alive,
            }
        )

    async def close(self) -> None:
        for task in self.watchers:
            task.cancel()
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                await node.stop()
        for tcp, udp, _ in self.reserved.values():
            tcp.close()
            udp.close()


async def serve(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"type": "ready", "pid": os.getpid(), "addresses": worker.addresses})
    while line := await reader.readline():
        command = json.loads(line)
        match command["cmd"]:
            case "start":
                await worker.start(command["names"], command["seeds"])
            case "stats":
                await worker.stats(command["id"])
            case "subscribe":
                worker.subscribe(command["topic"])
            case "broadcast":
                await worker.broadcast(command["node"], command["topic"], str(command["id"]))
            case "stall":
                emit({"type": "stall_begin", "t": time.time()})
                # Block the application's loop on purpose: first in a blocking
                # call (which releases the GIL), then in pure-Python
                # computation (which holds it but for the interpreter's
                # thread switches), as an application that stalls would.
                if command.get("kind", "sleep") == "sleep":
                    time.sleep(command["s"])
                else:
                    _busy(command["s"])
                emit({"type": "stall_end", "t": time.time()})
            case "watch_join":
                worker.watch_join(command["group"])
            case "expect_bulk":
                worker.expect_bulk(command["count"])
            case "join":
                worker.join(command["node"], command["group"], command["member"])
            case "bulk_join":
                await worker.bulk_join(command["node"], command["count"], command["groups"])
            case "register":
                worker.register(command["node"], command["name"], command["member"])
            case "bulk_register":
                await worker.bulk_register(command["node"], command["count"], command["prefix"])
            case "watch_name":
                worker.watch_name(command["name"])
            case "watch_names_count":
                worker.watch_names_count(command["count"])
            case "digest":
                worker.digest(command["id"])
            case "stop":
                break


async def amain(args: argparse.Namespace) -> None:
    worker = Worker(
        args.names.split(","),
        args.keyring,
        args.cluster_size,
        args.engine_thread,
        args.host,
        args.max_event_queue,
    )
    task = asyncio.create_task(serve(worker))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await worker.close()
    emit({"type": "stopped", "t": time.time()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keyring", help="the cluster's keyring file (none: plaintext)")
    parser.add_argument("--names", required=True, help="comma-separated node names")
    parser.add_argument("--cluster-size", type=int, required=True)
    parser.add_argument("--engine-thread", action="store_true")
    parser.add_argument("--host", default="127.0.0.1", help="the address the nodes bind")
    parser.add_argument("--max-event-queue", type=int, default=1_024)
    args = parser.parse_args(argv)
    # Ctrl-C is the controller's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):
        asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
