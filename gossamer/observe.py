"""What a part shows an operator: its counters, its gauges and its JSON routes, as data.

A part keeps a *stats* dataclass of monotonic counters and publishes a
*view*, a frozen snapshot of what it knows.  Neither knows about HTTP or
Prometheus; this module gives them the vocabulary the debug endpoint reads:

* **Metric metadata on stats fields.**  ``probes: int = counter("Probes this
  node sent.")`` makes the field the counter ``gossamer_<part>_probes``;
  ``name=`` picks another name, and ``DROPPED.series("stale_acks")`` makes it
  one series of a labelled family.  :func:`stat_samples` reads them.
* **Samples from views.**  A view's ``samples()`` returns :class:`Sample`
  values for what is a gauge (members by status, a ring's shares).
* **Routes.**  A view's ``routes()`` maps a name to a function of an
  :class:`ApiRequest`; the endpoint serves it at ``/api/<name>``.  A bad
  query raises :class:`ApiError` with the status to answer.

Views are immutable, so the endpoint may call ``samples()`` and the route
functions on a worker thread: they may compute (a ring's shares take
seconds on a large ring) without holding the loop that answers probes.
Stats are mutable and are copied on the engine's loop before anything reads
them (``dataclasses.replace``).

Families shared between parts and the runtime (:data:`DROPPED`, :data:`SHED`)
are declared here once, so their help text has one source.
"""

from __future__ import annotations

__all__ = [
    "DROPPED",
    "SHED",
    "ApiError",
    "ApiRequest",
    "Family",
    "PartView",
    "Route",
    "Sample",
    "counter",
    "gauge",
    "stat_samples",
]

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias

from gossamer.errors import LocalError

_KEY: Final = "gossamer.metric"


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its name (counters without ``_total``), help, kind and label."""

    name: str
    help: str
    kind: Literal["counter", "gauge"] = "counter"
    label: str | None = None
    """The one label of a labelled family (``reason``, ``queue``, ``status``...)."""

    def series(self, value: str) -> Any:
        """Field metadata: this stats field is the series ``{label="value"}`` of the family."""
        if self.label is None:
            raise LocalError(f"{self.name} has no label; use counter() or gauge()")
        return dataclasses.field(default=0, metadata={_KEY: (self, value)})


@dataclass(frozen=True, slots=True)
class _Unnamed:
    help: str
    kind: Literal["counter", "gauge"]
    name: str | None


def counter(help: str, *, name: str | None = None) -> Any:
    """Field metadata: a counter named ``gossamer_<part>_<field>`` unless ``name`` is given."""
    return dataclasses.field(default=0, metadata={_KEY: (_Unnamed(help, "counter", name), None)})


def gauge(help: str, *, name: str | None = None) -> Any:
    """Field metadata: a gauge named ``gossamer_<part>_<field>`` unless ``name`` is given."""
    return dataclasses.field(default=0, metadata={_KEY: (_Unnamed(help, "gauge", name), None)})


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a family, with the label's value when the family has a label."""

    family: Family
    value: float
    label: str | None = None


DROPPED: Final = Family(
    "gossamer_dropped", "Packets and frames received and dropped, by reason.", label="reason"
)
"""Inputs dropped, by reason: the transport's and the composer's (``unrouted``)."""

SHED: Final = Family(
    "gossamer_shed", "Items shed from a full bounded queue or history, by queue.", label="queue"
)
"""What a bounded queue or history shed, by queue: the runtime's and the parts'."""


def stat_samples(stats: object, part: str) -> list[Sample]:
    """The samples the metric fields of the dataclass ``stats`` describe, in field order.

    Fields without metric metadata are skipped (they still show in
    ``/api/counters``).
    """
    out: list[Sample] = []
    for f in dataclasses.fields(stats):  # type: ignore[arg-type]
        meta = f.metadata.get(_KEY)
        if meta is None:
            continue
        family, label = meta
        if isinstance(family, _Unnamed):
            name = family.name or f"gossamer_{part}_{f.name}"
            family = Family(name, family.help, family.kind)
        out.append(Sample(family, getattr(stats, f.name), label))
    return out


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What a route function is given: the query, the node's clock, and the
    node's other views and counters at the same moment (a route may show
    what two parts know together, as ``/api/overlay`` does)."""

    query: Mapping[str, Sequence[str]]
    """Every value of every query parameter, in the order given."""
    now: float
    """The node's clock when the request came (the clock ``Member.since`` is on)."""
    views: Mapping[str, Any] = field(default_factory=dict)
    """Every part's view by part name."""
    stats: Mapping[str, Any] = field(default_factory=dict)
    """A copy of every part's stats by part name."""


class ApiError(LocalError):
    """The request cannot be answered: ``status`` (400 for a bad query) and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Route: TypeAlias = Callable[[ApiRequest], dict[str, Any]]
"""A JSON route: the body for a request, or :class:`ApiError`."""


class PartView(Protocol):
    """A part's published state: immutable, so any thread may read it.

    ``routes`` and ``samples`` may compute, but must not block on anything
    but the CPU, and must not change the view.
    """

    def routes(self) -> Mapping[str, Route]:
        """JSON routes served at ``/api/<name>``."""
        ...

    def samples(self) -> list[Sample]:
        """Gauges (and anything else not in the part's stats) for ``/metrics``."""
        ...
