"""The overlay on real sockets: links on the transport, broadcast and subscribe."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gossamer.errors import LocalError
from gossamer.membership.hyparview import HyParViewConfig
from gossamer.membership.plumtree import PlumtreeConfig
from gossamer.runtime.keyring import Keyring, generate_key
from gossamer.runtime.node import Node, Subscription
from gossamer.testing.aio import eventually
from tests.helpers import Launch, launcher, sees_alive


@pytest_asyncio.fixture
async def launch(keyring: Keyring) -> AsyncIterator[Launch]:
    async with launcher(keyring) as start:
        yield start


async def cluster(launch: Launch, count: int) -> list[Node]:
    nodes = [await launch("n0")]
    for i in range(1, count):
        nodes.append(await launch(f"n{i}", seeds=(nodes[0].address,), engine_thread=i % 2 == 0))
    names = [n.name for n in nodes]
    await eventually(lambda: all(sees_alive(n, names) for n in nodes), "everyone sees everyone")
    return nodes


def active(node: Node) -> set[str]:
    view = node._current().overlay
    assert view is not None
    return {p.name for p in view.active}


def connected_and_symmetric(nodes: list[Node]) -> bool:
    views = {n.name: active(n) for n in nodes}
    if any(a not in views.get(b, {a}) for a, peers in views.items() for b in peers):
        return False
    seen, stack = {nodes[0].name}, [nodes[0].name]
    while stack:
        for other in views[stack.pop()] - seen:
            if other in views:
                seen.add(other)
                stack.append(other)
    return seen == set(views) and all(len(p) >= 1 for p in views.values())


async def gather(feed: Subscription, count: int) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    async for item in feed:
        got.append(item)
        if len(got) == count:
            break
    return got


@pytest.mark.asyncio
async def test_ten_nodes_form_one_symmetric_overlay_and_broadcasts_reach_each_once(
    launch: Launch,
) -> None:
    nodes = await cluster(launch, 10)
    await eventually(lambda: connected_and_symmetric(nodes), "the overlay is one symmetric piece")
    for node in nodes:
        transport = node._engine.transport
        assert transport is not None
        # Its links, and a few short exchanges at most: never a mesh.
        assert transport.streams_open <= node.config.overlay.active_size + 3
    feeds = [n.subscribe("news") for n in nodes]
    other = nodes[3].subscribe("other")
    sent = [(nodes[i % 10].name, b"message %d" % i) for i in range(30)]
    for origin, payload in sent:
        await next(n for n in nodes if n.name == origin).broadcast("news", payload)
    results = await asyncio.wait_for(asyncio.gather(*(gather(f, 30) for f in feeds)), 30)
    for got in results:
        assert Counter(got) == Counter(sent)  # each once, the sender's own included
    await asyncio.sleep(0.5)
    for feed in feeds:
        assert not feed._queue  # nothing twice
    assert not other._queue and other.shed == 0
    counters = nodes[0]._engine.counters()
    assert counters.shed["subscriptions"] == 0


@pytest.mark.asyncio
async def test_broadcast_refuses_a_callers_mistakes_at_once(launch: Launch) -> None:
    node = await launch("a")
    limit = node.config.broadcast.max_broadcast_bytes
    with pytest.raises(LocalError, match="max_broadcast_bytes"):
        await node.broadcast("t", b"x" * (limit + 1))
    with pytest.raises(LocalError, match="payload must be bytes"):
        await node.broadcast("t", "text")  # type: ignore[arg-type]
    with pytest.raises(LocalError, match="topic"):
        await node.broadcast("", b"x")
    with pytest.raises(LocalError, match="the node's own"):
        node.subscribe("gossamer/swim")
    off = {"overlay": HyParViewConfig(enabled=False), "broadcast": PlumtreeConfig(enabled=False)}
    bare = await launch("b", sections=off)
    with pytest.raises(LocalError, match="without broadcast"):
        bare.subscribe("t")


@pytest.mark.asyncio
async def test_a_slow_subscriber_sheds_the_oldest_and_counts(launch: Launch) -> None:
    node = await launch("a", max_event_queue=3)
    feed = node.subscribe("t")
    for i in range(5):
        await node.broadcast("t", b"%d" % i)
    await eventually(lambda: feed.shed == 2, "two of five are shed")
    assert [p for _, p in await gather(feed, 3)] == [b"2", b"3", b"4"]
    assert node._engine.counters().shed["subscriptions"] == 2


@pytest.mark.asyncio
async def test_a_stopped_nodes_links_are_replaced_from_the_passive_view(launch: Launch) -> None:
    nodes = await cluster(launch, 8)
    await eventually(lambda: connected_and_symmetric(nodes), "the overlay is one piece")
    victim = nodes[5]
    linked = [n for n in nodes if victim.name in active(n)]
    assert linked
    await victim.stop()  # no leave: its sockets close, its links break
    rest = [n for n in nodes if n is not victim]
    await eventually(
        lambda: all(victim.name not in active(n) for n in rest) and connected_and_symmetric(rest),
        "the survivors dropped the victim's links and are one piece",
    )
    feeds = [n.subscribe("after") for n in rest]
    await rest[0].broadcast("after", b"still here")
    results = await asyncio.wait_for(asyncio.gather(*(gather(f, 1) for f in feeds)), 30)
    assert all(got == [(rest[0].name, b"still here")] for got in results)


@pytest.mark.asyncio
async def test_a_node_with_the_wrong_key_never_gets_a_link(launch: Launch) -> None:
    a = await launch("a")
    b = await launch("b", seeds=(a.address,))
    await eventually(lambda: active(a) == {"b"} and active(b) == {"a"}, "a and b link up")
    intruder = await launch("x", seeds=(a.address,), keyring=Keyring([generate_key()]))
    await asyncio.sleep(3.0)  # several join retries and shuffles
    assert "x" not in active(a) and "x" not in active(b)
    assert active(intruder) == set()
    assert not any(p.name == "x" for p in a._current().overlay.passive)  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_node_whose_whole_active_view_dies_links_up_again(launch: Launch) -> None:
    nodes = await cluster(launch, 9)
    await eventually(lambda: connected_and_symmetric(nodes), "the overlay is one piece")
    lonely = nodes[4]
    doomed = [n for n in nodes if n.name in active(lonely)]
    assert 1 <= len(doomed) < len(nodes) - 1
    for node in doomed:
        await node.stop()
    rest = [n for n in nodes if n not in doomed]
    await eventually(
        lambda: bool(active(lonely)) and connected_and_symmetric(rest),
        "the lonely node linked to the survivors",
    )
    feed = lonely.subscribe("back")
    await rest[-1].broadcast("back", b"hello again")
    got = await asyncio.wait_for(gather(feed, 1), 30)
    assert got == [(rest[-1].name, b"hello again")]
