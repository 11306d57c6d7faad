"""Groups and names on real sockets: ``node.groups``, ``node.names``, the endpoint and the CLI."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gossamer.cli.client import (
    EndpointError,
    fetch_groups,
    fetch_json,
    fetch_names,
    format_groups,
    format_names,
)
from gossamer.crdt.groups import GroupJoined, GroupLeft
from gossamer.crdt.names import NameLost
from gossamer.errors import LocalError
from gossamer.runtime.keyring import Keyring
from gossamer.runtime.node import Node
from gossamer.testing.aio import eventually
from tests.helpers import Launch, launcher, sees_alive


@pytest_asyncio.fixture
async def launch(keyring: Keyring) -> AsyncIterator[Launch]:
    async with launcher(keyring) as start:
        yield start


async def cluster(launch: Launch, count: int, **first: object) -> list[Node]:
    nodes = [await launch("n0", **first)]
    for i in range(1, count):
        nodes.append(await launch(f"n{i}", seeds=(nodes[0].address,), engine_thread=i % 2 == 0))
    names = [n.name for n in nodes]
    await eventually(lambda: all(sees_alive(n, names) for n in nodes), "everyone sees everyone")
    return nodes


@pytest.mark.asyncio
async def test_groups_join_leave_members_and_monitors(launch: Launch) -> None:
    nodes = await cluster(launch, 4)
    a, b = nodes[0], nodes[2]
    monitor = b.groups.monitor("workers")
    assert monitor.members == []
    a.groups.join("workers", ["w1", "w2"])
    a.groups.join("workers", "w1")  # twice: needs two leaves
    assert a.groups.local_members("workers") == ["w1", "w2"]  # read-your-writes
    want = [("n0", "w1"), ("n0", "w2")]
    await eventually(lambda: all(n.groups.members("workers") == want for n in nodes), "seen")
    got = [await asyncio.wait_for(monitor.__anext__(), 5) for _ in range(2)]
    assert got == [
        GroupJoined("default", "workers", "n0", "w1"),
        GroupJoined("default", "workers", "n0", "w2"),
    ]
    a.groups.leave("workers", "w1")
    assert a.groups.local_members("workers") == ["w1", "w2"]
    a.groups.leave("workers", ["w1", "w2"])
    with pytest.raises(LocalError, match="not in group"):
        a.groups.leave("workers", "w1")
    await eventually(lambda: all(n.groups.members("workers") == [] for n in nodes), "left")
    assert [await asyncio.wait_for(monitor.__anext__(), 5) for _ in range(2)] == [
        GroupLeft("default", "workers", "n0", "w1"),
        GroupLeft("default", "workers", "n0", "w2"),
    ]
    assert "workers" not in b.groups.which_groups()  # a group exists while it has members
    jobs = a.groups.scope("jobs")
    jobs.join("workers", "j1")
    await eventually(lambda: b.groups.scope("jobs").members("workers") == [("n0", "j1")], "scope")
    assert b.groups.members("workers") == []  # scopes are independent
    for bad in ("", 3, "x" * 300):
        with pytest.raises(LocalError):
            a.groups.join(bad, "m")  # type: ignore[arg-type]
        with pytest.raises(LocalError):
            a.groups.join("g", bad)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_stopped_nodes_members_leave_every_group(launch: Launch) -> None:
    nodes = await cluster(launch, 4)
    nodes[3].groups.join("workers", "w")
    await eventually(lambda: nodes[0].groups.members("workers") == [("n3", "w")], "joined")
    watch = nodes[0].groups.monitor_all()
    assert watch.members == [("workers", "n3", "w")]
    await nodes[3].stop()
    await eventually(lambda: nodes[0].groups.members("workers") == [], "dropped with its node")
    assert await asyncio.wait_for(watch.__anext__(), 5) == GroupLeft(
        "default", "workers", "n3", "w"
    )


@pytest.mark.asyncio
async def test_names_register_whereis_conflict_and_confirm(launch: Launch) -> None:
    nodes = await cluster(launch, 3)
    a, b, c = nodes
    got = a.names.register("leader", "a-main")
    assert got.registered and got.node == "n0" and got.member == "a-main"
    await eventually(lambda: c.names.whereis("leader") == ("n0", "a-main"), "registered")
    held = b.names.register("leader", "b-main")
    assert not held.registered and held.node == "n0"
    with pytest.raises(LocalError, match="held by n0"):
        b.names.unregister("leader")
    assert a.names.re_register("leader", "a-other").member == "a-other"
    await eventually(lambda: c.names.whereis("leader") == ("n0", "a-other"), "re-registered")
    confirmed = await b.names.register("boss", "b1", confirm=True, timeout_s=5)
    assert confirmed.registered and confirmed.confirmed and confirmed.missing == ()
    assert a.names.registered_names() == ["boss", "leader"]
    assert a.names.unregister("leader") is True
    await eventually(lambda: c.names.whereis("leader") is None, "released")
    assert a.names.unregister("leader") is False


@pytest.mark.asyncio
async def test_the_loser_of_a_name_hears_it_once(launch: Launch) -> None:
    nodes = await cluster(launch, 3)
    a, b = nodes[0], nodes[1]
    events = b.events()
    # Both claim before either hears of the other: the same Lamport time, so
    # the lower node name wins everywhere.
    first = a.names.register("singleton", "a")
    second = b.names.register("singleton", "b")
    assert first.registered and second.registered
    await eventually(
        lambda: all(n.names.whereis("singleton") == ("n0", "a") for n in nodes), "one winner"
    )
    lost = None
    while lost is None:
        event = await asyncio.wait_for(events.__anext__(), 5)
        if isinstance(event, NameLost):
            lost = event
    assert lost.name == "singleton" and lost.winner.node == "n0" and lost.lost.node == "n1"
    await asyncio.sleep(0.5)
    assert not any(isinstance(e, NameLost) for e in list(events._queue))
    assert b.names.claims("singleton")[0].node == "n0"


@pytest.mark.asyncio
async def test_endpoint_cli_and_metrics_show_groups_and_names(launch: Launch) -> None:
    nodes = await cluster(launch, 3, http="127.0.0.1:0")
    a = nodes[0]
    url = a.debug_url
    assert url is not None
    nodes[1].groups.join("workers", "w1")
    nodes[2].names.register("leader", "l")
    await eventually(
        lambda: a.groups.members("workers") and a.names.whereis("leader"), "replicated"
    )
    groups = await asyncio.to_thread(fetch_groups, url)
    assert groups["groups"] == [
        {"scope": "default", "group": "workers", "members": [{"node": "n1", "member": "w1"}]}
    ]
    assert "deltas_received" in groups["counters"]
    text = format_groups(groups)
    assert "workers" in text and "n1" in text
    names = await asyncio.to_thread(fetch_names, url, name="leader")
    assert names["names"][0]["winner"]["node"] == "n2"
    assert "leader" in format_names(names)
    only = await asyncio.to_thread(fetch_groups, url, scope="other")
    assert only["groups"] == []

    def scrape() -> str:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            return str(response.read().decode())

    limited = await asyncio.to_thread(fetch_json, url, "/api/names?limit=1")
    assert len(limited["names"]) == 1
    with pytest.raises(EndpointError, match="limit"):
        await asyncio.to_thread(fetch_json, url, "/api/groups?limit=0")
    page = await asyncio.to_thread(lambda: urllib.request.urlopen(url + "/", timeout=5).read())
    assert b"registry-section" in page and b"api/names?limit=100" in page
    metrics = await asyncio.to_thread(scrape)
    assert 'gossamer_registry_entries{owner="n1"} 1.0' in metrics
    assert "gossamer_registry_deltas_received_total" in metrics
