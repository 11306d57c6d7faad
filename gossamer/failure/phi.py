"""The φ-accrual failure detector, one per monitored peer.

Implements Hayashibara, Défago, Yared and Katayama, *The φ Accrual Failure
Detector*, SRDS 2004, with the refinements of Akka's (now Pekko's)
``PhiAccrualFailureDetector``.  Instead of a yes/no verdict the detector
reports a suspicion level: φ is ``-log10`` of the probability that a heartbeat
arrives later than the time that has already passed since the last one, if
inter-arrival times were normally distributed with the mean and deviation of
the recent history.  φ = 1 means a 10 % chance the peer is merely late,
φ = 8 one in a hundred million.  The caller picks a threshold; the detector
adapts to the link's real timing.

Per heartbeat the detector records the interval since the previous one in a
bounded window.  To judge the peer it uses:

* ``mean = window mean + acceptable_heartbeat_pause_s``.  The pause shifts the
  curve so that a stall of that length (a garbage collection, a busy event
  loop, a lost datagram or two) costs next to nothing.
* ``std = max(window deviation, min_std_deviation_s)``.  A perfectly regular
  link would otherwise have a deviation near zero, and φ would jump from 0 to
  infinity a few milliseconds after the expected heartbeat.
* The normal tail through the logistic approximation Akka uses
  (:func:`phi`), which is cheap and has no ``erf`` call.

With the :meth:`PhiConfig.lan` defaults and 1 s heartbeats the detector
passes φ = 8 about 4.5 s after the last heartbeat of a steady run.

Invariants relied on:

* The caller passes ``now`` in seconds from one monotonic clock; the detector
  reads no clock itself.  A heartbeat at or before the last one (a duplicate,
  or reordered delivery) is counted and otherwise ignored, so the last
  heartbeat time never decreases and every recorded interval is > 0.
* The first heartbeat seeds the window with two synthetic intervals,
  ``first_heartbeat_estimate_s`` ± a quarter of it, as Akka does: a peer
  heard once is judged against that guess instead of staying trusted forever.
* The interval ending a silence that made the peer suspect is not recorded
  (also counted): one long outage must not teach the detector that outages
  are normal.
* The window holds at most ``max_sample_size`` intervals.  It keeps a running
  sum and sum of squares, so a heartbeat costs O(1); both sums are recomputed
  exactly once per window's worth of evictions, so rounding drift from the
  subtractions stays bounded however long the peer lives.
"""

from __future__ import annotations

__all__ = [
    "PhiConfig",
    "PhiDetector",
    "PhiError",
    "PhiMonitor",
    "TooManyPeers",
    "elapsed_for_phi",
    "phi",
]

import math
from array import array
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gossamer.config import check_at_least, check_int, check_positive
from gossamer.errors import ConfigError, LocalError

# Coefficients of the logistic approximation to the normal tail,
# P(Z > y) ~= 1 / (1 + exp(y * (_LINEAR + _CUBIC * y * y))), as used by Akka
# (after Bowling et al., "A logistic approximation to the cumulative normal
# distribution", 2009).  Within 0.01 of the exact φ for |y| <= 2.5; further
# out it overstates φ (at y = 5 it gives 7.3 where the normal gives 6.5), so
# thresholds are in the approximation's units, as they are in Akka.
_LINEAR = 1.5976
_CUBIC = 0.070566
_LN10 = math.log(10.0)


class PhiError(LocalError, ValueError):
    """The caller passed the detector an impossible argument (a time that is NaN, say)."""


class TooManyPeers(PhiError):
    """A heartbeat for a new peer would take a :class:`PhiMonitor` past ``max_peers``."""


def _check_finite(owner: str, name: str, value: float) -> None:
    # The shared helpers let infinity through; an infinite estimate or
    # deviation would turn the window's sums into NaN.
    if not math.isfinite(value):
        raise ConfigError(f"{owner}.{name} must be finite, got {value!r}")


def _softplus(z: float) -> float:
    """``log(1 + exp(z))`` without overflow: exp only ever sees a value <= 0."""
    if z > 0.0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


def phi(elapsed_s: float, mean_s: float, std_dev_s: float) -> float:
    """φ after ``elapsed_s`` seconds of silence, for intervals ~ Normal(``mean_s``, ``std_dev_s``).

    ``-log10`` of the logistic approximation to ``P(interval > elapsed_s)``.
    With ``y = (elapsed_s - mean_s) / std_dev_s`` and
    ``z = y * (1.5976 + 0.070566 * y**2)`` the tail is ``1 / (1 + e**z)``, so
    ``φ = log10(1 + e**z)``.  Akka evaluates it in two branches around the
    mean; the single softplus form here is the same value, but it cannot
    overflow or take the log of zero, so φ is finite for any finite input:
    about 0 far before the mean, ``log10(2)`` at the mean, growing like
    ``0.0306 * y**3`` far past it.  ``elapsed_s = inf`` gives ``inf``.

    Non-decreasing in ``elapsed_s``; never negative.  Raises :class:`PhiError`
    if ``elapsed_s`` is NaN, ``mean_s`` is not finite, or ``std_dev_s`` is not
    a finite number > 0.
    """
    if math.isnan(elapsed_s) or not math.isfinite(mean_s):
        raise PhiError(f"phi needs a time and a finite mean, got {elapsed_s!r} and {mean_s!r}")
    if not (math.isfinite(std_dev_s) and std_dev_s > 0.0):
        raise PhiError(f"phi needs a finite standard deviation > 0, got {std_dev_s!r}")
    y = (elapsed_s - mean_s) / std_dev_s
    # y * y overflows to inf for |y| > 1e154, which keeps z's sign: still fine.
    z = y * (_LINEAR + _CUBIC * y * y)
    return _softplus(z) / _LN10


def elapsed_for_phi(target: float, mean_s: float, std_dev_s: float) -> float:
    """The silence, in seconds, after which :func:`phi` reaches ``target``: its inverse.

    This is how a sans-IO caller turns a threshold into a deadline
    (:meth:`PhiDetector.suspect_at`).  It solves ``log10(1 + e**z) = target``
    for ``z``, then the cubic ``0.070566 y**3 + 1.5976 y = z`` in closed form
    (Cardano; one real root, since the cubic is increasing).  Rounding may put
    φ at the returned time a hair either side of ``target``.

    Raises :class:`PhiError` unless ``target`` is a finite number > 0 (φ is
    always > 0), ``mean_s`` finite and ``std_dev_s`` a finite number > 0.
    """
    if not (math.isfinite(target) and target > 0.0):
        raise PhiError(f"elapsed_for_phi needs a finite target > 0, got {target!r}")
    if not math.isfinite(mean_s) or not (math.isfinite(std_dev_s) and std_dev_s > 0.0):
        raise PhiError(
            "elapsed_for_phi needs a finite mean and a finite standard deviation > 0, "
            f"got {mean_s!r} and {std_dev_s!r}"
        )
    s = target * _LN10
    # Inverse softplus, log(e**s - 1), written so that e**s never overflows.
    z = s + math.log(-math.expm1(-s))
    # Depressed cubic y**3 + p*y + q = 0 with p = _LINEAR/_CUBIC > 0, q = -|z|/_CUBIC.
    # The root is odd in z, so solve for |z| and restore the sign; with
    # u = cbrt(-q/2 + sqrt(q**2/4 + p**3/27)) > 0 the root is u - p/(3u),
    # which avoids subtracting two nearly equal cube roots.
    p = _LINEAR / _CUBIC
    half_q = abs(z) / (2.0 * _CUBIC)
    u = math.cbrt(half_q + math.sqrt(half_q * half_q + (p / 3.0) ** 3))
    y = math.copysign(u - p / (3.0 * u), z)
    return mean_s + y * std_dev_s


@dataclass(frozen=True, slots=True)
class PhiConfig:
    """Settings of the φ-accrual detector (:class:`PhiDetector`, :class:`PhiMonitor`).

    The defaults (:meth:`lan`) are Akka's cluster failure detector's, for
    heartbeats sent once a second.
    """

    threshold: float = 8.0
    """φ at or above which the peer is suspected (dimensionless, > 0).  Each
    step of 1 divides the chance of a false suspicion by ten; in time, on a
    steady link, a step costs about ``0.3 * std`` seconds more before a crash
    is noticed.  With the other defaults, 8 means about 4.5 s."""

    max_sample_size: int = 1_000
    """Inter-arrival times kept per peer (1 to 1,000,000).  A bigger window
    gives steadier statistics but follows a link whose timing changed more
    slowly; 1,000 is about 17 minutes of history at one heartbeat a second.
    Memory is 8 bytes an interval, per peer."""

    min_std_deviation_s: float = 0.1
    """Floor of the standard deviation, in seconds (> 0).  A very regular link
    measures a deviation near zero, which would make φ leap from 0 to huge a
    few milliseconds after the expected heartbeat.  A larger floor tolerates
    sudden jitter on such a link at the cost of slower detection."""

    acceptable_heartbeat_pause_s: float = 3.0
    """Silence, in seconds (>= 0), added to the mean interval before judging.
    It absorbs pauses that are not failures: lost heartbeats, garbage
    collection, a stalled event loop.  Detection time grows one for one
    with it."""

    first_heartbeat_estimate_s: float = 1.0
    """Guess of the heartbeat interval, in seconds (> 0), used until real
    intervals arrive: the first heartbeat seeds the window with this value
    ± a quarter of it.  Set it to the interval heartbeats are actually sent
    at; a guess too high delays judging a peer heard only once."""

    def __post_init__(self) -> None:
        check_positive("PhiConfig", "threshold", self.threshold)
        _check_finite("PhiConfig", "threshold", self.threshold)
        check_int("PhiConfig", "max_sample_size", self.max_sample_size, 1, 1_000_000)
        check_positive("PhiConfig", "min_std_deviation_s", self.min_std_deviation_s)
        _check_finite("PhiConfig", "min_std_deviation_s", self.min_std_deviation_s)
        check_at_least(
            "PhiConfig", "acceptable_heartbeat_pause_s", self.acceptable_heartbeat_pause_s, 0.0
        )
        _check_finite(
            "PhiConfig", "acceptable_heartbeat_pause_s", self.acceptable_heartbeat_pause_s
        )
        check_positive("PhiConfig", "first_heartbeat_estimate_s", self.first_heartbeat_estimate_s)
        _check_finite("PhiConfig", "first_heartbeat_estimate_s", self.first_heartbeat_estimate_s)

    @classmethod
    def lan(cls) -> PhiConfig:
        """Akka's defaults: φ 8, 3 s pause, 0.1 s floor; a crash shows after about 4.5 s."""
        return cls()

    @classmethod
    def wan(cls) -> PhiConfig:
        """Links across regions: φ 10, 5 s pause, 0.2 s floor; about 7.2 s.

        Cross-region latency varies by tens of milliseconds and bursts of loss
        swallow several heartbeats in a row, and a false suspicion there is
        costly (it tears down a link that is slow to rebuild), so every margin
        is wider.
        """
        return cls(threshold=10.0, min_std_deviation_s=0.2, acceptable_heartbeat_pause_s=5.0)

    @classmethod
    def local(cls) -> PhiConfig:
        """Loopback tests and demos: φ 8, 1 s pause, 0.05 s floor; about 2.3 s.

        Loopback loses nothing and adds no jitter, so the only pauses are the
        test machine's own stalls; one second covers those on a loaded CI
        runner while keeping crash tests short.
        """
        return cls(min_std_deviation_s=0.05, acceptable_heartbeat_pause_s=1.0)


def _check_now(now: float, where: str) -> None:
    if not math.isfinite(now):
        raise PhiError(f"{where}: now must be a finite time in seconds, got {now!r}")


class PhiDetector:
    """φ-accrual judgement of one peer, fed with the times its heartbeats arrive.

    Owned by one protocol core; every call takes ``now`` from the caller's
    monotonic clock, in seconds.
    """

    __slots__ = (
        "_config",
        "_duplicates",
        "_evictions",
        "_intervals",
        "_last",
        "_late",
        "_next",
        "_sum",
        "_sum_sq",
    )

    def __init__(self, config: PhiConfig | None = None) -> None:
        """Start with no heartbeat heard; ``config`` defaults to :meth:`PhiConfig.lan`."""
        self._config = config if config is not None else PhiConfig.lan()
        # A ring: it grows to max_sample_size, then _next is the oldest slot.
        self._intervals = array("d")
        self._next = 0
        self._sum = 0.0
        self._sum_sq = 0.0
        self._evictions = 0
        self._last: float | None = None
        self._duplicates = 0
        self._late = 0

    @property
    def config(self) -> PhiConfig:
        """The settings this detector judges by."""
        return self._config

    @property
    def last_heartbeat(self) -> float | None:
        """Time of the latest heartbeat heard, in seconds; ``None`` before the first."""
        return self._last

    @property
    def samples(self) -> int:
        """Intervals in the window, the two synthetic ones included; <= ``max_sample_size``."""
        return len(self._intervals)

    @property
    def mean_s(self) -> float | None:
        """Mean interval of the window, in seconds, before the pause is added; ``None`` if empty."""
        if not self._intervals:
            return None
        return self._sum / len(self._intervals)

    @property
    def std_dev_s(self) -> float | None:
        """Standard deviation of the window, in seconds, before the floor; ``None`` if empty."""
        n = len(self._intervals)
        if n == 0:
            return None
        mean = self._sum / n
        # Rounding can leave the difference a hair below zero for a constant window.
        return math.sqrt(max(self._sum_sq / n - mean * mean, 0.0))

    @property
    def duplicates(self) -> int:
        """Heartbeats ignored because they came at or before the latest one."""
        return self._duplicates

    @property
    def late(self) -> int:
        """Heartbeats that ended a suspected silence; their interval was not recorded."""
        return self._late

    def heartbeat(self, now: float) -> None:
        """Record a heartbeat from the peer, heard at ``now``."""
        _check_now(now, "PhiDetector.heartbeat")
        last = self._last
        if last is None:
            estimate = self._config.first_heartbeat_estimate_s
            self._record(estimate * 0.75)
            self._record(estimate * 1.25)
        elif now <= last:
            self._duplicates += 1
            return
        elif self.is_available(now):
            self._record(now - last)
        else:
            self._late += 1
        self._last = now

    def phi(self, now: float) -> float:
        """Suspicion level at ``now``; 0.0 before the first heartbeat (not yet monitored)."""
        _check_now(now, "PhiDetector.phi")
        if self._last is None:
            return 0.0
        mean, std = self._judging_mean_std()
        return phi(now - self._last, mean, std)

    def is_available(self, now: float) -> bool:
        """Whether φ at ``now`` is below the threshold: the peer is trusted."""
        return self.phi(now) < self._config.threshold

    def suspect_at(self) -> float | None:
        """When φ reaches the threshold if no heartbeat comes; ``None`` before the first.

        A deadline for the caller's timer: it moves only when a heartbeat is
        recorded.  It may already be in the past.
        """
        if self._last is None:
            return None
        mean, std = self._judging_mean_std()
        return self._last + elapsed_for_phi(self._config.threshold, mean, std)

    def _judging_mean_std(self) -> tuple[float, float]:
        # Only called once a heartbeat was heard, so the window is not empty.
        n = len(self._intervals)
        mean = self._sum / n
        std = math.sqrt(max(self._sum_sq / n - mean * mean, 0.0))
        return (
            mean + self._config.acceptable_heartbeat_pause_s,
            max(std, self._config.min_std_deviation_s),
        )

    def _record(self, interval: float) -> None:
        intervals = self._intervals
        if len(intervals) < self._config.max_sample_size:
            intervals.append(interval)
            self._sum += interval
            self._sum_sq += interval * interval
            return
        oldest = intervals[self._next]
        intervals[self._next] = interval
        self._next = (self._next + 1) % len(intervals)
        self._evictions += 1
        if self._evictions >= len(intervals):
            # Subtracting evicted values accumulates rounding error without
            # bound; an exact recount once per window keeps the cost O(1)
            # amortised and the drift to one window's worth.
            self._evictions = 0
            self._sum = math.fsum(intervals)
            self._sum_sq = math.fsum(x * x for x in intervals)
        else:
            self._sum += interval - oldest
            self._sum_sq += interval * interval - oldest * oldest


class _Key(Hashable, Protocol):
    """A peer key: hashable and ordered, so that suspects come out sorted."""

    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Key)


class PhiMonitor(Generic[K]):
    """φ-accrual detectors for a bounded set of peers, keyed by ``K`` (an ``Address``, say).

    A peer is monitored from its first heartbeat until :meth:`remove`.  The
    caller decides which peers those are (the overlay: its active links), so
    going past ``max_peers`` is the caller's mistake and raises
    :class:`TooManyPeers`.  A peer not monitored has φ 0, like a detector
    that has heard nothing.
    """

    __slots__ = ("_config", "_detectors", "_max_peers")

    def __init__(self, config: PhiConfig | None = None, *, max_peers: int) -> None:
        """Monitor up to ``max_peers`` peers (1 to 2**31), each judged by ``config``."""
        check_int("PhiMonitor", "max_peers", max_peers, 1, 1 << 31)
        self._config = config if config is not None else PhiConfig.lan()
        self._max_peers = max_peers
        self._detectors: dict[K, PhiDetector] = {}

    @property
    def config(self) -> PhiConfig:
        """The settings every detector judges by."""
        return self._config

    @property
    def max_peers(self) -> int:
        """The most peers monitored at once."""
        return self._max_peers

    def heartbeat(self, peer: K, now: float) -> None:
        """Record a heartbeat from ``peer`` at ``now``, starting to monitor it if new."""
        detector = self._detectors.get(peer)
        if detector is None:
            if len(self._detectors) >= self._max_peers:
                raise TooManyPeers(
                    f"PhiMonitor already monitors max_peers={self._max_peers} peers; "
                    f"remove one before monitoring {peer!r}"
                )
            _check_now(now, "PhiMonitor.heartbeat")
            detector = self._detectors[peer] = PhiDetector(self._config)
        detector.heartbeat(now)

    def phi(self, peer: K, now: float) -> float:
        """``peer``'s suspicion level at ``now``; 0.0 if it is not monitored."""
        detector = self._detectors.get(peer)
        if detector is None:
            _check_now(now, "PhiMonitor.phi")
            return 0.0
        return detector.phi(now)

    def is_available(self, peer: K, now: float) -> bool:
        """Whether ``peer``'s φ at ``now`` is below the threshold (true if not monitored)."""
        return self.phi(peer, now) < self._config.threshold

    def suspects(self, now: float) -> list[K]:
        """The monitored peers whose φ at ``now`` is at or above the threshold, sorted."""
        return sorted(
            peer for peer, detector in self._detectors.items() if not detector.is_available(now)
        )

    def detector(self, peer: K) -> PhiDetector | None:
        """``peer``'s detector, for its statistics and counters; ``None`` if not monitored."""
        return self._detectors.get(peer)

    def remove(self, peer: K) -> bool:
        """Stop monitoring ``peer`` (its history is forgotten); whether it was monitored."""
        return self._detectors.pop(peer, None) is not None

    def __len__(self) -> int:
        return len(self._detectors)

    def __contains__(self, peer: object) -> bool:
        return peer in self._detectors
