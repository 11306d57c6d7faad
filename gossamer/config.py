"""Configuration: one frozen, validated dataclass per subsystem, with presets.

Every field names its unit last (``probe_interval_s``, ``max_frame_bytes``),
is documented with its trade-off, and is checked when the dataclass is built:
an out-of-range value raises :class:`~gossamer.errors.ConfigError` at once,
naming the field and the accepted range.  Each subsystem offers presets:

* ``lan()`` -- a data-centre network: sub-millisecond latency, rare loss.
* ``wan()`` -- links across regions: more latency, smaller MTU, more loss.
* ``local()`` -- every node on one machine (tests, demos): loopback MTU.

Change a preset with :func:`dataclasses.replace`, which validates again.

``docs/configuration.md`` lists every field of every subsystem.
"""

from __future__ import annotations

__all__ = [
    "PRESETS",
    "Section",
    "WireConfig",
    "WireRoom",
    "check_at_least",
    "check_fraction",
    "check_int",
    "check_positive",
    "preset",
]

from dataclasses import dataclass
from typing import Final, Protocol, Self, TypeVar

from gossamer.errors import ConfigError

PRESETS: Final = ("lan", "wan", "local")
"""The preset names every config section offers."""


class Section(Protocol):
    """A subsystem's config: a frozen dataclass, checked when built, with presets."""

    @classmethod
    def lan(cls) -> Self: ...

    @classmethod
    def wan(cls) -> Self: ...

    @classmethod
    def local(cls) -> Self: ...


S = TypeVar("S", bound=Section)


def preset(section: type[S], name: str) -> S:
    """``section``'s preset ``name``; ConfigError for a name not in :data:`PRESETS`."""
    match name:
        case "lan":
            return section.lan()
        case "wan":
            return section.wan()
        case "local":
            return section.local()
    raise ConfigError(f"preset must be one of {list(PRESETS)}, got {name!r}")


@dataclass(frozen=True, slots=True)
class WireRoom:
    """How much of the wire a part's messages may take once the transport has wrapped them.

    Each limit comes with what the transport adds to a message (the sender's
    address and the seal on a datagram, the seal on a frame, the seal and the
    length prefix in a stream's queue), so a part's check can say both.
    """

    max_datagram_bytes: int
    datagram_overhead: int
    max_frame_bytes: int
    frame_overhead: int
    max_stream_queue_bytes: int
    queue_overhead: int
    stream_idle_s: float = float("inf")
    """A stream silent this long is closed by the transport: a link meant to
    stay must carry something more often."""

    @property
    def datagram_bytes(self) -> int:
        """The largest message one datagram carries."""
        return self.max_datagram_bytes - self.datagram_overhead

    @property
    def frame_bytes(self) -> int:
        """The largest message one stream frame carries."""
        return self.max_frame_bytes - self.frame_overhead

    @property
    def stream_queue_bytes(self) -> int:
        """The largest message a stream's send queue can hold."""
        return self.max_stream_queue_bytes - self.queue_overhead


def check_positive(owner: str, name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{owner}.{name} must be a number > 0, got {value!r}")


def check_at_least(owner: str, name: str, value: float, minimum: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        raise ConfigError(f"{owner}.{name} must be a number >= {minimum}, got {value!r}")


def check_fraction(owner: str, name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a probability in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{owner}.{name} must be a fraction in [0, 1], got {value!r}")


def check_int(owner: str, name: str, value: int, minimum: int, maximum: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int (not a bool) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(
            f"{owner}.{name} must be an integer in [{minimum}, {maximum}], got {value!r}"
        )


# The largest UDP payload over IPv4 (65,535 - 20 IP header - 8 UDP header).
_MAX_UDP_PAYLOAD = 65_507


@dataclass(frozen=True, slots=True)
class WireConfig:
    """Size limits of the message codec (``gossamer.wire``).

    Limits apply both ways: a node refuses to *send* a message over the limit
    (a :class:`~gossamer.errors.MessageTooLarge` for the caller) and drops one
    it *receives* over the limit (counted as ``oversize``) before parsing it.
    """

    max_datagram_bytes: int = 1_400
    """Largest datagram, in bytes, sent or accepted.  Keep it under the path
    MTU (1,500 on Ethernet, less the IP and UDP headers): a datagram that
    fragments is lost whenever any fragment is, so loss grows with size.
    Larger values carry more piggybacked gossip per probe."""

    max_frame_bytes: int = 8 * 1024 * 1024
    """Largest message, in bytes, on a stream (full-state exchanges, state
    transfer).  Bounds the memory one peer can make a node allocate; it must
    hold the largest full state the cluster will exchange."""

    def __post_init__(self) -> None:
        check_int("WireConfig", "max_datagram_bytes", self.max_datagram_bytes, 64, _MAX_UDP_PAYLOAD)
        check_int("WireConfig", "max_frame_bytes", self.max_frame_bytes, 64, 1 << 31)
        if self.max_frame_bytes < self.max_datagram_bytes:
            raise ConfigError(
                "WireConfig.max_frame_bytes must be >= max_datagram_bytes "
                f"({self.max_frame_bytes} < {self.max_datagram_bytes})"
            )

    @classmethod
    def lan(cls) -> WireConfig:
        """Ethernet MTU: 1,400-byte datagrams, 8 MiB frames."""
        return cls()

    @classmethod
    def wan(cls) -> WireConfig:
        """Tunnels and IPv6 minimum MTU (1,280): 1,200-byte datagrams, 8 MiB frames."""
        return cls(max_datagram_bytes=1_200)

    @classmethod
    def local(cls) -> WireConfig:
        """Loopback: datagrams up to the UDP maximum, 64 MiB frames."""
        return cls(max_datagram_bytes=_MAX_UDP_PAYLOAD, max_frame_bytes=64 * 1024 * 1024)
