"""The configuration of a running node: identity, sockets, security, bounds, parts.

:class:`NodeConfig` gathers what the runtime needs: where to bind and what
address to advertise, the cluster name and keyring, the wire's limits, the
transport's bounds, the debug endpoint, the application-facing queues, and
one *section* per part of the catalogue (``gossamer.parts``): ``swim``,
``ring``...  Like every config in gossamer it is frozen and validated when
built (a :class:`ConfigError` names the field), with presets ``lan()``,
``wan()`` and ``local()`` taking the name and the bind address.
:func:`load_toml` reads the agent's ``--config`` file.

The sections come from the catalogue, so this module names no part: a
part's preset, its checks and whether it fits the wire (a part's datagram,
once the transport has added the sender's address and sealed it, must fit
``wire.max_datagram_bytes``) are the part's own (its ``PartSpec``).  The
presets fit each part to the wire; a hand-built section that does not fit
is refused with the number to use.  ``config.swim`` reads a section, and
``NodeConfig.lan(..., ring=RingConfig(...))`` sets one.
"""

from __future__ import annotations

__all__ = [
    "MAX_ADVERTISE_LENGTH",
    "NodeConfig",
    "config_from_mapping",
    "datagram_overhead",
    "load_toml",
    "preset_sections",
    "read_toml",
    "wire_room",
]

import dataclasses
import ipaddress
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossamer import parts
from gossamer.config import PRESETS, WireConfig, WireRoom, check_int, check_positive, preset
from gossamer.effects import PartContext
from gossamer.errors import ConfigError, LocalError
from gossamer.ids import AddressError, address, is_valid_name, parse_address, split_address
from gossamer.runtime.freshness import STAMP_BYTES
from gossamer.runtime.keyring import SEALED_OVERHEAD, Keyring, KeyringError, load_keyring
from gossamer.runtime.transport import TransportConfig

MAX_ADVERTISE_LENGTH = 64
"""Longest advertised ``host:port``, in characters: every datagram carries it."""

_PLAINTEXT_OVERHEAD = 1


def datagram_overhead(advertise: str, encrypted: bool) -> int:
    """Bytes the transport adds to a message: the sender's address, the stamp, the seal."""
    seal = SEALED_OVERHEAD if encrypted else _PLAINTEXT_OVERHEAD
    return seal + 1 + len(advertise.encode("ascii")) + STAMP_BYTES


def _unspecified(host: str) -> bool:
    """A wildcard address (0.0.0.0, ::, [0:0::0]...): fine to bind, never to advertise."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


# Room for the longest advertise address the header accepts, sealed.
_WORST_OVERHEAD = SEALED_OVERHEAD + 1 + MAX_ADVERTISE_LENGTH + STAMP_BYTES


def wire_room(
    wire: WireConfig, transport: TransportConfig, datagram_overhead_bytes: int = _WORST_OVERHEAD
) -> WireRoom:
    """What the wire leaves a part's messages; the worst case of every advertise
    address and seal unless the real datagram overhead is given."""
    return WireRoom(
        max_datagram_bytes=wire.max_datagram_bytes,
        datagram_overhead=datagram_overhead_bytes,
        max_frame_bytes=wire.max_frame_bytes,
        frame_overhead=SEALED_OVERHEAD + 1,  # the seal, and the body's deflate flag
        max_stream_queue_bytes=transport.max_stream_queue_bytes,
        queue_overhead=SEALED_OVERHEAD + 5,
        stream_idle_s=transport.idle_timeout_s,
    )


def preset_sections(
    name: str, wire: WireConfig, transport: TransportConfig | None = None
) -> dict[str, object]:
    """Every part's preset ``name``, fitted to ``wire``, by part name."""
    room = wire_room(wire, transport if transport is not None else TransportConfig())
    return {entry.name: entry.preset(name, room) for entry in parts.CATALOGUE}


_DEFAULT_BIND = {"lan": "127.0.0.1:7946", "wan": "127.0.0.1:7946", "local": "127.0.0.1:0"}


@dataclass(frozen=True, slots=True, init=False)
class NodeConfig:
    """Everything a node needs to run.  ``docs/configuration.md`` lists every field.

    ``NodeConfig(name, bind, ..., ring=RingConfig(vnodes=512))``: a part's
    section is given by the part's name, and read back as ``config.ring``;
    the sections not given are the ``lan`` presets, fitted to ``wire``.
    """

    name: str
    """The node's name, unique in the cluster: letters, digits and ``_.@:-``."""
    bind: str
    """``host:port`` for both the UDP socket and the TCP listener.  Port 0
    picks a free port (tests)."""
    advertise: str | None
    """``host:port`` peers reach this node at; the bind address when unset.
    Required when binding a wildcard address (0.0.0.0 or ::)."""
    seeds: tuple[str, ...]
    """Addresses of nodes to join through; none starts a cluster of its own."""
    cluster: str
    """The cluster's name, sealed into every packet: nodes of two clusters
    that share a key still refuse each other."""
    keyring: Keyring | None
    """Keys to seal and open packets with (primary first).  Required unless
    ``plaintext`` is set."""
    plaintext: bool
    """Run without encryption or authentication.  Only for a trusted network
    such as loopback; the node logs a warning when it starts this way."""
    metadata: bytes
    """Published with the node's membership (at most ``swim.max_metadata_bytes``)."""
    wire: WireConfig
    """Size limits of datagrams and stream frames (``WireConfig``)."""
    transport: TransportConfig
    """Socket bounds and timeouts (``TransportConfig``)."""
    sections: Mapping[str, object]
    """Each part's config section by part name (``swim``: ``SwimConfig``,
    ``ring``: ``RingConfig``...); ``config.<name>`` reads one."""
    http: str | None
    """``host:port`` of the read-only debug endpoint; off when unset."""
    http_hosts: tuple[str, ...]
    """Host names the debug endpoint answers to besides IP literals and
    ``localhost`` (a name in front of it, such as ``node-a.internal``); any
    other Host header is refused, which stops DNS rebinding."""
    engine_thread: bool
    """Run the core, sockets and timers on a thread of their own, so an
    application that blocks its event loop is not suspected by its peers.
    False runs them on the caller's loop (many nodes in one process)."""
    max_event_queue: int
    """Bound on the events waiting in each ``Node.events()`` iterator; past
    it the oldest is shed and counted."""
    max_event_history: int
    """Events the debug endpoint keeps for ``/api/events``."""
    leave_timeout_s: float
    """How long ``leave()`` waits for the news to be sent enough times, in seconds."""
    epoch: int | None
    """Boot epoch; derived at start when unset (see ``docs/architecture.md``)."""
    data_dir: str | None
    """A directory where the node keeps its last epoch, so a restart always
    comes up with a larger one even if the wall clock steps back."""

    def __init__(
        self,
        name: str,
        bind: str = "127.0.0.1:7946",
        *,
        advertise: str | None = None,
        seeds: tuple[str, ...] = (),
        cluster: str = "gossamer",
        keyring: Keyring | None = None,
        plaintext: bool = False,
        metadata: bytes = b"",
        wire: WireConfig | None = None,
        transport: TransportConfig | None = None,
        sections: Mapping[str, object] | None = None,
        http: str | None = None,
        http_hosts: tuple[str, ...] = (),
        engine_thread: bool = True,
        max_event_queue: int = 1_024,
        max_event_history: int = 256,
        leave_timeout_s: float = 5.0,
        epoch: int | None = None,
        data_dir: str | None = None,
        **named_sections: object,
    ) -> None:
        wire = WireConfig() if wire is None else wire
        transport = TransportConfig() if transport is None else transport
        if not isinstance(wire, WireConfig):
            raise ConfigError(f"NodeConfig.wire must be a WireConfig, got {wire!r}")
        if not isinstance(transport, TransportConfig):
            raise ConfigError(f"NodeConfig.transport must be a TransportConfig, got {transport!r}")
        merged = preset_sections("lan", wire, transport)
        merged.update(sections or {})
        merged.update(named_sections)
        values = {
            "name": name,
            "bind": bind,
            "advertise": advertise,
            "seeds": seeds,
            "cluster": cluster,
            "keyring": keyring,
            "plaintext": plaintext,
            "metadata": metadata,
            "wire": wire,
            "transport": transport,
            "sections": types.MappingProxyType(merged),
            "http": http,
            "http_hosts": http_hosts,
            "engine_thread": engine_thread,
            "max_event_queue": max_event_queue,
            "max_event_history": max_event_history,
            "leave_timeout_s": leave_timeout_s,
            "epoch": epoch,
            "data_dir": data_dir,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)
        self._validate()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: a part's section.
        try:
            sections = object.__getattribute__(self, "sections")
        except AttributeError:
            raise AttributeError(name) from None
        if name in sections:
            return sections[name]
        raise AttributeError(f"NodeConfig has no field or part section {name!r}")

    def _validate(self) -> None:
        owner = "NodeConfig"
        if not is_valid_name(self.name):
            raise ConfigError(
                f"{owner}.name must be 1-128 characters of letters, digits and _.@:- "
                f"(starting with a letter, digit or _), got {self.name!r}"
            )
        shown = self._advertised()
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
        if self.http is not None:
            try:
                split_address(self.http)
            except (AddressError, TypeError) as exc:
                raise ConfigError(f"{owner}.http: {exc}") from None
        if not isinstance(self.http_hosts, tuple) or not all(
            isinstance(h, str) and h and "/" not in h for h in self.http_hosts
        ):
            raise ConfigError(f"{owner}.http_hosts must be a tuple of host names")
        check_int(owner, "max_event_queue", self.max_event_queue, 1, 10_000_000)
        check_int(owner, "max_event_history", self.max_event_history, 1, 10_000_000)
        check_positive(owner, "leave_timeout_s", self.leave_timeout_s)
        if self.epoch is not None:
            check_int(owner, "epoch", self.epoch, 1, (1 << 62) - 1)
        known = [entry.name for entry in parts.CATALOGUE]
        unknown = sorted(set(self.sections) - set(known))
        if unknown:
            raise ConfigError(f"{owner}: no part is named {unknown}; parts: {known}")
        # Each part checks its own section, against the room this node's
        # datagrams really leave (its advertise address, its seal).
        room = wire_room(self.wire, self.transport, datagram_overhead(shown, self.encrypted))
        context = PartContext(self.seeds, self.metadata)
        for entry in parts.CATALOGUE:
            try:
                section = entry.of(self.sections)
            except LocalError:
                raise ConfigError(
                    f"{owner}.{entry.name} must be a {entry.section.__name__}, "
                    f"got {self.sections[entry.name]!r}"
                ) from None
            entry.check(section, room, context)

    def _advertised(self) -> str:
        """The longest form the advertised address can take, checked."""
        owner = "NodeConfig"
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
        return shown

    @property
    def encrypted(self) -> bool:
        return self.keyring is not None

    @classmethod
    def lan(cls, name: str, bind: str = "127.0.0.1:7946", **overrides: Any) -> NodeConfig:
        """A data-centre network: memberlist's LAN timings, 1,400-byte datagrams."""
        return cls._preset("lan", name, bind, overrides)

    @classmethod
    def wan(cls, name: str, bind: str = "127.0.0.1:7946", **overrides: Any) -> NodeConfig:
        """Links across regions: slower probes, longer suspicion, 1,200-byte datagrams."""
        return cls._preset("wan", name, bind, overrides)

    @classmethod
    def local(cls, name: str, bind: str = "127.0.0.1:0", **overrides: Any) -> NodeConfig:
        """Every node on one machine (tests, demos): quick timeouts, loopback sizes."""
        return cls._preset("local", name, bind, overrides)

    @classmethod
    def _preset(cls, which: str, name: str, bind: str, overrides: dict[str, Any]) -> NodeConfig:
        # Every part's preset, fitted to the wire the node will run with (the
        # preset's, or the one given); parts given by name replace theirs.
        wire = overrides.pop("wire", None) or preset(WireConfig, which)
        transport = overrides.get("transport")
        sections = preset_sections(which, wire, transport)
        sections.update(overrides.pop("sections", None) or {})
        return cls(name, bind, wire=wire, sections=sections, **overrides)


# -------------------------------------------------------------------- TOML

_TABLES = {"wire": WireConfig, "transport": TransportConfig}
"""The runtime's own tables (the parts' come from the catalogue)."""

_SPECIAL_KEYS = ("preset", "keyring_file")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; ConfigError, for the operator, if it cannot be read or parsed."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_toml(path: str | Path, **overrides: Any) -> NodeConfig:
    """Read a node's configuration from a TOML file.

    The top level holds :class:`NodeConfig` fields (``name``, ``bind``,
    ``seeds`` as a list, ``keyring_file`` for a keyring file's path,
    ``metadata`` as a string, ``preset`` = ``lan`` | ``wan`` | ``local``);
    tables ``[wire]``, ``[transport]`` and one per part (``[swim]``,
    ``[ring]``) override single fields of the preset's.  ``overrides`` (the
    agent's command-line flags) win over the file.  Unknown keys are refused
    with the list of accepted ones, so a typo is not silently ignored.
    """
    return config_from_mapping(read_toml(path), where=str(path), **overrides)


def _table(where: str, key: str, base: Any, table: object) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    fields = sorted(f.name for f in dataclasses.fields(base))
    bad = sorted(set(table) - set(fields))
    if bad:
        raise ConfigError(f"{where}: [{key}] has unknown field(s) {bad}; known: {fields}")
    try:
        return dataclasses.replace(base, **table)
    except TypeError as exc:
        raise ConfigError(f"{where}: [{key}]: {exc}") from None


def config_from_mapping(
    raw: dict[str, Any], *, where: str = "config", **overrides: Any
) -> NodeConfig:
    """Build a :class:`NodeConfig` from plain data (a parsed TOML file); see :func:`load_toml`."""
    raw = dict(raw)
    which = raw.pop("preset", "lan")
    if which not in PRESETS:
        raise ConfigError(f"{where}: preset must be one of {list(PRESETS)}, got {which!r}")
    tables = {**_TABLES, **{entry.name: entry.section for entry in parts.CATALOGUE}}
    given = {key: raw.pop(key) for key in list(raw) if key in tables}
    keyring_file = raw.pop("keyring_file", None)
    if keyring_file is not None:
        if not isinstance(keyring_file, str):
            raise ConfigError(f"{where}: keyring_file must be a path (a string)")
        try:
            raw["keyring"] = load_keyring(keyring_file)
        except KeyringError as exc:
            raise ConfigError(f"{where}: keyring_file: {exc}") from None
    for key, what in (("seeds", "host:port strings"), ("http_hosts", "host names")):
        if key in raw:
            if isinstance(raw[key], str):
                raise ConfigError(
                    f'{where}: {key} must be a list of {what} ({key} = ["{raw[key]}"])'
                )
            raw[key] = tuple(raw[key])
    if isinstance(raw.get("metadata"), str):
        raw["metadata"] = raw["metadata"].encode("utf-8")
    merged = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    known = sorted(
        {f.name for f in dataclasses.fields(NodeConfig)} - {"sections", *_TABLES}
        | set(_SPECIAL_KEYS)
    )
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {unknown}; known settings: {known}; "
            f"tables: {sorted(tables)}"
        )
    if "name" not in merged:
        raise ConfigError(f"{where}: the node needs a name")
    # The tables first (the preset's, changed by the file's), so the node is
    # validated once, against what it will run with.
    wire = _table(where, "wire", preset(WireConfig, which), given.get("wire", {}))
    transport = _table(where, "transport", TransportConfig(), given.get("transport", {}))
    presets = preset_sections(which, wire, transport)
    sections = {
        entry.name: _table(where, entry.name, presets[entry.name], given.get(entry.name, {}))
        for entry in parts.CATALOGUE
    }
    merged.setdefault("bind", _DEFAULT_BIND[which])
    try:
        return NodeConfig(wire=wire, transport=transport, sections=sections, **merged)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
