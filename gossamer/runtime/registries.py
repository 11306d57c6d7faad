"""The application's face of the registry part: ``node.groups`` and ``node.names``.

The application is the one writer of this node's entries, so its calls need
not wait for the engine: a *ledger* (an ``OwnerTable`` holding this node's
entries alone) checks each call at once -- a ``leave`` of a member that did
not join, a name held by another node, a bound -- and the call is queued for
the engine, which takes a whole burst in one input (one wake-up per burst,
so 10,000 joins are a few broadcasts).  Reads come from a *mirror* of the
part's indexes, kept under a lock: this node's own changes enter it at the
call, the others' as the engine reports them (``RegistryChanged``), so a
read after a write sees it.

Monitors (``groups.monitor(group)``, ``monitor_all()``) hold the membership
as of their creation and then every join and leave, from the same mirror
updates, in order; a monitor that falls behind sheds its oldest events
(counted) and can read the current membership again.
"""

from __future__ import annotations

__all__ = ["DEFAULT_SCOPE", "GroupMonitor", "Groups", "Names", "Registration", "RegistryMirror"]

import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from gossamer.crdt.groups import GroupChange, GroupIndex, GroupJoined, GroupLeft, check_text
from gossamer.crdt.names import Claim, NameIndex, NameLost, Resolver
from gossamer.crdt.owners import Change, OwnerTable
from gossamer.errors import LocalError
from gossamer.runtime.feeds import Feed

DEFAULT_SCOPE: Final = "default"
"""The scope ``node.groups`` works in (``node.groups.scope(name)`` for others)."""

GroupEvent = GroupJoined | GroupLeft


class GroupMonitor(Feed[GroupEvent]):
    """One group's (or, with ``group`` None, one scope's) joins and leaves:
    ``members`` as of the monitor's creation, then ``async for event in monitor``."""

    def __init__(
        self,
        host: Any,
        limit: int,
        scope: str,
        group: str | None,
        members: list[tuple[str, ...]],
    ) -> None:
        super().__init__(host, limit)
        self.scope = scope
        self.group = group
        self.members = members
        """``(node, member)`` when created (the group's; every group's of the scope
        as ``(group, node, member)`` for ``monitor_all``)."""


@dataclass(frozen=True, slots=True)
class Registration:
    """What ``names.register`` found: ``registered`` (this node's claim wins here), and
    ``holder``, the winning claim.  With ``confirm``: ``confirmed`` once every live
    member holds it as the winner; ``missing`` lists those that had not said so."""

    registered: bool
    holder: Claim
    confirmed: bool | None = None
    missing: tuple[str, ...] = ()

    @property
    def node(self) -> str:
        return self.holder.node

    @property
    def member(self) -> str:
        return self.holder.member


class RegistryMirror:
    """The ledger, the mirror and the queue of calls for the engine (see the module)."""

    def __init__(
        self,
        me: str,
        epoch: int,
        rank: Resolver | None,
        max_owner_bytes: int,
        send: Callable[[list[tuple[Any, ...]]], None],
        wake: Callable[[Callable[[], None]], None],
    ) -> None:
        self.me = me
        self.epoch = epoch
        self.lock = threading.Lock()
        self.ledger = OwnerTable(me, epoch, max_owner_bytes=max_owner_bytes)
        self.groups = GroupIndex()
        self.names = NameIndex(rank)
        self._send = send
        self._wake = wake
        self._ops: list[tuple[Any, ...]] = []
        self._monitors: dict[tuple[str, str | None], set[GroupMonitor]] = {}

    # ---------------------------------------------------------------- the engine's side

    def take(self, events: Iterable[object]) -> None:
        """The engine's report (on its thread): other owners' changes, and this
        node's lost claims."""
        with self.lock:
            for event in events:
                if isinstance(event, NameLost):
                    own = self.ledger.own_claim(event.name)
                    if own is not None and own[1] == event.lost.lamport:
                        self._apply_local(partial(self.ledger.withdraw, event.name))
                    continue
                changes = getattr(event, "changes", None)
                if changes is None:
                    continue
                me = self.me  # this node's own changes entered at the call
                names = []
                for change in changes:
                    if isinstance(change, GroupChange):
                        if change.node != me:
                            self._index(change)
                    elif change[1] != me:
                        names.append(change)
                if names:
                    self.names.apply_all(names)

    def take_ops(self) -> list[tuple[Any, ...]]:
        """The calls queued for the engine, taken (on the engine's loop)."""
        with self.lock:
            ops, self._ops = self._ops, []
        return ops

    def _flush_ops(self) -> None:
        ops = self.take_ops()
        if ops:
            self._send(ops)

    # ---------------------------------------------------------------- inside

    def _index(self, change: Change) -> None:
        if isinstance(change, GroupChange):
            watchers = self._monitors and [
                m
                for key in ((change.scope, change.group), (change.scope, None))
                for m in self._monitors.get(key, ())
            ]
            if not watchers:
                self.groups.apply(change, None)  # no monitor: no event objects made
                return
            events: list[GroupEvent] = []
            self.groups.apply(change, events)
            if events:
                for monitor in watchers:
                    monitor.push(list(events))
        else:
            self.names.apply(*change)

    def _apply_local(self, write: Callable[[list[Change]], object]) -> None:
        """Run a write on the ledger (under the lock), index it and queue it for the engine."""
        out: list[Change] = []
        write(out)
        for change in out:
            self._index(change)
        self._queue(out)

    def _queue(self, out: list[Change]) -> None:
        first = not self._ops
        for change in out:
            if isinstance(change, GroupChange):
                for member, count in change.entries:
                    self._ops.append(("set", change.scope, change.group, member, count))
            else:
                name, _, claim = change
                if claim is None:
                    self._ops.append(("withdraw", name))
                else:
                    self._ops.append(("claim", name, claim.member, claim.lamport))
        # Values are absolute (a count, a claim), so the engine ends where the ledger is.
        if first and self._ops:
            self._wake(self._flush_ops)  # the first call of a burst wakes the engine once

    def monitor(self, host: Any, limit: int, scope: str, group: str | None) -> GroupMonitor:
        with self.lock:
            members: list[tuple[str, ...]]
            if group is None:
                members = [
                    (g, n, m) for s, g, held in self.groups.groups() if s == scope for n, m in held
                ]
            else:
                members = list(self.groups.members(scope, group))
            monitor = GroupMonitor(host, limit, scope, group, members)
            self._monitors.setdefault((scope, group), set()).add(monitor)
        return monitor

    def forget(self, monitor: GroupMonitor) -> int:
        """Stop feeding ``monitor``; what it shed."""
        with self.lock:
            key = (monitor.scope, monitor.group)
            held = self._monitors.get(key)
            if held is not None:
                held.discard(monitor)
                if not held:
                    del self._monitors[key]
        return monitor.shed

    def monitors(self) -> list[GroupMonitor]:
        with self.lock:
            return [m for held in self._monitors.values() for m in held]

    def end(self) -> None:
        for monitor in self.monitors():
            monitor.push([], end=True)


def _members(method: str, member: str | Iterable[str]) -> list[str]:
    if isinstance(member, str):
        return [check_text(method, "member", member)]
    try:
        members = list(member)
    except TypeError:
        raise LocalError(f"{method}: member must be a str or an iterable of str") from None
    return [check_text(method, "member", m) for m in members]


class Groups:
    """Process groups, as Erlang's ``pg``, in one scope (``node.groups``).

    A member is an id the application chooses, on this node; ``members``
    lists ``(node, member)`` from every node.  Joining twice needs leaving
    twice; a group exists while it has members.  When a node dies (or
    restarts) its members leave every group at once, everywhere.
    """

    def __init__(self, node: Any, scope: str = DEFAULT_SCOPE) -> None:
        self._node = node
        self.name = scope
        """This scope's name."""

    def scope(self, name: str) -> Groups:
        """The groups of scope ``name``, independent of every other scope."""
        return Groups(self._node, check_text("scope", "scope", name))

    def _mirror(self) -> RegistryMirror:
        mirror: RegistryMirror = self._node._registry_mirror()
        return mirror

    def join(self, group: str, member: str | Iterable[str]) -> None:
        """``member`` (or each of several) of this node joins ``group``."""
        check_text("join", "group", group)
        members = _members("join", member)
        mirror = self._mirror()
        with mirror.lock:
            for m in members:
                key = (self.name, group, m)
                mirror._apply_local(partial(mirror.ledger.join, key))

    def leave(self, group: str, member: str | Iterable[str]) -> None:
        """Undo one join of ``member`` (or of each); LocalError, changing nothing,
        if one of them is not in the group."""
        check_text("leave", "group", group)
        members = _members("leave", member)
        mirror = self._mirror()
        with mirror.lock:
            need: dict[str, int] = {}
            for m in members:
                need[m] = need.get(m, 0) + 1
            for m, times in need.items():
                have = mirror.ledger.own_count((self.name, group, m))
                if have < times:
                    raise LocalError(
                        f"leave: {m!r} is not in group {group!r} (scope {self.name!r}) "
                        f"{times} time(s) on this node"
                    )
            for m in members:
                key = (self.name, group, m)
                mirror._apply_local(partial(mirror.ledger.leave, key))

    def members(self, group: str) -> list[tuple[str, str]]:
        """Every ``(node, member)`` in ``group``, sorted."""
        check_text("members", "group", group)
        mirror = self._mirror()
        with mirror.lock:
            return mirror.groups.members(self.name, group)

    def local_members(self, group: str) -> list[str]:
        """This node's members in ``group``, sorted."""
        check_text("local_members", "group", group)
        mirror = self._mirror()
        with mirror.lock:
            me = mirror.me
            return [m for n, m in mirror.groups.members(self.name, group) if n == me]

    def count(self, group: str | None = None) -> int:
        """How many ``(node, member)`` entries ``group`` holds (every group of the
        scope without one): cheap enough to poll."""
        if group is not None:
            check_text("count", "group", group)
        mirror = self._mirror()
        with mirror.lock:
            return mirror.groups.size(self.name, group)

    def which_groups(self) -> list[str]:
        """The groups of this scope that have members, sorted."""
        mirror = self._mirror()
        with mirror.lock:
            return mirror.groups.which_groups(self.name)

    def monitor(self, group: str) -> GroupMonitor:
        """``group``'s members now (``.members``), then every join and leave."""
        check_text("monitor", "group", group)
        monitor: GroupMonitor = self._node._monitor(self.name, group)
        return monitor

    def monitor_all(self) -> GroupMonitor:
        """Every group of this scope now (``.members`` as ``(group, node, member)``),
        then every join and leave in the scope."""
        monitor: GroupMonitor = self._node._monitor(self.name, None)
        return monitor


class Names:
    """Global names, as Erlang's ``global`` without its lock (``node.names``).

    ``register`` answers at once from what this node knows; concurrent
    claims (two sides of a partition) are all kept and every node picks the
    same winner (``crdt/names.py``); the loser's node withdraws its claim
    and emits :class:`~gossamer.crdt.names.NameLost` in ``node.events()``.
    A name whose node dies is released everywhere.
    """

    def __init__(self, node: Any) -> None:
        self._node = node

    def _mirror(self) -> RegistryMirror:
        mirror: RegistryMirror = self._node._registry_mirror()
        return mirror

    def register(
        self, name: str, member: str, *, confirm: bool = False, timeout_s: float = 10.0
    ) -> Any:
        """Claim ``name`` for ``member`` of this node.

        Without ``confirm``: a :class:`Registration` at once (``registered``
        False and the holder when another node's claim wins here).  With
        ``confirm=True``: an awaitable that also asks every live member and
        returns once all hold the claim as the winner (``confirmed``), one
        holds another (not ``registered``), or ``timeout_s`` passed.
        """
        check_text("register", "name", name)
        check_text("register", "member", member)
        result = self._claim(name, member, keep_rank=False)
        if not confirm:
            return result
        return self._confirm(result, timeout_s)

    def re_register(self, name: str, member: str) -> Registration:
        """This node's claim on ``name`` now names ``member`` (its rank kept); a free
        name is registered; another node's winning claim is returned."""
        check_text("re_register", "name", name)
        check_text("re_register", "member", member)
        return self._claim(name, member, keep_rank=True)

    def _claim(self, name: str, member: str, keep_rank: bool) -> Registration:
        mirror = self._mirror()
        with mirror.lock:
            lamport, winner = mirror.names.decide(name, mirror.me, member, keep_rank=keep_rank)
            if not lamport:
                assert winner is not None
                return Registration(winner.node == mirror.me, winner)
            mirror._apply_local(partial(mirror.ledger.claim, name, member, lamport))
            claim = mirror.names.winner(name)
            assert claim is not None
            return Registration(True, claim)

    def _confirm(self, result: Registration, timeout_s: float) -> Awaitable[Registration]:
        if not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise LocalError(f"register: timeout_s must be a positive number, got {timeout_s!r}")
        confirmed: Awaitable[Registration] = self._node._confirm_name(result, float(timeout_s))
        return confirmed

    def unregister(self, name: str) -> bool:
        """Withdraw this node's claim on ``name``; False if it held none.
        LocalError if another node holds it (only its node can release it)."""
        check_text("unregister", "name", name)
        mirror = self._mirror()
        with mirror.lock:
            holds = mirror.ledger.own_claim(name) is not None
            if not mirror.names.releasable(name, mirror.me, holds):
                return False
            mirror._apply_local(partial(mirror.ledger.withdraw, name))
            return True

    def whereis(self, name: str) -> tuple[str, str] | None:
        """``(node, member)`` holding ``name`` as this node knows it, or None."""
        check_text("whereis", "name", name)
        mirror = self._mirror()
        with mirror.lock:
            winner = mirror.names.winner(name)
            return None if winner is None else (winner.node, winner.member)

    def claims(self, name: str) -> list[Claim]:
        """Every claim on ``name`` this node holds, winner first (more than one
        while a conflict is being resolved)."""
        check_text("claims", "name", name)
        mirror = self._mirror()
        with mirror.lock:
            return mirror.names.claims(name)

    def count(self) -> int:
        """How many names have a claim (cheaper than ``len(registered_names())``)."""
        mirror = self._mirror()
        with mirror.lock:
            return len(mirror.names)

    def registered_names(self) -> list[str]:
        """Every name with a claim, sorted."""
        mirror = self._mirror()
        with mirror.lock:
            return mirror.names.names()
