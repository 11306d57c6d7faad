"""A teaching protocol: push-pull anti-entropy of version vectors.

This is the smallest protocol that exercises every foundation piece -- a
sans-IO core, timers, datagrams, the wire codec, version vectors and the
simulator's faults -- and it is what ``gossamer demo`` and the reusable
cluster state machine (``gossamer.testing.cluster``) run.  It is not a
membership protocol: every node is given the full list of peer addresses.

The algorithm (Demers et al., *Epidemic Algorithms for Replicated Database
Maintenance*, PODC 1987, "anti-entropy, push-pull"):

* Each node is an *author*: every ``publish_interval_s`` it publishes its next
  headline, numbered 1, 2, 3... under the author key ``name#epoch``.  What a
  node knows is a version vector: for every author, the newest number heard.
  Numbers from one author only grow, so knowing number k means knowing 1..k.
* Every ``gossip_interval_s`` a node sends its vector to one peer chosen with
  its own ``Random`` (a :class:`Digest`).  The receiver merges it; if the
  sender lacked anything the receiver knew, the receiver answers with its
  merged vector (an :class:`Update`), which is merged and never answered.

Limits, as a teaching protocol: a vector gains one author per node life and
never forgets one, so it grows with restarts; a real protocol prunes the
authors of ended lives (the member table's epochs say which).  Messages of
other types are ignored and counted in ``NewsCore.ignored``.

Invariants: a node's knowledge only grows (merge is an upper bound), an
author's own entry is never ahead of what it published, and once the
network stops changing, every pair of live nodes that can reach each other
converges to equal vectors in O(log n) rounds.  A restarted node is a new
author (``name#2``), so its fresh count never looks older than its previous
life's.
"""

from __future__ import annotations

__all__ = [
    "Digest",
    "Learned",
    "NewsConfig",
    "NewsCore",
    "Published",
    "Update",
    "news_codec",
]

import random
from dataclasses import dataclass

from gossamer.clocks import VersionVector
from gossamer.config import check_positive
from gossamer.effects import Effect, Outbox, TimerKey
from gossamer.ids import Address, NodeId
from gossamer.wire import Message, Registry

news_codec = Registry("gossamer-news")
"""The teaching protocol's own message table (separate from the cluster protocol's)."""


@news_codec.message(1)
@dataclass(frozen=True, slots=True)
class Digest(Message):
    """Everything the sender knows; answer with an :class:`Update` if it lacks something."""

    known: VersionVector


@news_codec.message(2)
@dataclass(frozen=True, slots=True)
class Update(Message):
    """The answer to a :class:`Digest`: the receiver's merged knowledge. Never answered."""

    known: VersionVector


@dataclass(frozen=True, slots=True)
class Published:
    """Event: this node published headline ``number`` under ``author``."""

    author: str
    number: int


@dataclass(frozen=True, slots=True)
class Learned:
    """Event: a message from ``source`` taught this node newer headlines of ``authors``."""

    source: Address
    authors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewsConfig:
    """Timing of the teaching protocol."""

    gossip_interval_s: float = 0.5
    """How often a node sends its vector to one random peer, in seconds."""
    publish_interval_s: float = 3.0
    """How often a node publishes a headline, in seconds."""

    def __post_init__(self) -> None:
        check_positive("NewsConfig", "gossip_interval_s", self.gossip_interval_s)
        check_positive("NewsConfig", "publish_interval_s", self.publish_interval_s)


class NewsCore:
    """One node of the teaching protocol (sans-IO; see the module docstring)."""

    def __init__(
        self, me: NodeId, rng: random.Random, peers: list[Address], config: NewsConfig | None = None
    ) -> None:
        self.me = me
        self.author = f"{me.name}#{me.epoch}"
        self.known = VersionVector()
        self._rng = rng
        self._peers = sorted(p for p in peers if p != me.address)
        self._config = config if config is not None else NewsConfig()
        self._out = Outbox()
        self.ignored = 0
        """Messages of a type this protocol does not know, dropped."""

    def start(self, now: float) -> None:
        # Spread the first rounds so nodes booted together do not gossip in lockstep.
        cfg = self._config
        self._out.set_timer("gossip", now + self._rng.uniform(0, cfg.gossip_interval_s))
        self._out.set_timer("publish", now + self._rng.uniform(0, cfg.publish_interval_s))

    def handle(self, sender: Address, message: Message, now: float) -> None:
        match message:
            case Digest(known=theirs):
                self._merge(sender, theirs)
                if not theirs.dominates(self.known):
                    self._out.datagram(sender, Update(self.known))
            case Update(known=theirs):
                self._merge(sender, theirs)
            case _:
                self.ignored += 1

    def on_timer(self, key: TimerKey, now: float) -> None:
        cfg = self._config
        if key == "gossip":
            if self._peers:
                self._out.datagram(self._rng.choice(self._peers), Digest(self.known))
            self._out.set_timer("gossip", now + cfg.gossip_interval_s)
        elif key == "publish":
            self.known = self.known.increment(self.author)
            self._out.emit(Published(self.author, self.known.get(self.author)))
            self._out.set_timer("publish", now + cfg.publish_interval_s)

    def on_stream_up(self, peer: Address, now: float) -> None:
        """The teaching protocol uses datagrams only."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        """The teaching protocol uses datagrams only."""

    def drain(self) -> list[Effect]:
        return self._out.drain()

    def _merge(self, sender: Address, theirs: VersionVector) -> None:
        merged = self.known.merge(theirs)
        if merged != self.known:
            newer = tuple(a for a in merged.nodes() if merged.get(a) > self.known.get(a))
            self.known = merged
            self._out.emit(Learned(sender, newer))
