"""The debug endpoint: a read-only HTTP view of one running node.

A node can serve a small HTTP application next to its cluster traffic: JSON
about itself, its member table, its consistent-hashing ring (and where a key
lives on it), its recent member and ring events and its counters;
Prometheus metrics at ``/metrics``; a health check at ``/healthz``; and a
self-contained dashboard page at ``/``.  Nothing it serves changes the node:
every route is ``GET`` and reads a :class:`DebugSource`.

It binds ``127.0.0.1`` unless told otherwise, because it shows member names,
addresses and metadata and authenticates no one; expose it further only
behind something that does.

It runs on the node's *engine* loop, the one that drives the protocol cores,
not on the application's loop: it keeps answering while the application's
loop is blocked or busy, which is when it is most needed, and every read it
makes falls between two inputs to the core, so it sees a consistent state.

See ``docs/debug-endpoint.md`` for the routes, the response shapes and the
metric names.
"""

from __future__ import annotations

__all__ = [
    "SOURCE_KEY",
    "Counters",
    "DebugCollector",
    "DebugServer",
    "DebugServerError",
    "DebugSource",
    "EventRecord",
    "NodeInfo",
    "build_app",
    "render_metrics",
]

from gossamer.debug.metrics import DebugCollector, render_metrics
from gossamer.debug.server import SOURCE_KEY, DebugServer, DebugServerError, build_app
from gossamer.debug.source import Counters, DebugSource, EventRecord, NodeInfo
