"""The debug HTTP endpoint: a read-only view of one node, as JSON, metrics and a page.

Every handler reads a :class:`DebugSource` and nothing else: there is no route
that changes the node, and every route is ``GET`` (aiohttp answers any other
method with 405).  The server runs on the node's engine loop, so each handler
reads the source between two inputs to the core and sees a consistent state.

What a part shows comes from its view (``gossamer.observe``): its routes are
served at ``/api/<name>`` and its samples join ``/metrics``.  A view is
immutable, so the handler reads the views on the loop and runs the route, or
the samples, on a worker thread: a large ring's shares take seconds to
compute the first time (about 0.1 s for 100 nodes, 2 s for 1000, at 2048
points a node), too long to hold the loop that answers probes.  One such
computation runs at a time, so concurrent requests for one ring wait for
one computation (the ring caches its shares) instead of starting one each.
The answer describes the views read when the request came, even if the node
moved on meanwhile.  A failed computation answers 500, is logged, and is not
cached: the next request retries.

It binds ``127.0.0.1`` unless told otherwise: member names, addresses and
metadata are not for the open network, and nothing here authenticates.

Routes (see ``docs/debug-endpoint.md`` for the shapes):

* ``/healthz`` -- 200 while the node is alive and joined; 503 with the
  ``reason`` before it has joined, once it left, or once it gave its name up.
* ``/api/node``, ``/api/events``, ``/api/counters`` -- JSON about the node.
* ``/api/<route>`` -- each part's routes: ``/api/members`` (SWIM),
  ``/api/ring[?key=K[&n=N]]`` (the ring); 404 for a route no part of this
  node serves (``this node keeps no ring``).
* ``/metrics`` -- the Prometheus text exposition (:mod:`gossamer.debug.metrics`).
* ``/`` -- a self-contained HTML dashboard polling the JSON routes.
"""

from __future__ import annotations

__all__ = ["SOURCE_KEY", "DebugServer", "DebugServerError", "build_app"]

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import math
import resource
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from gossamer.debug.metrics import render_metrics, view_samples
from gossamer.debug.source import DebugSource, EventRecord
from gossamer.errors import LocalError
from gossamer.ids import address
from gossamer.observe import ApiError, ApiRequest
from gossamer.runtime.loglimit import LogLimiter

SOURCE_KEY: Final = web.AppKey("gossamer_debug_source", DebugSource)
"""Where :func:`build_app` keeps the source in the application."""

_WORK_KEY: Final = web.AppKey("gossamer_debug_work", asyncio.Lock)
"""Held while a computation from the views runs on a worker thread."""

log = logging.getLogger("gossamer.debug")

_CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The dashboard loads nothing from anywhere; say so to the browser too."""

_T = TypeVar("_T")

_HOSTS_KEY: Final = web.AppKey[frozenset[str]]("gossamer_debug_hosts")
"""The Host names (lowercase, no port) the endpoint answers besides IP literals."""

_DROPPED_KEY: Final = web.AppKey[Counter[str]]("gossamer_debug_dropped")
"""What the endpoint refused, by reason (``http_host``, ``http_connections``...)."""

REQUEST_TIMEOUT_S: Final = 10.0
"""A connection must send each request whole within this, or it is closed."""
KEEPALIVE_TIMEOUT_S: Final = 15.0
"""An idle keep-alive connection is closed after this."""
MAX_CONNECTIONS: Final = 64
"""Connections served at once, at most; lower when the process may open few
files (an eighth of ``RLIMIT_NOFILE``), so the gossip port always has room."""


class DebugServerError(LocalError, RuntimeError):
    """The debug server was used out of order (started twice, or read before start)."""


async def _off_loop(app: web.Application, work: Callable[[], _T]) -> _T:
    """``work()`` on a worker thread, one at a time; shielded, so a client that
    hangs up does not cancel a computation other requests wait on."""
    async with app[_WORK_KEY]:
        return await asyncio.shield(asyncio.to_thread(work))


# -------------------------------------------------------------------- handlers


async def _healthz(request: web.Request) -> web.Response:
    info = request.app[SOURCE_KEY].info()
    if info.status != "alive":
        status = info.status
    elif info.not_ready:
        status = "joining" if not info.joined else "unready"
    else:
        status = "ok"
    body: dict[str, object] = {"status": status, "name": info.name, "joined": info.joined}
    if info.not_ready:
        body["reason"] = info.not_ready
    return web.json_response(body, status=200 if status == "ok" else 503)


async def _node(request: web.Request) -> web.Response:
    info = request.app[SOURCE_KEY].info()
    body = dataclasses.asdict(info)
    body["address"] = str(info.address)
    body["uptime_s"] = round(info.uptime_s, 3)
    return web.json_response(body)


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
    body: dict[str, Any] = {
        name: dataclasses.asdict(stats)
        for name, stats in counters.parts.items()
        if dataclasses.is_dataclass(stats) and not isinstance(stats, type)
    }
    body.update(
        messages_in=_sorted(counters.messages_in),
        bytes_in=_sorted(counters.bytes_in),
        messages_out=_sorted(counters.messages_out),
        bytes_out=_sorted(counters.bytes_out),
        dropped=_sorted(counters.dropped),
        shed=_sorted(counters.shed),
        refused=_sorted(counters.refused),
        streams_open=counters.streams_open,
        knocks=_sorted(counters.knocks),
    )
    return web.json_response(body)


async def _part_route(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    name = request.match_info["route"]
    views = source.view()
    for view in views.values():
        route = view.routes().get(name)
        if route is not None:
            break
    else:
        return _error(404, f"this node keeps no {name}")
    query = {key: request.query.getall(key) for key in request.query}
    api = ApiRequest(query, source.clock(), views, source.counters().parts)
    try:
        body = await _off_loop(request.app, lambda: route(api))
    except ApiError as exc:
        return _error(exc.status, str(exc))
    except Exception:
        return _failed(f"/api/{name}")
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    # The views are read now, on the loop; their samples (a ring's shares)
    # are computed off it, and the scrape describes these views even if the
    # node moves on during the await.
    views = source.view()
    try:
        samples = await _off_loop(request.app, lambda: view_samples(views))
    except Exception:
        return _failed("/metrics")
    body = render_metrics(source, view_samples=samples)
    # CONTENT_TYPE_LATEST carries parameters (version, charset), which
    # Response(content_type=...) refuses; set the header whole instead.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _dashboard(request: web.Request) -> web.Response:
    return web.Response(
        text=DASHBOARD_HTML,
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
    )


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


def _failed(what: str) -> web.Response:
    """A 500 for a failed computation: logged here, not shown to the client."""
    log.exception("debug endpoint: computing %s failed", what)
    return _error(500, f"computing {what} failed; see the node's log")


def host_allowed(host: str | None, names: Collection[str]) -> bool:
    """True for a Host header that is an IP literal, ``localhost`` or one of ``names``
    (with any port, or none).  A web page can make a browser send a request to
    the endpoint under a name it controls (DNS rebinding), never under these."""
    if host is None:
        return True  # HTTP/1.0; a browser always sends one
    name = host.strip().lower()
    if name.startswith("["):  # [v6]:port
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name == "localhost" or name in names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@web.middleware
async def _check_host(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    names: frozenset[str] = request.app[_HOSTS_KEY]
    if not host_allowed(request.headers.get("Host"), names):
        request.app[_DROPPED_KEY]["http_host"] += 1
        host = request.headers.get("Host", "")[:100]
        return _error(
            403,
            f"Host {host!r} is not this endpoint's; use its IP address, or add the name "
            "to the node's http_hosts",
        )
    response: web.StreamResponse = await handler(request)
    return response


def build_app(source: DebugSource, hosts: Collection[str] = ()) -> web.Application:
    """The debug application for ``source``: read-only GET routes, nothing else.

    Requests whose Host header is neither an IP literal, ``localhost`` nor
    one of ``hosts`` are refused (403).
    """
    app = web.Application(middlewares=[_check_host])
    app[SOURCE_KEY] = source
    app[_HOSTS_KEY] = frozenset(h.lower() for h in hosts)
    app[_DROPPED_KEY] = Counter()
    app[_WORK_KEY] = asyncio.Lock()
    app.router.add_get("/", _dashboard)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/node", _node)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/api/counters", _counters)
    app.router.add_get("/api/{route}", _part_route)
    app.router.add_get("/metrics", _metrics)
    return app


# ---------------------------------------------------------------------- server


class _RequestLog:
    """The logger aiohttp's request handlers get: a malformed request is counted
    and logged once per client a minute (``http_malformed``), without a traceback;
    anything else (a handler's own bug) goes to the log whole."""

    def __init__(self, dropped: Counter[str]) -> None:
        self._dropped = dropped
        self._limiter = LogLimiter()

    def debug(self, msg: str, *args: object, **kw: Any) -> None:
        log.debug(msg, *args, **kw)

    def exception(self, msg: str, *args: object, exc_info: object = True, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            client = str(args[0]) if args else "?"
            self._dropped["http_malformed"] += 1
            held = self._limiter.allow(client)
            if held is not None:
                log.warning(
                    "debug endpoint: malformed request from %s%s: %s",
                    client,
                    LogLimiter.since(held),
                    str(exc_info)[:200],
                )
            return
        log.error(msg, *args, exc_info=exc_info, **kw)  # type: ignore[arg-type]

    error = exception
    warning = exception


class _Watched:
    """The transport as a connection's handler sees it: a write is a response."""

    __slots__ = ("_guard", "_transport")

    def __init__(self, transport: asyncio.Transport, guard: _Guard) -> None:
        self._transport = transport
        self._guard = guard

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._guard.responded()
        self._transport.write(data)

    def writelines(self, data: Any) -> None:
        self._guard.responded()
        self._transport.writelines(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Guard(asyncio.Protocol):
    """One connection to the endpoint: counted against the cap, and given
    ``REQUEST_TIMEOUT_S`` to send each request whole (from its first byte, or
    from the connection's start), else closed."""

    def __init__(self, server: DebugServer, inner: asyncio.Protocol) -> None:
        self._server = server
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        server = self._server
        if server.connections >= server.max_connections:
            server.dropped["http_connections"] += 1
            transport.abort()
            return
        server.connections += 1
        self._transport = transport
        self._arm()
        self._inner.connection_made(_Watched(transport, self))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if self._deadline is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._transport is None else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._transport = None
        self._server.connections -= 1
        self.responded()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def responded(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(REQUEST_TIMEOUT_S, self._timed_out)

    def _timed_out(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._server.dropped["http_timeout"] += 1
            self._transport.abort()


def _connection_cap() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 8))


class DebugServer:
    """Serves :func:`build_app` for one source on ``host:port`` (port 0: any free port).

    It holds under abuse: at most ``max_connections`` at once (the rest are
    closed at once, ``http_connections``), a request not sent whole within
    ``REQUEST_TIMEOUT_S`` closes its connection (``http_timeout``), an idle
    keep-alive connection closes after ``KEEPALIVE_TIMEOUT_S``, a foreign Host
    header is refused (``http_host``), and a malformed request is counted
    (``http_malformed``) and logged once per client a minute.  ``dropped``
    holds these counts.

    ``start`` twice without a ``stop`` raises :class:`DebugServerError`, as
    does reading ``address`` or ``url`` while stopped.  ``stop`` is idempotent:
    stopping a server that is not running does nothing, so shutdown paths
    need not track whether start succeeded.  A stopped server may be started
    again (with port 0 it may then get a different port).
    """

    def __init__(
        self,
        source: DebugSource,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        hosts: Collection[str] = (),
        max_connections: int | None = None,
    ) -> None:
        address(host, port)  # validates both; raises AddressError (a LocalError)
        self._source = source
        self._host = host
        self._port = port
        self._hosts = tuple(hosts)
        self.max_connections = max_connections or _connection_cap()
        self.connections = 0
        self.dropped: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
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
        app = build_app(self._source, self._hosts)
        app[_DROPPED_KEY] = self.dropped
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            logger=_RequestLog(self.dropped),
        )
        await runner.setup()
        try:
            handlers = runner.server
            assert handlers is not None
            server = await asyncio.get_running_loop().create_server(
                lambda: _Guard(self, handlers()), self._host, self._port
            )
            sockname = server.sockets[0].getsockname()
            host, port = str(sockname[0]), int(sockname[1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._server = server
        self._address = address(host, port)

    async def stop(self) -> None:
        runner, self._runner, self._address = self._runner, None, None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)


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
  #links-graph { float: left; margin-right: 1.5em; }
  #links-graph line.eager { stroke: #1a7f37; stroke-width: 2; }
  #links-graph line.lazy { stroke: #999; stroke-width: 1.5; stroke-dasharray: 4 3; }
  #links-graph line.silent { stroke: #cf222e; }
  #links-graph circle { fill: #4a7fc1; } #links-graph circle.me { fill: #222; }
  #links-graph text { font-size: 11px; text-anchor: middle; }
  #overlay-section::after { content: ""; display: block; clear: both; }
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
<section id="overlay-section" hidden>
<h2>Overlay links <span id="overlay-summary"></span></h2>
<svg id="links-graph" width="260" height="220" viewBox="-130 -110 260 220"
  role="img" aria-label="this node's overlay links"></svg>
<table>
  <thead><tr><th>peer</th><th>address</th><th>tree</th><th>phi</th><th>heard</th></tr></thead>
  <tbody id="links"></tbody>
</table>
</section>
<section id="registry-section" hidden>
<h2>Groups <span id="groups-summary"></span></h2>
<table>
  <thead><tr><th>scope</th><th>group</th><th>members</th><th>who</th></tr></thead>
  <tbody id="groups"></tbody>
</table>
<h2>Names <span id="names-summary"></span></h2>
<table>
  <thead><tr><th>name</th><th>node</th><th>member</th><th>lamport</th><th>claims</th></tr></thead>
  <tbody id="names"></tbody>
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
// api/overlay answers 404 when the node runs no overlay: hide the panel then.
async function getOverlay() {
  const r = await fetch("api/overlay", {cache: "no-store"});
  if (r.status === 404) return null;
  if (!r.ok) throw new Error("api/overlay: HTTP " + r.status);
  return r.json();
}
// The inline <svg> element's own namespace: no URL written into the page.
const SVG = document.getElementById("links-graph").namespaceURI;
function svg(kind, attrs, text) {
  const el = document.createElementNS(SVG, kind);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
// The node in the middle, its active peers around it: a solid green line is
// an eager link (payloads go down it), a dashed grey one lazy (announcements
// only), red where the link's phi is past 1 (its peer has been quiet).
function showOverlay(overlay, name) {
  document.getElementById("overlay-section").hidden = overlay === null;
  if (overlay === null) return;
  const eager = new Set(overlay.eager || []), lazy = new Set(overlay.lazy || []);
  const health = new Map((overlay.links || []).map(h => [h.peer, h]));
  const peers = overlay.active;
  document.getElementById("overlay-summary").textContent =
    "(" + peers.length + " active, " + overlay.passive.length + " passive)";
  const shapes = [];
  peers.forEach((p, i) => {
    const a = 2 * Math.PI * i / Math.max(1, peers.length) - Math.PI / 2;
    const x = 80 * Math.cos(a), y = 80 * Math.sin(a);
    const h = health.get(p.name);
    let cls = eager.has(p.name) ? "eager" : (lazy.has(p.name) ? "lazy" : "");
    if (h && h.phi > 1) cls += " silent";
    shapes.push(svg("line", {x1: 0, y1: 0, x2: x, y2: y, class: cls}));
    shapes.push(svg("circle", {cx: x, cy: y, r: 5}));
    shapes.push(svg("text", {x: x, y: y + (y >= 0 ? 17 : -9)}, p.name));
  });
  shapes.push(svg("circle", {cx: 0, cy: 0, r: 7, class: "me"}));
  shapes.push(svg("text", {x: 0, y: 20}, name));
  document.getElementById("links-graph").replaceChildren(...shapes);
  document.getElementById("links").replaceChildren(...peers.map(p => {
    const h = health.get(p.name);
    return row([[p.name], [p.address],
      [eager.has(p.name) ? "eager" : (lazy.has(p.name) ? "lazy" : "")],
      [h ? h.phi.toFixed(2) : "", "num"], [h ? h.heard_s.toFixed(1) + " s ago" : "", "num"]]);
  }));
}
// api/groups and api/names answer 404 when the node runs no registry.
async function getOptional(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
// The first 100 groups and names: the panel is a glance, /api/* has them all.
function showRegistry(groups, names) {
  document.getElementById("registry-section").hidden = groups === null || names === null;
  if (groups === null || names === null) return;
  const entries = groups.groups.reduce((n, g) => n + g.members.length, 0);
  document.getElementById("groups-summary").textContent =
    "(" + groups.groups.length + (groups.truncated ? "+" : "") + " groups, " + entries +
    " members shown, " + groups.owners.length + " owners)";
  document.getElementById("groups").replaceChildren(...groups.groups.map(g => row([
    [g.scope], [g.group], [g.members.length, "num"],
    [g.members.slice(0, 8).map(m => m.node + "/" + m.member).join(" ") +
      (g.members.length > 8 ? " ..." : ""), "meta"],
  ])));
  const conflicts = new Set(names.conflicts);
  document.getElementById("names-summary").textContent =
    "(" + names.names.length + (names.truncated ? "+" : "") + " shown, " +
    conflicts.size + " contested now, " + names.lost.length + " lost here)";
  document.getElementById("names").replaceChildren(...names.names.map(n => row([
    [n.name], [n.winner.node], [n.winner.member], [n.winner.lamport, "num"],
    [n.claims.length, "num"]], conflicts.has(n.name) ? "suspect" : "")));
}
async function refresh() {
  try {
    const [node, members, events, ring, overlay, groups, names] = await Promise.all(
      [getJson("api/node"), getJson("api/members"), getJson("api/events"), getRing(),
       getOverlay(), getOptional("api/groups?limit=100"), getOptional("api/names?limit=100")]);
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
      [m.name], [m.address], [m.status + (m.draining ? " (draining)" : ""), m.status],
      [m.for_s.toFixed(1)], [m.epoch],
      [m.incarnation],
      [m.metadata_text !== null ? m.metadata_text : "base64:" + m.metadata, "meta"],
    ])));
    const recent = events.events.slice(-50).reverse();
    document.getElementById("events").replaceChildren(...recent.map(e => row([
      [new Date(e.at * 1000).toLocaleTimeString()], [e.kind, e.kind], [e.member],
      [e.address], [e.incarnation], [e.source], [e.detail],
    ])));
    showRing(ring);
    showOverlay(overlay, node.name);
    showRegistry(groups, names);
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

The ring panel is hidden while ``/api/ring`` answers 404 (a node that keeps no
ring), the overlay panel (the node's links drawn around it) while
``/api/overlay`` does, the groups and names panel while ``/api/groups`` does."""
