"""Tests for gossamer.membership.members: the precedence and transition tables, refusals,
reaping, and the lattice laws of ``apply`` (hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.clocks import MAX_COUNTER
from gossamer.errors import LocalError
from gossamer.ids import Address
from gossamer.membership.members import (
    TRANSITIONS,
    Claim,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberSuspect,
    MemberTable,
    MemberUpdated,
    Status,
    as_stored,
    claim_order,
)

LAWS = settings(max_examples=60, deadline=None, derandomize=True)

A, S, D, L = Status.ALIVE, Status.SUSPECT, Status.DEAD, Status.LEFT
LOCAL = "a"

Events = tuple[type[MemberEvent], ...]


def claim(
    name: str = "b",
    epoch: int = 1,
    inc: int = 0,
    status: Status = A,
    *,
    address: str = "h:1",
    metadata: bytes = b"",
    source: str = "src",
) -> Claim:
    return Claim(name, Address(address), epoch, inc, status, metadata, source)


def table(
    *claims: Claim,
    now: float = 0.0,
    reap_dead_after_s: float = 10.0,
    reap_left_after_s: float = 20.0,
    max_members: int = 64,
) -> MemberTable:
    t = MemberTable(
        claim(LOCAL),
        now,
        reap_dead_after_s=reap_dead_after_s,
        reap_left_after_s=reap_left_after_s,
        max_members=max_members,
    )
    for c in claims:
        assert t.apply(c, now) is not None, c
    return t


def check_counts(t: MemberTable) -> None:
    """live_count() and gone() agree with a recount over iteration."""
    members = list(t)
    assert t.live_count() == sum(1 for m in members if m.status in (A, S))
    assert t.gone() == [m.name for m in members if m.status in (D, L) and m.name != LOCAL]
    assert len(t) == len(members)


def types(events: list[MemberEvent] | None) -> Events | None:
    return None if events is None else tuple(type(e) for e in events)


# ---------------------------------------------------------------- precedence

PRECEDENCE: list[tuple[Claim, Claim, Events | None]] = [
    # higher incarnation wins whatever the status
    (claim(inc=0, status=D), claim(inc=1, status=A), (MemberJoined,)),
    (claim(inc=0, status=L), claim(inc=1, status=A), (MemberJoined,)),
    (claim(inc=0, status=L), claim(inc=1, status=S), (MemberJoined, MemberSuspect)),
    (claim(inc=0, status=S), claim(inc=1, status=A), (MemberAlive,)),
    (claim(inc=0, status=A), claim(inc=7, status=A), ()),
    # equal incarnation: suspect > alive, dead > alive and suspect, left > dead
    (claim(inc=2, status=A), claim(inc=2, status=S), (MemberSuspect,)),
    (claim(inc=2, status=S), claim(inc=2, status=A), None),
    (claim(inc=2, status=A), claim(inc=2, status=D), (MemberDead,)),
    (claim(inc=2, status=S), claim(inc=2, status=D), (MemberDead,)),
    (claim(inc=2, status=D), claim(inc=2, status=A), None),
    (claim(inc=2, status=D), claim(inc=2, status=S), None),
    (claim(inc=2, status=D), claim(inc=2, status=L), (MemberLeft,)),
    (claim(inc=2, status=L), claim(inc=2, status=D), None),
    (claim(inc=2, status=A), claim(inc=2, status=L), (MemberLeft,)),
    # lower incarnation loses
    (claim(inc=2, status=A), claim(inc=1, status=D), None),
    (claim(inc=2, status=S), claim(inc=1, status=L), None),
    (claim(inc=2, status=D), claim(inc=1, status=A), None),
    # a new epoch wins over any old-epoch claim, whatever the incarnations
    (claim(epoch=1, inc=5, status=A), claim(epoch=2, inc=0, status=A), (MemberJoined,)),
    (claim(epoch=1, inc=5, status=S), claim(epoch=2, inc=0, status=A), (MemberJoined,)),
    (claim(epoch=1, inc=5, status=D), claim(epoch=2, inc=0, status=A), (MemberJoined,)),
    (claim(epoch=1, inc=5, status=L), claim(epoch=2, inc=0, status=A), (MemberJoined,)),
    (
        claim(epoch=1, inc=5, status=D),
        claim(epoch=2, inc=0, status=S),
        (MemberJoined, MemberSuspect),
    ),
    # a new life that is already over ends a live old one
    (claim(epoch=1, status=A), claim(epoch=2, status=D), (MemberDead,)),
    (claim(epoch=1, status=S), claim(epoch=2, status=D), (MemberDead,)),
    (claim(epoch=1, status=A), claim(epoch=2, status=L), (MemberLeft,)),
    (claim(epoch=1, status=D), claim(epoch=2, status=D), ()),
    (claim(epoch=1, status=L), claim(epoch=2, status=D), ()),
    # equal claims (whoever makes them) and stale epochs change nothing
    (claim(inc=3, status=S), claim(inc=3, status=S), None),
    (claim(inc=3, status=S), claim(inc=3, status=S, source="other"), None),
    (claim(epoch=2, status=A), claim(epoch=1, inc=9, status=L), None),
    (claim(epoch=3, status=D), claim(epoch=2, inc=9, status=A), None),
]


@pytest.mark.parametrize(("current", "incoming", "expected"), PRECEDENCE)
def test_precedence(current: Claim, incoming: Claim, expected: Events | None) -> None:
    t = table(current)
    before = t.get("b")
    events = t.apply(incoming, 1.0)
    assert types(events) == expected
    if events is None:
        assert t.claim("b") == current
        assert t.get("b") == before
    else:
        assert t.claim("b") == incoming
        for event in events:
            assert event.member == t.get("b")
            if isinstance(event, MemberJoined):
                assert event.previous == before
            if isinstance(event, MemberSuspect | MemberDead):
                assert event.source == incoming.source
    check_counts(t)


def test_restart_joined_carries_the_previous_life() -> None:
    t = table(claim(epoch=1, inc=4, metadata=b"old"))
    events = t.apply(claim(epoch=2, inc=0, metadata=b"new"), 3.0)
    assert events is not None
    [joined] = events
    assert isinstance(joined, MemberJoined)
    assert joined.previous is not None
    assert (joined.previous.epoch, joined.previous.incarnation) == (1, 4)
    assert joined.previous.epoch < joined.member.epoch
    assert joined.member.since == 3.0
    assert joined.member.metadata == b"new"


# --------------------------------------------------------------- transitions

# (old status, new status, what the application hears), written from the spec.
TRANSITION_CASES: list[tuple[Status | None, Status, Events]] = [
    (None, A, (MemberJoined,)),
    (None, S, (MemberJoined, MemberSuspect)),
    (None, D, ()),
    (None, L, ()),
    (A, A, (MemberUpdated,)),
    (A, S, (MemberSuspect,)),
    (A, D, (MemberDead,)),
    (A, L, (MemberLeft,)),
    (S, A, (MemberAlive,)),
    (S, S, ()),
    (S, D, (MemberDead,)),
    (S, L, (MemberLeft,)),
    (D, A, (MemberJoined,)),
    (D, S, (MemberJoined, MemberSuspect)),
    (D, D, ()),
    (D, L, (MemberLeft,)),
    (L, A, (MemberJoined,)),
    (L, S, (MemberJoined, MemberSuspect)),
    (L, D, ()),
    (L, L, ()),
]

_EVENT_NAMES: dict[type[MemberEvent], str] = {
    MemberJoined: "joined",
    MemberUpdated: "updated",
    MemberSuspect: "suspect",
    MemberAlive: "alive",
    MemberDead: "dead",
    MemberLeft: "left",
}


def test_transition_cases_cover_every_transition() -> None:
    driven = [(old, new) for old, new, _ in TRANSITION_CASES]
    assert len(driven) == len(set(driven))
    assert set(driven) == set(TRANSITIONS)


@pytest.mark.parametrize(("old", "new", "expected"), TRANSITION_CASES)
def test_transition(old: Status | None, new: Status, expected: Events) -> None:
    assert tuple(ev.value for ev in TRANSITIONS[(old, new)]) == tuple(
        _EVENT_NAMES[e] for e in expected
    )
    t = table() if old is None else table(claim(inc=0, status=old, metadata=b"old"))
    check_counts(t)
    before = t.get("b")
    # New metadata only for alive -> alive, which is otherwise no event at all.
    metadata = b"new" if (old, new) == (A, A) else b"old"
    incoming = claim(inc=1, status=new, metadata=metadata, source="accuser")
    events = t.apply(incoming, 5.0)
    assert events is not None
    assert types(events) == expected
    after = t.get("b")
    assert after is not None
    assert after.since == (0.0 if old is new else 5.0)
    for event in events:
        assert event.member == after
        if isinstance(event, MemberJoined | MemberUpdated):
            assert event.previous == before
        if isinstance(event, MemberSuspect | MemberDead):
            assert event.source == "accuser"
    check_counts(t)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (S, A, (MemberAlive, MemberUpdated)),
        (A, S, (MemberSuspect, MemberUpdated)),
        (S, S, (MemberUpdated,)),
        (D, A, (MemberJoined,)),  # a rejoin reports the new entry whole
        (A, D, (MemberDead,)),
    ],
)
def test_new_metadata_with_a_status_change(old: Status, new: Status, expected: Events) -> None:
    t = table(claim(inc=0, status=old, metadata=b"old"))
    events = t.apply(claim(inc=1, status=new, metadata=b"new"), 1.0)
    assert events is not None
    assert types(events) == expected


# ------------------------------------------------------------------- updates


@pytest.mark.parametrize(
    ("address", "metadata", "expected"),
    [
        ("h:1", b"m", ()),
        ("h:1", b"m2", (MemberUpdated,)),
        ("h:2", b"m", (MemberUpdated,)),
        ("h:2", b"m2", (MemberUpdated,)),
    ],
)
def test_updated_only_when_address_or_metadata_changes(
    address: str, metadata: bytes, expected: Events
) -> None:
    t = table(claim(inc=1, metadata=b"m"))
    events = t.apply(claim(inc=2, address=address, metadata=metadata), 1.0)
    assert events is not None  # changed: [] is not None
    assert types(events) == expected
    assert t.claim("b") == claim(inc=2, address=address, metadata=metadata)
    for event in events:
        assert isinstance(event, MemberUpdated)
        assert (event.previous.incarnation, event.previous.metadata) == (1, b"m")
        assert (event.member.address, event.member.metadata) == (address, metadata)


# --------------------------------------------------------------- local node


@pytest.mark.parametrize(
    "about_me",
    [
        claim(LOCAL, inc=1, status=S),
        claim(LOCAL, inc=5, status=D),
        claim(LOCAL, inc=0, status=L),
        claim(LOCAL, epoch=2, status=A, metadata=b"x"),
        claim(LOCAL, epoch=0, status=D),  # even a malformed one is not counted
    ],
)
def test_claims_about_the_local_node_are_ignored(about_me: Claim) -> None:
    t = table()
    assert t.apply(about_me, 1.0) is None
    assert t.local_claim == claim(LOCAL)
    assert t.refused_bad == 0
    check_counts(t)


@pytest.mark.parametrize(
    "bad",
    [
        claim(LOCAL, inc=1),  # equal
        claim(LOCAL, inc=0, status=D),  # lower incarnation
        claim("b", inc=2),  # another name
    ],
)
def test_set_local_requires_a_superseding_claim(bad: Claim) -> None:
    t = table()
    assert t.set_local(claim(LOCAL, inc=1), 1.0) == []
    with pytest.raises(LocalError, match="supersede"):
        t.set_local(bad, 2.0)
    assert t.local_claim == claim(LOCAL, inc=1)
    assert "b" not in t


def test_set_local_installs_and_reports() -> None:
    t = table()
    events = t.set_local(claim(LOCAL, inc=1, metadata=b"m"), 1.0)
    assert types(events) == (MemberUpdated,)
    assert t.local.metadata == b"m"
    events = t.set_local(claim(LOCAL, inc=2, status=L), 2.0)
    assert types(events) == (MemberLeft,)
    assert t.live_count() == 0
    check_counts(t)
    assert t.reap(1e9) == []  # the local entry is never reaped
    assert LOCAL in t


@pytest.mark.parametrize(
    "local",
    [claim(LOCAL, status=S), claim(LOCAL, status=D), claim(LOCAL, status=L)],
)
def test_local_must_start_alive(local: Claim) -> None:
    with pytest.raises(LocalError, match="alive"):
        MemberTable(local, 0.0, reap_dead_after_s=1.0, reap_left_after_s=1.0, max_members=8)


def test_max_members_must_be_positive() -> None:
    with pytest.raises(LocalError, match="max_members"):
        MemberTable(claim(LOCAL), 0.0, reap_dead_after_s=1.0, reap_left_after_s=1.0, max_members=0)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(claim(""), id="empty-name"),
        pytest.param(claim(" x"), id="leading-space"),
        pytest.param(claim("-x"), id="leading-punctuation"),
        pytest.param(claim("x" * 129), id="name-129"),
        pytest.param(claim("x" * 200), id="name-200"),
        pytest.param(claim(address="nohost"), id="no-port"),
        pytest.param(claim(address="h:65536"), id="port-range"),
        pytest.param(claim(address=""), id="empty-address"),
        pytest.param(claim(epoch=0), id="epoch-0"),
        pytest.param(claim(epoch=MAX_COUNTER + 1), id="epoch-over"),
        pytest.param(claim(inc=-1), id="incarnation-negative"),
        pytest.param(claim(inc=MAX_COUNTER), id="incarnation-max"),
        pytest.param(claim(inc=MAX_COUNTER - 1), id="incarnation-no-room-to-refute"),
        pytest.param(Claim("b", Address("h:1"), 1, 0, S, b"", "x" * 200), id="source-too-long"),
        pytest.param(Claim("b", Address("h:1"), 1, 0, S, b"", " bad"), id="source-not-a-name"),
        pytest.param(claim(inc=2**64 - 1, status=D), id="incarnation-u64"),
    ],
)
def test_malformed_claim_about_a_new_name_is_refused(bad: Claim) -> None:
    t = table()
    assert t.apply(bad, 1.0) is None
    assert t.refused_bad == 1
    assert t.refused_full == 0
    assert bad.name not in t
    assert len(t) == 1
    check_counts(t)


@pytest.mark.parametrize(
    "good",
    [
        pytest.param(claim("x" * 128), id="name-128"),
        pytest.param(claim("_x.y@z:1-2"), id="name-punctuation"),
        pytest.param(claim(epoch=MAX_COUNTER), id="epoch-max"),
        pytest.param(claim(inc=MAX_COUNTER - 2), id="incarnation-max-minus-2"),
        pytest.param(claim(address="[::1]:7946"), id="ipv6"),
    ],
)
def test_boundary_claims_are_accepted(good: Claim) -> None:
    t = table()
    assert types(t.apply(good, 1.0)) == (MemberJoined,)
    assert t.claim(good.name) == good
    assert t.refused_bad == 0


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(claim(inc=1, address="nohost"), id="bad-new-address"),
        pytest.param(claim(epoch=MAX_COUNTER + 1), id="epoch-over"),
    ],
)
def test_malformed_claim_about_a_known_name_is_refused(bad: Claim) -> None:
    t = table(claim())
    assert t.apply(bad, 1.0) is None
    assert t.refused_bad == 1
    assert t.claim("b") == claim()


@pytest.mark.parametrize("inc", [MAX_COUNTER, 2**64 - 1])
def test_out_of_range_incarnation_about_a_known_name_is_refused(inc: int) -> None:
    t = table(claim())
    assert t.apply(claim(inc=inc, status=S), 1.0) is None
    assert t.refused_bad == 1
    assert t.claim("b") == claim()


def test_full_table_refuses_new_names() -> None:
    t = table(claim("b"), claim("c"), max_members=3)
    assert t.apply(claim("d"), 1.0) is None
    assert t.refused_full == 1
    assert t.refused_bad == 0
    assert len(t) == 3
    assert "d" not in t
    # News of known members still gets in.
    assert types(t.apply(claim("b", status=D), 2.0)) == (MemberDead,)
    assert t.apply(claim("d", status=D), 2.0) is None
    assert t.refused_full == 2
    # Reaping makes room.
    assert types(t.reap(12.0)) == (MemberReaped,)
    assert types(t.apply(claim("d"), 12.0)) == (MemberJoined,)
    assert t.refused_full == 2
    check_counts(t)


# ------------------------------------------------------------------- reaping


def test_reap_measures_from_when_the_member_went() -> None:
    t = table(claim("b"), claim("c"), claim("d"), claim("e", status=S))
    assert types(t.apply(claim("b", inc=1, status=D), 5.0)) == (MemberDead,)
    assert types(t.apply(claim("c", inc=1, status=L), 5.0)) == (MemberLeft,)
    # Still dead under a higher incarnation: it has been dead since 5.
    assert t.apply(claim("b", inc=2, status=D), 8.0) == []
    b = t.get("b")
    assert b is not None
    assert b.since == 5.0
    assert t.gone() == ["b", "c"]
    check_counts(t)

    assert t.reap(14.999) == []
    reaped = t.reap(15.0)
    assert reaped == [MemberReaped(b)]
    assert "b" not in t
    assert t.get("b") is None
    assert t.gone() == ["c"]
    check_counts(t)

    assert t.reap(24.999) == []
    reaped = t.reap(25.0)
    assert types(reaped) == (MemberReaped,)
    assert reaped[0].member.name == "c"
    assert t.gone() == []
    check_counts(t)

    assert t.reap(1e9) == []  # live members are never reaped
    assert t.names() == [LOCAL, "d", "e"]
    # A reaped name is news again, even under an old claim.
    events = t.apply(claim("b", inc=0), 1e9)
    assert types(events) == (MemberJoined,)
    assert events is not None
    assert isinstance(events[0], MemberJoined)
    assert events[0].previous is None


def test_reap_several_in_name_order() -> None:
    t = table(claim("d", status=D), claim("b", status=D), claim("c", status=L), now=0.0)
    reaped = t.reap(100.0)
    assert [e.member.name for e in reaped] == ["b", "c", "d"]
    assert t.names() == [LOCAL]


def test_left_after_dead_restarts_the_reap_clock() -> None:
    t = table(claim("b", status=D))
    assert types(t.apply(claim("b", status=L), 9.0)) == (MemberLeft,)
    assert t.reap(10.0) == []  # dead reap time passed, but it is left since 9
    assert t.reap(28.999) == []
    assert types(t.reap(29.0)) == (MemberReaped,)


# ------------------------------------------------------------------ ordering


def test_listings_sorted_by_name() -> None:
    t = table(claim("d"), claim("b", status=D), claim("c", status=S), claim("_z", status=L))
    expected = sorted([LOCAL, "b", "c", "d", "_z"])
    assert [m.name for m in t] == expected
    assert t.names() == expected
    assert [c.name for c in t.claims()] == expected
    assert t.names(D, L) == ["_z", "b"]
    assert t.names(A) == [LOCAL, "d"]
    assert t.count(A, S) == 3
    assert t.count() == 0
    assert t.gone() == ["_z", "b"]


# ----------------------------------------------------------------- the laws

NAMES = ("b", "c", "d")


def claims_st(sources: tuple[str, ...] = ("src",)) -> st.SearchStrategy[Claim]:
    return st.builds(
        Claim,
        name=st.sampled_from(NAMES),
        address=st.sampled_from([Address("h:1"), Address("h:2")]),
        epoch=st.integers(1, 3),
        incarnation=st.integers(0, 3),
        status=st.sampled_from(Status),
        metadata=st.sampled_from([b"", b"x", b"y"]),
        source=st.sampled_from(sources),
    )


def apply_all(claims: list[Claim], t: MemberTable | None = None) -> MemberTable:
    t = table() if t is None else t
    for c in claims:
        t.apply(c, 0.0)
    return t


def two_orders(
    sources: tuple[str, ...] = ("src",),
) -> st.SearchStrategy[tuple[list[Claim], list[Claim]]]:
    return st.lists(claims_st(sources), max_size=14).flatmap(
        lambda cs: st.tuples(st.permutations(cs), st.permutations(cs))
    )


@LAWS
@given(two_orders())
def test_order_independence(orders: tuple[list[Claim], list[Claim]]) -> None:
    first, second = orders
    assert apply_all(first).claims() == apply_all(second).claims()


@LAWS
@given(two_orders(("s1", "s2", "s3")))
def test_order_independence_of_members_whoever_makes_the_claims(
    orders: tuple[list[Claim], list[Claim]],
) -> None:
    first, second = orders
    t1, t2 = apply_all(first), apply_all(second)
    assert list(t1) == list(t2)

    def strip(t: MemberTable) -> list[Claim]:
        return [dataclasses.replace(c, source="") for c in t.claims()]

    assert strip(t1) == strip(t2)


@LAWS
@given(st.lists(claims_st(), max_size=14))
def test_final_entry_is_the_greatest_claim(claims: list[Claim]) -> None:
    t = apply_all(claims)
    assert t.names() == sorted({LOCAL, *(c.name for c in claims)})
    for name in NAMES:
        # Dead and left members are stored without metadata.
        about = [claim_order(as_stored(c)) for c in claims if c.name == name]
        held = t.claim(name)
        if about:
            assert held is not None
            assert claim_order(held) == max(about)
        else:
            assert held is None


@LAWS
@given(st.lists(claims_st(), max_size=14))
def test_idempotent(claims: list[Claim]) -> None:
    t = apply_all(claims)
    before = t.claims()
    assert [t.apply(c, 1.0) for c in claims] == [None] * len(claims)
    assert [t.apply(c, 1.0) for c in before] == [None] * len(before)
    assert t.claims() == before


@LAWS
@given(st.lists(claims_st(), max_size=14), st.integers(0, 14))
def test_merging_tables_equals_merging_all_claims(claims: list[Claim], cut: int) -> None:
    left, right = apply_all(claims[:cut]), apply_all(claims[cut:])
    merged = apply_all(right.claims(), left)
    assert merged.claims() == apply_all(claims).claims()


# A run of applies, local changes and reaps: counts always agree with a recount.
_OPS = st.one_of(
    claims_st(("s1", "s2")).map(lambda c: ("apply", c)),
    st.sampled_from(Status).map(lambda s: ("local", s)),
    st.just(("reap", None)),
)


@LAWS
@given(st.lists(_OPS, max_size=30))
def test_live_count_and_gone_track_every_change(ops: list[tuple[str, object]]) -> None:
    t = table(reap_dead_after_s=3.0, reap_left_after_s=5.0)
    for now, (op, arg) in enumerate(ops):
        if op == "apply":
            assert isinstance(arg, Claim)
            t.apply(arg, float(now))
        elif op == "local":
            assert isinstance(arg, Status)
            local = t.local_claim
            t.set_local(
                dataclasses.replace(local, incarnation=local.incarnation + 1, status=arg), now
            )
        else:
            for event in t.reap(float(now)):
                assert event.member.status in (D, L)
                assert event.member.name not in t
                assert now - event.member.since >= 3.0
        check_counts(t)
