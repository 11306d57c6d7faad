"""The simulated network's options, in one frozen dataclass.

Fault injection lives here and in :class:`~gossamer.sim.Simulator`'s control
methods (partition, crash, pause), never in the production API.
"""

from __future__ import annotations

__all__ = ["NetworkConfig"]

from dataclasses import dataclass

from gossamer.config import check_at_least, check_fraction, check_int, check_positive


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """How the simulated network treats datagrams and streams.

    Every random choice the network makes is drawn from the simulator's
    network ``random.Random``, seeded from the simulator's seed.
    """

    latency_s: float = 0.0005
    """One-way base latency of every datagram and stream message, in seconds."""

    jitter_s: float = 0.0005
    """Extra one-way latency, uniform in ``[0, jitter_s]``, drawn per message.
    Datagrams sent back to back may overtake each other by up to this much."""

    loss: float = 0.0
    """Probability that a datagram is lost.  Streams never lose messages while
    they are up (they are reliable); they break instead."""

    duplicate: float = 0.0
    """Probability that a datagram is delivered twice (the copy has its own latency)."""

    reorder: float = 0.0
    """Probability that a datagram is held back by an extra delay uniform in
    ``[0, reorder_delay_s]``, so that later datagrams overtake it."""

    reorder_delay_s: float = 0.01
    """Largest extra hold-back of a reordered datagram, in seconds."""

    stream_break_detect_s: float = 1.0
    """How long after a stream breaks (its peer crashed or was cut off) or
    fails to connect its live ends hear ``on_stream_down``, in seconds.  Models
    the TCP retransmission or keep-alive timeout of a real network; a graceful
    close is heard after the latency instead."""

    max_in_flight: int = 10_000_000
    """Bound on the messages in the network at once; a message that would
    exceed it is dropped and counted as ``overflow``, so a runaway core cannot
    exhaust memory.  Stream notices are never dropped (the streams bound
    them); inputs waiting in a paused node's inbox have left the network."""

    def __post_init__(self) -> None:
        owner = "NetworkConfig"
        check_at_least(owner, "latency_s", self.latency_s, 0)
        check_at_least(owner, "jitter_s", self.jitter_s, 0)
        check_fraction(owner, "loss", self.loss)
        check_fraction(owner, "duplicate", self.duplicate)
        check_fraction(owner, "reorder", self.reorder)
        check_at_least(owner, "reorder_delay_s", self.reorder_delay_s, 0)
        check_positive(owner, "stream_break_detect_s", self.stream_break_detect_s)
        check_int(owner, "max_in_flight", self.max_in_flight, 1, 2**63 - 1)

    @classmethod
    def lan(cls) -> NetworkConfig:
        """A data-centre network: 0.5-1 ms one way, no loss."""
        return cls()

    @classmethod
    def wan(cls) -> NetworkConfig:
        """Links across regions: 40-60 ms one way, 1% loss, some reordering."""
        return cls(
            latency_s=0.04,
            jitter_s=0.02,
            loss=0.01,
            reorder=0.01,
            reorder_delay_s=0.05,
            stream_break_detect_s=5.0,
        )

    @classmethod
    def local(cls) -> NetworkConfig:
        """Every node on one machine: 50-100 microseconds, no loss."""
        return cls(latency_s=0.00005, jitter_s=0.00005, stream_break_detect_s=0.1)
