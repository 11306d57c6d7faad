"""What the ring part publishes: the node's ring as a frozen view, its route and gauges.

:class:`RingView` holds the current :class:`~gossamer.ring.Ring` (immutable)
and how many times it changed.  The runtime serves it at ``/api/ring``
(``?key=K&n=N`` for a key's owners) and renders its gauges in ``/metrics``.
Both may build the ring's points and compute its shares, which takes
seconds on a large ring: the endpoint calls them on a worker thread, and a
ring caches its shares, so the next request for the same ring is cheap.
"""

from __future__ import annotations

__all__ = ["MAX_OWNERS", "RING_NODES", "RING_POINTS", "RING_SHARE", "RingView"]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gossamer.observe import ApiError, ApiRequest, Family, Route, Sample
from gossamer.ring.hashing import InvalidKey, key_hash
from gossamer.ring.ring import Ring

MAX_OWNERS: Final = 64
"""The largest ``n`` ``/api/ring?key=K&n=N`` accepts: a preference list longer
than any replication factor is a mistake, and the walk to find ``n`` distinct
nodes grows with ``n``."""

RING_NODES: Final = Family("gossamer_ring_nodes", "Nodes on the local ring.", "gauge")
RING_POINTS: Final = Family(
    "gossamer_ring_points", "Points (virtual nodes) on the local ring, all nodes together.", "gauge"
)
RING_SHARE: Final = Family(
    "gossamer_ring_share",
    "Fraction of the key space each node owns on the local ring (they sum to 1).",
    "gauge",
    "node",
)


@dataclass(frozen=True, slots=True)
class RingView:
    """The node's ring and the number of times it changed since the node started."""

    ring: Ring[str]
    changes: int

    def routes(self) -> Mapping[str, Route]:
        return {"ring": self._ring_route}

    def _ring_route(self, request: ApiRequest) -> dict[str, Any]:
        query = request.query
        keys = list(query.get("key", ()))
        if len(keys) > 1:
            raise ApiError(400, f"give at most one key, got {len(keys)}")
        key = keys[0] if keys else None
        n = 1
        raw = query.get("n", (None,))[-1]
        if raw is not None:
            if key is None:
                raise ApiError(400, "n is the number of owners of a key; pass key too")
            # Plain decimal digits only (int() would take " 3", "+3" and "3_0"), and
            # few of them: int() refuses a string of thousands of digits.
            n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
            if not 1 <= n <= MAX_OWNERS:
                raise ApiError(400, f"n must be an integer in [1, {MAX_OWNERS}], got {raw!r}")
        hashed: int | None = None
        if key is not None:
            try:
                hashed = key_hash(key)
            except InvalidKey as exc:
                raise ApiError(400, f"bad key: {exc}") from None
        ring = self.ring
        shares = ring.share()
        points = ring.points()
        weights = ring.weights
        body: dict[str, Any] = {
            "nodes": len(ring),
            "vnodes": ring.vnodes,
            "points": sum(points.values()),
            "changes": self.changes,
            "max_over_mean_share": max(shares.values()) * len(ring) if shares else 0.0,
            "members": [
                {
                    "name": name,
                    "points": points[name],
                    "weight": weights[name],
                    "share": shares[name],
                }
                for name in sorted(ring.nodes)
            ],
        }
        if key is not None:
            body["key"] = key
            body["hash"] = hashed
            body["owners"] = list(ring.owners(key, n)) if len(ring) else []
        return body

    def samples(self) -> list[Sample]:
        ring = self.ring
        shares = ring.share()
        out = [
            Sample(RING_NODES, len(ring)),
            Sample(RING_POINTS, sum(ring.points().values())),
        ]
        out.extend(Sample(RING_SHARE, shares[name], name) for name in sorted(shares))
        return out
