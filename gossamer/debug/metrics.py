"""Prometheus metrics for one node, read from its :class:`DebugSource` at scrape time.

Nothing is counted here: the node already keeps every counter (the SWIM core's
:class:`~gossamer.failure.swim.SwimStats`, the runtime's :class:`Counters`), so a
custom collector reads them when Prometheus scrapes and translates them into
metric families.  That keeps one source of truth and costs nothing between
scrapes.

Each scrape builds its own ``CollectorRegistry``, never the process-wide
default: several nodes can live in one process (tests, the simulator, an
application running two clusters), and registering a second node's collector
in a shared registry would either fail on duplicate names or mix the nodes.

Invariants the output relies on:

* Every labelled family lists its label values sorted, so two scrapes of the
  same state are byte-identical.
* ``gossamer_members`` always has all four statuses, 0 when none, so a query
  such as ``gossamer_members{status="dead"} > 0`` never sees a missing series.
* prometheus-client appends ``_total`` to counter families itself; the family
  names below are written without it.
* The ``gossamer_ring_*`` families appear only for a node that keeps a ring.
  ``gossamer_ring_share`` has one series per node on the ring: its cardinality
  is the cluster's size.  Its values come from ``Ring.share()``, which can
  build the ring's points (seconds on a large ring).  The ``/metrics``
  handler computes the shares off the engine loop and passes the ring and
  its shares in as ``ring_view``, so rendering on the loop computes nothing;
  without a ``ring_view`` the collector calls ``share()`` on the calling
  thread, which is fine only off the loop (a script, a test).
"""

from __future__ import annotations

__all__ = ["SWIM_COUNTERS", "SWIM_DROP_REASONS", "DebugCollector", "RingView", "render_metrics"]

from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from typing import Final, TypeAlias

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gossamer.debug.source import DebugSource
from gossamer.failure.swim import SwimStats
from gossamer.membership.members import Status
from gossamer.ring import Ring

SWIM_COUNTERS: Final[tuple[tuple[str, str, str], ...]] = (
    # (family name without _total, SwimStats field, help)
    ("gossamer_swim_probes", "probes", "Probes this node sent."),
    ("gossamer_swim_acks", "acks", "Acks to this node's own probes, direct or relayed."),
    ("gossamer_swim_ping_reqs", "ping_reqs_sent", "Indirect probes (ping-reqs) this node sent."),
    ("gossamer_swim_nacks_received", "nacks_received", "Nacks received from ping-req helpers."),
    ("gossamer_swim_nacks_sent", "nacks_sent", "Nacks sent while relaying a ping-req."),
    ("gossamer_swim_suspicions", "suspicions", "Suspicions this node raised (a probe failed)."),
    ("gossamer_swim_refutations", "refutations", "Times this node refuted a claim about itself."),
    ("gossamer_swim_deaths_declared", "deaths_declared", "Suspicions this node saw run out."),
    ("gossamer_swim_push_pulls", "push_pulls", "Full-state syncs this node started."),
    ("gossamer_swim_corrections", "corrections", "Corrections sent to peers gossiping old news."),
)
"""The SWIM counters exposed one family each."""

SWIM_DROP_REASONS: Final[tuple[str, ...]] = (
    "claims_refused",
    "ignored",
    "misdirected",
    "relays_shed",
    "state_truncated",
    "stale_acks",
)
"""SwimStats fields exposed as ``gossamer_swim_dropped_total{reason=<field>}`` (sorted)."""

_SWIM_SHED_QUEUE: Final = "swim_updates"

RingView: TypeAlias = tuple[Ring[str], Mapping[str, float]]
"""A ring and its ``share()``, computed beforehand (off the engine loop)."""


class DebugCollector:
    """A prometheus-client collector that reads ``source`` each time it is collected.

    Satisfies ``prometheus_client.registry.Collector``.  It has no ``describe``,
    so register it with ``CollectorRegistry(auto_describe=False)``: describing
    would mean a second full read of the node for nothing.

    With ``ring_view``, the ``gossamer_ring_*`` families describe that ring
    and those shares: the collector neither reads ``source.ring()`` nor
    computes anything.  Without it, it reads ``source.ring()`` and calls
    ``share()`` on the calling thread.
    """

    __slots__ = ("_ring_view", "_source")

    def __init__(self, source: DebugSource, ring_view: RingView | None = None) -> None:
        self._source = source
        self._ring_view = ring_view

    def collect(self) -> Iterator[Metric]:
        # Read everything first: one consistent snapshot per scrape.
        info = self._source.info()
        members = self._source.member_list()
        counters = self._source.counters()
        view = self._ring_view
        if view is None:
            ring = self._source.ring()
            view = None if ring is None else (ring, ring.share())
        swim = counters.swim

        node = GaugeMetricFamily(
            "gossamer_node_info",
            "Always 1; the labels describe the local node.",
            labels=["name", "cluster", "version"],
        )
        node.add_metric([info.name, info.cluster, info.version], 1)
        yield node

        statuses = Tally(m.status for m in members)
        by_status = GaugeMetricFamily(
            "gossamer_members",
            "Members in the local table by status, the local node included.",
            labels=["status"],
        )
        for status in sorted(Status, key=lambda s: s.name.lower()):
            by_status.add_metric([status.name.lower()], statuses[status])
        yield by_status

        yield GaugeMetricFamily(
            "gossamer_health_score",
            "Lifeguard local health score: 0 is healthy; higher stretches probe timeouts.",
            value=info.health_score,
        )
        yield GaugeMetricFamily(
            "gossamer_incarnation",
            "The local node's current incarnation.",
            value=info.incarnation,
        )
        yield GaugeMetricFamily(
            "gossamer_uptime_seconds",
            "Seconds since the node started.",
            value=info.uptime_s,
        )
        yield GaugeMetricFamily(
            "gossamer_streams_open",
            "TCP streams open right now.",
            value=counters.streams_open,
        )

        for name, fieldname, help_text in SWIM_COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(swim, fieldname))
        yield _labelled(
            "gossamer_swim_dropped",
            "Inputs the SWIM core dropped or refused, by reason.",
            "reason",
            {reason: getattr(swim, reason) for reason in SWIM_DROP_REASONS},
        )

        yield _directional(
            "gossamer_messages",
            "Messages received (decoded) and sent, by message type.",
            counters.messages_in,
            counters.messages_out,
        )
        yield _directional(
            "gossamer_bytes",
            "Bytes received and sent on the wire (sealed), by message type.",
            counters.bytes_in,
            counters.bytes_out,
        )
        yield _labelled(
            "gossamer_dropped",
            "Packets and frames received and dropped, by reason.",
            "reason",
            counters.dropped,
        )
        yield _labelled(
            "gossamer_shed",
            "Items shed from a full bounded queue or history, by queue.",
            "queue",
            _shed(counters.shed, swim),
        )
        yield _labelled(
            "gossamer_send_refused",
            "Sends refused locally, by reason.",
            "reason",
            counters.refused,
        )
        if view is not None:
            yield from _ring_families(*view, counters.ring_changes)


def render_metrics(source: DebugSource, ring_view: RingView | None = None) -> bytes:
    """The Prometheus text exposition of ``source`` now.

    ``ring_view`` is the ring to describe and its shares, computed
    beforehand: see :class:`DebugCollector`.  Without it the shares are
    computed on the calling thread, so on the engine loop pass it.

    A fresh registry per call: cheap (registering a collector without
    ``describe`` reads nothing) and never shared with another node.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DebugCollector(source, ring_view))
    return generate_latest(registry)


def _ring_families(ring: Ring[str], shares: Mapping[str, float], changes: int) -> Iterator[Metric]:
    yield GaugeMetricFamily("gossamer_ring_nodes", "Nodes on the local ring.", value=len(ring))
    yield GaugeMetricFamily(
        "gossamer_ring_points",
        "Points (virtual nodes) on the local ring, all nodes together.",
        value=sum(ring.points().values()),
    )
    yield CounterMetricFamily(
        "gossamer_ring_changes",
        "Times the local ring changed since the node started.",
        value=changes,
    )
    share = GaugeMetricFamily(
        "gossamer_ring_share",
        "Fraction of the key space each node owns on the local ring (they sum to 1).",
        labels=["node"],
    )
    for name in sorted(shares):
        share.add_metric([name], shares[name])
    yield share


def _shed(shed: Mapping[str, int], swim: SwimStats) -> dict[str, int]:
    # The SWIM core's own count is the source of truth for its broadcast
    # queue; a runtime that also copies it into Counters.shed under the same
    # name must not produce a duplicate series (or a doubled one).
    merged = dict(shed)
    merged[_SWIM_SHED_QUEUE] = swim.updates_shed
    return merged


def _labelled(
    name: str, help_text: str, label: str, values: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family


def _directional(
    name: str, help_text: str, incoming: Mapping[str, int], outgoing: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=["direction", "type"])
    sides: Iterable[tuple[str, Mapping[str, int]]] = (("in", incoming), ("out", outgoing))
    for direction, values in sides:
        for kind in sorted(values):
            family.add_metric([direction, kind], values[kind])
    return family
