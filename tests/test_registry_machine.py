"""The registry under random faults: process groups and global names in the cluster machine.

Nodes run SWIM, the overlay (HyParView and Plumtree) and the registry part;
hypothesis mixes the application's joins, leaves, registrations,
re-registrations and unregistrations on random live nodes with the cluster
machine's faults (partitions, one-way blocks, crashes, restarts, loss,
pauses, single steps), and a race rule where several nodes register one
name at the same instant.  The model is what each node life's application
did: its group counts, and the claims it made and withdrew.

Always (after every step), on every live node:

* the part's indexes are exactly what its owner table holds (every group
  entry with its count, every claim on every name, the winner the smallest
  by rank), and so is what its application rebuilds from the
  :class:`RegistryChanged` events it was given, in order;
* its own entries are exactly the model of its life: the joins minus the
  leaves, and the claims made minus those the application withdrew minus
  those the node was told it lost;
* its own claims win there (a claim that stops winning is withdrawn in the
  same input);
* every :class:`NameLost` is about a claim its life held, names a winner
  ranked ahead, and comes once per (life, name, Lamport time).

At quiescence (healed, resumed, lossless; then as long as SWIM and several
anti-entropy rounds take): SWIM sees exactly the live lives alive; every
live node holds the same groups and names, and they are exactly the model of
the live lives (so nothing of a dead life or an old life survives, nothing
left or withdrawn comes back, and nothing a live life holds is lost); every
name has one claim left, the same winner everywhere.  Since a live life's
own claims are the model's claims minus the withdrawn and the lost, every
claim it made that is gone was withdrawn by the application or told lost
exactly once.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TypeAlias, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from gossamer.core import NodeCore
from gossamer.crdt.groups import GroupChange
from gossamer.crdt.names import Claim, NameLost, default_rank
from gossamer.effects import Core
from gossamer.errors import LocalError
from gossamer.failure.swim import SwimConfig
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import HyParViewConfig
from gossamer.membership.members import Status
from gossamer.membership.plumtree import PlumtreeConfig
from gossamer.parts import node_parts
from gossamer.registry.part import RegistryChanged, RegistryConfig, RegistryPart
from gossamer.sim import Simulator
from gossamer.testing.cluster import ClusterMachine
from gossamer.wire import registry
from tests.test_registry_sim import act, part

_T = TypeVar("_T")

Life: TypeAlias = tuple[str, int]
"""(node name, epoch)"""
GroupKey: TypeAlias = tuple[str, str, str]
"""(scope, group, member)"""
ClaimKey: TypeAlias = tuple[str, int]
"""(name, Lamport time): one claim of one life"""

REGISTRY = RegistryConfig.local()
SCOPES = st.sampled_from(["s1", "s2"])
GROUPS = st.sampled_from(["g1", "g2"])
MEMBERS = st.sampled_from(["m1", "m2", "m3"])
NAMES = st.sampled_from(["x", "y", "z"])

CONVERGE_WITHIN_S = 600.0
"""How long after a settle the live nodes must agree: SWIM re-merging a
healed partition, then exchanges; entries an owner's death left behind go
after ``unknown_owner_s`` at most.  SWIM reconnects by push-pulling one
unreachable address (a dead member or a seed) every ``push_pull_interval_s``
(15 s, jittered): two survivors among four crashed addresses find each other
with a chance of 1 in 5 a tick each, and 120 s missed in about one schedule
of 4,000 (seed 607701 in the slow run)."""
STABLE_S = 3 * REGISTRY.anti_entropy_interval_s
"""Agreement must survive this many more anti-entropy rounds."""


def make_node(me: NodeId, rng: random.Random, peers: list[Address]) -> NodeCore:
    """SWIM, the overlay and the registry; every address is a seed, so a
    restarted node can rejoin whoever is up."""
    return NodeCore(
        me,
        rng,
        node_parts(
            seeds=peers,
            swim=SwimConfig.local(),
            overlay=HyParViewConfig.local(),
            broadcast=PlumtreeConfig.local(),
            registry=REGISTRY,
        ),
    )


class RegistryMachine(ClusterMachine):
    codec = registry
    min_nodes = 4
    max_nodes = 6
    settle_s = 2 * REGISTRY.anti_entropy_interval_s

    def __init__(self) -> None:
        super().__init__()
        # The model, per node life: what its application did.
        self.joined: defaultdict[Life, Counter[GroupKey]] = defaultdict(Counter)
        self.made: defaultdict[Life, dict[ClaimKey, str]] = defaultdict(dict)  # -> member
        self.withdrawn: defaultdict[Life, set[ClaimKey]] = defaultdict(set)
        self.lost: defaultdict[Life, set[ClaimKey]] = defaultdict(set)
        # What each life's application was told, change by change.
        self.mirrors: defaultdict[Life, Mirror] = defaultdict(Mirror)
        self._read: dict[Address, int] = {}  # events already read, per node

    def make_core(self, me: NodeId, rng: random.Random, peers: list[Address]) -> Core:
        return make_node(me, rng, peers)

    # ------------------------------------------------------------------ access

    def life(self, address: Address) -> Life:
        me = self.sim.node_id(address)
        return (me.name, me.epoch)

    def part(self, address: Address) -> RegistryPart:
        return part(self.sim, address)

    def act(self, address: Address, fn: Callable[[RegistryPart, float], _T]) -> _T:
        return act(self.sim, address, fn)

    def held(self, life: Life) -> dict[str, tuple[int, str]]:
        """The model's claims of ``life`` still standing: name -> (Lamport, member)."""
        out: dict[str, tuple[int, str]] = {}
        gone = self.withdrawn[life] | self.lost[life]
        for (name, lamport), member in self.made[life].items():
            if (name, lamport) not in gone:
                self.require(
                    name not in out, f"{life} made two standing claims on {name!r}: the model"
                )
                out[name] = (lamport, member)
        return out

    def read_events(self, address: Address) -> None:
        """Take what ``address`` emitted since the last read: NameLost into the model,
        RegistryChanged into its life's mirror.

        Every live node is read after every rule, and a node emits nothing while
        it is down, so what is new belongs to its current life."""
        events = self.sim.events(address)
        # The log is bounded; a shed event would make the reading unreliable.
        assert len(events) < 10_000, "the simulator's event log filled up: raise its limit"
        mirror = self.mirrors[self.life(address)]
        for _, event in events[self._read.get(address, 0) :]:
            if isinstance(event, NameLost):
                self._take_lost(event)
            elif isinstance(event, RegistryChanged):
                mirror.take(event)
        self._read[address] = len(events)

    def _take_lost(self, event: NameLost) -> None:
        lost, winner = event.lost, event.winner
        life = (lost.node, lost.epoch)
        key = (lost.name, lost.lamport)
        self.require(key not in self.lost[life], f"{life} was told twice that its claim {key} lost")
        self.require(
            key in self.made[life] and key not in self.withdrawn[life],
            f"{life} was told it lost {key}, a claim it did not hold",
        )
        self.require(
            lost.member == self.made[life][key],
            f"{life} lost {key} for {lost.member!r}; it held it for {self.made[life][key]!r}",
        )
        self.require(
            event.name == lost.name == winner.name and winner.node != lost.node,
            f"a NameLost that does not add up: {event}",
        )
        self.require(
            default_rank(winner) < default_rank(lost),
            f"{life}'s claim {key} lost to a claim ranked behind it: {winner}",
        )
        self.lost[life].add(key)

    # ------------------------------------------------------------------ rules

    @rule(data=st.data(), scope=SCOPES, group=GROUPS, member=MEMBERS)
    def join(self, data: st.DataObject, scope: str, group: str, member: str) -> None:
        address = data.draw(st.sampled_from(self.up_nodes()), label="join at")
        life = self.life(address)
        count = self.act(address, lambda p, now: p.join(scope, group, member, now))
        self.joined[life][(scope, group, member)] += 1
        want = self.joined[life][(scope, group, member)]
        self.require(count == want, f"{life} joined {want} times, the part says {count}")

    def _with_joins(self) -> list[Address]:
        return [a for a in self.up_nodes() if +self.joined[self.life(a)]]

    @precondition(lambda self: bool(self._with_joins()))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        address = data.draw(st.sampled_from(self._with_joins()), label="leave at")
        life = self.life(address)
        key = data.draw(st.sampled_from(sorted(+self.joined[life])), label="entry")
        count = self.act(address, lambda p, now: p.leave(*key, now))
        self.joined[life][key] -= 1
        want = self.joined[life][key]
        self.require(count == want, f"{life} left {key}: {want} joins left, the part says {count}")

    @rule(data=st.data(), name=NAMES, member=MEMBERS, again=st.booleans())
    def register(self, data: st.DataObject, name: str, member: str, again: bool) -> None:
        """``register``, or ``re_register`` (which renames this life's standing claim)."""
        address = data.draw(st.sampled_from(self.up_nodes()), label="register at")
        self._register(address, name, member, again)

    def _register(self, address: Address, name: str, member: str, again: bool) -> None:
        life = self.life(address)
        self.read_events(address)
        standing = self.held(life).get(name)
        call = RegistryPart.re_register if again else RegistryPart.register
        winner: Claim = self.act(address, lambda p, now: call(p, name, member, now))
        mine = (winner.node, winner.epoch) == life
        if standing is not None:
            lamport, was = standing
            self.require(
                mine and winner.lamport == lamport,
                f"{life} holds {name!r} at {lamport}, yet (re)registering returned {winner}",
            )
            self.require(
                winner.member == (member if again else was),
                f"{life}'s claim on {name!r} names {winner.member!r} after "
                f"{'re_register' if again else 'register'}({member!r})",
            )
            self.made[life][(name, lamport)] = winner.member
        elif mine:
            key = (name, winner.lamport)
            self.require(key not in self.made[life], f"{life} claimed {key} twice")
            self.require(winner.member == member, f"{life} claimed {name!r} as {winner}")
            self.made[life][key] = member
        else:
            self.require(winner.node != life[0], f"{life} is told its old life wins: {winner}")

    @precondition(lambda self: len(self.up_nodes()) > 1)
    @rule(data=st.data(), name=NAMES, member=MEMBERS)
    def race(self, data: st.DataObject, name: str, member: str) -> None:
        """Several nodes register one name at the same instant."""
        up = self.up_nodes()
        racers = data.draw(st.lists(st.sampled_from(up), min_size=2, unique=True), label="racers")
        for address in racers:
            self._register(address, name, member, again=False)

    @rule(data=st.data(), name=NAMES)
    def unregister(self, data: st.DataObject, name: str) -> None:
        address = data.draw(st.sampled_from(self.up_nodes()), label="unregister at")
        life = self.life(address)
        self.read_events(address)
        standing = self.held(life).get(name)
        try:
            done = self.act(address, lambda p, now: p.unregister(name, now))
        except LocalError:
            done = None  # another node's claim wins here: only its owner releases it
        if standing is None:
            self.require(not done, f"{life} unregistered {name!r}, which it did not hold")
        else:
            self.require(done is True, f"{life} holds {name!r}, unregister says {done}")
            self.withdrawn[life].add((name, standing[0]))

    # ------------------------------------------------------------------ invariants

    def always(self) -> None:
        for address in self.up_nodes():
            self.read_events(address)
            self._check_node(address)

    def _check_node(self, address: Address) -> None:
        part, life = self.part(address), self.life(address)
        table = part.table
        # The indexes are exactly what the table holds.
        groups: dict[tuple[str, str, str, str], int] = {}
        claims: dict[str, list[Claim]] = defaultdict(list)
        for owner in table.owners():
            whole = table.whole(owner)
            assert whole is not None
            for scope, group, member, count in whole.group_entries():
                groups[(scope, group, owner, member)] = count
            for name, member, lamport in whole.name_entries():
                claims[name].append(Claim(name, owner, whole.epoch, member, lamport))
        self.require(
            indexed_groups(part) == groups,
            f"{life}: the group index differs from the table: {indexed_groups(part)} != {groups}",
        )
        mirror = self.mirrors[life]
        self.require(
            mirror.groups == groups,
            f"{life}: its application was told of groups {mirror.groups}, it holds {groups}",
        )
        told = {(c.name, c.node): c for held in claims.values() for c in held}
        self.require(
            mirror.claims == told,
            f"{life}: its application was told of claims {mirror.claims}, it holds {told}",
        )
        for name in set(claims) | set(part.names.names()):
            held = sorted(claims.get(name, []), key=default_rank)
            self.require(
                part.names.claims(name) == held,
                f"{life}: the claims on {name!r} differ from the table: "
                f"{part.names.claims(name)} != {held}",
            )
            self.require(
                part.names.winner(name) == (held[0] if held else None),
                f"{life}: {part.names.winner(name)} wins {name!r}, not {held[:1]}",
            )
        # Its own entries are the model of its life, and its claims win here.
        own = table.whole(life[0])
        assert own is not None
        self.require(own.epoch == life[1], f"{life}: its own entries are of life {own.epoch}")
        want = {key: count for key, count in self.joined[life].items() if count}
        have = {(s, g, m): count for s, g, m, count in own.group_entries()}
        self.require(have == want, f"{life} holds {have}, its application joined {want}")
        standing = {name: (lamport, member) for name, member, lamport in own.name_entries()}
        self.require(
            standing == self.held(life),
            f"{life} claims {standing}; made {self.made[life]}, withdrew "
            f"{self.withdrawn[life]}, told lost {self.lost[life]}",
        )
        for name, (lamport, member) in standing.items():
            self.require(
                part.names.winner(name) == Claim(name, life[0], life[1], member, lamport),
                f"{life}'s claim on {name!r} does not win there: {part.names.winner(name)}",
            )

    def at_quiescence(self) -> None:
        when = self.sim.run_until_true(
            lambda: not self.disagreements(), timeout_s=CONVERGE_WITHIN_S, poll_s=0.5
        )
        found = self.disagreements()
        self.require(
            when is not None and not found,
            f"not settled {CONVERGE_WITHIN_S} s after healing: " + "; ".join(found[:5]),
        )
        self.sim.run_for(STABLE_S)
        found = self.disagreements()
        self.require(not found, f"settled, then undone: {'; '.join(found[:5])}")
        self.always()

    def disagreements(self) -> list[str]:
        """What stops the live nodes from agreeing with each other and the model."""
        out: list[str] = []
        up = self.up_nodes()
        lives = dict(self.life(a) for a in up)
        for address in up:
            core = self.sim.core(address)
            assert isinstance(core, NodeCore)
            alive = {m.name: m.epoch for m in core.members() if m.status is Status.ALIVE}
            if alive != lives:
                out.append(f"{address} sees {alive} alive, the live are {lives}")
        if out:
            return out  # the registry follows SWIM: wait for it first
        groups: dict[tuple[str, str, str, str], int] = {}
        names: dict[str, Claim] = {}
        for address in up:
            life = self.life(address)
            self.read_events(address)
            for (scope, group, member), count in self.joined[life].items():
                if count:
                    groups[(scope, group, life[0], member)] = count
            for name, (lamport, member) in self.held(life).items():
                if name in names:
                    out.append(f"{name!r} is claimed by {names[name]} and {life}")
                names[name] = Claim(name, life[0], life[1], member, lamport)
        for address in up:
            part = self.part(address)
            if (held := indexed_groups(part)) != groups:
                out.append(f"{address} holds groups {held}, the live joined {groups}")
            claims = {n: part.names.claims(n) for n in part.names.names()}
            if claims != {n: [c] for n, c in names.items()}:
                out.append(f"{address} holds claims {claims}, the live stand by {names}")
            for owner in part.table.owners():
                version = part.table.version(owner)
                if part.table.entries(owner) and (
                    version is None or lives.get(owner) != version[0]
                ):
                    out.append(f"{address} holds entries of {owner} life {version}")
        return out


class Mirror:
    """A node life's tables as its application rebuilds them from RegistryChanged."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str, str], int] = {}  # (scope, group, node, member)
        self.claims: dict[tuple[str, str], Claim] = {}  # (name, node)

    def take(self, event: RegistryChanged) -> None:
        for change in event.changes:
            if isinstance(change, GroupChange):
                for member, count in change.entries:
                    key = (change.scope, change.group, change.node, member)
                    if count:
                        self.groups[key] = count
                    else:
                        self.groups.pop(key, None)
            else:
                name, node, claim = change
                if claim is None:
                    self.claims.pop((name, node), None)
                else:
                    self.claims[(name, node)] = claim


def indexed_groups(part: RegistryPart) -> dict[tuple[str, str, str, str], int]:
    """Every group entry the part's index holds: (scope, group, node, member) -> count."""
    return {
        (scope, group, node, member): part.groups.count(scope, group, node, member)
        for scope, group, entries in part.groups.groups()
        for node, member in entries
    }


TestRegistryCluster = RegistryMachine.TestCase
TestRegistryCluster.settings = settings(
    max_examples=400,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
def test_registry_cluster_long_schedules() -> None:
    run_state_machine_as_test(
        RegistryMachine,
        settings=settings(
            max_examples=4_000,
            stateful_step_count=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_an_owner_known_in_a_later_life_is_not_taken_in_an_older_one() -> None:
    """Found by the machine.  n1 claims a name and crashes; n0 (crashed before)
    and n1 restart.  n0's new life pulls everything from n2 or n3, which have
    not heard of n1's restart and still hold its first life; n0's SWIM only
    ever knew n1's second life, so no death drops the first, and the second
    has no entries to replace it.  Once a life is known alive, older ones are
    refused."""
    sim = Simulator(0, codec=registry, wire_check=True)
    nodes = [Address(f"n{i}:7946") for i in range(4)]
    for i in range(4):
        sim.add_node(f"n{i}", lambda me, rng: make_node(me, rng, nodes))
    sim.run_for(5.0)
    sim.crash(nodes[0])
    act(sim, nodes[1], lambda p, now: p.register("x", "m1", now))
    sim.run_for(0.01)
    sim.crash(nodes[1])
    sim.restart(nodes[0])
    sim.restart(nodes[1])
    sim.run_for(REGISTRY.unknown_owner_s + 30.0)
    held = {a: part(sim, a).names.claims("x") for a in nodes}
    assert held == {a: [] for a in nodes}
