"""The keys part (admin/keys.py) driven by hand: a change applied here and on every
member, answers collected, resends, idempotence, and the bounds."""

from __future__ import annotations

import pytest

from gossamer.admin.keys import (
    MAX_REQUESTS,
    KeyChange,
    KeyChangeResult,
    KeyringChanged,
    KeysConfig,
    KeysPart,
)
from gossamer.effects import Emit, SendDatagram, SetTimer
from gossamer.errors import LocalError
from gossamer.ids import Address, NodeId
from gossamer.runtime.keyring import Keyring, generate_key

OLD, NEW = generate_key(), generate_key()
A = NodeId("a", Address("a:1"), 1)
B = NodeId("b", Address("b:1"), 1)


def part(me: NodeId) -> tuple[KeysPart, Keyring]:
    keyring = Keyring([OLD])
    keys = KeysPart(me, KeysConfig(retry_s=1.0, timeout_s=3.0), keyring)
    keys.start(0.0)
    return keys, keyring


def sent(keys: KeysPart) -> list[SendDatagram]:
    return [e for e in keys.drain() if isinstance(e, SendDatagram)]


def test_a_change_is_made_here_and_on_every_member_that_answers() -> None:
    a, a_ring = part(A)
    b, b_ring = part(B)
    request = a.change("install", NEW, 0.0, {"b": B.address})
    assert NEW in a_ring.keys
    (to_b,) = sent(a)
    assert to_b.to == B.address and isinstance(to_b.message, KeyChange)
    b.handle(A.address, to_b.message, 0.1)
    effects = b.drain()
    assert NEW in b_ring.keys
    assert [e.event for e in effects if isinstance(e, Emit)] == [
        KeyringChanged("install", _fp(NEW), "a:1")
    ]
    (answer,) = [e for e in effects if isinstance(e, SendDatagram)]
    a.handle(B.address, answer.message, 0.2)
    state = a.view().request(request)
    assert state is not None and state.done
    assert [(m, ok) for m, ok, _, _ in state.answers] == [("a", True), ("b", True)]


def _fp(key: bytes) -> str:
    import hashlib

    return hashlib.sha256(key).hexdigest()[:8]


def test_a_member_that_does_not_answer_is_asked_again_until_the_timeout() -> None:
    a, _ = part(A)
    request = a.change("install", NEW, 0.0, {"b": B.address})
    effects = a.drain()
    assert any(isinstance(e, SetTimer) and e.key == ("retry", request) for e in effects)
    a.on_timer(("retry", request), 1.0)
    assert [d.to for d in sent(a)] == [B.address]  # resent
    a.on_timer(("retry", request), 3.0)
    state = a.view().request(request)
    assert state is not None and state.done and [m for m, *_ in state.answers] == ["a"]
    # A late or foreign answer changes nothing.
    a.handle(B.address, KeyChangeResult(request, True, "done", ()), 4.0)
    a.handle(Address("x:1"), KeyChangeResult(request, True, "done", ()), 4.0)
    assert [m for m, *_ in a.view().request(request).answers] == ["a"]  # type: ignore[union-attr]


def test_changes_are_idempotent_and_a_bad_one_is_refused_with_its_reason() -> None:
    a, ring = part(A)
    b, _ = part(B)
    b.handle(A.address, KeyChange(1, "install", NEW), 0.0)
    b.drain()
    b.handle(A.address, KeyChange(1, "install", NEW), 0.5)  # resent: nothing to do
    (again,) = [e for e in b.drain() if isinstance(e, SendDatagram)]
    assert again.message == KeyChangeResult(1, True, "nothing to do", (_fp(OLD), _fp(NEW)))  # type: ignore[comparison-overlap]
    with pytest.raises(LocalError, match="not installed"):
        a.change("use", NEW, 0.0, {})
    b.handle(A.address, KeyChange(2, "use", generate_key()), 1.0)
    (refused,) = [e for e in b.drain() if isinstance(e, SendDatagram)]
    assert isinstance(refused.message, KeyChangeResult) and not refused.message.ok
    with pytest.raises(LocalError):
        a.change("rotate", NEW, 0.0, {})
    assert b.stats.changes_applied == 1 and b.stats.changes_refused == 1
    assert ring.keys == (OLD,)


def test_requests_are_bounded_and_a_node_without_a_keyring_says_so() -> None:
    a, _ = part(A)
    for i in range(MAX_REQUESTS + 5):
        a.change("install", NEW, float(i), {})
    assert len(a.view().requests) == MAX_REQUESTS
    bare = KeysPart(B, KeysConfig(), None)
    bare.handle(A.address, KeyChange(1, "install", NEW), 0.0)
    (answer,) = [e for e in bare.drain() if isinstance(e, SendDatagram)]
    assert isinstance(answer.message, KeyChangeResult) and not answer.message.ok
    assert "without a keyring" in answer.message.detail
