"""The asyncio runtime on real sockets: clusters of in-process nodes on 127.0.0.1.

Every test asserts what happened, never how fast: it polls with
:func:`eventually` (generous timeouts, CI has two loaded cores) and stops
every node it started, so no engine thread or socket outlives the test.
Nodes use ``NodeConfig.local`` (quick timeouts: probes every second, a
0.2 s probe timeout, suspicions of a few seconds).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gossamer.config import WireConfig
from gossamer.errors import ConfigError, LocalError
from gossamer.failure.swim import SwimConfig
from gossamer.membership.members import (
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberSuspect,
    MemberUpdated,
    Status,
)
from gossamer.ring import RingChanged
from gossamer.runtime.keyring import Keyring, generate_key
from gossamer.runtime.node import EventStream, Node, NodeEvent, NodeStopped, boot_epoch
from gossamer.runtime.nodeconfig import NodeConfig, datagram_overhead
from gossamer.testing.aio import eventually
from tests.helpers import TIMEOUT_S, Launch, launcher, sees_alive


async def next_event(
    stream: EventStream, match: Callable[[NodeEvent], bool], what: str
) -> tuple[NodeEvent, list[NodeEvent]]:
    """Read ``stream`` until an event matches; return it and every event read before it."""
    seen: list[NodeEvent] = []

    async def read() -> NodeEvent:
        async for event in stream:
            if match(event):
                return event
            seen.append(event)
        pytest.fail(f"the event stream ended before {what}; read {seen}")

    try:
        return await asyncio.wait_for(read(), TIMEOUT_S), seen
    except TimeoutError:
        pytest.fail(f"timed out after {TIMEOUT_S:.0f} s waiting for {what}; read {seen}")


def queued(stream: EventStream) -> list[NodeEvent]:
    """The events waiting in ``stream`` right now, without waiting for more."""
    return [e for e in stream._queue if e is not None]


def about(name: str, events: Iterable[NodeEvent]) -> list[MemberEvent]:
    """The member events about ``name`` (ring changes are about no one member)."""
    return [e for e in events if not isinstance(e, RingChanged) and e.member.name == name]


@pytest.fixture(autouse=True)
def _no_engine_thread_outlives_the_test() -> Iterable[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("gossamer-")]
    assert not left, f"engine threads still running after the test: {left}"


@pytest_asyncio.fixture
async def launch(keyring: Keyring) -> AsyncIterator[Launch]:
    """Start nodes with ``NodeConfig.local`` and the test's keyring; stop them all afterwards."""
    async with launcher(keyring) as start:
        yield start


# -------------------------------------------------------------------- membership


@pytest.mark.asyncio
async def test_three_nodes_converge(launch: Launch) -> None:
    a = await launch("a")
    b = await launch("b", seeds=(a.address,))
    c = await launch("c", seeds=(b.address,))  # learns of a only through b
    nodes = (a, b, c)
    await eventually(
        lambda: all(sees_alive(n, "abc") for n in nodes), "every node sees a, b and c alive"
    )
    for node in nodes:
        assert [m.name for m in node.members()] == ["a", "b", "c"]
        assert node.local.name == node.name
        for other in nodes:
            entry = node.member(other.name)
            assert entry is not None
            assert entry.address == other.address
            assert entry.epoch == other.local.epoch
    assert a.member("nobody") is None


@pytest.mark.asyncio
async def test_ten_nodes_converge_with_and_without_engine_thread(launch: Launch) -> None:
    names = [f"n{i}" for i in range(10)]
    first = await launch(names[0])
    nodes = [first]
    for i, name in enumerate(names[1:], start=1):
        # Every other node runs its engine on this test's loop; seeds vary.
        seed = nodes[i // 2].address
        nodes.append(await launch(name, seeds=(seed,), engine_thread=i % 2 == 0))
    assert {n.config.engine_thread for n in nodes} == {True, False}
    await eventually(
        lambda: all(sees_alive(n, names) for n in nodes), "all ten nodes see each other alive"
    )


@pytest.mark.slow
@pytest.mark.asyncio
async def test_twenty_nodes_detect_crashes_and_leaves(launch: Launch) -> None:
    names = [f"n{i:02}" for i in range(20)]
    nodes = [await launch(names[0])]
    for i, name in enumerate(names[1:], start=1):
        seed = nodes[i // 2].address
        nodes.append(await launch(name, seeds=(seed,), engine_thread=i % 2 == 0))
    await eventually(
        lambda: all(sees_alive(n, names) for n in nodes), "all twenty nodes see each other alive"
    )
    crashed, leaving, rest = nodes[3:6], nodes[6:8], [*nodes[:3], *nodes[8:]]
    for node in leaving:
        await node.leave()
    for node in (*crashed, *leaving):
        await node.stop()

    def settled(node: Node) -> bool:
        for gone, status in [(crashed, Status.DEAD), (leaving, Status.LEFT)]:
            for other in gone:
                entry = node.member(other.name)
                if entry is None or entry.status is not status:
                    return False
        return sees_alive(node, [n.name for n in rest])

    await eventually(
        lambda: all(settled(n) for n in rest),
        "every remaining node sees three crashed nodes dead and two left",
        timeout=90.0,
    )


@pytest.mark.asyncio
async def test_probe_ticks_fall_on_whole_intervals_of_the_wall_clock(launch: Launch) -> None:
    # Nodes that share a process, and nodes whose clocks agree, wake together.
    nodes = [await launch(name, engine_thread=False) for name in "ab"]
    loop = asyncio.get_running_loop()
    offset = time.time() - loop.time()
    for node in nodes:
        interval = node.config.swim.probe_interval_s
        handle = node._engine._timers[("swim", "probe")]
        beats = (handle.when() + offset) / interval
        assert abs(beats - round(beats)) * interval < 0.005, (node.name, beats)


@pytest.mark.asyncio
async def test_stopped_node_is_suspected_then_declared_dead(launch: Launch) -> None:
    a = await launch("a")
    b = await launch("b", seeds=(a.address,))
    c = await launch("c", seeds=(a.address,), engine_thread=False)
    await eventually(lambda: all(sees_alive(n, "abc") for n in (a, b, c)), "a, b, c converge")
    watchers = {a: a.events(), b: b.events()}

    await c.stop()  # no leave: the others must find out by failure detection

    for watcher, stream in watchers.items():
        dead, before = await next_event(
            stream,
            lambda e: isinstance(e, MemberDead) and e.member.name == "c",
            f"{watcher.name} to declare c dead",
        )
        kinds = [type(e) for e in about("c", before)]
        assert MemberSuspect in kinds, f"{watcher.name} saw c dead without a suspicion: {kinds}"
        assert MemberLeft not in kinds
        assert dead.member.status is Status.DEAD
        entry = watcher.member("c")
        assert entry is not None and entry.status is Status.DEAD
        assert "c" not in {m.name for m in watcher.members()}
        assert "c" in {m.name for m in watcher.members(include_gone=True)}
        stream.close()


@pytest.mark.asyncio
async def test_graceful_leave_is_seen_as_left_not_dead(launch: Launch) -> None:
    a = await launch("a")
    b = await launch("b", seeds=(a.address,))
    c = await launch("c", seeds=(a.address,))
    await eventually(lambda: all(sees_alive(n, "abc") for n in (a, b, c)), "a, b, c converge")
    streams = {a: a.events(), c: c.events()}

    await b.leave()
    assert b.local.status is Status.LEFT
    await b.leave()  # leaving twice does nothing more
    for watcher, stream in streams.items():
        left, before = await next_event(
            stream,
            lambda e: isinstance(e, MemberLeft) and e.member.name == "b",
            f"{watcher.name} to see b leave",
        )
        assert left.member.status is Status.LEFT
        assert not [e for e in about("b", before) if isinstance(e, MemberSuspect | MemberDead)]

    await b.stop()
    # A member that left is not probed: more than a probe round later, nobody
    # suspects it or declares it dead.
    await asyncio.sleep(2.5)
    for watcher, stream in streams.items():
        later = [type(e) for e in about("b", queued(stream))]
        assert MemberSuspect not in later and MemberDead not in later, later
        entry = watcher.member("b")
        assert entry is not None and entry.status is Status.LEFT


@pytest.mark.asyncio
async def test_restarted_node_rejoins_with_a_larger_epoch(launch: Launch) -> None:
    a = await launch("a")
    c = await launch("c", seeds=(a.address,))
    b1 = await launch("b", seeds=(a.address,), epoch=100)
    await eventually(lambda: all(sees_alive(n, "abc") for n in (a, b1, c)), "a, b, c converge")
    stream = a.events()

    address = b1.address
    await b1.stop()  # a crash: no leave
    b2 = await launch("b", bind=address, seeds=(a.address,), epoch=200)
    assert b2.local.epoch == 200

    joined, _ = await next_event(
        stream,
        lambda e: isinstance(e, MemberJoined) and e.member.name == "b",
        "a to see b's new life join",
    )
    assert isinstance(joined, MemberJoined)
    assert joined.member.epoch == 200
    assert joined.previous is not None and joined.previous.epoch == 100
    await eventually(
        lambda: all(sees_alive(n, "abc") for n in (a, b2, c)), "a, b, c converge again"
    )
    # The old life is not resurrected: give stale news about it (suspicions,
    # gossip still in flight) time to arrive, then check no event brought it back.
    await asyncio.sleep(2.5)
    for event in about("b", queued(stream)):
        assert event.member.epoch == 200, f"an event brought back the old life: {event}"
    for node in (a, c):
        entry = node.member("b")
        assert entry is not None
        assert (entry.epoch, entry.status) == (200, Status.ALIVE)


@pytest.mark.asyncio
async def test_data_dir_makes_epochs_grow_even_with_a_fixed_clock(
    launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyring: Keyring
) -> None:
    frozen_ns = 1_700_000_000_000 * 1_000_000
    monkeypatch.setattr(time, "time_ns", lambda: frozen_ns)
    no_dir = NodeConfig.local("x", keyring=keyring)
    # Without data_dir the epoch is the clock alone: two lives would tie.
    assert boot_epoch(no_dir) == boot_epoch(no_dir) == frozen_ns // 1_000_000

    data_dir = str(tmp_path / "state")
    epochs = []
    for _ in range(2):
        node = await launch("x", data_dir=data_dir)
        epochs.append(node.local.epoch)  # read before stop(): a stopped node tells nothing
        await node.stop()
    assert epochs == [frozen_ns // 1_000_000, frozen_ns // 1_000_000 + 1]

    # A clock stepped back still gives a larger epoch.
    monkeypatch.setattr(time, "time_ns", lambda: frozen_ns - 3_600 * 10**9)
    third = await launch("x", data_dir=data_dir)
    assert third.local.epoch == epochs[-1] + 1
    await third.stop()


@pytest.mark.asyncio
async def test_metadata_update_reaches_peers(launch: Launch) -> None:
    a = await launch("a", metadata=b"v1")
    b = await launch("b", seeds=(a.address,))
    await eventually(lambda: sees_alive(a, "ab") and sees_alive(b, "ab"), "a and b converge")
    entry = b.member("a")
    assert entry is not None and entry.metadata == b"v1"
    stream = b.events()

    await a.update_metadata(b"role=web")
    assert a.local.metadata == b"role=web"
    updated, _ = await next_event(
        stream,
        lambda e: isinstance(e, MemberUpdated) and e.member.name == "a",
        "b to see a's new metadata",
    )
    assert isinstance(updated, MemberUpdated)
    assert updated.member.metadata == b"role=web"
    assert updated.previous.metadata == b"v1"
    assert updated.member.incarnation > updated.previous.incarnation
    entry = b.member("a")
    assert entry is not None and entry.metadata == b"role=web"


# -------------------------------------------------------------------- the API


@pytest.mark.asyncio
async def test_caller_errors_raise_local_error_at_once(launch: Launch) -> None:
    with pytest.raises(LocalError, match="NodeConfig"):
        Node.start("a")  # type: ignore[arg-type]
    a = await launch("a", leave_timeout_s=0.5)  # alone: nobody to spread the leave to
    with pytest.raises(OSError):  # the port is taken; the failed start frees what it took
        await launch("b", bind=a.address)
    limit = a.config.swim.max_metadata_bytes
    with pytest.raises(LocalError, match="bytes"):
        await a.update_metadata("text")  # type: ignore[arg-type]
    with pytest.raises(LocalError, match=str(limit)):
        await a.update_metadata(b"x" * (limit + 1))
    await a.update_metadata(b"x" * limit)  # the limit itself is fine
    with pytest.raises(LocalError):
        a.member(7)  # type: ignore[arg-type]

    await a.leave()
    with pytest.raises(LocalError, match="left"):
        await a.update_metadata(b"after leaving")

    stream = a.events()
    await a.stop()
    await a.stop()  # stopping twice does nothing more

    async def drain() -> list[NodeEvent]:
        return [event async for event in stream]

    await asyncio.wait_for(drain(), TIMEOUT_S)  # the node stopped: the stream ends
    with pytest.raises(NodeStopped):
        await a.update_metadata(b"")
    with pytest.raises(NodeStopped):
        await a.leave()
    with pytest.raises(NodeStopped):
        a.events()
    assert issubclass(NodeStopped, LocalError)


@pytest.mark.asyncio
async def test_async_with_leaves_on_exit(launch: Launch, keyring: Keyring) -> None:
    a = await launch("a")
    stream = a.events()
    config = NodeConfig.local("b", keyring=keyring, seeds=(a.address,))
    async with Node.start(config) as b:
        await eventually(lambda: sees_alive(a, "ab") and sees_alive(b, "ab"), "a and b converge")
    with pytest.raises(NodeStopped):
        b.events()
    await next_event(
        stream,
        lambda e: isinstance(e, MemberLeft) and e.member.name == "b",
        "a to see b leave when its async with block ends",
    )
    entry = a.member("b")
    assert entry is not None and entry.status is Status.LEFT


@pytest.mark.asyncio
async def test_event_stream_sheds_the_oldest_and_counts(launch: Launch) -> None:
    a = await launch("a", max_event_queue=2)
    stream = a.events()
    names = [f"p{i}" for i in range(5)]
    for name in names:
        await launch(name, seeds=(a.address,), engine_thread=False)
    await eventually(lambda: sees_alive(a, ["a", *names]), "a sees the five others")
    await eventually(lambda: stream.shed >= 3, "three of five joins are shed")
    assert len(queued(stream)) == 2
    assert a._engine.counters().shed["events"] == stream.shed == a.events_shed()

    kept = [await anext(stream), await anext(stream)]
    # The newest two: joins, or the ring changes that follow them.
    assert all(isinstance(e, MemberJoined | RingChanged) for e in kept)
    shed = stream.shed
    stream.close()
    assert a.events_shed() == shed  # a closed stream's count is kept


@pytest.mark.asyncio
@pytest.mark.parametrize("engine_thread", [True, False], ids=["engine_thread", "app_loop"])
async def test_blocked_application_loop_is_not_suspected_with_an_engine_thread(
    launch: Launch, engine_thread: bool
) -> None:
    # The watcher runs its engine on a thread of its own, so it keeps probing
    # while this test blocks its loop.  Its probes time out after 0.2 s and
    # come once a second: a node silent for 3 s is certainly suspected.
    watcher = await launch("watcher", engine_thread=True)
    assert watcher.config.swim.probe_timeout_s <= 0.2
    blocked = await launch("blocked", seeds=(watcher.address,), engine_thread=engine_thread)
    await eventually(
        lambda: (
            sees_alive(watcher, ["watcher", "blocked"])
            and sees_alive(blocked, ["watcher", "blocked"])
        ),
        "watcher and blocked converge",
    )
    stream = watcher.events()
    incarnation = blocked.local.incarnation

    time.sleep(3.0)  # a deliberate blocking call on the application's loop

    if engine_thread:
        # The engine kept answering: nothing about "blocked" happened at all.
        await asyncio.sleep(1.0)  # let any event queued meanwhile reach this loop
        events = about("blocked", queued(stream))
        assert not events, f"the watcher saw {events}"
        entry = watcher.member("blocked")
        assert entry is not None and entry.status is Status.ALIVE
        assert blocked.local.incarnation == incarnation  # nothing to refute
        assert watcher._engine.counters().swim.suspicions == 0
    else:
        # The control: with its engine on the blocked loop, the node went silent.
        await next_event(
            stream,
            lambda e: isinstance(e, MemberSuspect) and e.member.name == "blocked",
            "the watcher to suspect the blocked node",
        )


# -------------------------------------------------------------------- debug endpoint


@pytest.mark.asyncio
async def test_debug_endpoint_on_a_live_node(launch: Launch) -> None:
    a = await launch("a", http="127.0.0.1:0")
    b = await launch("b", seeds=(a.address,))
    c = await launch("c", seeds=(a.address,), engine_thread=False)
    await eventually(lambda: all(sees_alive(n, "abc") for n in (a, b, c)), "a, b, c converge")
    assert a.debug_url is not None and b.debug_url is None

    async with aiohttp.ClientSession(a.debug_url) as http:

        async def get(path: str, status: int = 200) -> Any:
            async with http.get(path) as response:
                assert response.status == status, (path, await response.text())
                if response.content_type == "application/json":
                    return await response.json()
                return await response.text()

        health = await get("/healthz")
        assert health["status"] == "ok" and health["name"] == "a" and health["joined"]

        node = await get("/api/node")
        assert node["name"] == "a"
        assert node["address"] == a.address
        assert node["epoch"] == a.local.epoch
        assert node["status"] == "alive" and node["encrypted"] is True

        members = await get("/api/members")
        assert [m["name"] for m in members["members"]] == ["a", "b", "c"]
        assert members["counts"]["alive"] == 3

        events = await get("/api/events")
        joined = {e["member"] for e in events["events"] if e["kind"] == "joined"}
        assert joined == {"b", "c"}

        metrics = await get("/metrics")
        assert 'gossamer_members{status="alive"} 3.0' in metrics
        assert 'gossamer_members{status="dead"} 0.0' in metrics

        await a.leave()
        health = await get("/healthz", status=503)
        assert health["status"] == "left"


# -------------------------------------------------------------------- configuration


def test_config_needs_a_keyring_or_explicit_plaintext() -> None:
    with pytest.raises(ConfigError, match="no keyring"):
        NodeConfig.local("a")
    NodeConfig.local("a", plaintext=True)  # stated explicitly: fine
    with pytest.raises(ConfigError, match="exclusive"):
        NodeConfig.local("a", plaintext=True, keyring=Keyring([generate_key()]))


def test_config_wildcard_bind_needs_advertise(keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match="advertise"):
        NodeConfig.local("a", "0.0.0.0:7946", keyring=keyring)
    with pytest.raises(ConfigError, match="advertise"):
        NodeConfig.local("a", "[::]:7946", keyring=keyring)
    NodeConfig.local("a", "0.0.0.0:7946", keyring=keyring, advertise="10.0.0.5:7946")


def test_config_oversize_swim_payload_names_the_size_to_use(keyring: Keyring) -> None:
    wire = WireConfig.lan()
    room = wire.max_datagram_bytes - datagram_overhead("127.0.0.1:65535", encrypted=True)
    swim = dataclasses.replace(SwimConfig.local(), max_payload_bytes=wire.max_datagram_bytes)
    with pytest.raises(ConfigError, match=f"use at most {room}$"):
        NodeConfig("a", "127.0.0.1:0", keyring=keyring, wire=wire, swim=swim)
    # The suggested number works.
    fitted = dataclasses.replace(swim, max_payload_bytes=room)
    NodeConfig("a", "127.0.0.1:0", keyring=keyring, wire=wire, swim=fitted)
