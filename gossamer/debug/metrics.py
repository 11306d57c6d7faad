"""Prometheus metrics for one node, read from its :class:`DebugSource` at scrape time.

Nothing is counted here: the runtime keeps its counters (:class:`Counters`),
each part keeps a stats dataclass whose fields say which metric they are
(``gossamer.observe.counter`` and ``Family.series``), and each part's view
gives its gauges (``samples()``).  A custom collector reads them when
Prometheus scrapes and turns them into metric families, so a new part's
metrics appear without a line here.

Each scrape builds its own ``CollectorRegistry``, never the process-wide
default: several nodes can live in one process (tests, an application
running two clusters), and registering a second node's collector in a
shared registry would either fail on duplicate names or mix the nodes.

Invariants the output relies on:

* Every labelled family lists its label values sorted, so two scrapes of the
  same state are byte-identical.
* A family that both the runtime and a part fill (``gossamer_shed``,
  ``gossamer_dropped``) has one series per label value: the part's count
  wins over a runtime entry of the same name, so no series is duplicated.
* prometheus-client appends ``_total`` to counter families itself; the family
  names are written without it.
* A view's ``samples()`` may compute (a ring's shares build its points:
  seconds on a large ring).  The ``/metrics`` handler computes them off the
  engine loop and passes them in as ``view_samples``; without them the
  collector computes on the calling thread, which is fine only off the loop
  (a script, a test).
"""

from __future__ import annotations

__all__ = ["DebugCollector", "render_metrics", "view_samples"]

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gossamer.debug.source import Counters, DebugSource
from gossamer.observe import DROPPED, SHED, Family, PartView, Sample, stat_samples

_NODE_INFO: Final = Family(
    "gossamer_node_info", "Always 1; the labels describe the local node.", "gauge"
)
_UPTIME: Final = Family("gossamer_uptime_seconds", "Seconds since the node started.", "gauge")
_STREAMS: Final = Family("gossamer_streams_open", "TCP streams open right now.", "gauge")
_REFUSED: Final = Family(
    "gossamer_send_refused", "Sends refused locally, by reason.", label="reason"
)
_KNOCKS: Final = Family(
    "gossamer_knocks", "Knocks on a broken link's port, by answer.", label="answer"
)


def view_samples(views: Mapping[str, PartView]) -> list[Sample]:
    """Every view's samples, in part order (may compute: call it off the loop)."""
    return [sample for view in views.values() for sample in view.samples()]


class DebugCollector:
    """A prometheus-client collector that reads ``source`` each time it is collected.

    Satisfies ``prometheus_client.registry.Collector``.  It has no ``describe``,
    so register it with ``CollectorRegistry(auto_describe=False)``: describing
    would mean a second full read of the node for nothing.

    With ``samples`` (the views' samples, computed beforehand) it reads no
    view and computes nothing.
    """

    __slots__ = ("_samples", "_source")

    def __init__(self, source: DebugSource, samples: list[Sample] | None = None) -> None:
        self._source = source
        self._samples = samples

    def collect(self) -> Iterator[Metric]:
        # Read everything first: one consistent snapshot per scrape.
        info = self._source.info()
        counters = self._source.counters()
        gauges = self._samples
        if gauges is None:
            gauges = view_samples(self._source.view())

        node = GaugeMetricFamily(
            _NODE_INFO.name, _NODE_INFO.help, labels=["name", "cluster", "version"]
        )
        node.add_metric([info.name, info.cluster, info.version], 1)
        yield node
        yield from _families(
            [
                *gauges,
                Sample(_UPTIME, info.uptime_s),
                Sample(_STREAMS, counters.streams_open),
                *_part_samples(counters),
                *_labelled(_REFUSED, counters.refused),
                *_labelled(_KNOCKS, counters.knocks),
            ],
            defaults=(
                *_labelled(DROPPED, counters.dropped),
                *_labelled(SHED, counters.shed),
            ),
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


def render_metrics(source: DebugSource, view_samples: list[Sample] | None = None) -> bytes:
    """The Prometheus text exposition of ``source`` now.

    ``view_samples`` are the views' samples, computed beforehand: see
    :class:`DebugCollector`.  Without them they are computed on the calling
    thread, so on the engine loop pass them.

    A fresh registry per call: cheap (registering a collector without
    ``describe`` reads nothing) and never shared with another node.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DebugCollector(source, view_samples))
    return generate_latest(registry)


def _part_samples(counters: Counters) -> list[Sample]:
    return [
        sample for name, stats in counters.parts.items() for sample in stat_samples(stats, name)
    ]


def _labelled(family: Family, values: Mapping[str, int]) -> list[Sample]:
    return [Sample(family, value, label) for label, value in values.items()]


def _families(samples: Iterable[Sample], defaults: Iterable[Sample]) -> Iterator[Metric]:
    """One metric family per family name, in first-seen order, label values sorted.

    ``defaults`` fill series the ``samples`` do not have (the runtime's
    entries of families the parts fill too).
    """
    by_name: dict[str, tuple[Family, dict[str | None, float]]] = {}
    for sample in samples:
        family, series = by_name.setdefault(sample.family.name, (sample.family, {}))
        series[sample.label] = sample.value
    for sample in defaults:
        family, series = by_name.setdefault(sample.family.name, (sample.family, {}))
        series.setdefault(sample.label, sample.value)
    for always in (DROPPED, SHED, _REFUSED):  # present even with no series yet
        by_name.setdefault(always.name, (always, {}))
    for family, series in by_name.values():
        if family.label is None:
            cls = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            yield cls(family.name, family.help, value=series.get(None, 0))
            continue
        labelled: CounterMetricFamily | GaugeMetricFamily
        if family.kind == "counter":
            labelled = CounterMetricFamily(family.name, family.help, labels=[family.label])
        else:
            labelled = GaugeMetricFamily(family.name, family.help, labels=[family.label])
        for label in sorted(key for key in series if key is not None):
            labelled.add_metric([label], series[label])
        yield labelled


def _directional(
    name: str, help_text: str, incoming: Mapping[str, int], outgoing: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=["direction", "type"])
    sides: Iterable[tuple[str, Mapping[str, int]]] = (("in", incoming), ("out", outgoing))
    for direction, values in sides:
        for kind in sorted(values):
            family.add_metric([direction, kind], values[kind])
    return family
