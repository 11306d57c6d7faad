"""Join a gossamer cluster, print membership events as they happen, leave on Ctrl-C.

Start a first node, then a second that joins it, each in its own terminal:

    .venv/bin/python examples/watch_members.py --name a --bind 127.0.0.1:7946
    .venv/bin/python examples/watch_members.py --name b --bind 127.0.0.1:7947 \\
        --join 127.0.0.1:7946

Stop one with Ctrl-C and the other prints that it *left*; kill one with
``kill -9`` and the other prints *suspect*, then *dead*.  Each change of the
live members also changes the consistent-hashing ring, and the example
prints which share of the key space moved to whom, and who owns a few keys.  Without
``--keyring FILE`` (made by ``gossamer keygen --keyring FILE``) the nodes run
in plaintext, which is only fit for loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from gossamer import Node, NodeConfig, NodeEvent, load_keyring
from gossamer.membership.members import (
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberSuspect,
    MemberUpdated,
)
from gossamer.ring import RingChanged

KEYS = ("user:1", "user:2", "user:3")


def describe_ring(event: RingChanged) -> str:
    moved: dict[tuple[str | None, str | None], float] = {}
    for move in event.moves:
        pair = (move.source, move.target)
        moved[pair] = moved.get(pair, 0.0) + move.fraction
    shares = ", ".join(
        f"{a} -> {b}: {share:.1%}" for (a, b), share in sorted(moved.items(), key=str)
    )
    owners = ", ".join(f"{key} on {event.ring.owner(key)}" for key in KEYS if len(event.ring))
    return f"ring: {event.summary()}; moved {shares or 'nothing'}; {owners or 'no owners'}"


def describe(event: NodeEvent) -> str:
    if isinstance(event, RingChanged):
        return describe_ring(event)
    return describe_member(event)


def describe_member(event: MemberEvent) -> str:
    m = event.member
    match event:
        case MemberJoined(previous=previous) if previous is not None and previous.epoch < m.epoch:
            return f"{m.name} restarted at {m.address} (epoch {previous.epoch} -> {m.epoch})"
        case MemberJoined():
            return f"{m.name} joined from {m.address}"
        case MemberSuspect(source=source):
            return f"{m.name} is suspect (by {source})"
        case MemberAlive():
            return f"{m.name} refuted the suspicion"
        case MemberDead(source=source):
            return f"{m.name} is dead (declared by {source})"
        case MemberLeft():
            return f"{m.name} left"
        case MemberUpdated():
            return f"{m.name} published metadata {m.metadata!r}"
    return f"{type(event).__name__} {m.name}"


async def main(args: argparse.Namespace) -> None:
    security = {"keyring": load_keyring(args.keyring)} if args.keyring else {"plaintext": True}
    seeds = tuple(s for s in args.join.split(",") if s) if args.join else ()
    config = NodeConfig.lan(args.name, args.bind, seeds=seeds, **security)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # Leaving the block leaves the cluster gracefully, then stops the node.
    async with Node.start(config) as node:
        print(f"{node.name} is up at {node.address}")
        if seeds and not await node.wait_joined(timeout_s=5.0):
            print(f"no answer yet from {', '.join(seeds)}; still trying in the background")
        print(f"members: {', '.join(m.name for m in node.members())}", flush=True)

        async def watch() -> None:
            async for event in node.events():
                print(describe(event), flush=True)

        watcher = asyncio.create_task(watch())
        await stop.wait()
        print("leaving...")
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", default="127.0.0.1:7946")
    parser.add_argument("--join", default="", help="comma-separated host:port of members")
    parser.add_argument("--keyring", help="keyring file (gossamer keygen --keyring FILE)")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
