"""The cluster keyring, and sealing every packet with it.

Gossip runs over UDP and a shared port; anyone who can reach the port can read
the membership and inject rumours.  A cluster with a keyring seals every packet
so that only holders of a cluster key can read or forge one.

Algorithm
---------
Packets are sealed with AES-256-GCM from the ``cryptography`` package -- an
authenticated cipher from a maintained, audited library, never hand-written
crypto.  A sealed packet is::

    0x01 | nonce (12 bytes) | ciphertext | tag (16 bytes)

and a plaintext one is ``0x00 | data``.  The format byte lets a node tell a
misconfigured peer (sealed vs plaintext) from garbage, and leaves room for
another cipher later.

Invariants the code relies on
-----------------------------
* **Nonces are random, 96 bits, and never repeat in practice.**  Random
  nonces are safe only while one key seals well under 2**32 packets in all
  (NIST SP 800-38D caps random-nonce GCM there); a repeated nonce leaks the
  XOR of two plaintexts and lets an attacker forge tags.  The whole cluster
  shares the key: 100 nodes sending 50 packets a second each seal 2**32
  packets in about ten days.  Rotate keys regularly -- it costs no downtime,
  see below.
* **The cluster name is associated data** (``b"gossamer/1/" + name``).  It is
  authenticated, not sent, so two clusters that happen to share a key still
  refuse each other's packets, and a packet cannot be replayed into another
  cluster.
* **The primary key seals; every installed key opens**, primary first (the
  common case costs one decryption).  Keys therefore rotate without downtime,
  as in memberlist: install the new key on every node, then ``use`` it on every
  node, then ``remove`` the old one.  At every step each node can open what
  every other node sends.
* **A peer's packet never raises anything but** :class:`SealError` (a
  :class:`~gossamer.errors.RemoteError`): the transport counts it under its
  ``reason`` and drops the packet.  This module counts nothing itself.
* **Key material never reaches a log**: :class:`Keyring` shows only short
  SHA-256 fingerprints.
"""

from __future__ import annotations

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "SEALED_OVERHEAD",
    "TAG_BYTES",
    "Keyring",
    "KeyringError",
    "SealError",
    "SealReason",
    "Sealer",
    "decode_key",
    "encode_key",
    "fingerprint",
    "generate_key",
    "load_keyring",
    "save_keyring",
]

import base64
import binascii
import contextlib
import json
import os
import secrets
import tempfile
from collections import deque
from collections.abc import Sequence
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gossamer.admin.keys import fingerprint
from gossamer.errors import ConfigError, LocalError, RemoteError

KEY_BYTES = 32
"""AES-256: every key is exactly 32 bytes."""
NONCE_BYTES = 12
"""GCM's native nonce size; other sizes cost an extra GHASH and gain nothing."""
TAG_BYTES = 16
"""The full GCM tag: truncated tags weaken forgery resistance."""
SEALED_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
"""Bytes a sealed packet adds to its data: format byte, nonce and tag (29)."""

_PLAINTEXT = 0x00
_AES256GCM = 0x01
_PLAINTEXT_HEADER = bytes([_PLAINTEXT])
_AES256GCM_HEADER = bytes([_AES256GCM])
_AD_PREFIX = b"gossamer/1/"
_MAX_CLUSTER_CHARS = 64
_ENCODED_KEY_CHARS = 44


class KeyringError(LocalError, ValueError):
    """A caller's mistake about keys: wrong length, not installed, a bad keyring file."""


class SealReason(StrEnum):
    """Why a packet was refused; the transport counts drops under these names."""

    DECRYPT = "decrypt"
    """No installed key opens the packet, or its tag does not check out."""
    PLAINTEXT = "plaintext"
    """This node requires sealed packets and got a plaintext one."""
    SEALED = "sealed"
    """This node runs in plaintext and got a sealed packet."""
    FORMAT = "format"
    """Empty, an unknown format byte, or too short to hold a nonce and a tag."""


class SealError(RemoteError):
    """A peer's packet could not be opened; ``reason`` (a :class:`SealReason`) says why."""

    def __init__(self, reason: SealReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason: str = reason
        self.detail = detail


def generate_key() -> bytes:
    """A new random key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    """A key as standard base64 (44 characters), the form keyring files and flags use."""
    _check_key(key)
    return base64.b64encode(key).decode("ascii")


def decode_key(text: str) -> bytes:
    """Parse a base64 key, ignoring whitespace (keys are pasted from terminals and files)."""
    if not isinstance(text, str):
        raise KeyringError(f"a key is a base64 string, got {type(text).__name__}")
    try:
        key = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(
            f"a key must be base64 ({_ENCODED_KEY_CHARS} characters): {exc}"
        ) from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"a key is {KEY_BYTES} bytes, base64-encoded ({_ENCODED_KEY_CHARS} characters); "
            f"got {len(key)} bytes"
        )
    return key


def _check_key(key: object) -> None:
    if not isinstance(key, bytes):
        raise KeyringError(f"a key must be bytes, got {type(key).__name__}")
    if len(key) != KEY_BYTES:
        raise KeyringError(f"a key is {KEY_BYTES} bytes, got {len(key)} bytes")


class Keyring:
    """The keys a node holds: one primary that seals, and secondaries that only open.

    A keyring is mutable on purpose -- rotation changes it while the node runs,
    and every :class:`Sealer` holding it sees the change at its next call.
    The ``AESGCM`` object of each key is built once and kept, so sealing a
    packet does not re-derive the key schedule.

    One thread changes a keyring (the agent reloads its file on SIGHUP on its
    main thread) while another seals and opens with it (the engine): every
    change replaces the tuple of ciphers the sealer reads in one assignment,
    so a packet is sealed or opened with the keys before or after a change,
    never a mix.
    """

    __slots__ = ("_aeads", "_ciphers", "_keys")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if isinstance(keys, bytes | bytearray | memoryview | str):
            raise KeyringError("pass a sequence of keys, primary first, e.g. Keyring([key])")
        keys = list(keys)
        if not keys:
            raise KeyringError("a keyring needs at least one key (the primary)")
        for key in keys:
            _check_key(key)
        if len(set(keys)) != len(keys):
            raise KeyringError("a keyring holds each key once; the keys given repeat one")
        self._keys: list[bytes] = keys
        self._ciphers: dict[bytes, AESGCM] = {key: AESGCM(key) for key in keys}
        # The ciphers in trial order, rebuilt on every change so a sealer's hot
        # path is one attribute read and no allocation.
        self._aeads: tuple[AESGCM, ...] = ()
        self._reorder()

    @property
    def primary(self) -> bytes:
        """The key that seals outgoing packets."""
        return self._keys[0]

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every installed key, primary first."""
        return tuple(self._keys)

    def install(self, key: bytes) -> None:
        """Add ``key`` as a secondary: it opens packets but does not seal them yet.

        Installing a key already there does nothing, so a rollout script can
        be run again safely.
        """
        _check_key(key)
        if key in self._ciphers:
            return
        self._ciphers[key] = AESGCM(key)
        self._keys.append(key)
        self._reorder()

    def use(self, key: bytes) -> None:
        """Make an installed key the primary; the old primary stays as a secondary."""
        _check_key(key)
        if key not in self._ciphers:
            raise KeyringError(f"key {fingerprint(key)} is not installed; install it first")
        self._keys.remove(key)
        self._keys.insert(0, key)
        self._reorder()

    def remove(self, key: bytes) -> None:
        """Forget a secondary key; packets sealed with it stop opening at once."""
        _check_key(key)
        if key not in self._ciphers:
            raise KeyringError(f"key {fingerprint(key)} is not installed")
        if key == self._keys[0]:
            raise KeyringError(
                f"key {fingerprint(key)} is the primary; use another key before removing it"
            )
        self._keys.remove(key)
        del self._ciphers[key]
        self._reorder()

    def fingerprints(self) -> list[str]:
        """Short SHA-256 fingerprints of the keys, primary first, for logs and debug pages."""
        return [fingerprint(key) for key in self._keys]

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        count = len(self._keys)
        noun = "key" if count == 1 else "keys"
        return f"Keyring({count} {noun}, primary {fingerprint(self._keys[0])}…)"

    def _reorder(self) -> None:
        self._aeads = tuple(self._ciphers[key] for key in self._keys)


def load_keyring(path: str | os.PathLike[str]) -> Keyring:
    """Read a keyring file: a JSON array of base64 keys, primary first (memberlist's format)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        raise KeyringError(f"keyring file {name} does not exist") from None
    except OSError as exc:
        raise KeyringError(f"cannot read keyring file {name}: {exc.strerror or exc}") from None
    try:
        entries = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        raise KeyringError(f"keyring file {name} is not JSON: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise KeyringError(
            f"keyring file {name} must hold a non-empty JSON array of base64 keys, primary first"
        )
    keys = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise KeyringError(
                f"keyring file {name}, entry {index}: a key is a base64 string, "
                f"got {type(entry).__name__}"
            )
        try:
            keys.append(decode_key(entry))
        except KeyringError as exc:
            raise KeyringError(f"keyring file {name}, entry {index}: {exc}") from None
    try:
        return Keyring(keys)
    except KeyringError as exc:
        raise KeyringError(f"keyring file {name}: {exc}") from None


def save_keyring(path: str | os.PathLike[str], keyring: Keyring) -> None:
    """Write a keyring file readable by its owner only (0600), atomically.

    The keys go to a temporary file in the same directory, which then
    replaces ``path``: a crash or a full disk leaves the old keyring whole,
    never a half-written one that would lock the node out of its cluster.
    """
    name = os.fspath(path)
    text = json.dumps([encode_key(key) for key in keyring.keys], indent=2) + "\n"
    directory = os.path.dirname(os.path.abspath(name))
    try:
        # mkstemp creates the file with mode 0600, so the keys are never
        # readable by others, not even for a moment.
        fd, temporary = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(name)}.", suffix=".tmp"
        )
    except OSError as exc:
        raise KeyringError(f"cannot write keyring file {name}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise KeyringError(f"cannot write keyring file {name}: {exc.strerror or exc}") from None


_NONCE_BATCH = 64
"""Nonces drawn from the operating system per call (see :class:`Sealer`)."""


class Sealer:
    """Seals outgoing packets and opens incoming ones for one cluster.

    ``keyring=None`` runs in plaintext: packets still carry the format byte, so
    a plaintext node and a sealed node recognise the mismatch and say so
    (reasons ``"sealed"`` and ``"plaintext"``) instead of reporting garbage.
    The sealer reads its keyring at every call, so rotation takes effect at
    once.
    """

    __slots__ = ("_ad", "_cluster", "_keyring", "_nonces")

    def __init__(self, cluster: str, keyring: Keyring | None) -> None:
        if not isinstance(cluster, str) or not 1 <= len(cluster) <= _MAX_CLUSTER_CHARS:
            raise ConfigError(
                f"the cluster name must be a string of 1 to {_MAX_CLUSTER_CHARS} characters, "
                f"got {cluster!r}"
            )
        if not all(" " <= char <= "~" for char in cluster):
            raise ConfigError(f"the cluster name must be printable ASCII, got {cluster!r}")
        if keyring is not None and not isinstance(keyring, Keyring):
            raise ConfigError(f"keyring must be a Keyring or None, got {type(keyring).__name__}")
        self._cluster = cluster
        self._keyring = keyring
        self._ad = _AD_PREFIX + cluster.encode("ascii")
        # Random nonces drawn _NONCE_BATCH at a time: one getrandom call per
        # batch rather than per packet.  Each is popped once (deque.popleft
        # is atomic), so two threads sealing at once never share one.
        self._nonces: deque[bytes] = deque()

    @property
    def cluster(self) -> str:
        """The cluster name, authenticated with every sealed packet."""
        return self._cluster

    @property
    def keyring(self) -> Keyring | None:
        """The keyring in use, or None in plaintext mode."""
        return self._keyring

    @property
    def encrypted(self) -> bool:
        """Whether packets are sealed (a keyring is set)."""
        return self._keyring is not None

    @property
    def overhead(self) -> int:
        """Bytes every packet gains: 29 sealed, 1 (the format byte) in plaintext."""
        return 1 if self._keyring is None else SEALED_OVERHEAD

    def seal(self, data: bytes, context: bytes = b"") -> bytes:
        """Wrap ``data`` for the wire, sealed with the primary key if there is a keyring.

        ``context`` is authenticated with the packet but not sent: the
        receiver must pass the same bytes to :meth:`open`.  The transport
        binds stream frames to their stream and position with it, so a frame
        cannot be replayed on another stream or out of order.
        """
        if self._keyring is None:
            return _PLAINTEXT_HEADER + data
        try:
            nonce = self._nonces.popleft()
        except IndexError:
            pool = os.urandom(NONCE_BYTES * _NONCE_BATCH)
            self._nonces.extend(pool[i : i + NONCE_BYTES] for i in range(0, len(pool), NONCE_BYTES))
            nonce = self._nonces.popleft()
        sealed = self._keyring._aeads[0].encrypt(nonce, data, self._ad + context)
        return b"".join((_AES256GCM_HEADER, nonce, sealed))

    def open(self, packet: bytes | bytearray | memoryview, context: bytes = b"") -> bytes:
        """Unwrap a packet from a peer; raise :class:`SealError`, and only that, if it fails.

        ``context`` must be what the sender sealed with (see :meth:`seal`).
        """
        view = memoryview(packet)
        if view.format != "B" or view.ndim != 1:
            try:
                view = view.cast("B")
            except (TypeError, ValueError):
                raise SealError(SealReason.FORMAT, "not a flat byte buffer") from None
        if not view:
            raise SealError(SealReason.FORMAT, "empty packet")
        kind = view[0]
        if kind == _AES256GCM:
            if self._keyring is None:
                raise SealError(SealReason.SEALED, "sealed packet, but this node runs in plaintext")
            if len(view) < SEALED_OVERHEAD:
                raise SealError(
                    SealReason.FORMAT,
                    f"sealed packet of {len(view)} bytes, shorter than nonce and tag",
                )
            nonce = view[1 : 1 + NONCE_BYTES]
            body = view[1 + NONCE_BYTES :]
            ad = self._ad + context
            for aead in self._keyring._aeads:
                try:
                    return aead.decrypt(nonce, body, ad)
                except InvalidTag:
                    continue
            raise SealError(
                SealReason.DECRYPT,
                f"no installed key opens it for cluster {self._cluster!r}, or it was altered",
            )
        if kind == _PLAINTEXT:
            if self._keyring is not None:
                raise SealError(
                    SealReason.PLAINTEXT, "plaintext packet, but this node requires sealed ones"
                )
            return view[1:].tobytes()
        raise SealError(SealReason.FORMAT, f"unknown format byte 0x{kind:02x}")

    def __repr__(self) -> str:
        return f"Sealer(cluster={self._cluster!r}, keyring={self._keyring!r})"
