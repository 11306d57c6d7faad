"""The client of a running node's debug endpoint: ``gossamer members``, ``gossamer ring``.

:func:`fetch_json` reads one route, :func:`fetch_members` and
:func:`fetch_ring` read and check the member table and the ring, and the
``format_*`` functions lay them out for a terminal.  The demo reads its
agents the same way.
"""

from __future__ import annotations

__all__ = [
    "EndpointError",
    "endpoint_url",
    "fetch_json",
    "fetch_members",
    "fetch_ring",
    "format_members",
    "format_ring",
    "format_ring_key",
    "format_table",
]

import base64
import binascii
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Container, Sequence
from typing import Any

from gossamer.errors import LocalError

_NOT_OURS = "; is it a gossamer debug endpoint?"


class EndpointError(LocalError):
    """A debug endpoint could not be reached, or answered something unexpected."""


def endpoint_url(text: str) -> str:
    """``http://host:port`` from ``host:port`` or a URL (a trailing ``/`` dropped)."""
    url = text.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def fetch_json(url: str, path: str, *, timeout_s: float = 5.0) -> Any:
    """GET ``url`` + ``path`` and parse the JSON body; :class:`EndpointError` on any failure."""
    full = endpoint_url(url) + path
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        because = _error_text(exc) or _NOT_OURS
        raise EndpointError(f"{full} answered HTTP {exc.code} {exc.reason}{because}") from None
    except http.client.HTTPException:
        raise EndpointError(
            f"{full} did not answer HTTP; is it a gossamer debug endpoint (the agent's "
            "--http address, not its gossip port)?"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(f"cannot reach {full}: {reason}") from None
    except ValueError as exc:  # a malformed URL
        raise EndpointError(f"{full}: {exc}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise EndpointError(
            f"{full} did not answer JSON; is it a gossamer debug endpoint?"
        ) from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    """``": <message>"`` from a debug endpoint's ``{"error": ...}`` body, else ``""``.

    The endpoint says why it refused (a bad ``n``, no ring on this node);
    that is the part of the answer the operator needs.
    """
    try:
        with exc:
            body = json.loads(exc.read(4096))
    except (OSError, ValueError):
        return ""
    message = body.get("error") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) else ""


def format_table(rows: Sequence[Sequence[str]], *, right: Container[int] = ()) -> str:
    """``rows`` (the first is the header) as aligned columns two spaces apart;
    the columns numbered in ``right`` are aligned to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def node_name(url: str, *, timeout_s: float = 5.0) -> str:
    """The name of the node behind ``url`` (``?`` if it does not say)."""
    node = fetch_json(url, "/api/node", timeout_s=timeout_s)
    return str(node.get("name", "?")) if isinstance(node, dict) else "?"


def fetch_members(url: str, *, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The member rows of ``url``/api/members (every status), sorted by name."""
    body = fetch_json(url, "/api/members", timeout_s=timeout_s)
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise EndpointError(f"{endpoint_url(url)}/api/members did not list members")
    rows: list[dict[str, Any]] = body["members"]
    return rows


def format_members(rows: Sequence[dict[str, Any]], *, include_gone: bool = False) -> str:
    """An aligned table of member rows; dead and left ones only with ``include_gone``."""
    shown = [r for r in rows if include_gone or r.get("status") in ("alive", "suspect")]
    header = ("NAME", "ADDRESS", "STATUS", "INCARNATION", "EPOCH", "FOR", "METADATA")
    table = [header] + [
        (
            str(r.get("name", "?")),
            str(r.get("address", "?")),
            str(r.get("status", "?")) + (" (draining)" if r.get("draining") else ""),
            str(r.get("incarnation", "?")),
            str(r.get("epoch", "?")),
            _duration(r.get("for_s")),
            _metadata_text(r),
        )
        for r in shown
    ]
    lines = format_table(table).splitlines()
    hidden = len(rows) - len(shown)
    if hidden:
        lines.append(f"({hidden} dead or left not shown; --all shows them)")
    return "\n".join(lines)


def fetch_ring(
    url: str, *, key: str | None = None, n: int | None = None, timeout_s: float = 5.0
) -> dict[str, Any]:
    """The body of ``url``/api/ring, with ``key``'s hash and its ``n`` owners when given.

    :class:`EndpointError` when the node keeps no ring (the endpoint answers
    404), for an ``n`` the endpoint refuses, and for anything unexpected.
    """
    query: dict[str, str] = {}
    if key is not None:
        query["key"] = key
    if n is not None:
        query["n"] = str(n)
    # quote, not quote_plus: a "+" in a key must reach the endpoint as "+".
    path = "/api/ring"
    if query:
        path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    body = fetch_json(url, path, timeout_s=timeout_s)
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise EndpointError(f"{endpoint_url(url)}/api/ring did not describe a ring")
    if key is not None and not isinstance(body.get("owners"), list):
        raise EndpointError(f"{endpoint_url(url)}/api/ring did not list the key's owners")
    return body


def format_ring(body: dict[str, Any]) -> str:
    """A table of the ring's nodes (name, points, weight, share) and a summary line."""
    header = ("NAME", "POINTS", "WEIGHT", "SHARE")
    rows = sorted(body.get("members", []), key=lambda m: str(m.get("name", "")))
    table = [header] + [
        (
            str(m.get("name", "?")),
            str(m.get("points", "?")),
            _number(m.get("weight"), "g"),
            _number(m.get("share"), ".2%"),
        )
        for m in rows
    ]
    # Names to the left, numbers to the right, as a reader compares them.
    lines = format_table(table, right=range(1, len(header))).splitlines()
    if not rows:
        lines = ["(the ring is empty)"]
    lines.append(
        f"{body.get('nodes', '?')} nodes, {body.get('vnodes', '?')} vnodes, "
        f"{body.get('points', '?')} points, max/mean share "
        f"{_number(body.get('max_over_mean_share'), '.3f')}, "
        f"{body.get('changes', '?')} changes"
    )
    return "\n".join(lines)


def format_ring_key(body: dict[str, Any]) -> str:
    """A key's hash (decimal and hex) and its owners, in preference order."""
    hashed = body.get("hash")
    where = f"{hashed} (0x{hashed:016x})" if isinstance(hashed, int) else "?"
    lines = [f"key {json.dumps(body.get('key'), ensure_ascii=False)} hashes to {where}"]
    owners = body.get("owners") or []
    if not owners:
        lines.append("no owner: the ring is empty")
    else:
        lines.append("owners, in preference order:")
        lines.extend(f"  {i}. {name}" for i, name in enumerate(owners, 1))
    return "\n".join(lines)


def _number(value: object, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return format(value, spec)


def _duration(value: object) -> str:
    if not isinstance(value, int | float):
        return "?"
    seconds = max(0.0, float(value))
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _metadata_text(row: dict[str, Any]) -> str:
    tags = row.get("tags")
    if isinstance(tags, dict) and tags:
        return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    text = row.get("metadata_text")
    if isinstance(text, str):
        return text.replace("\n", "\\n")
    try:
        size = len(base64.b64decode(str(row.get("metadata", "")), validate=True))
    except (binascii.Error, ValueError):
        return "(unreadable)"
    return f"({size} byte{'' if size == 1 else 's'}, not UTF-8)"


def fetch_overlay(url: str, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """The body of ``url``/api/overlay; :class:`EndpointError` when the node
    runs no overlay (404) or answers something else."""
    body = fetch_json(url, "/api/overlay", timeout_s=timeout_s)
    if not isinstance(body, dict) or not isinstance(body.get("active"), list):
        raise EndpointError(f"{endpoint_url(url)}/api/overlay did not describe an overlay")
    return body


def format_overlay(body: dict[str, Any]) -> str:
    """The node's links (tree role, φ, last frame), then its other views, cache and counters."""
    health = {str(h.get("peer")): h for h in body.get("links", []) if isinstance(h, dict)}
    eager, lazy = set(body.get("eager", ())), set(body.get("lazy", ()))
    header = ("PEER", "ADDRESS", "EPOCH", "TREE", "PHI", "HEARD")
    table = [header]
    for peer in body.get("active", []):
        name = str(peer.get("name", "?"))
        link = health.get(name, {})
        tree = "eager" if name in eager else "lazy" if name in lazy else "-"
        phi = link.get("phi")
        heard = link.get("heard_s")
        table.append(
            (
                name,
                str(peer.get("address", "?")),
                str(peer.get("epoch", "?")),
                tree,
                "-" if phi is None else f"{phi:.2f}",
                "-" if heard is None else f"{heard:.1f}s ago",
            )
        )
    lines = format_table(table).splitlines()
    lines.append(
        f"passive {len(body.get('passive', []))}, requests in flight "
        f"{len(body.get('pending', []))}, lost peers retried {len(body.get('lost', []))}"
    )
    cache = body.get("cache")
    if isinstance(cache, dict):
        lines.append(
            f"broadcast cache: {cache.get('cached', 0)} payloads, {cache.get('seen', 0)} ids "
            f"remembered, {cache.get('missing', 0)} announced and missing"
        )
    counters = body.get("counters")
    if isinstance(counters, dict) and counters:
        lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return "\n".join(lines)


def fetch_groups(
    url: str, *, scope: str | None = None, group: str | None = None, timeout_s: float = 5.0
) -> dict[str, Any]:
    """The body of ``url``/api/groups (one scope or group when given)."""
    query = {k: v for k, v in (("scope", scope), ("group", group)) if v is not None}
    path = "/api/groups"
    if query:
        path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    body = fetch_json(url, path, timeout_s=timeout_s)
    if not isinstance(body, dict) or not isinstance(body.get("groups"), list):
        raise EndpointError(f"{endpoint_url(url)}/api/groups did not describe groups")
    return body


def format_groups(body: dict[str, Any]) -> str:
    """One row per group member (scope, group, node, member), then the owners' versions."""
    table = [("SCOPE", "GROUP", "NODE", "MEMBER")]
    for entry in body.get("groups", []):
        for member in entry.get("members", []):
            table.append(
                (
                    str(entry.get("scope", "?")),
                    str(entry.get("group", "?")),
                    str(member.get("node", "?")),
                    str(member.get("member", "?")),
                )
            )
    lines = format_table(table).splitlines() if len(table) > 1 else ["no groups"]
    if body.get("truncated"):
        lines.append("(more groups than listed: pass --scope or --group)")
    owners = body.get("owners", [])
    if owners:
        lines.append(
            "owners: "
            + ", ".join(
                f"{o.get('owner')} v{o.get('version')} ({o.get('entries')} entries)" for o in owners
            )
        )
    lines.extend(_counter_line(body))
    return "\n".join(lines)


def fetch_names(url: str, *, name: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
    """The body of ``url``/api/names (one name when given)."""
    path = "/api/names"
    if name is not None:
        path += "?" + urllib.parse.urlencode({"name": name}, quote_via=urllib.parse.quote)
    body = fetch_json(url, path, timeout_s=timeout_s)
    if not isinstance(body, dict) or not isinstance(body.get("names"), list):
        raise EndpointError(f"{endpoint_url(url)}/api/names did not describe names")
    return body


def format_names(body: dict[str, Any]) -> str:
    """One row per name (its holder, and how many claims it has), then conflicts and losses."""
    table = [("NAME", "NODE", "MEMBER", "LAMPORT", "CLAIMS")]
    for entry in body.get("names", []):
        winner = entry.get("winner", {})
        table.append(
            (
                str(entry.get("name", "?")),
                str(winner.get("node", "?")),
                str(winner.get("member", "?")),
                str(winner.get("lamport", "?")),
                str(len(entry.get("claims", []))),
            )
        )
    lines = format_table(table, right={3, 4}).splitlines() if len(table) > 1 else ["no names"]
    if body.get("truncated"):
        lines.append("(more names than listed: pass --name)")
    conflicts = body.get("conflicts", [])
    if conflicts:
        lines.append("claimed by more than one node now: " + ", ".join(map(str, conflicts)))
    for lost in body.get("lost", []):
        w = lost.get("winner", {})
        mine = lost.get("lost", {})
        lines.append(
            f"lost here: {lost.get('name')!r} ({mine.get('member')}) to {w.get('node')}'s "
            f"{w.get('member')}"
        )
    lines.extend(_counter_line(body))
    return "\n".join(lines)


def _counter_line(body: dict[str, Any]) -> list[str]:
    counters = body.get("counters")
    if isinstance(counters, dict) and counters:
        shown = {k: v for k, v in counters.items() if v}
        return ["counters: " + (", ".join(f"{k} {v}" for k, v in shown.items()) or "all 0")]
    return []
