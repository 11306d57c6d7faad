"""``gossamer sim demo``: a small simulated cluster, narrated for a newcomer.

Five nodes run the teaching protocol (:mod:`gossamer.lab.news`) in the
deterministic simulator.  The script partitions the network, heals it,
crashes a node and restarts it, and after each step says in plain words what
the nodes know and why.  Everything happens in virtual time, so the whole
story takes a fraction of a second and the same seed tells it the same way.
"""

from __future__ import annotations

__all__ = ["run_demo"]

import random
from collections.abc import Callable

from gossamer.clocks import Ordering, VersionVector
from gossamer.ids import Address, NodeId
from gossamer.lab.news import NewsConfig, NewsCore, news_codec
from gossamer.sim.network import NetworkConfig
from gossamer.sim.simulator import Simulator


def _knowledge(vv: VersionVector) -> str:
    if not len(vv):
        return "nothing yet"
    return ", ".join(f"{author}:{number}" for author, number in vv.items())


class _Story:
    def __init__(self, sim: Simulator, write: Callable[[str], None]) -> None:
        self.sim = sim
        self.write = write

    def say(self, text: str) -> None:
        self.write(f"t={self.sim.now:6.2f}s  {text}")

    def cores(self) -> dict[Address, NewsCore]:
        out: dict[Address, NewsCore] = {}
        for addr in self.sim.addresses:
            core = self.sim.core(addr)
            if isinstance(core, NewsCore):
                out[addr] = core
        return out

    def agree(self, group: list[Address]) -> bool:
        cores = self.cores()
        vectors = {cores[a].known for a in group if a in cores}
        return len(vectors) == 1

    def wait_agreement(
        self, group: list[Address], what: str, since: float, event: str, timeout_s: float = 15.0
    ) -> None:
        # Agreement is checked between publications: a fresh headline always
        # takes a few gossip rounds to spread, so poll often.
        when = self.sim.run_until_true(lambda: self.agree(group), timeout_s, poll_s=0.05)
        if when is None:
            self.say(f"{what} did not agree within {timeout_s:.0f}s (lossy network?)")
            return
        names = ", ".join(self.sim.node_id(a).name for a in group)
        known = self.cores()[group[0]].known
        self.say(f"{what} agree, {when - since:.2f}s after {event}: {names} all know")
        self.say(f"    [{_knowledge(known)}]")


def run_demo(
    write: Callable[[str], None], seed: int = 7, nodes: int = 5, loss: float = 0.01
) -> Simulator:
    """Run the narrated scenario, handing each line to ``write``; return the
    simulator (for tests and the curious)."""
    if nodes < 3:
        raise ValueError("the demo needs at least 3 nodes")
    names = [f"n{i + 1}" for i in range(nodes)]
    addresses = [Address(f"{name}:7946") for name in names]
    config = NewsConfig(gossip_interval_s=0.5, publish_interval_s=4.0)
    sim = Simulator(seed, NetworkConfig(loss=loss), codec=news_codec, trace=True)
    story = _Story(sim, write)

    def factory(me: NodeId, rng: random.Random) -> NewsCore:
        return NewsCore(me, rng, addresses, config)

    write(f"gossamer sim demo: {nodes} simulated nodes, seed {seed}, {loss:.0%} datagram loss")
    write("Each node publishes a numbered headline every 4s and, every 0.5s, sends what it")
    write("knows (a version vector: author -> newest headline number) to one random peer,")
    write("which answers with anything the sender lacks. No node is in charge.")
    write("")
    for name in names:
        sim.add_node(name, factory)
    story.say(f"{nodes} nodes boot; each knows only its own news")
    sim.run_until(4.5)
    story.wait_agreement(addresses, f"all {nodes} nodes", 0.0, "boot")

    half = max(1, nodes // 2)
    left, right = addresses[:half], addresses[half:]

    def label(group: list[Address]) -> str:
        return "{" + ", ".join(sim.node_id(a).name for a in group) + "}"

    sim.run_until(10.0)
    sim.partition(left, right)
    story.say(f"the network splits: {label(left)} | {label(right)}; messages across are lost")
    sim.run_until(18.0)
    cores = story.cores()
    a, b = cores[left[0]], cores[right[0]]
    relation = a.known.compare(b.known)
    if relation is Ordering.CONCURRENT:
        story.say(
            f"both sides kept publishing: {sim.node_id(left[0]).name} knows "
            f"[{_knowledge(a.known)}] and {sim.node_id(right[0]).name} knows "
            f"[{_knowledge(b.known)}]"
        )
        story.say("their version vectors compare as CONCURRENT: each has news the other lacks")
    else:
        story.say(f"the two sides' knowledge compares as {relation.name}")
    sim.heal()
    healed = sim.now
    story.say("the network heals")
    story.wait_agreement(addresses, f"all {nodes} nodes", healed, "the heal")

    victim = addresses[-1]
    sim.run_until(26.0)
    sim.crash(victim)
    story.say(
        f"{sim.node_id(victim).name} crashes (no goodbye); its peers' datagrams to it are now lost"
    )
    survivors = addresses[:-1]
    crashed = sim.now
    story.wait_agreement(survivors, "the survivors", crashed, "the crash")
    sim.run_until(32.0)
    ident = sim.restart(victim)
    story.say(
        f"{ident.name} restarts as a new life (epoch {ident.epoch}, author {ident.name}#"
        f"{ident.epoch}); it remembers nothing"
    )
    restarted = sim.now
    story.wait_agreement(
        addresses, f"with the newcomer, all {nodes} nodes", restarted, "the restart"
    )
    story.say(
        f"{ident.name}'s first life's news ({ident.name}#{ident.epoch - 1}) is still remembered;"
        f" its new life publishes as {ident.name}#{ident.epoch}"
    )
    sim.run_until(40.0)
    story.wait_agreement(addresses, f"at the end, all {nodes} nodes", 0.0, "boot")

    stats = sim.stats
    dropped = ", ".join(f"{n} {reason}" for reason, n in stats.dropped.items()) or "none"
    write("")
    write(
        f"In {sim.now:.0f} simulated seconds the nodes sent {stats.messages_sent:,} datagrams "
        f"({stats.bytes_sent:,} bytes); lost: {dropped}."
    )
    write(
        f"Trace digest {sim.trace_hash()}: "
        f"`gossamer sim demo --seed {seed}` tells the same story again."
    )
    return sim
