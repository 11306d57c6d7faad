"""Lifeguard: the extensions that keep SWIM from blaming healthy nodes for its own slowness.

Dadgar, Phillips, Currey, *Lifeguard: Local Health Awareness for More
Accurate Failure Detection* (2017).  A SWIM node that is itself slow (starved
of CPU, its inbox backed up) misses acks and suspects the healthy members it
probes.  Lifeguard adds three remedies, all local to each node:

* **Local health multiplier** (:class:`Awareness`): a score in
  ``0 .. max_multiplier - 1``.  It goes up when a probe of ours misses its ack
  while the members helping with it did not nack (our own replies are late,
  not theirs), and when we had to refute a suspicion of ourselves; it goes
  down on every probe answered in time.  Probe intervals and timeouts are
  multiplied by ``score + 1``: a node that doubts itself probes less often
  and waits longer.
* **Nacks**: a member asked to probe on our behalf (ping-req) answers with a
  nack when the target stays silent, so we learn that *it* is fine and the
  silence is real.  A missing nack counts against our own health.
* **Dynamic suspicion timeout** (:class:`Suspicion`): a suspicion starts with
  a long timeout and shrinks toward the short one as independent members
  confirm it, so a real failure is declared as fast as before while a lone,
  slow accuser waits long enough for the target to refute.
* The **buddy system** (a probe of a suspect carries the suspicion first, so
  the suspect hears it at once and refutes) lives in ``swim.py``, where
  probes are built.

The formulas are plain functions of their arguments, with the cluster size
``n`` estimated by the caller (alive and suspect members, itself included).
Nothing here reads a clock: times come in as ``now`` (seconds).
"""

from __future__ import annotations

__all__ = [
    "Awareness",
    "Suspicion",
    "confirmations_needed",
    "push_pull_scale",
    "retransmit_limit",
    "suspicion_timeout_max_s",
    "suspicion_timeout_min_s",
    "suspicion_timeout_s",
]

import math

from gossamer.errors import LocalError


def suspicion_timeout_min_s(suspicion_mult: float, n: int, probe_interval_s: float) -> float:
    """The shortest suspicion: ``suspicion_mult * max(1, log10(max(n, 1))) * probe_interval_s``.

    It grows with the logarithm of the cluster size because the news of a
    refutation needs about that many gossip rounds to reach everyone.  Below
    ten members the factor is held at 1, so a small cluster still gives a
    suspect ``suspicion_mult`` probe intervals to refute.
    """
    return suspicion_mult * max(1.0, math.log10(max(n, 1))) * probe_interval_s


def suspicion_timeout_max_s(min_s: float, suspicion_max_timeout_mult: float) -> float:
    """The longest suspicion: ``suspicion_max_timeout_mult * min_s``."""
    return suspicion_max_timeout_mult * min_s


def confirmations_needed(suspicion_mult: int, n: int) -> int:
    """How many independent confirmations shrink a suspicion to its minimum: ``k``.

    ``suspicion_mult - 2``, or 0 when the cluster has too few other members to
    confirm (``n - 2 < k``), in which case a suspicion takes the minimum at once.
    """
    k = suspicion_mult - 2
    return 0 if n - 2 < k else max(k, 0)


def suspicion_timeout_s(confirmations: int, k: int, min_s: float, max_s: float) -> float:
    """The suspicion timeout after ``confirmations`` of ``k`` expected, in seconds.

    ``max_s - (max_s - min_s) * log(c + 1) / log(k + 1)``, floored to the
    millisecond, never below ``min_s``.  The logarithm makes the first
    confirmations count most: one independent accuser halves the excess far
    sooner than a linear rule would.
    """
    if k < 1:
        return min_s
    fraction = math.log(confirmations + 1) / math.log(k + 1)
    timeout = max_s - fraction * (max_s - min_s)
    return max(min_s, math.floor(timeout * 1000) / 1000)


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times a node sends one piece of news: ``retransmit_mult * ceil(log10(n + 1))``.

    Infection-style dissemination reaches all ``n`` members with high
    probability after O(log n) rounds; the multiplier buys margin against loss.
    """
    return retransmit_mult * math.ceil(math.log10(n + 1))


def push_pull_scale(interval_s: float, n: int) -> float:
    """The full-state sync interval for ``n`` members, in seconds.

    Full states grow with ``n``, so past 32 members the interval is multiplied
    by ``ceil(log2(n) - log2(32)) + 1`` (x2 up to 64, x3 up to 128 ...) to
    keep the bandwidth each node spends on them roughly flat.
    """
    threshold = 32
    if n <= threshold:
        return interval_s
    multiplier = math.ceil(math.log2(n) - math.log2(threshold)) + 1
    return interval_s * multiplier


class Awareness:
    """The local health multiplier: how much this node doubts its own timeliness.

    ``score`` stays in ``0 .. max_multiplier - 1``; :meth:`scale` stretches a
    timeout by ``score + 1``.  With ``max_multiplier = 1`` it is switched off.
    """

    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise LocalError(f"max_multiplier must be >= 1, got {max_multiplier}")
        self.max_multiplier = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> int:
        """Move the score by ``delta``, clamped; return the new score."""
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)
        return self.score

    def scale(self, timeout_s: float) -> float:
        return timeout_s * (self.score + 1)


class Suspicion:
    """One suspicion of one member: who confirmed it, and when it runs out.

    The node that raised the suspicion (``source``) is remembered but is not a
    confirmation; each further, distinct source is one, up to ``k``.  The set
    of sources is bounded by ``k + 1``.
    """

    __slots__ = ("_sources", "k", "max_s", "min_s", "start")

    def __init__(self, source: str, k: int, min_s: float, max_s: float, start: float) -> None:
        if not 0 < min_s <= max_s:
            raise LocalError(f"need 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.k = k
        self.min_s = min_s
        self.max_s = max_s
        self.start = start
        self._sources: set[str] = {source}

    @property
    def confirmations(self) -> int:
        return len(self._sources) - 1

    @property
    def deadline(self) -> float:
        """When the member is declared dead unless it refutes first."""
        return self.start + suspicion_timeout_s(self.confirmations, self.k, self.min_s, self.max_s)

    def confirm(self, source: str) -> bool:
        """Count ``source`` as a confirmation; True if it was a new one (the deadline moved)."""
        if self.confirmations >= self.k or source in self._sources:
            return False
        self._sources.add(source)
        return True
