"""Errors that say whose fault they are.

Two families, and every error gossamer raises belongs to exactly one:

* :class:`LocalError` -- the local caller made a mistake (a bad argument, an
  invalid configuration, a message too large to send).  It is raised at once,
  with a message that says what to change.  It never depends on what a peer
  sent.
* :class:`RemoteError` -- a peer sent something we cannot accept (garbage, a
  wrong version, a frame over the limit).  Runtimes catch it, count it under
  its ``reason``, log it at debug level and drop the input; a peer can never
  crash a node.

The local errors also derive from the matching built-in (``ValueError`` or
``TypeError``) so that code written against plain Python conventions catches
them too.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GossamerError",
    "InvalidMessage",
    "LocalError",
    "MessageTooLarge",
    "RemoteError",
    "WireError",
    "WireReason",
]

from enum import StrEnum


class GossamerError(Exception):
    """Base of every error gossamer raises."""


class LocalError(GossamerError):
    """The local caller's mistake: raised at once, never caused by a peer."""


class ConfigError(LocalError, ValueError):
    """A configuration value is out of range or inconsistent with another."""


class InvalidMessage(LocalError, TypeError):
    """A message or record was built with a field of the wrong type or value."""


class MessageTooLarge(LocalError, ValueError):
    """An outgoing message encodes to more bytes than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message encodes to {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class RemoteError(GossamerError):
    """A peer's fault: count it, log it at debug level, drop the input."""


class WireReason(StrEnum):
    """Why the codec refused an input; runtimes count drops under these names."""

    OVERSIZE = "oversize"
    """The input is longer than the limit the receiver accepts."""
    MALFORMED = "malformed"
    """The bytes are not a well-formed msgpack value (or carry trailing bytes)."""
    ENVELOPE = "envelope"
    """The value is msgpack but not a gossamer envelope."""
    VERSION = "version"
    """The envelope carries a protocol major version this node does not speak."""
    UNKNOWN_TYPE = "unknown_type"
    """The envelope names a message type id this node does not know."""
    SCHEMA = "schema"
    """A field is missing, of the wrong type, or out of range."""


class WireError(RemoteError):
    """The codec refused an input from a peer; ``reason`` says why."""

    def __init__(self, reason: WireReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
