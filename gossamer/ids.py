"""Node identity: a name, an address, and a boot epoch.

A node is known to the cluster by its *name* (chosen by the operator, stable
across restarts), reached at its *address* (``host:port``), and told apart
from its own earlier lives by its *epoch*.  Every restart of a name must come
up with a larger epoch than the life before it: protocols treat a larger
epoch for a known name as a restart, which ends every claim the earlier life
made (its incarnations, group memberships and name registrations).  The
simulator numbers epochs 1, 2, 3...; the runtime derives them at boot.

Addresses are plain strings at run time (cheap to hash, compare and encode)
and a distinct type to the type checker (:data:`Address`).  Build them with
:func:`parse_address` or :func:`address`, which validate.
"""

from __future__ import annotations

__all__ = [
    "Address",
    "AddressError",
    "NodeId",
    "address",
    "is_valid_name",
    "parse_address",
    "split_address",
]

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import NewType

from gossamer.errors import LocalError

Address = NewType("Address", str)
"""``host:port``, or ``[v6-literal]:port``; validated by :func:`parse_address`."""

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
# Dot-separated labels of 1-63 characters, 253 in all: what resolvers accept.
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,127}$")


class AddressError(LocalError, ValueError):
    """A string that is not a valid ``host:port`` address."""


def address(host: str, port: int) -> Address:
    """Build an address from a host (name, IPv4 or IPv6 literal) and a port."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise AddressError(f"port must be an integer in 0..65535, got {port!r}")
    if not isinstance(host, str) or not host:
        raise AddressError(f"host must be a non-empty string, got {host!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"{host!r} is not a valid IPv6 address") from None
        return Address(f"[{host}]:{port}")
    if not _HOSTNAME.fullmatch(host):
        raise AddressError(f"{host!r} is not a valid host name or IPv4 address")
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise AddressError(f"{host!r} is not a valid IPv4 address") from None
    return Address(f"{host}:{port}")


def is_valid_name(name: object) -> bool:
    """True for a valid node name: 1-128 letters, digits and ``_ . @ : -``,
    not starting with punctuation other than ``_``."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def _split(addr: str) -> tuple[str, int]:
    """The syntax of ``host:port`` (or ``[v6]:port``); :func:`address` checks the parts."""
    if not isinstance(addr, str):
        raise AddressError(f"an address is a 'host:port' string, got {addr!r}")
    if addr.startswith("["):
        host, sep, port_text = addr[1:].partition("]:")
        if ":" not in host:
            raise AddressError(f"{addr!r}: only IPv6 literals go in brackets")
    else:
        host, sep, port_text = addr.rpartition(":")
        if ":" in host:
            raise AddressError(f"{addr!r}: an IPv6 address goes in brackets, as [::1]:7946")
    if not sep or not port_text.isdigit():
        raise AddressError(f"{addr!r} is not of the form host:port")
    return host, int(port_text)


def split_address(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into its parts, validating both."""
    if type(addr) is str:
        return _valid(addr)[1]
    host, port = _split(addr)  # the AddressError for a non-string
    address(host, port)
    return host, port


def parse_address(addr: str) -> Address:
    """Validate ``host:port`` (or ``[v6]:port``) and return it as an :data:`Address`."""
    if type(addr) is str:
        return _valid(addr)[0]
    return address(*_split(addr))  # the AddressError for a non-string


# Memoised: every datagram names its sender, and every send splits its target;
# the addresses a node sees are few.  Errors are not cached.
@functools.lru_cache(maxsize=4_096)
def _valid(addr: str) -> tuple[Address, tuple[str, int]]:
    parts = _split(addr)
    return address(*parts), parts


@dataclass(frozen=True, slots=True)
class NodeId:
    """Who a node is: its stable name, where it listens, and which life it is in.

    ``epoch`` is a positive integer that grows with every restart of the same
    name; two ``NodeId`` values with the same name and different epochs are two
    lives of one node, and the larger epoch is the current one.
    """

    name: str
    """Operator-chosen, unique in the cluster, stable across restarts (1-128 chars)."""
    address: Address
    """Where the node receives datagrams and accepts streams."""
    epoch: int
    """Boot epoch, >= 1; larger means a later life of the same name."""

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise LocalError(
                f"node name {self.name!r} must be 1-128 characters of letters, digits"
                " and _ . @ : - (not starting with punctuation other than _)"
            )
        parse_address(self.address)
        if not isinstance(self.epoch, int) or isinstance(self.epoch, bool) or self.epoch < 1:
            raise LocalError(f"epoch must be an integer >= 1, got {self.epoch!r}")

    def __str__(self) -> str:
        return f"{self.name}@{self.address}#{self.epoch}"
