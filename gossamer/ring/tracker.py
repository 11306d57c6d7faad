"""The ring a node keeps: it follows the live members and says when it changes.

The node's ring part (``part.py``) owns one :class:`RingTracker`.  After
every batch of member events, it hands the tracker the names of the live
members (alive or suspect); when that set differs from the ring's nodes, the
tracker derives the new ring and returns a :class:`RingChanged`, which the
part emits right after the member events that caused it.

Why suspects stay on the ring: a suspicion is often refuted (Lifeguard exists
because slow nodes get suspected), and moving a node's keys away and back for
every false suspicion would cost two hand-offs.  A node leaves the ring when
it is declared dead or leaves.

Invariants: the tracker is sans-IO and cheap per change -- deriving the new
ring and computing what moved are lazy (they run when someone reads
``node.ring`` or ``event.moves``), so a burst of joins costs the engine no
more than comparing name lists.  Every node with the same live set holds an
equal ring, provided every node runs the same ``vnodes``: it is part of the
cluster's contract, like the cluster name.
"""

from __future__ import annotations

__all__ = ["RingChanged", "RingConfig", "RingTracker"]

from collections.abc import Iterable
from dataclasses import dataclass, field

from gossamer.config import check_int
from gossamer.errors import ConfigError
from gossamer.ring.ring import DEFAULT_VNODES, MAX_VNODES, Move, Ring, diff


@dataclass(frozen=True, slots=True)
class RingConfig:
    """The node's ring.  The presets are all the defaults: every node of a
    cluster must use the same ``vnodes``, whatever its network, or they place
    keys differently."""

    enabled: bool = True
    """Keep a ring (``node.ring``) and emit :class:`RingChanged` events."""
    vnodes: int = DEFAULT_VNODES
    """Points per node on the circle.  More points balance the key space better
    (the heaviest of ``n`` nodes owns about ``1 + 2.5/sqrt(vnodes)`` times the
    mean share) but cost memory and build time in proportion: ``vnodes *
    members`` points of about 17 bytes each, and about 77 more each once
    lookups start.  Must be equal on every node."""

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"RingConfig.enabled must be a bool, got {self.enabled!r}")
        check_int("RingConfig", "vnodes", self.vnodes, 1, MAX_VNODES)

    # The presets are all the defaults, on purpose: a ring's placement must not
    # depend on the network a node runs on.

    @classmethod
    def lan(cls) -> RingConfig:
        return cls()

    @classmethod
    def wan(cls) -> RingConfig:
        return cls()

    @classmethod
    def local(cls) -> RingConfig:
        return cls()


@dataclass(frozen=True, slots=True)
class RingChanged:
    """The ring changed: ``added`` nodes joined it and ``removed`` nodes left it.

    ``moves`` lists the ranges of the key space that changed owner, for
    hand-off: each :class:`~gossamer.ring.Move` says which node held the
    keys in ``[start, end)`` and which holds them now.  It is computed the
    first time it is read.
    """

    previous: Ring[str]
    ring: Ring[str]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    _moves: list[tuple[Move[str], ...]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @property
    def moves(self) -> tuple[Move[str], ...]:
        if not self._moves:
            self._moves.append(diff(self.previous, self.ring))
        return self._moves[0]

    def summary(self) -> str:
        """One line for a log: ``"4 nodes: +n3 -n5"``."""
        changes = [f"+{name}" for name in self.added] + [f"-{name}" for name in self.removed]
        noun = "node" if len(self.ring) == 1 else "nodes"
        return f"{len(self.ring)} {noun}: {' '.join(changes)}"


class RingTracker:
    """Keeps the ring of the live members; see the module docstring."""

    def __init__(self, config: RingConfig) -> None:
        self.config = config
        self.ring: Ring[str] = Ring((), vnodes=config.vnodes)
        """The current ring (built lazily on first lookup)."""
        self.changes = 0
        """How many times the ring changed."""
        self._retired: Ring[str] | None = None

    def start(self, live: Iterable[str]) -> None:
        """The node booted with ``live`` members (itself): the first ring, not a change."""
        self.ring = self.ring.with_members(sorted(set(live)))

    def update(self, live: Iterable[str]) -> RingChanged | None:
        """The live members are now ``live``: the change, if the ring changed."""
        names = tuple(sorted(set(live)))
        previous = self.ring
        if names == previous.nodes:
            return None
        ring = previous.with_members(names)
        # Superseded rings keep only what the next derive needs: the one just
        # replaced keeps its points, the one before keeps nothing.  Events and
        # applications that still hold them rebuild on use, so a queue of
        # ring events never pins a table or points per change.
        if self._retired is not None:
            self._retired.release()
        previous.release(points=False)
        self._retired = previous
        self.ring = ring
        self.changes += 1
        before = set(previous.nodes)
        after = set(names)
        return RingChanged(
            previous,
            ring,
            tuple(sorted(after - before)),
            tuple(sorted(before - after)),
        )
