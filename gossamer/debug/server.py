"""The debug HTTP endpoint: a read-only view of one node, as JSON, metrics and a page.

Every handler reads a :class:`DebugSource` and nothing else: there is no route
that changes the node, and every route is ``GET`` (aiohttp answers any other
method with 405).  The server runs on the node's engine loop, so each handler
runs between two inputs to the core and sees a consistent state; the source's
methods never block, so neither does a handler.  The one computation that can
take long, a ring's shares of the key space (it builds the ring's points the
first time: about 0.1 s for 100 nodes, 2 s for 1000, at 2048 points a node),
runs on a worker thread, once per ring object, so the engine loop keeps
answering probes while it runs; so does a key's lookup.  After the await, a
handler describes the ring object whose shares it got, never a re-read of
``source.ring()``, so nothing that builds points ever runs on the loop.  A
failed computation answers 500 and is not cached: the next request retries.

It binds ``127.0.0.1`` unless told otherwise: member names, addresses and
metadata are not for the open network, and nothing here authenticates.

Routes (see ``docs/debug-endpoint.md`` for the shapes):

* ``/healthz`` -- 200 while the node is alive, 503 once it left.
* ``/api/node``, ``/api/members``, ``/api/events``, ``/api/counters`` -- JSON.
* ``/api/ring[?key=K[&n=N]]`` -- the node's ring, and where a key lives on it.
* ``/metrics`` -- the Prometheus text exposition (:mod:`gossamer.debug.metrics`).
* ``/`` -- a self-contained HTML dashboard polling the JSON routes.
"""

from __future__ import annotations

__all__ = ["MAX_OWNERS", "SOURCE_KEY", "DebugServer", "DebugServerError", "build_app"]

import asyncio
import base64
import dataclasses
import logging
import math
from collections import Counter as Tally
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gossamer.debug.metrics import render_metrics
from gossamer.debug.source import DebugSource, EventRecord
from gossamer.errors import LocalError
from gossamer.ids import address
from gossamer.membership.members import Member, Status
from gossamer.ring import InvalidKey, Ring, key_hash

SOURCE_KEY: Final = web.AppKey("gossamer_debug_source", DebugSource)
"""Where :func:`build_app` keeps the source in the application."""

MAX_OWNERS: Final = 64
"""The largest ``n`` ``/api/ring?key=K&n=N`` accepts: a preference list longer
than any replication factor is a mistake, and the walk to find ``n`` distinct
nodes grows with ``n``."""

log = logging.getLogger("gossamer.debug")

_STATUS_NAMES: Final = tuple(sorted(s.name.lower() for s in Status))

_CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The dashboard loads nothing from anywhere; say so to the browser too."""


class DebugServerError(LocalError, RuntimeError):
    """The debug server was used out of order (started twice, or read before start)."""


@dataclasses.dataclass(slots=True)
class _Shares:
    """The shares of the last ring asked about, computed (or being computed) off the loop.

    One entry is enough: the node has one current ring, and keeping the
    pending future lets concurrent requests (a dashboard polling every
    second while a large ring builds) wait for one computation instead of
    starting one each.
    """

    ring: Ring[str] | None = None
    pending: asyncio.Future[dict[str, float]] | None = None


_SHARES_KEY: Final = web.AppKey("gossamer_debug_ring_shares", _Shares)


async def _ring_shares(app: web.Application, ring: Ring[str]) -> dict[str, float]:
    """``ring.share()``, computed on a worker thread (the ring is immutable and thread-safe).

    Raises what ``share()`` raised; the failure is not kept, so the next
    request for the same ring computes again.
    """
    cache = app[_SHARES_KEY]
    pending = cache.pending
    if cache.ring is not ring or pending is None:
        pending = asyncio.get_running_loop().run_in_executor(None, ring.share)
        cache.ring, cache.pending = ring, pending
        pending.add_done_callback(lambda done: _forget_failure(cache, done))
    # Shielded: a client hanging up must not cancel the computation others wait on.
    return await asyncio.shield(pending)


def _forget_failure(cache: _Shares, done: asyncio.Future[dict[str, float]]) -> None:
    """Drop a failed computation from the cache (retrieving its exception, so
    asyncio does not warn about it when every waiter has hung up)."""
    # exception() first: it must be retrieved even when the cache moved on.
    if (done.cancelled() or done.exception() is not None) and cache.pending is done:
        cache.ring, cache.pending = None, None


# -------------------------------------------------------------------- handlers


async def _healthz(request: web.Request) -> web.Response:
    info = request.app[SOURCE_KEY].info()
    alive = info.status == "alive"
    body = {"status": "ok" if alive else info.status, "name": info.name, "joined": info.joined}
    return web.json_response(body, status=200 if alive else 503)


async def _node(request: web.Request) -> web.Response:
    info = request.app[SOURCE_KEY].info()
    body = dataclasses.asdict(info)
    body["address"] = str(info.address)
    body["uptime_s"] = round(info.uptime_s, 3)
    return web.json_response(body)


async def _members(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    now = source.clock()
    members = sorted(source.member_list(), key=lambda m: m.name)
    tally = Tally(m.status.name.lower() for m in members)
    return web.json_response(
        {
            "members": [_member_json(m, now) for m in members],
            "counts": {status: tally[status] for status in _STATUS_NAMES},
        }
    )


async def _events(request: web.Request) -> web.Response:
    events = request.app[SOURCE_KEY].recent_events()
    raw = request.query.get("since")
    if raw is not None:
        try:
            since = float(raw)
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            return _error(400, f"since must be a finite number of Unix seconds, got {raw!r}")
        events = [e for e in events if e.at > since]
    return web.json_response({"events": [_event_json(e) for e in events]})


async def _counters(request: web.Request) -> web.Response:
    counters = request.app[SOURCE_KEY].counters()
    return web.json_response(
        {
            "swim": dataclasses.asdict(counters.swim),
            "messages_in": _sorted(counters.messages_in),
            "bytes_in": _sorted(counters.bytes_in),
            "messages_out": _sorted(counters.messages_out),
            "bytes_out": _sorted(counters.bytes_out),
            "dropped": _sorted(counters.dropped),
            "shed": _sorted(counters.shed),
            "refused": _sorted(counters.refused),
            "streams_open": counters.streams_open,
        }
    )


async def _ring(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    query = request.query
    keys = query.getall("key", [])
    if len(keys) > 1:
        return _error(400, f"give at most one key, got {len(keys)}")
    key = keys[0] if keys else None
    n = 1
    raw = query.get("n")
    if raw is not None:
        if key is None:
            return _error(400, "n is the number of owners of a key; pass key too")
        # Plain decimal digits only (int() would take " 3", "+3" and "3_0"), and
        # few of them: int() refuses a string of thousands of digits.
        n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
        if not 1 <= n <= MAX_OWNERS:
            return _error(400, f"n must be an integer in [1, {MAX_OWNERS}], got {raw!r}")
    hashed: int | None = None
    if key is not None:
        try:
            hashed = key_hash(key)
        except InvalidKey as exc:
            return _error(400, f"bad key: {exc}")
    ring = source.ring()
    if ring is None:
        return _error(404, "this node keeps no ring")
    changes = source.counters().ring_changes
    # Everything below reads only ``ring``, which is immutable: the node may
    # move on to a new ring while the shares are computed, and this answer
    # still describes one ring consistently.  Anything that may build the
    # ring's points (the shares, a key's owners) runs on a worker thread.
    owners: list[str] = []
    try:
        shares = await _ring_shares(request.app, ring)
        if key is not None and len(ring):
            owners = list(await asyncio.to_thread(ring.owners, key, n))
    except Exception:
        return _ring_failed()
    points = ring.points()
    weights = ring.weights
    body: dict[str, Any] = {
        "nodes": len(ring),
        "vnodes": ring.vnodes,
        "points": sum(points.values()),
        "changes": changes,
        "max_over_mean_share": max(shares.values()) * len(ring) if shares else 0.0,
        "members": [
            {"name": name, "points": points[name], "weight": weights[name], "share": shares[name]}
            for name in sorted(ring.nodes)
        ],
    }
    if key is not None:
        body["key"] = key
        body["hash"] = hashed
        body["owners"] = owners
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    ring = source.ring()
    if ring is None:
        # No await since the read: render_metrics sees the same None.
        body = render_metrics(source)
    else:
        # The shares are computed off the loop, and the collector is handed
        # this ring with them: should the node change its ring during the
        # await, the scrape describes the ring it waited for, and the loop
        # computes nothing.
        try:
            shares = await _ring_shares(request.app, ring)
        except Exception:
            return _ring_failed()
        body = render_metrics(source, ring_view=(ring, shares))
    # CONTENT_TYPE_LATEST carries parameters (version, charset), which
    # Response(content_type=...) refuses; set the header whole instead.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _dashboard(request: web.Request) -> web.Response:
    return web.Response(
        text=DASHBOARD_HTML,
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
    )


def _member_json(member: Member, now: float) -> dict[str, Any]:
    try:
        text: str | None = member.metadata.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "name": member.name,
        "address": str(member.address),
        "epoch": member.epoch,
        "incarnation": member.incarnation,
        "status": member.status.name.lower(),
        "metadata": base64.b64encode(member.metadata).decode("ascii"),
        "metadata_text": text,
        "for_s": round(now - member.since, 3),
    }


def _event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "at": event.at,
        "kind": event.kind,
        "member": event.member,
        "address": str(event.address),
        "epoch": event.epoch,
        "incarnation": event.incarnation,
        "source": event.source,
        "detail": event.detail,
    }


def _sorted(values: Mapping[str, int]) -> dict[str, int]:
    return {key: values[key] for key in sorted(values)}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _ring_failed() -> web.Response:
    """A 500 for a failed ring computation: logged here, not shown to the client."""
    log.exception("debug endpoint: computing the ring's shares or owners failed")
    return _error(500, "computing the ring failed; see the node's log")


def build_app(source: DebugSource) -> web.Application:
    """The debug application for ``source``: read-only GET routes, nothing else."""
    app = web.Application()
    app[SOURCE_KEY] = source
    app[_SHARES_KEY] = _Shares()
    app.router.add_get("/", _dashboard)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/node", _node)
    app.router.add_get("/api/members", _members)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/api/counters", _counters)
    app.router.add_get("/api/ring", _ring)
    app.router.add_get("/metrics", _metrics)
    return app


# ---------------------------------------------------------------------- server


class DebugServer:
    """Serves :func:`build_app` for one source on ``host:port`` (port 0: any free port).

    ``start`` twice without a ``stop`` raises :class:`DebugServerError`, as
    does reading ``address`` or ``url`` while stopped.  ``stop`` is idempotent:
    stopping a server that is not running does nothing, so shutdown paths
    need not track whether start succeeded.  A stopped server may be started
    again (with port 0 it may then get a different port).
    """

    __slots__ = ("_address", "_host", "_port", "_runner", "_source")

    def __init__(self, source: DebugSource, host: str = "127.0.0.1", port: int = 0) -> None:
        address(host, port)  # validates both; raises AddressError (a LocalError)
        self._source = source
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The bound ``host:port``, with the real port when asked for port 0."""
        if self._address is None:
            raise DebugServerError("the debug server is not running")
        return self._address

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def start(self) -> None:
        if self._runner is not None:
            raise DebugServerError("the debug server is already running")
        runner = web.AppRunner(build_app(self._source), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            sockname = runner.addresses[0]
            host, port = str(sockname[0]), int(sockname[1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._address = address(host, port)

    async def stop(self) -> None:
        runner, self._runner, self._address = self._runner, None, None
        if runner is not None:
            await runner.cleanup()


# ------------------------------------------------------------------- dashboard

DASHBOARD_HTML: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gossamer node</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  #node { color: #555; margin-bottom: 1em; }
  table { border-collapse: collapse; margin-bottom: 1.5em; }
  th, td { text-align: left; padding: .2em .8em; border-bottom: 1px solid #ddd; }
  td.meta { font-family: monospace; max-width: 30em; overflow-wrap: anywhere; }
  .alive { color: #1a7f37; } .suspect { color: #b58100; }
  .dead { color: #cf222e; } .left { color: #777; }
  #error { color: #cf222e; }
  .bar { width: 16em; background: #eee; height: .8em; }
  .fill { background: #4a7fc1; height: 100%; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .ring { color: #4a7fc1; }
</style>
</head>
<body>
<h1 id="title">gossamer</h1>
<div id="node"></div>
<div id="error"></div>
<h2>Members <span id="counts"></span></h2>
<table>
  <thead><tr><th>name</th><th>address</th><th>status</th><th>for (s)</th>
  <th>epoch</th><th>incarnation</th><th>metadata</th></tr></thead>
  <tbody id="members"></tbody>
</table>
<section id="ring-section" hidden>
<h2>Ring <span id="ring-summary"></span></h2>
<table>
  <thead><tr><th>node</th><th>share of the key space</th><th>share</th>
  <th>points</th><th>weight</th></tr></thead>
  <tbody id="ring"></tbody>
</table>
</section>
<h2>Recent events</h2>
<table>
  <thead><tr><th>at</th><th>kind</th><th>member</th><th>address</th>
  <th>incarnation</th><th>source</th><th>detail</th></tr></thead>
  <tbody id="events"></tbody>
</table>
<script>
"use strict";
// Every string from the node goes in through textContent, so none is parsed as HTML.
function row(cells, cls) {
  const tr = document.createElement("tr");
  for (const [text, tdClass] of cells) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (tdClass) td.className = tdClass;
    tr.appendChild(td);
  }
  if (cls) tr.className = cls;
  return tr;
}
async function getJson(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
// api/ring answers 404 when the node keeps no ring: hide the panel then.
async function getRing() {
  const r = await fetch("api/ring", {cache: "no-store"});
  if (r.status === 404) return null;
  if (!r.ok) throw new Error("api/ring: HTTP " + r.status);
  return r.json();
}
// Bars are scaled to the largest share, so small imbalances stay visible.
function ringRow(m, largest) {
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = (largest > 0 ? 100 * m.share / largest : 0).toFixed(1) + "%";
  bar.appendChild(fill);
  const tr = row([[m.name], [""], [(100 * m.share).toFixed(2) + "%", "num"],
    [m.points, "num"], [m.weight, "num"]]);
  tr.children[1].appendChild(bar);
  return tr;
}
function showRing(ring) {
  document.getElementById("ring-section").hidden = ring === null;
  if (ring === null) return;
  document.getElementById("ring-summary").textContent =
    "(" + ring.nodes + " nodes, " + ring.vnodes + " vnodes, " + ring.points + " points, " +
    "max/mean share " + ring.max_over_mean_share.toFixed(3) + ", " + ring.changes +
    " changes)";
  const largest = Math.max(0, ...ring.members.map(m => m.share));
  document.getElementById("ring").replaceChildren(
    ...ring.members.map(m => ringRow(m, largest)));
}
async function refresh() {
  try {
    const [node, members, events, ring] = await Promise.all(
      [getJson("api/node"), getJson("api/members"), getJson("api/events"), getRing()]);
    document.getElementById("title").textContent = "gossamer: " + node.name;
    document.getElementById("node").textContent =
      node.address + " | cluster " + node.cluster + " | " + node.status +
      (node.joined ? ", joined" : ", not joined") + " | incarnation " + node.incarnation +
      " | health " + node.health_score + " | up " + node.uptime_s.toFixed(0) + " s" +
      " | v" + node.version + (node.encrypted ? "" : " | PLAINTEXT");
    const c = members.counts;
    document.getElementById("counts").textContent =
      "(" + c.alive + " alive, " + c.suspect + " suspect, " + c.dead + " dead, " +
      c.left + " left)";
    document.getElementById("members").replaceChildren(...members.members.map(m => row([
      [m.name], [m.address], [m.status, m.status], [m.for_s.toFixed(1)], [m.epoch],
      [m.incarnation],
      [m.metadata_text !== null ? m.metadata_text : "base64:" + m.metadata, "meta"],
    ])));
    const recent = events.events.slice(-50).reverse();
    document.getElementById("events").replaceChildren(...recent.map(e => row([
      [new Date(e.at * 1000).toLocaleTimeString()], [e.kind, e.kind], [e.member],
      [e.address], [e.incarnation], [e.source], [e.detail],
    ])));
    showRing(ring);
    document.getElementById("error").textContent = "";
  } catch (err) {
    document.getElementById("error").textContent = "refresh failed: " + err.message;
  }
}
// One poll at a time: while a large ring's shares are computed, /api/ring can
// take seconds, and a new poll every second would only pile up behind it.
let inFlight = false;
async function poll() {
  if (inFlight) return;
  inFlight = true;
  try {
    await refresh();
  } finally {
    inFlight = false;
  }
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""
"""The page served at ``/``: no external assets, polls the JSON routes every second
(skipping a tick while the previous poll is still pending).

The ring panel is hidden while ``/api/ring`` answers 404 (a node that keeps no ring)."""
