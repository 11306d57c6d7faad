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
* ``{"cmd": "stop"}``, SIGTERM, or the end of stdin (the controller is gone)
  stops the nodes and exits, so a worker never outlives its controller for
  long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from typing import Any

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


def reserve_port() -> tuple[socket.socket, socket.socket, int]:
    """A port free for both TCP and UDP on loopback, held until the node binds it."""
    for _ in range(100):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The node's listener binds with SO_REUSEADDR too, so it may take the
        # port while this socket still exists; neither ever listened.
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            tcp.close()
            udp.close()
            continue
        return tcp, udp, port
    raise OSError("no port free for both TCP and UDP on 127.0.0.1")


async def _counters(node: Node) -> Counters:
    return node._engine.counters()


class Worker:
    def __init__(
        self, names: list[str], keyring_path: str | None, size: int, engine_thread: bool
    ) -> None:
        self.keyring = load_keyring(keyring_path) if keyring_path else None
        self.size = size
        self.engine_thread = engine_thread
        self.reserved = {name: reserve_port() for name in names}
        self.addresses = {name: f"127.0.0.1:{port}" for name, (_, _, port) in self.reserved.items()}
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
            case "stop":
                break


async def amain(args: argparse.Namespace) -> None:
    worker = Worker(args.names.split(","), args.keyring, args.cluster_size, args.engine_thread)
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
    args = parser.parse_args(argv)
    # Ctrl-C is the controller's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):
        asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
