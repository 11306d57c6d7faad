"""The ring's two hash functions: one for keys, one for virtual-node points.

Both are BLAKE2b (RFC 7693) from :mod:`hashlib`, so they are the same in every
process, on every platform and under every ``PYTHONHASHSEED``: a ring is part
of the cluster's contract, and two nodes must agree on where a key lives.
Python's own ``hash()`` is salted per process and is never used.

* **A key** (``str`` as UTF-8, or bytes) hashes to the 64-bit integer read
  big-endian from ``BLAKE2b(data, digest_size=8)``.  Any language with BLAKE2b
  computes the same value.
* **The points of a node** are a stream: point ``i`` of node ``name`` is the
  ``i % 8``-th big-endian 64-bit word of ``BLAKE2b(name, digest_size=64,
  salt=(i // 8) as 16 big-endian bytes, person=b"gossamer-ring-v1")``.  The
  stream depends on nothing but the name, so a node's first ``k`` points are
  the same whatever its weight: raising a weight adds points, lowering it
  removes the last ones, and no other point moves.
"""

from __future__ import annotations

__all__ = ["KEY_SPACE", "InvalidKey", "key_bytes", "key_hash", "point_hashes"]

import struct
from hashlib import blake2b
from typing import Final

from gossamer.errors import LocalError

KEY_SPACE: Final = 1 << 64
"""Hashes are integers in ``[0, KEY_SPACE)``."""

_PERSON: Final = b"gossamer-ring-v1"
_WORDS: Final = struct.Struct(">8Q").unpack


class InvalidKey(LocalError, TypeError):
    """A key that is neither ``str`` nor bytes, or a ``str`` that is not valid Unicode."""


def key_bytes(key: str | bytes | bytearray | memoryview) -> bytes:
    """The bytes a key hashes as: UTF-8 for ``str``, the bytes themselves otherwise."""
    if isinstance(key, str):
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidKey(f"key is not encodable as UTF-8: {exc.reason}") from None
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise InvalidKey(f"a ring key must be str or bytes, got {type(key).__name__}")


def key_hash(key: str | bytes | bytearray | memoryview) -> int:
    """The 64-bit position of ``key`` on the ring."""
    return int.from_bytes(blake2b(key_bytes(key), digest_size=8).digest(), "big")


def point_hashes(name: str, start: int, stop: int) -> list[int]:
    """Points ``start`` to ``stop - 1`` of node ``name``, in index order (not sorted)."""
    if stop <= start:
        return []
    data = name.encode("utf-8")
    first, last = start // 8, (stop + 7) // 8
    out: list[int] = []
    for block in range(first, last):
        digest = blake2b(
            data, digest_size=64, salt=block.to_bytes(16, "big"), person=_PERSON
        ).digest()
        out.extend(_WORDS(digest))
    offset = first * 8
    return out[start - offset : stop - offset]
