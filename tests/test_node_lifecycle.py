"""Node lifecycle edge cases: stop during leave, cancelled exits, failed starts, slow consumers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from gossamer.errors import ConfigError, LocalError
from gossamer.ring import RingChanged
from gossamer.runtime.node import Node, NodeStopped
from gossamer.runtime.nodeconfig import NodeConfig, config_from_mapping
from gossamer.runtime.transport import TransportConfig


def plain(name: str, **kw: object) -> NodeConfig:
    return NodeConfig.local(name, plaintext=True, **kw)  # type: ignore[arg-type]


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("gossamer-")]


@pytest.mark.asyncio
async def test_stop_during_leave_ends_both() -> None:
    a = await Node.start(plain("lc-a"))
    b = await Node.start(plain("lc-b", seeds=(a.address,), leave_timeout_s=30.0))
    try:
        assert await b.wait_joined(5.0)
        await a.stop()  # nobody hears b's leave now, so it would wait its full timeout
        leaving = asyncio.create_task(b.leave())
        await asyncio.sleep(0.2)
        await asyncio.wait_for(b.stop(), 5.0)
        await asyncio.wait_for(leaving, 5.0)
    finally:
        await a.stop()
        await b.stop()
    assert "gossamer-lc-b" not in engine_threads()


@pytest.mark.asyncio
async def test_a_cancelled_async_with_still_stops_the_node() -> None:
    a = await Node.start(plain("lc-c"))
    holder: dict[str, Node] = {}
    ready = asyncio.Event()

    async def app() -> None:
        async with Node.start(plain("lc-d", seeds=(a.address,))) as d:
            holder["d"] = d
            await d.wait_joined(5.0)
            ready.set()
            await asyncio.sleep(100)

    task = asyncio.create_task(app())
    try:
        await ready.wait()
        task.cancel()  # the body ends; __aexit__ starts leaving
        await asyncio.sleep(0.01)
        task.cancel()  # a second cancel lands in the leave
        with pytest.raises(asyncio.CancelledError):
            await task
        assert holder["d"]._stopped
        assert "gossamer-lc-d" not in engine_threads()
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_a_failed_start_frees_its_ports() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy_http = f"127.0.0.1:{taken.getsockname()[1]}"
    try:
        for thread in (False, True):
            with pytest.raises(OSError):
                await Node.start(plain("lc-e", http=busy_http, engine_thread=thread))
        assert engine_threads() == [] or "gossamer-lc-e" not in engine_threads()
        # Nothing of the failed node holds a port: a node can bind its address.
        node = await Node.start(plain("lc-e"))
        await node.stop()
    finally:
        taken.close()


@pytest.mark.asyncio
async def test_events_stay_bounded_while_the_application_loop_is_blocked() -> None:
    a = await Node.start(plain("lc-f", max_event_queue=2))
    nodes: list[Node] = []
    try:
        stream = a.events()
        for i in range(6):
            nodes.append(await Node.start(plain(f"lc-g{i}", seeds=(a.address,))))

        def joined_all() -> bool:
            return len(a.members()) == 7

        deadline = time.monotonic() + 10
        while not joined_all() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert joined_all()
        # Block this loop while the peers leave: the engine thread keeps
        # producing events, and the stream must hold at most two of them.
        leaving = [asyncio.ensure_future(n.leave()) for n in nodes]
        await asyncio.sleep(0)
        time.sleep(2.0)  # a deliberately blocked application loop
        assert len(stream._queue) <= 2
        await asyncio.sleep(1.0)
        assert stream.shed > 0
        assert a._engine.counters().shed["events"] == stream.shed
        first = await asyncio.wait_for(stream.__anext__(), 2.0)
        if isinstance(first, RingChanged):
            assert {n.name for n in nodes} >= set(first.removed)
        else:
            assert first.member.name.startswith("lc-g")
        await asyncio.gather(*leaving)
    finally:
        for n in nodes:
            await n.stop()
        await a.stop()


def test_toml_tables_apply_before_validation(tmp_path: object) -> None:
    raw = {
        "name": "t",
        "preset": "local",
        "plaintext": True,
        "metadata": "x" * 600,
        "swim": {"max_metadata_bytes": 700},
        "transport": {"idle_timeout_s": 5.0},
    }
    config = config_from_mapping(raw)
    assert config.swim.max_metadata_bytes == 700
    assert config.bind == "127.0.0.1:0"  # the local preset's port
    assert config.transport.idle_timeout_s == 5.0
    with pytest.raises(ConfigError, match="unknown"):
        config_from_mapping({**raw, "swim": {"probe_interval": 1}})


def test_config_refuses_what_could_not_run() -> None:
    with pytest.raises(ConfigError, match="wildcard"):
        NodeConfig.lan("w", "[::0]:7946", plaintext=True)
    with pytest.raises(ConfigError, match="wildcard"):
        NodeConfig.lan("w", "127.0.0.1:7946", advertise="0.0.0.0:7946", plaintext=True)
    with pytest.raises(ConfigError, match="full state"):
        NodeConfig.lan("w", plaintext=True, transport=TransportConfig(max_stream_queue_bytes=1024))


@pytest.mark.asyncio
async def test_a_stopped_node_reports_nothing_and_raises_node_stopped() -> None:
    node = await Node.start(plain("lc-stopped"))
    assert node.local.status.name == "ALIVE"
    await node.stop()
    for read in (
        node.members,
        lambda: node.member("lc-stopped"),
        lambda: node.local,
        lambda: node.ring,
        node.events,
    ):
        with pytest.raises(NodeStopped):
            read()
    with pytest.raises(NodeStopped):
        await node.wait_joined(0.1)
    with pytest.raises(NodeStopped):
        await node.update_metadata(b"x")
    with pytest.raises(NodeStopped):
        await node.leave()


@pytest.mark.asyncio
async def test_a_wrong_argument_names_the_parameter() -> None:
    node = await Node.start(plain("lc-args"))
    try:
        with pytest.raises(LocalError, match=r"wait_joined\(timeout_s=...\)"):
            await node.wait_joined(timeout_s="x")  # type: ignore[arg-type]
        with pytest.raises(LocalError, match="timeout_s must be >= 0"):
            await node.wait_joined(-1)
        with pytest.raises(LocalError, match=r"timeout_s"):
            await node.wait_joined(float("nan"))
        with pytest.raises(LocalError, match=r"members\(include_gone=...\)"):
            node.members(include_gone="yes")  # type: ignore[arg-type]
        with pytest.raises(LocalError, match=r"member\(name\)"):
            node.member(3)  # type: ignore[arg-type]
        with pytest.raises(LocalError, match=r"update_metadata\(metadata\)"):
            await node.update_metadata("text")  # type: ignore[arg-type]
        with pytest.raises(LocalError, match=r"Node\.start takes a NodeConfig"):
            Node.start("lc-args")  # type: ignore[arg-type]
        assert await node.wait_joined(0) is True
    finally:
        await node.stop()


def test_the_events_the_readme_names_come_from_the_package() -> None:
    import gossamer
    from gossamer.membership import members

    for name in ("MemberJoined", "MemberUpdated", "MemberSuspect", "MemberAlive"):
        assert getattr(gossamer, name) is getattr(members, name)
    for name in ("MemberDead", "MemberLeft", "MemberReaped", "RingChanged", "NameClash"):
        assert name in gossamer.__all__ and getattr(gossamer, name) is not None
    assert issubclass(gossamer.NameInUse, gossamer.NodeStopped)
    assert issubclass(gossamer.NodeStopped, gossamer.LocalError)
