"""HyParView's rules, one message at a time, and small clusters in the simulator."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from gossamer.core import PartsCore
from gossamer.effects import CloseStream, Effect, Emit, SendStream
from gossamer.errors import ConfigError
from gossamer.ids import Address, NodeId
from gossamer.lab.overlay_paper import bfs
from gossamer.membership.hyparview import (
    SMALL_WORLD_PERIODS,
    Disconnect,
    ForwardJoin,
    HyParView,
    HyParViewConfig,
    Join,
    Neighbor,
    NeighborDown,
    NeighborReply,
    NeighborUp,
    Peer,
    Shuffle,
    ShuffleReply,
)
from gossamer.parts import overlay_parts
from gossamer.sim import Simulator
from gossamer.wire import Message, registry


def peer(name: str, epoch: int = 1) -> Peer:
    return Peer(name, Address(f"{name}:7946"), epoch)


def node(
    name: str = "me", config: HyParViewConfig | None = None, seeds: Iterable[str] = ()
) -> HyParView:
    core = HyParView(
        NodeId(name, Address(f"{name}:7946"), 1), random.Random(7), config, seeds=seeds
    )
    core.start(0.0)
    core.drain()
    return core


def sent(effects: list[Effect]) -> list[tuple[str, Message]]:
    return [(e.to, e.message) for e in effects if isinstance(e, SendStream)]


def with_active(core: HyParView, *names: str) -> HyParView:
    """Fill ``core``'s active view with ``names`` (each asked it with high priority)."""
    for name in names:
        core.handle(Address(f"{name}:7946"), Neighbor(peer(name), True), 0.0)
    core.drain()
    return core


def listened(core: HyParView) -> float:
    """Start ``core``'s shuffle ticks at 0 and return when it has listened long
    enough to judge its overlay small (no shuffle has passed it but its own)."""
    core.on_timer("shuffle", 0.0)
    core.drain()
    return SMALL_WORLD_PERIODS * core.config.shuffle_interval_s


def with_passive(core: HyParView, *peers: Peer) -> HyParView:
    """Put ``peers`` in ``core``'s passive view (a shuffle that ends there brings them)."""
    core.handle(Address("x:7946"), Shuffle(peer("x"), peers, 1), 0.0)
    core.drain()
    return core


def test_config_is_checked_at_construction() -> None:
    with pytest.raises(
        ConfigError, match=r"passive_walk_length .* must be below active_walk_length"
    ):
        HyParViewConfig(active_walk_length=3, passive_walk_length=3)
    with pytest.raises(ConfigError, match="must fit in passive_size"):
        HyParViewConfig(passive_size=6, shuffle_active=3, shuffle_passive=4)
    with pytest.raises(ConfigError, match="shuffle_active"):
        HyParViewConfig(active_size=2, shuffle_active=3)
    with pytest.raises(ConfigError, match="min_active"):
        HyParViewConfig(min_active=6)
    with pytest.raises(ConfigError, match="shuffle_interval_s"):
        HyParViewConfig(shuffle_interval_s=0)
    default = HyParViewConfig()
    assert (default.active_size, default.passive_size) == (5, 30)
    assert (default.active_walk_length, default.passive_walk_length) == (6, 3)
    assert (default.shuffle_active, default.shuffle_passive) == (3, 4)
    # On sockets the presets run it with heartbeats on every link.
    assert HyParViewConfig.lan().enabled and HyParViewConfig.lan().heartbeat_interval_s > 0


def test_a_contact_takes_the_joiner_and_walks_it_to_every_other_active_peer() -> None:
    contact = with_active(node("c"), "a", "b")
    contact.handle(Address("j:7946"), Join(peer("j")), 1.0)
    out = contact.drain()
    assert "j" in contact.active
    messages = sent(out)
    assert ("j:7946", NeighborReply(contact.peer, True)) in messages
    walks = {to for to, m in messages if isinstance(m, ForwardJoin)}
    assert walks == {"a:7946", "b:7946"}  # never back to the joiner
    assert all(m.ttl == 6 for _, m in messages if isinstance(m, ForwardJoin))
    assert NeighborUp(peer("j")) in [e.event for e in out if isinstance(e, Emit)]


def test_a_full_contact_drops_a_random_peer_with_a_disconnect() -> None:
    contact = with_active(node("c"), "a", "b", "d", "e", "f")
    contact.handle(Address("j:7946"), Join(peer("j")), 1.0)
    out = contact.drain()
    assert len(contact.active) == 5 and "j" in contact.active
    dropped = [to for to, m in sent(out) if isinstance(m, Disconnect)]
    assert len(dropped) == 1
    victim = dropped[0].split(":")[0]
    assert victim in contact.passive  # dropped, not forgotten
    assert CloseStream(Address(dropped[0])) in out


def test_forward_join_ends_where_the_ttl_runs_out_or_the_view_holds_one_peer() -> None:
    # ttl 0: taken, and told with a high-priority Neighbor.
    x = with_active(node("x"), "a", "b")
    x.handle(Address("a:7946"), ForwardJoin(peer("j"), 0), 1.0)
    assert "j" in x.active
    assert ("j:7946", Neighbor(x.peer, True)) in sent(x.drain())
    # One active peer: taken whatever the ttl (the report's prose).
    y = with_active(node("y"), "a")
    y.handle(Address("a:7946"), ForwardJoin(peer("j"), 5), 1.0)
    assert "j" in y.active
    # Otherwise passed on, never to the sender or the joiner, and kept
    # passive when the ttl is the passive walk length.
    z = with_active(node("z"), "a", "b", "j")
    z.handle(Address("a:7946"), ForwardJoin(peer("k"), 3), 1.0)
    onward = [(to, m) for to, m in sent(z.drain()) if isinstance(m, ForwardJoin)]
    assert onward == [(Address("b:7946"), ForwardJoin(peer("k"), 2))]
    assert "k" in z.passive and "k" not in z.active
    w = with_active(node("w"), "a", "b", "c")
    w.handle(Address("a:7946"), ForwardJoin(peer("k"), 4), 1.0)
    assert "k" not in w.passive


def test_low_priority_is_refused_when_full_and_high_priority_never_is() -> None:
    full = with_active(node("f"), "a", "b", "c", "d", "e")
    full.handle(Address("p:7946"), Neighbor(peer("p"), False), 1.0)
    out = full.drain()
    assert "p" not in full.active and "p" in full.passive
    assert ("p:7946", NeighborReply(full.peer, False)) in sent(out)
    assert full.stats.neighbor_refused == 1
    full.handle(Address("q:7946"), Neighbor(peer("q"), True), 1.0)
    out = full.drain()
    assert "q" in full.active and len(full.active) == 5
    assert ("q:7946", NeighborReply(full.peer, True)) in sent(out)
    assert sum(isinstance(m, Disconnect) for _, m in sent(out)) == 1


def test_a_broken_link_is_replaced_from_the_passive_view() -> None:
    core = with_active(node("me"), "a", "b", "c")
    with_passive(core, peer("p"), peer("q"))
    core.drain()
    core.on_stream_down(Address("a:7946"), 2.0)
    out = core.drain()
    assert "a" not in core.active and "a" not in core.passive  # failed: not kept passive
    assert NeighborDown(peer("a")) in [e.event for e in out if isinstance(e, Emit)]
    asks = [(to, m) for to, m in sent(out) if isinstance(m, Neighbor)]
    assert len(asks) == 1 and asks[0][0] in ("p:7946", "q:7946")
    assert asks[0][1].high is False  # two active peers left: min_active, so low priority
    target = asks[0][0]
    # The peer cannot be reached: it leaves the passive view, the next is asked.
    core.on_stream_down(target, 2.1)
    out = core.drain()
    assert target.split(":")[0] not in core.passive
    other = ({"p:7946", "q:7946"} - {target}).pop()
    assert [to for to, m in sent(out) if isinstance(m, Neighbor)] == [other]
    # It accepts: a link again.
    core.handle(Address(other), NeighborReply(peer(other.split(":")[0]), True), 2.2)
    core.drain()
    assert other.split(":")[0] in core.active


def test_an_empty_active_view_asks_with_high_priority() -> None:
    core = with_active(node("me"), "a")
    with_passive(core, peer("p"))
    core.drain()
    core.on_stream_down(Address("a:7946"), 2.0)
    asks = [m for _, m in sent(core.drain()) if isinstance(m, Neighbor)]
    assert asks == [Neighbor(core.peer, True)]


def test_a_refused_request_keeps_the_peer_passive_and_tries_another() -> None:
    core = with_active(node("me"), "a", "b", "c")
    with_passive(core, peer("p"), peer("q"))
    core.drain()
    core.on_stream_down(Address("a:7946"), 2.0)
    first = next(to for to, m in sent(core.drain()) if isinstance(m, Neighbor))
    name = first.split(":")[0]
    core.handle(first, NeighborReply(peer(name), False), 2.1)
    out = core.drain()
    assert name in core.passive
    assert CloseStream(first) in out
    second = [to for to, m in sent(out) if isinstance(m, Neighbor)]
    assert second and second[0] != first


def test_disconnect_moves_the_peer_to_the_passive_view_and_a_stale_one_is_refused() -> None:
    core = with_active(node("me"), "a", "b")
    core.handle(Address("a:7946"), Disconnect(peer("a")), 1.0)
    core.drain()
    assert "a" not in core.active and "a" in core.passive
    # b restarted (epoch 2) and linked again; a Disconnect its first life sent is stale.
    core.handle(Address("b:7946"), Neighbor(peer("b", 2), True), 2.0)
    core.drain()
    assert core.active["b"].epoch == 2
    core.handle(Address("b:7946"), Disconnect(peer("b", 1)), 3.0)
    core.drain()
    assert "b" in core.active
    assert core.stats.stale == 1
    # So is a Neighbor from the older life.
    core.handle(Address("b:7946"), Neighbor(peer("b", 1), True), 3.0)
    assert core.active["b"].epoch == 2 and core.stats.stale == 2


def test_shuffle_walks_then_the_last_node_answers_with_as_many_passive_peers() -> None:
    core = with_active(node("me"), "a", "b")
    with_passive(core, *(peer(f"p{i}") for i in range(6)))
    sample = (peer("o"), peer("o1"), peer("o2"))
    core.handle(Address("a:7946"), Shuffle(peer("o"), sample, 3), 2.0)
    onward = sent(core.drain())
    assert onward == [(Address("b:7946"), Shuffle(peer("o"), sample, 2))]
    core.handle(Address("a:7946"), Shuffle(peer("o"), sample, 1), 3.0)
    out = core.drain()
    replies = [(to, m) for to, m in sent(out) if isinstance(m, ShuffleReply)]
    assert len(replies) == 1 and replies[0][0] == "o:7946"
    assert len(replies[0][1].nodes) == 3
    assert CloseStream(Address("o:7946")) in out  # a short-lived stream
    assert {"o", "o1", "o2"} <= set(core.passive)


def test_a_full_passive_view_evicts_first_what_it_just_sent() -> None:
    cfg = HyParViewConfig(passive_size=8, shuffle_passive=4, shuffle_active=3)
    core = with_active(node("me", cfg), "a")
    with_passive(core, *(peer(f"p{i}") for i in range(8)))
    assert len(core.passive) == 8
    core.on_timer("shuffle", 10.0)
    shuffle = next(m for _, m in sent(core.drain()) if isinstance(m, Shuffle))
    sent_passive = {p.name for p in shuffle.nodes} & set(core.passive)
    fresh = tuple(peer(f"n{i}") for i in range(len(sent_passive)))
    core.handle(Address("a:7946"), ShuffleReply(peer("a"), fresh), 11.0)
    core.drain()
    assert len(core.passive) == 8
    assert not sent_passive & set(core.passive)  # exactly the entries sent went
    assert {p.name for p in fresh} <= set(core.passive)


def test_an_isolated_node_rejoins_through_its_seeds() -> None:
    core = node("me", seeds=["s:7946"])
    assert core.stats.rejoins == 1
    core.on_stream_down(Address("s:7946"), 0.5)  # the seed is down
    core.drain()
    core.on_timer("join", 5.0)
    assert [m for _, m in sent(core.drain())] == [Join(core.peer)]
    core.handle(Address("s:7946"), NeighborReply(peer("s"), True), 5.1)
    core.drain()
    assert "s" in core.active


def overlay_sim(count: int, seed: int = 3) -> Simulator:
    sim = Simulator(seed, codec=registry, wire_check=True)
    for i in range(count):
        seeds = [] if i == 0 else ["n0:7946"]
        sim.add_node(f"n{i}", lambda me, rng, s=seeds: PartsCore(me, rng, overlay_parts(seeds=s)))
        sim.run_for(0.05)
    return sim


def views(sim: Simulator) -> dict[str, HyParView]:
    out = {}
    for address in sim.addresses:
        if sim.is_up(address):
            core = sim.core(address)
            assert isinstance(core, PartsCore)
            part = core.part("overlay")
            assert isinstance(part, HyParView)
            out[part.me.name] = part
    return out


def test_a_simulated_cluster_has_symmetric_full_views_and_is_connected() -> None:
    sim = overlay_sim(40)
    sim.run_for(120.0)
    hv = views(sim)
    for name, part in hv.items():
        for other in part.active:
            assert name in hv[other].active, f"{name} -> {other} is one-sided"
        assert len(part.passive) == 30
    assert sum(len(p.active) == 5 for p in hv.values()) >= 36
    seen, stack = {"n0"}, ["n0"]
    while stack:
        for other in hv[stack.pop()].active:
            if other not in seen:
                seen.add(other)
                stack.append(other)
    assert len(seen) == 40


def test_a_healed_partition_merges_within_the_stated_bound() -> None:
    cfg = HyParViewConfig(shuffle_interval_s=1.0, lost_retry_max_s=4.0, neighbor_timeout_s=1.0)
    sim = Simulator(11, codec=registry)
    for i in range(20):
        seeds = [] if i == 0 else ["n0:7946"]
        sim.add_node(
            f"n{i}",
            lambda me, rng, s=seeds: PartsCore(me, rng, overlay_parts(seeds=s, overlay=cfg)),
        )
        sim.run_for(0.05)
    sim.run_for(20.0)
    left = [a for a in sim.addresses if int(a[1:].split(":")[0]) < 10]
    sim.partition(left, [a for a in sim.addresses if a not in left])
    sim.run_for(120.0)  # long enough for the lost peers' backoff to reach its ceiling
    hv = views(sim)
    assert not any(
        set(hv[n].active) & {f"n{i}" for i in range(10, 20)} for n in (f"n{i}" for i in range(10))
    )
    sim.heal()
    bound = cfg.lost_retry_max_s + cfg.shuffle_interval_s + cfg.neighbor_timeout_s

    def merged() -> bool:
        graph = {name: list(part.active) for name, part in views(sim).items()}
        return len(bfs(graph, "n0")) == len(graph)

    assert not merged()
    assert sim.run_until_true(merged, timeout_s=bound, poll_s=0.01) is not None


def test_a_peers_garbage_is_counted_and_dropped() -> None:
    core = with_active(node(), "a", "b", "c")
    a = Address("a:7946")
    core.handle(a, ForwardJoin(peer("x"), 2**62), 1.0)  # would walk for ever
    core.handle(a, Shuffle(peer("x"), (), -1), 1.0)
    core.handle(a, Shuffle(peer("x"), tuple(peer(f"p{i}") for i in range(300)), 3), 1.0)
    assert core.stats.malformed == 3 and not core.drain()
    # A ShuffleReply nobody asked for adds no one: it is merged up to the
    # size of the Shuffle it answers.
    core.handle(a, ShuffleReply(peer("a"), (peer("y"), peer("z"))), 1.0)
    assert "y" not in core.passive and "z" not in core.passive


def test_an_accept_never_asked_for_is_undone() -> None:
    core = node()
    core.handle(Address("a:7946"), NeighborReply(peer("a"), True), 1.0)
    out = core.drain()
    assert not core.active and "a" in core.passive
    assert (Address("a:7946"), Disconnect(peer("me"))) in sent(out)
    assert any(isinstance(e, CloseStream) for e in out)
    assert core.stats.unasked == 1


def test_an_accept_after_the_request_timed_out_is_kept_if_there_is_room() -> None:
    core = node()
    with_passive(core, peer("a"))
    core.on_timer("shuffle", 1.0)  # the tick asks a passive peer to fill the view
    core.drain()
    core.on_timer(("pending", Address("a:7946")), core.config.neighbor_timeout_s + 1)
    core.drain()
    core.handle(Address("a:7946"), NeighborReply(peer("a"), True), 7.0)
    assert "a" in core.active and core.stats.unasked == 0


def test_a_newer_life_heard_second_hand_replaces_the_active_one() -> None:
    core = with_active(node(), "a", "b")
    newer = Peer("a", Address("a2:7946"), 2)
    core.handle(Address("b:7946"), Disconnect(newer), 1.0)  # any message naming the new life
    out = core.drain()
    assert "a" not in core.active and core.active.keys() == {"b"}
    assert NeighborDown(peer("a")) in [e.event for e in out if isinstance(e, Emit)]
    assert any(isinstance(e, CloseStream) and e.to == Address("a:7946") for e in out)


def test_a_node_refused_for_starved_rounds_takes_a_slot_with_high_priority() -> None:
    cfg = HyParViewConfig(starved_rounds=2, repair_attempts=1)
    core = with_active(node("me", cfg), "a", "b", "c", "d")  # one slot short
    with_passive(core, peer("p"))
    priorities = []
    for period in range(1, 4):
        core.on_timer("shuffle", period * 10.0)
        asks = [m for _, m in sent(core.drain()) if isinstance(m, Neighbor)]
        priorities += [m.high for m in asks]
        core.handle(Address("p:7946"), NeighborReply(peer("p"), asks[0].high), period * 10 + 0.1)
        core.drain()
    # Refused in periods 1 and 2 (a full peer refuses low priority); period 3
    # asks with high priority, which the peer cannot refuse.
    assert priorities == [False, False, True]
    assert core.stats.escalations == 1 and "p" in core.active


def test_a_dropped_peer_asks_the_one_taken_in_its_place() -> None:
    core = with_active(node("me"), "a", "b", "c")
    with_passive(core, *(peer(f"p{i}") for i in range(6)))
    core.handle(Address("a:7946"), Disconnect(peer("a"), True, peer("x")), 1.0)
    asks = [(to, m) for to, m in sent(core.drain()) if isinstance(m, Neighbor)]
    # x links it back to a's side, so the drop cannot cut it off.
    assert asks == [(Address("x:7946"), Neighbor(core.peer, False))]
    assert "a" in core.passive and "x" in core.passive


def test_a_full_node_in_a_small_overlay_names_the_peer_it_takes_to_the_one_it_drops() -> None:
    core = with_active(node("me"), "a", "b", "c", "d", "e")
    now = listened(core)
    core.handle(Address("x:7946"), Neighbor(peer("x"), True), now)
    drops = [(to, m) for to, m in sent(core.drain()) if isinstance(m, Disconnect)]
    assert len(drops) == 1 and drops[0][1].instead == peer("x")


def test_a_node_names_no_one_before_it_has_listened_or_in_a_large_overlay() -> None:
    core = with_active(node("me"), "a", "b", "c", "d", "e")
    now = listened(core)
    core.handle(Address("x:7946"), Neighbor(peer("x"), True), now / 2)
    drops = [m for _, m in sent(core.drain()) if isinstance(m, Disconnect)]
    assert len(drops) == 1 and drops[0].instead is None
    for i in range(4 * core.config.active_size):  # walks of 20 origins passed through
        core.handle(Address("a:7946"), Shuffle(peer(f"o{i}"), (), 3), now - 1)
    core.drain()
    core.handle(Address("y:7946"), Neighbor(peer("y"), True), now)
    drops = [m for _, m in sent(core.drain()) if isinstance(m, Disconnect)]
    assert len(drops) == 1 and drops[0].instead is None


def test_a_full_node_in_a_small_overlay_swaps_a_link_and_keeps_its_degree() -> None:
    cfg = HyParViewConfig(rewire_periods=1)  # every period, for the test
    core = with_active(node("me", cfg), "a", "b", "c", "d", "e")
    with_passive(core, peer("p"))
    now = listened(core)
    core.on_timer("shuffle", now)
    swaps = [(to, m) for to, m in sent(core.drain()) if isinstance(m, Neighbor)]
    assert len(swaps) == 1 and swaps[0][0] == Address("p:7946")
    ask = swaps[0][1]
    assert ask.high and ask.offer is not None and ask.offer.name in core.active
    # p took it, dropping q: the offered peer is dropped and told to ask q.
    core.handle(Address("p:7946"), NeighborReply(peer("p"), True, peer("q")), now + 0.1)
    out = core.drain()
    assert "p" in core.active and ask.offer.name not in core.active and len(core.active) == 5
    assert (ask.offer.address, Disconnect(core.peer, True, peer("q"))) in sent(out)
    assert core.stats.rewires == 1


def test_the_asked_side_of_a_swap_hands_its_dropped_peer_the_offered_one() -> None:
    core = with_active(node("p"), "a", "b", "c", "d", "e")
    core.handle(Address("x:7946"), Neighbor(peer("x"), True, peer("y")), 1.0)
    out = sent(core.drain())
    drops = [(to, m) for to, m in out if isinstance(m, Disconnect)]
    assert len(drops) == 1 and drops[0][1].instead == peer("y")
    dropped = drops[0][1 - 1]
    assert (Address("x:7946"), NeighborReply(core.peer, True, peer(dropped.split(":")[0]))) in out


def test_a_node_that_hears_many_shuffles_never_swaps() -> None:
    cfg = HyParViewConfig(rewire_periods=1)
    core = with_active(node("me", cfg), "a", "b", "c", "d", "e")
    with_passive(core, peer("p"))
    now = listened(core)
    for i in range(4 * cfg.active_size):  # walks of 20 origins passed through
        core.handle(Address("a:7946"), Shuffle(peer(f"o{i}"), (), 3), now - 1)
    core.drain()
    core.on_timer("shuffle", now)
    assert not any(isinstance(m, Neighbor) for _, m in sent(core.drain()))
    assert core.stats.rewires == 0


def test_a_dropped_node_does_not_ask_the_dropper_back_in_the_same_round() -> None:
    # The dropper is full, and the close of the dropped link would fail the
    # request: it waits for the next round.
    core = with_active(node("me"), "a", "b", "c")
    core.handle(Address("a:7946"), Disconnect(peer("a"), True), 1.0)
    assert "a" in core.passive
    assert not any(isinstance(m, Neighbor) for _, m in sent(core.drain()))
    core.on_timer("shuffle", 10.0)
    asks = [to for to, m in sent(core.drain()) if isinstance(m, Neighbor)]
    assert asks == [Address("a:7946")]
