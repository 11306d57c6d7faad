"""Tags: metadata as a small map of strings, the form operators filter members on.

A member's metadata is bytes; *tags* are one agreed form of them, so that
``gossamer members --tag role=web`` and ``Member.tags`` work on every node.
The encoding is canonical (one byte string per map, so equal tags are equal
metadata and an update that changes nothing is no news)::

    b"gt1\\0" + msgpack([key1, value1, key2, value2, ...])   # keys sorted

Bounds: at most :data:`MAX_TAGS` tags, keys of 1-64 characters of letters,
digits and ``_.-:/``, values of at most 256 characters; the whole is still
held to the failure detector's ``max_metadata_bytes``.  Metadata in any
other form decodes to no tags; the raw bytes stay available.
"""

from __future__ import annotations

__all__ = ["MAX_TAGS", "decode_tags", "encode_tags", "parse_tag"]

import re
from collections.abc import Mapping
from typing import Final

import msgpack

from gossamer.errors import LocalError

MAX_TAGS: Final = 64
_MAGIC: Final = b"gt1\x00"
_KEY: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_MAX_VALUE_CHARS: Final = 256


def encode_tags(tags: Mapping[str, str]) -> bytes:
    """The canonical metadata for ``tags``; LocalError naming the bad key or value."""
    if not isinstance(tags, Mapping):
        raise LocalError(f"tags must be a mapping of str to str, got {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise LocalError(f"at most {MAX_TAGS} tags, got {len(tags)}")
    flat: list[str] = []
    for key in sorted(tags):
        value = tags[key]
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise LocalError(
                f"tag key {key!r}: 1-64 characters of letters, digits and _.:/- expected"
            )
        if not isinstance(value, str) or len(value) > _MAX_VALUE_CHARS:
            raise LocalError(
                f"tag {key!r}: the value must be a str of at most {_MAX_VALUE_CHARS} characters"
            )
        flat += (key, value)
    packed: bytes = msgpack.packb(flat, use_bin_type=True)
    return _MAGIC + packed


def decode_tags(metadata: bytes) -> dict[str, str]:
    """The tags ``metadata`` holds; empty for metadata in any other form."""
    if not metadata.startswith(_MAGIC):
        return {}
    try:
        flat = msgpack.unpackb(metadata[len(_MAGIC) :], raw=False, max_bin_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return {}
    if (
        not isinstance(flat, list)
        or len(flat) % 2
        or not all(isinstance(item, str) for item in flat)
    ):
        return {}
    tags = dict(zip(flat[::2], flat[1::2], strict=True))
    try:
        canonical = encode_tags(tags)
    except LocalError:
        return {}
    return tags if canonical == metadata else {}


def parse_tag(text: str) -> tuple[str, str]:
    """``key=value`` (as the CLI takes it) as a pair; LocalError if there is no ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise LocalError(f"a tag is key=value, got {text!r}")
    return key, value
