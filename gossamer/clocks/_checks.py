"""Validation shared by every clock type, in two flavours that say whose fault it is.

``check_*`` guard values a local caller hands in and raise
:class:`~gossamer.errors.InvalidMessage` at once.  ``wire_*`` guard values
decoded from a peer's message and raise only :class:`~gossamer.errors.WireError`,
whatever the input, so a decoder built from them cannot crash a node.

Both flavours accept exactly the same values, which is what lets every clock
that can be built locally survive a round trip through the wire.
"""

from __future__ import annotations

__all__ = [
    "MAX_COUNTER",
    "MAX_NODE_CHARS",
    "ClockOverflow",
    "check_counter",
    "check_node",
    "describe",
    "next_counter",
    "wire_counter",
    "wire_node",
    "wire_pair",
]

from gossamer.errors import InvalidMessage, LocalError, WireError, WireReason

MAX_COUNTER = 2**63 - 1
"""Largest counter any clock holds: the signed 64-bit range every msgpack peer can decode."""

MAX_NODE_CHARS = 128
"""Longest node name, in characters; matches the limit on :class:`gossamer.ids.NodeId` names."""


class ClockOverflow(LocalError, OverflowError):
    """A counter would pass :data:`MAX_COUNTER`.

    At a billion events a second this takes three centuries, so in practice it
    means a peer fed us an absurd timestamp; layers that observe remote clocks
    should bound how far ahead a peer may be before they observe it.
    """


def describe(value: object) -> str:
    """A short description of ``value`` for an error message.

    Peers choose what we decode, so a detail never embeds an unbounded repr
    (nor calls ``repr`` on a huge int, which raises past 4300 digits).
    """
    match value:
        case None | bool() | float():
            return repr(value)
        case int():
            if value.bit_length() > 64:
                return f"int of {value.bit_length()} bits"
            return f"int {value}"
        case str() | bytes():
            preview = repr(value[:32]) + ("..." if len(value) > 32 else "")
            return f"{type(value).__name__} {preview}"
        case list() | tuple() | dict():
            return f"{type(value).__name__} of {len(value)} items"
        case _:
            return type(value).__name__


def check_node(node: object, what: str) -> str:
    """Return ``node`` if it is a node name a clock may hold; raise ``InvalidMessage`` if not."""
    if type(node) is not str or not 1 <= len(node) <= MAX_NODE_CHARS:
        raise InvalidMessage(
            f"{what}: a node name is a str of 1-{MAX_NODE_CHARS} characters, got {describe(node)}"
        )
    return node


def check_counter(counter: object, what: str, *, minimum: int = 1) -> int:
    """Return ``counter`` if it is an int in ``minimum..MAX_COUNTER``; raise ``InvalidMessage``."""
    # bool is an int subclass, and True as a counter is always a bug.
    if type(counter) is not int or not minimum <= counter <= MAX_COUNTER:
        raise InvalidMessage(
            f"{what}: a counter is an int in {minimum}..2**63-1, got {describe(counter)}"
        )
    return counter


def next_counter(counter: int, what: str) -> int:
    """``counter + 1``, or :class:`ClockOverflow` if that leaves the counter range."""
    if counter >= MAX_COUNTER:
        raise ClockOverflow(f"{what}: counter space exhausted at 2**63-1")
    return counter + 1


def wire_node(raw: object, what: str) -> str:
    """Return ``raw`` if it is a valid node name; raise ``WireError`` if not."""
    if type(raw) is not str or not 1 <= len(raw) <= MAX_NODE_CHARS:
        raise WireError(
            WireReason.SCHEMA,
            f"{what}: node name must be a str of 1-{MAX_NODE_CHARS} characters,"
            f" got {describe(raw)}",
        )
    return raw


def wire_counter(raw: object, what: str) -> int:
    """Return ``raw`` if it is an int in ``1..MAX_COUNTER``; raise ``WireError`` if not."""
    if type(raw) is not int or not 1 <= raw <= MAX_COUNTER:
        raise WireError(
            WireReason.SCHEMA, f"{what}: counter must be an int in 1..2**63-1, got {describe(raw)}"
        )
    return raw


def wire_pair(raw: object, what: str) -> tuple[object, object]:
    """Unpack a two-element array; raise ``WireError`` for anything else.

    Tuples are accepted as well as lists because the codec may decode arrays
    either way.  Extra elements are refused: clock values are positional and
    versioning belongs to the envelope that carries them.
    """
    if not isinstance(raw, list | tuple):
        raise WireError(
            WireReason.SCHEMA, f"{what}: expected a 2-element array, got {describe(raw)}"
        )
    if len(raw) != 2:
        raise WireError(
            WireReason.SCHEMA, f"{what}: expected a 2-element array, got {len(raw)} elements"
        )
    return raw[0], raw[1]
