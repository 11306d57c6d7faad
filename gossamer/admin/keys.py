"""Key rotation across the cluster: the node's ``keys`` part.

An operator rotates the cluster key in three commands -- install the new
key, use it, remove the old one -- each run once, on any node.  The node
that is asked applies the change to its own keyring and sends it
(:class:`KeyChange`) to every live member, which applies it to its keyring
and answers (:class:`KeyChangeResult`) with its keys' fingerprints.  The
asking node resends to the members that have not answered every
``retry_s`` until ``timeout_s``; the view lists who answered what, so the
operator sees at once which node missed a step before taking the next.

The keyring is the runtime's, handed over in :class:`PartContext`: a change
is in memory (the part does no I/O); the runtime writes the keyring file on
the :class:`KeyringChanged` event.  Changes are idempotent (installing an
installed key, removing a missing one, using the primary: nothing to do),
so a resent change is harmless.  Who may ask: any member, since a member
holds the cluster key and so could seal anything anyway.

Bounded: at most ``MAX_REQUESTS`` requests are remembered (the oldest goes),
each with one answer per member asked.
"""

from __future__ import annotations

__all__ = [
    "SPEC",
    "KeyChange",
    "KeyChangeResult",
    "KeyringChanged",
    "KeysConfig",
    "KeysPart",
    "KeysView",
    "Request",
]

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Final

from gossamer.config import check_positive
from gossamer.effects import Effect, EventNote, Outbox, PartContext, PartFactory, PartSpec, TimerKey
from gossamer.errors import ConfigError, LocalError
from gossamer.ids import Address, NodeId
from gossamer.membership.members import MEMBER_EVENTS, Status
from gossamer.observe import ApiRequest, Route, Sample, counter
from gossamer.wire import Message, registry

MAX_REQUESTS: Final = 16
OPS: Final = ("install", "use", "remove")


@registry.message(192)
@dataclass(frozen=True, slots=True)
class KeyChange(Message):
    """Apply ``op`` with ``key`` to your keyring; answer request ``id`` (the admin block)."""

    id: int
    op: str
    key: bytes


@registry.message(193)
@dataclass(frozen=True, slots=True)
class KeyChangeResult(Message):
    """The answer to :class:`KeyChange` ``id``: done or not, and the keys held now."""

    id: int
    ok: bool
    detail: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyringChanged:
    """This node's keyring changed (``op`` with the key ``fingerprint``), asked by ``by``."""

    op: str
    fingerprint: str
    by: str


@dataclass(frozen=True, slots=True)
class KeysConfig:
    """The ``keys`` part: on unless ``enabled`` is false."""

    enabled: bool = True
    retry_s: float = 1.0
    """Resend a change to the members that have not answered this often."""
    timeout_s: float = 10.0
    """Give up on the members that have not answered by then."""

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"KeysConfig.enabled must be a bool, got {self.enabled!r}")
        check_positive("KeysConfig", "retry_s", self.retry_s)
        check_positive("KeysConfig", "timeout_s", self.timeout_s)

    @classmethod
    def lan(cls) -> KeysConfig:
        return cls()

    @classmethod
    def wan(cls) -> KeysConfig:
        return cls(retry_s=3.0, timeout_s=30.0)

    @classmethod
    def local(cls) -> KeysConfig:
        return cls(retry_s=0.5, timeout_s=5.0)


@dataclass(slots=True)
class KeysStats:
    """Counters of the ``keys`` part."""

    changes_applied: int = counter("Key changes applied to this node's keyring.")
    changes_refused: int = counter("Key changes this node could not apply.")


@dataclass(frozen=True, slots=True)
class Request:
    """One change this node asked the cluster for, as it stands."""

    id: int
    op: str
    fingerprint: str
    asked: tuple[str, ...]
    """The members it was sent to, by name."""
    answers: tuple[tuple[str, bool, str, tuple[str, ...]], ...]
    """``(member, ok, detail, keys)`` per member that answered, this node first."""
    done: bool
    """Every member asked answered, or the time ran out."""


@dataclass(frozen=True, slots=True)
class KeysView:
    """The requests this node made, newest last; ``/api/keys``."""

    requests: tuple[Request, ...] = ()

    def request(self, id: int) -> Request | None:
        return next((r for r in self.requests if r.id == id), None)

    def routes(self) -> dict[str, Route]:
        return {"keys": self._route}

    def _route(self, request: ApiRequest) -> dict[str, Any]:
        return {
            "requests": [
                {
                    "id": r.id,
                    "op": r.op,
                    "key": r.fingerprint,
                    "asked": list(r.asked),
                    "answers": [
                        {"member": m, "ok": ok, "detail": d, "keys": list(k)}
                        for m, ok, d, k in r.answers
                    ],
                    "done": r.done,
                }
                for r in self.requests
            ]
        }

    def samples(self) -> list[Sample]:
        return []


@dataclass(slots=True)
class _Pending:
    id: int
    op: str
    key: bytes
    targets: dict[str, Address]
    answers: dict[str, tuple[bool, str, tuple[str, ...]]] = field(default_factory=dict)
    deadline: float = 0.0
    done: bool = False


def fingerprint(key: bytes) -> str:
    """The first 8 hex digits of the key's SHA-256: names a key in logs and in
    :class:`KeyChangeResult` without revealing it."""
    return hashlib.sha256(key).hexdigest()[:8]


class KeysPart:
    """The node's ``keys`` part; see the module docstring."""

    name = "keys"
    messages: tuple[type[Message], ...] = (KeyChange, KeyChangeResult)
    subscribes: tuple[type, ...] = MEMBER_EVENTS

    def __init__(self, me: NodeId, config: KeysConfig, keyring: Any) -> None:
        self.me = me
        self.config = config
        self._keyring = keyring
        self._out = Outbox()
        self._next_id = 1
        self._pending: dict[int, _Pending] = {}
        self._alive: dict[str, Address] = {}  # the members a change goes to, from SWIM's events
        self._view: KeysView | None = None
        self.stats = KeysStats()

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        """Nothing to do until asked."""

    def handle(self, sender: Address, message: Message, now: float) -> None:
        match message:
            case KeyChange(id=id, op=op, key=key):
                ok, detail = self._apply(op, key, by=str(sender))
                self._out.datagram(sender, KeyChangeResult(id, ok, detail, self._fingerprints()))
            case KeyChangeResult(id=id, ok=ok, detail=detail, keys=keys):
                pending = self._pending.get(id)
                if pending is None or pending.done:
                    return
                name = next((n for n, a in pending.targets.items() if a == sender), None)
                if name is None or name in pending.answers:
                    return
                pending.answers[name] = (ok, detail[:200], tuple(k[:16] for k in keys[:16]))
                self._view = None
                if len(pending.answers) == len(pending.targets) + 1:
                    self._finish(pending)

    def on_timer(self, key: TimerKey, now: float) -> None:
        if not (isinstance(key, tuple) and key[0] == "retry" and isinstance(key[1], int)):
            return
        pending = self._pending.get(key[1])
        if pending is None or pending.done:
            return
        if now >= pending.deadline:
            self._finish(pending)
            return
        self._send(pending)
        self._out.set_timer(("retry", pending.id), now + self.config.retry_s)

    def on_stream_up(self, peer: Address, now: float) -> None:
        """The part uses datagrams only."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        """The part uses datagrams only."""

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, MEMBER_EVENTS):
            member = event.member
            if member.status is Status.ALIVE and member.name != self.me.name:
                self._alive[member.name] = member.address
            else:
                self._alive.pop(member.name, None)

    def drain(self) -> list[Effect]:
        return self._out.drain()

    def view(self) -> KeysView:
        if self._view is None:
            self._view = KeysView(tuple(self._request(p) for p in self._pending.values()))
        return self._view

    def describe(self, event: object) -> EventNote | None:
        if isinstance(event, KeyringChanged):
            return EventNote(
                "keyring", detail=f"{event.op} {event.fingerprint} (asked by {event.by})"
            )
        return None

    # ---------------------------------------------------------------- the application

    def change(
        self, op: str, key: bytes, now: float, members: dict[str, Address] | None = None
    ) -> int:
        """Apply ``op`` here and send it to every alive member (or to ``members``,
        name -> address); the request's id.  LocalError for a change this node
        cannot make (an unknown op, not a key, a key to use that is not installed)."""
        ok, detail = self._apply(op, key, by=self.me.name)
        if not ok:
            raise LocalError(f"keys: {detail}")
        targets = dict(self._alive if members is None else members)
        pending = _Pending(self._next_id, op, key, targets, deadline=now + self.config.timeout_s)
        self._next_id += 1
        pending.answers[self.me.name] = (True, detail, self._fingerprints())
        self._pending[pending.id] = pending
        while len(self._pending) > MAX_REQUESTS:
            del self._pending[next(iter(self._pending))]
        self._view = None
        if targets:
            self._send(pending)
            self._out.set_timer(("retry", pending.id), now + self.config.retry_s)
        else:
            self._finish(pending)
        return pending.id

    # ---------------------------------------------------------------- inside

    def _apply(self, op: str, key: bytes, by: str) -> tuple[bool, str]:
        keyring = self._keyring
        if keyring is None:
            self.stats.changes_refused += 1
            return False, "this node runs without a keyring"
        if op not in OPS or not isinstance(key, bytes) or len(key) != 32:
            self.stats.changes_refused += 1
            return False, f"not a key change: {op!r} with a 32-byte key (ops: {list(OPS)})"
        held = key in keyring.keys
        if (
            (op == "install" and held)
            or (op == "remove" and not held)
            or (op == "use" and keyring.primary == key)
        ):
            return True, "nothing to do"
        try:
            getattr(keyring, op)(key)
        except Exception as exc:  # KeyringError: say why, change nothing
            self.stats.changes_refused += 1
            return False, str(exc)
        self.stats.changes_applied += 1
        self._out.emit(KeyringChanged(op, fingerprint(key), by))
        return True, "done"

    def _fingerprints(self) -> tuple[str, ...]:
        keyring = self._keyring
        return () if keyring is None else tuple(keyring.fingerprints())

    def _send(self, pending: _Pending) -> None:
        for name, address in sorted(pending.targets.items()):
            if name not in pending.answers:
                self._out.datagram(address, KeyChange(pending.id, pending.op, pending.key))

    def _finish(self, pending: _Pending) -> None:
        pending.done = True
        self._out.cancel_timer(("retry", pending.id))
        self._view = None

    def _request(self, p: _Pending) -> Request:
        answers = tuple((m, *p.answers[m]) for m in p.answers)
        return Request(
            p.id,
            p.op,
            fingerprint(p.key),
            tuple(sorted(p.targets)),
            answers,
            p.done,
        )


def _build(config: KeysConfig, context: PartContext) -> PartFactory | None:
    if not config.enabled:
        return None

    def make(me: NodeId, rng: random.Random) -> KeysPart:
        return KeysPart(me, config, context.keyring)

    return make


SPEC: PartSpec[KeysConfig] = PartSpec("keys", KeysConfig, _build)
"""Cluster-wide key changes in the node's catalogue: ``[keys]`` in TOML, ``NodeConfig.keys``."""
