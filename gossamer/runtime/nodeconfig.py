"""The configuration of a running node: identity, sockets, security, bounds.

:class:`NodeConfig` gathers what the runtime needs besides the protocol
settings it carries (``swim``, ``wire``): where to bind and what address to
advertise, the cluster name and keyring, the debug endpoint, the transport's
bounds and the application-facing queues.  Like every config in gossamer it
is a frozen dataclass, validated when built (a :class:`ConfigError` names the
field), with presets ``lan()``, ``wan()`` and ``local()`` taking the name and
the bind address.  :func:`load_toml` reads the agent's ``--config`` file.

One rule ties the pieces together: a SWIM datagram, once the transport has
added the sender's address and sealed it, must fit ``wire.max_datagram_bytes``
(``swim.max_payload_bytes + datagram_overhead(advertise, encrypted)``), and a
full state must fit a stream frame.  The presets size SWIM's payload so that
it does; a hand-built config that breaks the rule is refused with the number
to use.
"""

from __future__ import annotations

__all__ = [
    "MAX_ADVERTISE_LENGTH",
    "NodeConfig",
    "datagram_overhead",
    "load_toml",
]

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossamer.config import WireConfig, check_int, check_positive
from gossamer.errors import ConfigError
from gossamer.failure.swim import SwimConfig
from gossamer.ids import AddressError, address, is_valid_name, parse_address, split_address
from gossamer.ring.tracker import RingConfig
from gossamer.runtime.keyring import SEALED_OVERHEAD, Keyring, KeyringError, load_keyring
from gossamer.runtime.transport import TransportConfig

MAX_ADVERTISE_LENGTH = 64
"""Longest advertised ``host:port``, in characters: every datagram carries it."""

_PLAINTEXT_OVERHEAD = 1


def datagram_overhead(advertise: str, encrypted: bool) -> int:
    """Bytes the transport adds to a message: the sender's address and the seal."""
    seal = SEALED_OVERHEAD if encrypted else _PLAINTEXT_OVERHEAD
    return seal + 1 + len(advertise.encode("ascii"))


def _unspecified(host: str) -> bool:
    """A wildcard address (0.0.0.0, ::, [0:0::0]...): fine to bind, never to advertise."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


# Room for the longest advertise address the header accepts, sealed.
_WORST_OVERHEAD = SEALED_OVERHEAD + 1 + MAX_ADVERTISE_LENGTH


def _fitted_swim(swim: SwimConfig, wire: WireConfig) -> SwimConfig:
    """``swim`` with its payload shrunk so a sealed datagram fits ``wire``."""
    room = wire.max_datagram_bytes - _WORST_OVERHEAD
    if swim.max_payload_bytes <= room:
        return swim
    return dataclasses.replace(
        swim,
        max_payload_bytes=room,
        max_metadata_bytes=min(swim.max_metadata_bytes, room // 2),
    )


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to run.  ``docs/configuration.md`` lists every field."""

    name: str
    """The node's name, unique in the cluster: letters, digits and ``_.@:-``."""
    bind: str = "127.0.0.1:7946"
    """``host:port`` for both the UDP socket and the TCP listener.  Port 0
    picks a free port (tests)."""
    advertise: str | None = None
    """``host:port`` peers reach this node at; the bind address when unset.
    Required when binding a wildcard address (0.0.0.0 or ::)."""
    seeds: tuple[str, ...] = ()
    """Addresses of nodes to join through; none starts a cluster of its own."""
    cluster: str = "gossamer"
    """The cluster's name, sealed into every packet: nodes of two clusters
    that share a key still refuse each other."""
    keyring: Keyring | None = None
    """Keys to seal and open packets with (primary first).  Required unless
    ``plaintext`` is set."""
    plaintext: bool = False
    """Run without encryption or authentication.  Only for a trusted network
    such as loopback; the node logs a warning when it starts this way."""
    metadata: bytes = b""
    """Published with the node's membership (at most ``swim.max_metadata_bytes``)."""
    swim: SwimConfig = field(default_factory=lambda: _fitted_swim(SwimConfig.lan(), WireConfig()))
    """Failure detection and dissemination (``SwimConfig``)."""
    wire: WireConfig = field(default_factory=WireConfig)
    """Size limits of datagrams and stream frames (``WireConfig``)."""
    transport: TransportConfig = field(default_factory=TransportConfig)
    """Socket bounds and timeouts (``TransportConfig``)."""
    ring: RingConfig = field(default_factory=RingConfig)
    """The consistent-hashing ring over the live members (``node.ring``).
    ``ring.vnodes`` must be the same on every node of the cluster."""
    http: str | None = None
    """``host:port`` of the read-only debug endpoint; off when unset."""
    engine_thread: bool = True
    """Run the core, sockets and timers on a thread of their own, so an
    application that blocks its event loop is not suspected by its peers.
    False runs them on the caller's loop (many nodes in one process)."""
    max_event_queue: int = 1_024
    """Bound on the events waiting in each ``Node.events()`` iterator; past
    it the oldest is shed and counted."""
    max_event_history: int = 256
    """Member events the debug endpoint keeps for ``/api/events``."""
    leave_timeout_s: float = 5.0
    """How long ``leave()`` waits for the news to be sent enough times, in seconds."""
    epoch: int | None = None
    """Boot epoch; derived at start when unset (see ``docs/architecture.md``)."""
    data_dir: str | None = None
    """A directory where the node keeps its last epoch, so a restart always
    comes up with a larger one even if the wall clock steps back."""

    def __post_init__(self) -> None:
        owner = "NodeConfig"
        if not is_valid_name(self.name):
            raise ConfigError(
                f"{owner}.name must be 1-128 characters of letters, digits and _.@:- "
                f"(starting with a letter, digit or _), got {self.name!r}"
            )
        try:
            bind_host, _ = split_address(self.bind)
        except (AddressError, TypeError) as exc:
            raise ConfigError(f"{owner}.bind: {exc}") from None
        advertise = self.advertise
        if advertise is not None:
            try:
                advertise_host, port = split_address(advertise)
            except (AddressError, TypeError) as exc:
                raise ConfigError(f"{owner}.advertise: {exc}") from None
            if port == 0:
                raise ConfigError(f"{owner}.advertise needs a real port, got {advertise!r}")
            if _unspecified(advertise_host):
                raise ConfigError(
                    f"{owner}.advertise {advertise!r} is a wildcard; give an address "
                    "peers can reach"
                )
            shown = str(parse_address(advertise))
        elif _unspecified(bind_host):
            raise ConfigError(
                f"{owner}.bind is the wildcard {self.bind!r}: set advertise to the "
                "address peers should use"
            )
        else:
            shown = str(address(bind_host, 65535))  # the longest the port can make it
        if len(shown) > MAX_ADVERTISE_LENGTH:
            raise ConfigError(
                f"{owner}.advertise {shown!r} is over {MAX_ADVERTISE_LENGTH} characters"
            )
        if not isinstance(self.seeds, tuple):
            raise ConfigError(f"{owner}.seeds must be a tuple of host:port strings")
        for seed in self.seeds:
            try:
                parse_address(seed)
            except (AddressError, TypeError) as exc:
                raise ConfigError(f"{owner}.seeds: {exc}") from None
        if not isinstance(self.cluster, str) or not (
            0 < len(self.cluster) <= 64 and self.cluster.isascii() and self.cluster.isprintable()
        ):
            raise ConfigError(
                f"{owner}.cluster must be 1-64 printable ASCII characters, got {self.cluster!r}"
            )
        if self.keyring is None and self.plaintext is not True:
            raise ConfigError(
                f"{owner}: no keyring.  Give one (`gossamer keygen --keyring FILE`, "
                "then keyring=load_keyring(FILE)) or set plaintext=True explicitly "
                "for a trusted network such as loopback"
            )
        if self.keyring is not None and self.plaintext:
            raise ConfigError(f"{owner}: keyring and plaintext=True are exclusive")
        if not isinstance(self.metadata, bytes):
            raise ConfigError(f"{owner}.metadata must be bytes")
        if len(self.metadata) > self.swim.max_metadata_bytes:
            raise ConfigError(
                f"{owner}.metadata is {len(self.metadata)} bytes, over "
                f"swim.max_metadata_bytes ({self.swim.max_metadata_bytes})"
            )
        if self.http is not None:
            try:
                split_address(self.http)
            except (AddressError, TypeError) as exc:
                raise ConfigError(f"{owner}.http: {exc}") from None
        if not isinstance(self.ring, RingConfig):
            raise ConfigError(f"{owner}.ring must be a RingConfig, got {self.ring!r}")
        check_int(owner, "max_event_queue", self.max_event_queue, 1, 10_000_000)
        check_int(owner, "max_event_history", self.max_event_history, 1, 10_000_000)
        check_positive(owner, "leave_timeout_s", self.leave_timeout_s)
        if self.epoch is not None:
            check_int(owner, "epoch", self.epoch, 1, (1 << 62) - 1)
        overhead = datagram_overhead(shown, self.keyring is not None)
        room = self.wire.max_datagram_bytes - overhead
        if self.swim.max_payload_bytes > room:
            raise ConfigError(
                f"{owner}: swim.max_payload_bytes ({self.swim.max_payload_bytes}) plus the "
                f"transport's {overhead} bytes (sender address and seal) is over "
                f"wire.max_datagram_bytes ({self.wire.max_datagram_bytes}); use at most {room}"
            )
        frame = self.swim.max_state_bytes + SEALED_OVERHEAD + 4
        if self.transport.max_stream_queue_bytes < frame:
            raise ConfigError(
                f"{owner}: transport.max_stream_queue_bytes "
                f"({self.transport.max_stream_queue_bytes}) must hold a full state "
                f"(swim.max_state_bytes + {SEALED_OVERHEAD + 4} = {frame})"
            )
        if self.swim.max_state_bytes + SEALED_OVERHEAD > self.wire.max_frame_bytes:
            raise ConfigError(
                f"{owner}: swim.max_state_bytes ({self.swim.max_state_bytes}) must leave "
                f"{SEALED_OVERHEAD} bytes under wire.max_frame_bytes ({self.wire.max_frame_bytes})"
            )

    @property
    def encrypted(self) -> bool:
        return self.keyring is not None

    @classmethod
    def lan(cls, name: str, bind: str = "127.0.0.1:7946", **overrides: Any) -> NodeConfig:
        """A data-centre network: memberlist's LAN timings, 1,400-byte datagrams."""
        return cls(name, bind, **_preset_configs("lan"), **overrides)

    @classmethod
    def wan(cls, name: str, bind: str = "127.0.0.1:7946", **overrides: Any) -> NodeConfig:
        """Links across regions: slower probes, longer suspicion, 1,200-byte datagrams."""
        return cls(name, bind, **_preset_configs("wan"), **overrides)

    @classmethod
    def local(cls, name: str, bind: str = "127.0.0.1:0", **overrides: Any) -> NodeConfig:
        """Every node on one machine (tests, demos): quick timeouts, loopback sizes."""
        return cls(name, bind, **_preset_configs("local"), **overrides)


_PRESETS: dict[str, tuple[Any, Any, str]] = {
    # preset: (SwimConfig preset, WireConfig preset, default bind)
    "lan": (SwimConfig.lan, WireConfig.lan, "127.0.0.1:7946"),
    "wan": (SwimConfig.wan, WireConfig.wan, "127.0.0.1:7946"),
    "local": (SwimConfig.local, WireConfig.local, "127.0.0.1:0"),
}


def _preset_configs(preset: str, wire: WireConfig | None = None) -> dict[str, Any]:
    """A preset's ``wire`` (or the one given) and its ``swim``, fitted to that wire."""
    swim_preset, wire_preset, _ = _PRESETS[preset]
    wire = wire if wire is not None else wire_preset()
    return {"swim": _fitted_swim(swim_preset(), wire), "wire": wire}


_SECTIONS = ("swim", "wire", "transport", "ring")
"""The sub-configs a TOML file may change one field at a time, as tables."""


def load_toml(path: str | Path, **overrides: Any) -> NodeConfig:
    """Read a node's configuration from a TOML file.

    The top level holds :class:`NodeConfig` fields (``name``, ``bind``,
    ``seeds`` as a list, ``keyring_file`` for a keyring file's path,
    ``metadata`` as a string, ``preset`` = ``lan`` | ``wan`` | ``local``);
    tables ``[swim]``, ``[wire]``, ``[transport]`` and ``[ring]`` override
    single fields of the preset's sub-configs.  ``overrides`` (the agent's command-line
    flags) win over the file.  Unknown keys are refused, so a typo is not
    silently ignored.
    """
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return config_from_mapping(raw, where=str(path), **overrides)


def _section(where: str, key: str, base: Any, table: object) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    fields = {f.name for f in dataclasses.fields(base)}
    bad = sorted(set(table) - fields)
    if bad:
        raise ConfigError(f"{where}: [{key}] has unknown field(s) {bad}")
    try:
        return dataclasses.replace(base, **table)
    except TypeError as exc:
        raise ConfigError(f"{where}: [{key}]: {exc}") from None


def config_from_mapping(
    raw: dict[str, Any], *, where: str = "config", **overrides: Any
) -> NodeConfig:
    """Build a :class:`NodeConfig` from plain data (a parsed TOML file); see :func:`load_toml`."""
    raw = dict(raw)
    preset = raw.pop("preset", "lan")
    if preset not in _PRESETS:
        raise ConfigError(f"{where}: preset must be one of {sorted(_PRESETS)}, got {preset!r}")
    _, wire_preset, default_bind = _PRESETS[preset]
    sections = {key: raw.pop(key) for key in list(raw) if key in _SECTIONS}
    keyring_file = raw.pop("keyring_file", None)
    if keyring_file is not None:
        try:
            raw["keyring"] = load_keyring(keyring_file)
        except KeyringError as exc:
            raise ConfigError(f"{where}: keyring_file: {exc}") from None
    if "seeds" in raw:
        raw["seeds"] = tuple(raw["seeds"])
    if isinstance(raw.get("metadata"), str):
        raw["metadata"] = raw["metadata"].encode("utf-8")
    merged = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in dataclasses.fields(NodeConfig)} - set(_SECTIONS)
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    if "name" not in merged:
        raise ConfigError(f"{where}: the node needs a name")
    # The sub-configs first (the preset's, changed by the file's tables), so
    # the node is validated once, against what it will run with.
    wire = _section(where, "wire", wire_preset(), sections.get("wire", {}))
    swim = _section(where, "swim", _preset_configs(preset, wire)["swim"], sections.get("swim", {}))
    transport = _section(where, "transport", TransportConfig(), sections.get("transport", {}))
    ring = _section(where, "ring", RingConfig(), sections.get("ring", {}))
    merged.setdefault("bind", default_bind)
    try:
        return NodeConfig(swim=swim, wire=wire, transport=transport, ring=ring, **merged)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
