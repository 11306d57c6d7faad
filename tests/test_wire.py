"""The message codec: round trips, evolution, caller errors, and hostile input.

Annotations are strings here (``from __future__ import annotations``) on
purpose: the codec must resolve them.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pkgutil
import random
import re
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, NewType, Optional

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import gossamer
from gossamer import wire
from gossamer.clocks import CausalContext, Dot, LamportTimestamp, VersionVector
from gossamer.errors import (
    InvalidMessage,
    LocalError,
    MessageTooLarge,
    WireError,
    WireReason,
)
from gossamer.ids import Address
from gossamer.testing import clocks as clock_strategies
from gossamer.testing.wire import messages, register_strategy, values_for
from gossamer.wire import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Message,
    MessageDefinitionError,
    Record,
    Registry,
    encode_envelope,
)

# ---------------------------------------------------------------------------
# A test protocol that uses every kind of field the codec supports.

NodeName = NewType("NodeName", str)
Port = NewType("Port", int)
Blob = NewType("Blob", bytes)


class Color(enum.IntEnum):
    NEGATIVE = -5
    RED = 1
    GREEN = 2
    BLUE = 300
    LARGEST = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Tally:
    """A WireValue of our own: per-node counts, sent as a map."""

    counts: tuple[tuple[str, int], ...] = ()

    def to_wire(self) -> dict[str, int]:
        # Reversed on purpose: the codec must sort map keys itself.
        return dict(reversed(self.counts))

    @classmethod
    def from_wire(cls, raw: object) -> Tally:
        if not isinstance(raw, dict):
            raise WireError(WireReason.SCHEMA, f"Tally: expected a map, got {raw!r}")
        for key, count in raw.items():
            if type(key) is not str or type(count) is not int or count < 0:
                raise WireError(WireReason.SCHEMA, f"Tally: bad entry {key!r}: {count!r}")
        return cls(tuple(sorted(raw.items())))


register_strategy(
    Tally,
    st.dictionaries(st.text(max_size=4), st.integers(0, 2**64 - 1), max_size=4).map(
        lambda counts: Tally(tuple(sorted(counts.items())))
    ),
)
register_strategy(VersionVector, clock_strategies.version_vectors())
register_strategy(Dot, clock_strategies.dots())
register_strategy(CausalContext, clock_strategies.causal_contexts())
register_strategy(LamportTimestamp, clock_strategies.lamport_timestamps())


@dataclass(frozen=True, slots=True)
class Member(Record):
    """A nested record, hashable so that it can sit in a frozenset."""

    name: NodeName
    address: Address
    incarnation: int
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Chain(Record):
    """A record that contains itself."""

    label: str
    next: Chain | None = None


@dataclass(frozen=True, slots=True)
class Bounded(Record):
    """A record with a rule of its own beyond its field types."""

    low: int
    high: int

    def __post_init__(self) -> None:
        # Not super(): slots=True builds a new class, which zero-argument super() misses.
        super(Bounded, self).__post_init__()
        if self.low > self.high:
            raise InvalidMessage(f"Bounded: low {self.low} > high {self.high}")


register_strategy(
    Bounded,
    st.builds(
        lambda low, spread: Bounded(low, low + spread),
        st.integers(-(2**63), 0),
        st.integers(0, 2**63),
    ),
)

REG = Registry("test")


@REG.message(1)
@dataclass(frozen=True, slots=True)
class Ping(Message):
    seq: int
    target: Address
    note: str | None = None


@REG.message(2)
@dataclass(frozen=True, slots=True)
class Scalars(Message):
    number: int
    ratio: float
    flag: bool
    text: str
    blob: bytes
    port: Port
    name: NodeName
    raw: Blob
    color: Color
    maybe: Optional[int] = None  # noqa: UP045 (the typing spelling is supported too)


@REG.message(3)
@dataclass(frozen=True, slots=True)
class Collections(Message):
    names: tuple[str, ...]
    pair: tuple[int, str]
    empty: tuple[()]
    tags: frozenset[str]
    ids: frozenset[int]
    ratios: frozenset[float]
    colors: frozenset[Color]
    weights: dict[str, float]
    by_port: dict[Port, bytes]
    by_blob: dict[bytes, tuple[int, ...]]
    nested: tuple[frozenset[int], ...]
    maybe_names: tuple[str | None, ...]


@REG.message(4)
@dataclass(frozen=True, slots=True)
class Nested(Message):
    members: tuple[Member, ...]
    leader: Member | None
    crowd: frozenset[Member]
    by_name: dict[NodeName, Member]
    chain: Chain
    tally: Tally
    tallies: frozenset[Tally]
    bounds: tuple[Bounded, ...] = ()
    color: Color | None = None


@REG.message(5)
@dataclass(frozen=True, slots=True)
class Empty(Message):
    pass


@REG.message(6)
@dataclass(frozen=True, slots=True)
class Defaults(Message):
    count: int = 0
    label: str = "x"
    items: tuple[int, ...] = ()
    member: Member | None = None
    ratio: float = 0.5


@REG.message(7)
@dataclass(frozen=True, slots=True)
class Tagged(Message):
    seq: int
    _: KW_ONLY
    tag: str = "t"
    weight: float


@REG.message(8)
@dataclass(frozen=True, slots=True)
class Clocks(Message):
    vector: VersionVector
    dot: Dot
    context: CausalContext
    stamp: LamportTimestamp | None = None


@REG.message(65_535)
@dataclass(frozen=True, slots=True)
class LastId(Message):
    seq: int


# Two versions of one message and one record, as an older and a newer node
# would declare them.
OLD = Registry("test-old")
NEW = Registry("test-new")


@dataclass(frozen=True, slots=True)
class MemberV1(Record):
    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberV2(Record):
    name: str
    incarnation: int
    zone: str = "default"


@OLD.message(1)
@dataclass(frozen=True, slots=True)
class JoinV1(Message):
    node: str
    members: tuple[MemberV1, ...]


@NEW.message(1)
@dataclass(frozen=True, slots=True)
class JoinV2(Message):
    node: str
    members: tuple[MemberV2, ...]
    weight: float = 1.0
    tags: frozenset[str] = frozenset()


def _all_registries() -> list[Registry]:
    # Protocol modules register their messages in gossamer.wire.registry when
    # imported: import every module so that the round trip covers them all.
    for info in pkgutil.walk_packages(gossamer.__path__, "gossamer."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    return [wire.registry, REG, OLD, NEW]


REGISTRIES = _all_registries()
CASES = [
    pytest.param(registry, cls, id=f"{registry.name}-{type_id}-{cls.__name__}")
    for registry in REGISTRIES
    for type_id, cls in registry.classes().items()
]

ADDRESS = Address("10.0.0.1:7946")
PING = Ping(5, ADDRESS)
PING_BYTES = REG.encode(PING)


def _decode(data: bytes, registry: Registry = REG) -> Message:
    return registry.decode(data, 1 << 20)


# ---------------------------------------------------------------------------
# Round trips and determinism.


@pytest.mark.parametrize(("registry", "cls"), CASES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_registered_message_round_trips(
    registry: Registry, cls: type[Message], data: st.DataObject
) -> None:
    message = data.draw(values_for(cls), label="message")
    encoded = registry.encode(message)
    note(f"encoded: {encoded.hex()}")
    decoded = registry.decode(encoded, len(encoded))
    assert type(decoded) is cls
    assert decoded == message
    assert registry.encode(message) == encoded, "encoding twice gave different bytes"
    assert registry.encode(decoded) == encoded, "the decoded copy encodes differently"
    assert registry.encoded_size(message) == len(encoded)


@settings(max_examples=50, deadline=None)
@given(message=messages(REG))
def test_messages_strategy_draws_registered_classes(message: Message) -> None:
    assert type(message) in REG.classes().values()
    assert _decode(REG.encode(message)) == message


def test_messages_of_an_empty_registry_is_nothing() -> None:
    assert messages(Registry("empty")).is_empty


def test_the_envelope_is_major_minor_type_id_body() -> None:
    # [1, 0, 1, [5, "10.0.0.1:7946", nil]]
    assert PING_BYTES == b"\x94\x01\x00\x01\x93\x05\xad10.0.0.1:7946\xc0"
    assert encode_envelope(1, [5, ADDRESS, None]) == PING_BYTES


def test_sets_and_dicts_encode_the_same_whatever_their_insertion_order() -> None:
    names = [f"node-{i}" for i in range(50)]
    forward = Collections(
        names=(),
        pair=(1, "a"),
        empty=(),
        tags=frozenset(names),
        ids=frozenset(range(-5, 50)),
        ratios=frozenset([0.5, -1.0, 3.25]),
        colors=frozenset(Color),
        weights={name: 1.0 for name in names},
        by_port={Port(i): b"" for i in range(20)},
        by_blob={name.encode(): () for name in names},
        nested=(),
        maybe_names=(),
    )
    backward = dataclasses.replace(
        forward,
        tags=frozenset(reversed(names)),
        ids=frozenset(reversed(range(-5, 50))),
        ratios=frozenset([3.25, 0.5, -1.0]),
        colors=frozenset(reversed(Color)),
        weights={name: 1.0 for name in reversed(names)},
        by_port={Port(i): b"" for i in reversed(range(20))},
        by_blob={name.encode(): () for name in reversed(names)},
    )
    assert REG.encode(forward) == REG.encode(backward)


def test_a_float_field_accepts_an_int_and_sends_a_float() -> None:
    message = Defaults(ratio=3)
    decoded = _decode(REG.encode(message))
    assert isinstance(decoded, Defaults)
    assert type(decoded.ratio) is float
    assert decoded == message
    assert REG.encode(message) == REG.encode(Defaults(ratio=3.0))


def test_ints_cover_the_whole_msgpack_range() -> None:
    for seq in (-(2**63), -1, 0, 2**63, 2**64 - 1):
        assert _decode(REG.encode(Ping(seq, ADDRESS))) == Ping(seq, ADDRESS)


def test_registry_tables() -> None:
    assert list(REG.classes()) == sorted(REG.classes())
    assert REG.classes()[1] is Ping
    assert REG.type_id_of(Nested) == 4
    assert REG.type_id_of(LastId) == 65_535
    with pytest.raises(InvalidMessage, match="JoinV1"):
        REG.type_id_of(JoinV1)
    assert wire.registry.name == "gossamer"
    assert "test" in repr(REG)


# ---------------------------------------------------------------------------
# Evolution: an older and a newer node talk.


def test_a_newer_message_decodes_on_an_older_node_without_the_extra_fields() -> None:
    newer = JoinV2("a", (MemberV2("b", 3, zone="eu"),), weight=2.0, tags=frozenset({"x"}))
    assert _decode(NEW.encode(newer), OLD) == JoinV1("a", (MemberV1("b", 3),))


def test_an_older_message_decodes_on_a_newer_node_with_the_defaults() -> None:
    older = JoinV1("a", (MemberV1("b", 3), MemberV1("c", 1)))
    assert _decode(OLD.encode(older), NEW) == JoinV2(
        "a", (MemberV2("b", 3), MemberV2("c", 1)), weight=1.0, tags=frozenset()
    )


@pytest.mark.parametrize("minor", [PROTOCOL_MINOR, PROTOCOL_MINOR + 1, 7, 2**32])
def test_any_minor_version_is_accepted(minor: int) -> None:
    data = encode_envelope(1, ["a", [["b", 3, "eu", "a field from the future"]]], minor=minor)
    assert _decode(data, OLD) == JoinV1("a", (MemberV1("b", 3),))


@pytest.mark.parametrize("major", [PROTOCOL_MAJOR - 1, PROTOCOL_MAJOR + 1, -1, 2**40])
def test_another_major_version_is_refused(major: int) -> None:
    data = encode_envelope(1, ["a", []], major=major)
    with pytest.raises(WireError) as caught:
        _decode(data, OLD)
    assert caught.value.reason is WireReason.VERSION


def test_a_missing_required_field_is_a_schema_error() -> None:
    with pytest.raises(WireError, match="members") as caught:
        _decode(encode_envelope(1, ["a"]), NEW)
    assert caught.value.reason is WireReason.SCHEMA
    with pytest.raises(WireError, match="incarnation") as caught:
        _decode(encode_envelope(1, ["a", [["b"]]]), NEW)
    assert caught.value.reason is WireReason.SCHEMA


# ---------------------------------------------------------------------------
# Caller errors: raised at once, as LocalError.

SCALARS = Scalars(
    number=1,
    ratio=0.5,
    flag=True,
    text="t",
    blob=b"b",
    port=Port(80),
    name=NodeName("n"),
    raw=Blob(b"r"),
    color=Color.RED,
)
COLLECTIONS = Collections(
    names=("a",),
    pair=(1, "a"),
    empty=(),
    tags=frozenset({"a"}),
    ids=frozenset({1}),
    ratios=frozenset({1.5}),
    colors=frozenset({Color.RED}),
    weights={"a": 1.0},
    by_port={Port(1): b""},
    by_blob={b"k": (1,)},
    nested=(frozenset({1}),),
    maybe_names=(None, "a"),
)
MEMBER = Member(NodeName("m"), ADDRESS, 1)
NESTED = Nested(
    members=(MEMBER,),
    leader=None,
    crowd=frozenset({MEMBER}),
    by_name={NodeName("m"): MEMBER},
    chain=Chain("a", Chain("b")),
    tally=Tally((("a", 1),)),
    tallies=frozenset(),
)


@pytest.mark.parametrize(
    ("base", "field", "bad"),
    [
        (PING, "seq", "5"),
        (PING, "seq", 5.0),
        (PING, "seq", True),
        (PING, "seq", 2**64),
        (PING, "seq", -(2**63) - 1),
        (PING, "target", 7),
        (PING, "note", b"bytes"),
        (SCALARS, "ratio", "0.5"),
        (SCALARS, "ratio", 10**400),
        (SCALARS, "flag", 1),
        (SCALARS, "text", b"t"),
        (SCALARS, "blob", "b"),
        (SCALARS, "blob", bytearray(b"b")),
        (SCALARS, "port", "80"),
        (SCALARS, "raw", "r"),
        (SCALARS, "color", 1),
        (SCALARS, "maybe", "1"),
        (COLLECTIONS, "names", ["a"]),
        (COLLECTIONS, "names", ("a", 1)),
        (COLLECTIONS, "pair", (1,)),
        (COLLECTIONS, "pair", (1, "a", "b")),
        (COLLECTIONS, "pair", (1, 2)),
        (COLLECTIONS, "empty", (1,)),
        (COLLECTIONS, "tags", {"a"}),
        (COLLECTIONS, "tags", frozenset({1})),
        (COLLECTIONS, "ids", frozenset({2**64})),
        (COLLECTIONS, "colors", frozenset({1})),
        (COLLECTIONS, "weights", {1: 1.0}),
        (COLLECTIONS, "weights", {"a": "x"}),
        (COLLECTIONS, "weights", (("a", 1.0),)),
        (COLLECTIONS, "by_port", {"1": b""}),
        (COLLECTIONS, "by_blob", {b"k": [1]}),
        (COLLECTIONS, "nested", (frozenset({"x"}),)),
        (COLLECTIONS, "maybe_names", (None, 1)),
        (NESTED, "members", (MEMBER, "m")),
        (NESTED, "members", [MEMBER]),
        (NESTED, "leader", MemberV1("m", 1)),
        (NESTED, "leader", ("m", ADDRESS, 1)),
        (NESTED, "chain", None),
        (NESTED, "tally", {"a": 1}),
        (NESTED, "tallies", frozenset({MEMBER})),
        (NESTED, "color", "RED"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_at_construction(
    base: Message, field: str, bad: object
) -> None:
    where = f"{type(base).__name__}.{field}"
    with pytest.raises(InvalidMessage, match=re.escape(where)):
        dataclasses.replace(base, **{field: bad})


def test_the_refusal_says_what_was_expected_and_what_came() -> None:
    with pytest.raises(InvalidMessage) as caught:
        Ping("5", ADDRESS)  # type: ignore[arg-type]
    assert str(caught.value) == "Ping.seq: expected int, got str '5'"
    with pytest.raises(InvalidMessage, match="use a tuple"):
        dataclasses.replace(COLLECTIONS, names=["a"])
    with pytest.raises(InvalidMessage, match=re.escape("-2**63 .. 2**64-1")):
        Ping(2**64, ADDRESS)
    assert isinstance(caught.value, LocalError)


def test_a_record_validates_its_own_fields_and_rules() -> None:
    with pytest.raises(InvalidMessage, match=re.escape("Member.incarnation")):
        Member(NodeName("m"), ADDRESS, "1")  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match="low 2 > high 1"):
        Bounded(2, 1)


class NotAnIntEnum(enum.Enum):
    A = 1


class HugeEnum(enum.IntEnum):
    TOO_BIG = 2**64


@dataclass(frozen=True, slots=True)
class BadRecord(Record):
    items: list[int]


def _message_class(annotation: object) -> type[Message]:
    return dataclasses.make_dataclass(
        "Probe", [("value", annotation)], bases=(Message,), frozen=True, slots=True
    )


@pytest.mark.parametrize(
    "annotation",
    [
        list[int],
        set[int],
        tuple,
        dict[float, int],
        dict[Color, int],
        dict[tuple[int, int], int],
        int | str,
        Optional[int | str],  # noqa: UP045
        object,
        Any,
        Sequence[int],
        NotAnIntEnum,
        HugeEnum,
        Ping,
        BadRecord,
        tuple[BadRecord, ...],
        type(None),
    ],
)
def test_an_unsupported_annotation_is_refused_at_registration(annotation: object) -> None:
    cls = _message_class(annotation)
    with pytest.raises(MessageDefinitionError, match=re.escape("Probe.value")) as caught:
        Registry("probe").message(1)(cls)
    assert isinstance(caught.value, LocalError)
    assert isinstance(caught.value, TypeError)


def test_a_record_with_a_bad_annotation_fails_on_first_use() -> None:
    with pytest.raises(MessageDefinitionError, match=re.escape("BadRecord.items")):
        BadRecord([1])


def test_registration_refuses_bad_classes_and_ids() -> None:
    registry = Registry("probe")
    good = _message_class(int)
    registry.message(1)(good)
    with pytest.raises(MessageDefinitionError, match="already Probe"):
        registry.message(1)(_message_class(int))
    with pytest.raises(MessageDefinitionError, match="already registered"):
        registry.message(2)(good)
    for type_id in (-1, 65_536, True, "3", 1.0):
        with pytest.raises(MessageDefinitionError, match="type id"):
            registry.message(type_id)  # type: ignore[arg-type]

    def declare(**options: bool) -> type:
        return dataclasses.make_dataclass("Shape", [("value", int)], bases=(Message,), **options)

    for cls, problem in [
        (declare(frozen=False, slots=True), "immutable"),
        (declare(frozen=True, slots=False), "slotted"),
        (type("Plain", (Message,), {"__slots__": ()}), "not a dataclass"),
        (
            dataclasses.make_dataclass("Rec", [("v", int)], bases=(Record,), frozen=True),
            "not a subclass of Message",
        ),
        (int, "not a subclass of Message"),
    ]:
        with pytest.raises(MessageDefinitionError, match=problem):
            registry.message(10)(cls)
    assert list(registry.classes()) == [1]


def test_encode_refuses_what_it_cannot_send() -> None:
    assert REG.encode(PING, max_bytes=len(PING_BYTES)) == PING_BYTES
    with pytest.raises(MessageTooLarge) as too_large:
        REG.encode(PING, max_bytes=len(PING_BYTES) - 1)
    assert (too_large.value.size, too_large.value.limit) == (len(PING_BYTES), len(PING_BYTES) - 1)
    with pytest.raises(InvalidMessage, match="JoinV1 is not registered"):
        REG.encode(JoinV1("a", ()))
    with pytest.raises(InvalidMessage, match="Ping cannot be encoded"):
        REG.encode(Ping(1, ADDRESS, "lone surrogate \ud800"))


@dataclass(frozen=True, slots=True)
class Unsendable:
    """A WireValue whose to_wire returns something that is not plain data."""

    payload: object

    def to_wire(self) -> object:
        return self.payload

    @classmethod
    def from_wire(cls, raw: object) -> Unsendable:
        return cls(raw)


def test_a_wire_value_must_return_plain_data() -> None:
    registry = Registry("probe")
    cls = registry.message(1)(_message_class(Unsendable))
    for payload in [{1, 2}, {1: "int key"}, 2**64, [object()], Color]:
        with pytest.raises(InvalidMessage, match="Unsendable"):
            registry.encode(cls(Unsendable(payload)))
    nested = {"b": [{"z": 1, "a": (2, b"x")}], "a": None, b"raw": 1.5}
    assert registry.encode(cls(Unsendable(nested))) == registry.encode(
        cls(Unsendable({b"raw": 1.5, "a": None, "b": [{"a": [2, b"x"], "z": 1}]}))
    )


def test_decode_refuses_a_non_bytes_argument_as_a_local_error() -> None:
    with pytest.raises(LocalError):
        REG.decode("not bytes", 100)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Every WireReason, from crafted input.


def _envelope(*items: bytes) -> bytes:
    return bytes([0x90 + len(items)]) + b"".join(items)


def _body(type_id: int, *fields: object) -> bytes:
    return encode_envelope(type_id, list(fields))


_NESTED_BODY = [[], None, [], {}, ["a"], {}, []]

REASON_CASES: list[tuple[str, bytes, str]] = [
    ("over the limit", PING_BYTES + b"", WireReason.OVERSIZE),
    ("empty input", b"", WireReason.MALFORMED),
    ("never-used byte 0xc1", b"\xc1", WireReason.MALFORMED),
    ("truncated", PING_BYTES[:-1], WireReason.MALFORMED),
    ("trailing byte", PING_BYTES + b"\xc0", WireReason.MALFORMED),
    ("two envelopes", PING_BYTES + PING_BYTES, WireReason.MALFORMED),
    ("invalid utf-8", _envelope(b"\x01", b"\x00", b"\x01", b"\x92\x05\xa2\xc3\x28"), "malformed"),
    ("extension type", _envelope(b"\x01", b"\x00", b"\x01", b"\x92\x05\xd4\x05\x00"), "malformed"),
    ("timestamp 32", b"\xd6\xff\x00\x00\x00\x01", WireReason.MALFORMED),
    (
        "timestamp in a field",
        _envelope(b"\x01", b"\x00", b"\x01", b"\x93\x05\xa1x\xd7\xff" + bytes(8)),
        WireReason.MALFORMED,
    ),
    (
        "timestamp 96 as ext16",
        _envelope(b"\x01", b"\x00", b"\x01", b"\x91\xc8\x00\x0c\xff" + bytes(12)),
        WireReason.MALFORMED,
    ),
    ("bad timestamp length", b"\xd4\xff\x00", WireReason.MALFORMED),
    ("too deep", b"\x91" * 100_000, WireReason.MALFORMED),
    ("huge array", b"\xdd\xff\xff\xff\xff", WireReason.MALFORMED),
    ("huge map", b"\xdf\xff\xff\xff\xff", WireReason.MALFORMED),
    ("huge str", b"\xdb\xff\xff\xff\xff", WireReason.MALFORMED),
    ("huge bin", b"\xc6\xff\xff\xff\xff", WireReason.MALFORMED),
    ("int map key", b"\x81\x01\x01", WireReason.MALFORMED),
    ("array map key", _envelope(b"\x01", b"\x00", b"\x01", b"\x81\x90\x01"), "malformed"),
    ("not an array", b"\x01", WireReason.ENVELOPE),
    ("a map", b"\x81\xa1a\x01", WireReason.ENVELOPE),
    ("empty array", b"\x90", WireReason.ENVELOPE),
    ("three elements", _envelope(b"\x01", b"\x00", b"\x01"), WireReason.ENVELOPE),
    ("five elements", _envelope(b"\x01", b"\x00", b"\x01", b"\x90", b"\x00"), "envelope"),
    ("bool major", _envelope(b"\xc3", b"\x00", b"\x01", b"\x90"), WireReason.ENVELOPE),
    (
        "float major",
        _envelope(b"\xcb" + struct.pack(">d", 1.0), b"\x00", b"\x01", b"\x90"),
        "envelope",
    ),
    ("str minor", _envelope(b"\x01", b"\xa10", b"\x01", b"\x90"), WireReason.ENVELOPE),
    ("str type id", _envelope(b"\x01", b"\x00", b"\xa11", b"\x90"), WireReason.ENVELOPE),
    ("nil type id", _envelope(b"\x01", b"\x00", b"\xc0", b"\x90"), WireReason.ENVELOPE),
    ("map body", _envelope(b"\x01", b"\x00", b"\x01", b"\x80"), WireReason.ENVELOPE),
    ("major 2", encode_envelope(1, [5, "a"], major=2), WireReason.VERSION),
    ("major 0", encode_envelope(1, [5, "a"], major=0), WireReason.VERSION),
    ("major alone", _envelope(b"\x02"), WireReason.VERSION),
    ("unknown id", encode_envelope(999, []), WireReason.UNKNOWN_TYPE),
    ("negative id", encode_envelope(-1, []), WireReason.UNKNOWN_TYPE),
    ("id over 65535", encode_envelope(2**40, []), WireReason.UNKNOWN_TYPE),
    ("no fields", _body(1), WireReason.SCHEMA),
    ("str for int", _body(1, "5", "a"), WireReason.SCHEMA),
    ("float for int", _body(1, 5.0, "a"), WireReason.SCHEMA),
    ("bool for int", _body(1, True, "a"), WireReason.SCHEMA),
    ("bytes for str", _body(1, 5, b"a"), WireReason.SCHEMA),
    ("int for optional str", _body(1, 5, "a", 3), WireReason.SCHEMA),
    ("unknown enum value", _body(2, 1, 0.5, True, "t", b"b", 80, "n", b"r", 7), "schema"),
    ("int for bool", _body(2, 1, 0.5, 1, "t", b"b", 80, "n", b"r", 1), WireReason.SCHEMA),
    ("str for float", _body(2, 1, "0.5", True, "t", b"b", 80, "n", b"r", 1), "schema"),
    ("map for tuple", _body(3, {}, [1, "a"], [], [], [], [], [], {}, [], {}, [], []), "schema"),
    ("short fixed tuple", _body(3, [], [1], [], [], [], [], [], {}, [], {}, [], []), "schema"),
    (
        "int key as map",
        _body(3, [], [1, "a"], [], [], [], [], [], {}, {"1": b""}, {}, [], []),
        "schema",
    ),
    (
        "bad int-key pair",
        _body(3, [], [1, "a"], [], [], [], [], [], {}, [[1]], {}, [], []),
        "schema",
    ),
    (
        "str key for bytes",
        _body(3, [], [1, "a"], [], [], [], [], [], {}, [], {"k": []}, [], []),
        "schema",
    ),
    (
        "array as a set element",
        _body(3, [], [1, "a"], [], [[1]], [], [], [], {}, [], {}, [], []),
        "schema",
    ),
    ("record not an array", _body(4, ["m"], *_NESTED_BODY[1:]), WireReason.SCHEMA),
    ("record missing a field", _body(4, [["m", "a"]], *_NESTED_BODY[1:]), WireReason.SCHEMA),
    ("wire value refuses", _body(4, [], None, [], {}, ["a"], {"a": -1}, []), WireReason.SCHEMA),
    ("wire value gets junk", _body(4, [], None, [], {}, ["a"], [1, 2], []), WireReason.SCHEMA),
    ("record rule broken", _body(4, *_NESTED_BODY, [[2, 1]]), WireReason.SCHEMA),
    ("clock refuses", _body(8, {"a": 0}, ["a", 1], [{}, []]), WireReason.SCHEMA),
]


@pytest.mark.parametrize(
    ("data", "expected"),
    [pytest.param(data, expected, id=name) for name, data, expected in REASON_CASES],
)
def test_crafted_input_is_refused_for_the_right_reason(data: bytes, expected: str) -> None:
    limit = len(PING_BYTES) - 1 if expected == WireReason.OVERSIZE else 1 << 20
    with pytest.raises(WireError) as caught:
        REG.decode(data, limit)
    assert caught.value.reason == expected, str(caught.value)


def test_every_reason_has_a_crafted_case() -> None:
    assert {WireReason(expected) for _, _, expected in REASON_CASES} == set(WireReason)


def test_a_schema_error_names_the_field() -> None:
    with pytest.raises(WireError) as caught:
        _decode(_body(4, [["m", 7, 1]], *_NESTED_BODY[1:]))
    assert caught.value.detail == "Nested.members: Member.address: expected str, got int 7"


def test_a_deeply_self_nested_record_is_refused_not_a_crash() -> None:
    chain: list[object] = ["end"]
    for _ in range(900):
        chain = ["link", chain]
    data = _body(4, [], None, [], {}, chain, {}, [])
    with pytest.raises(WireError) as caught:
        _decode(data)
    assert caught.value.reason in (WireReason.SCHEMA, WireReason.MALFORMED)


# ---------------------------------------------------------------------------
# Fuzzing: whatever the bytes, decode raises WireError and nothing else.


def _random_plain(rng: random.Random, depth: int = 0) -> object:
    """Plain msgpack data of a random type."""
    choice = rng.randrange(9 if depth < 3 else 7)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice([0, 1, -1, 127, 128, 255, 256, 2**31, -(2**63), 2**64 - 1])
    if choice == 3:
        return rng.uniform(-1e9, 1e9)
    if choice == 4:
        return "".join(rng.choice("ab\u00e9\u4e2d") for _ in range(rng.randrange(5)))
    if choice == 5:
        return rng.randbytes(rng.randrange(5))
    if choice == 6:
        return rng.randrange(-40, 40)
    if choice == 7:
        return [_random_plain(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(i): _random_plain(rng, depth + 1) for i in range(rng.randrange(3))}


def _random_value(annotation: Any, rng: random.Random, depth: int = 0) -> Any:
    """A valid value for a field annotation, built from a seeded Random."""
    factories: dict[object, Callable[[], object]] = {
        int: lambda: rng.choice([0, 1, -1, 2**64 - 1, -(2**63), rng.randrange(-1000, 1000)]),
        float: lambda: rng.choice([0.0, -0.0, 1.5, float("inf"), rng.uniform(-1e6, 1e6)]),
        bool: lambda: rng.random() < 0.5,
        str: lambda: "".join(rng.choice("ab\u00e9\u4e2d") for _ in range(rng.randrange(6))),
        bytes: lambda: rng.randbytes(rng.randrange(6)),
        Tally: lambda: Tally((("a", rng.randrange(5)),)),
        VersionVector: lambda: VersionVector({"a": rng.randrange(1, 9)}),
        Dot: lambda: Dot("a", rng.randrange(1, 9)),
        CausalContext: lambda: CausalContext(VersionVector({"a": 1}), [Dot("b", 2)]),
        LamportTimestamp: lambda: LamportTimestamp(rng.randrange(1, 9), "a"),
    }
    if annotation in factories:
        return factories[annotation]()
    if hasattr(annotation, "__supertype__"):
        return _random_value(annotation.__supertype__, rng, depth)
    args = getattr(annotation, "__args__", ())
    origin = getattr(annotation, "__origin__", None)
    size = rng.randrange(4 if depth < 2 else 1)
    if type(None) in args:
        if depth > 2 or rng.random() < 0.3:
            return None
        return _random_value(next(a for a in args if a is not type(None)), rng, depth)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_random_value(args[0], rng, depth + 1) for _ in range(size))
        return tuple(_random_value(a, rng, depth + 1) for a in args)
    if origin is frozenset:
        return frozenset(_random_value(args[0], rng, depth + 1) for _ in range(size))
    if origin is dict:
        return {
            _random_value(args[0], rng, depth + 1): _random_value(args[1], rng, depth + 1)
            for _ in range(size)
        }
    if isinstance(annotation, type) and issubclass(annotation, enum.IntEnum):
        return rng.choice(list(annotation))
    if annotation is Bounded:
        low = rng.randrange(100)
        return Bounded(low, low + rng.randrange(100))
    if isinstance(annotation, type) and issubclass(annotation, Message | Record):
        hints = _hints(annotation)
        return annotation(
            **{
                f.name: _random_value(hints[f.name], rng, depth + 1)
                for f in dataclasses.fields(annotation)
            }
        )
    raise AssertionError(f"no random factory for {annotation!r}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    import typing

    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _plain_of(value: object) -> object:
    """A field value in the plain form it travels in (close enough to mutate)."""
    if isinstance(value, Message | Record):
        return [_plain_of(getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, tuple | frozenset):
        return [_plain_of(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, int) for key in value):
            return [[key, _plain_of(item)] for key, item in value.items()]
        return {key: _plain_of(item) for key, item in value.items()}
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if isinstance(value, enum.IntEnum):
        return int(value)
    return value


_HUGE_HEADERS = [
    b"\xdd\xff\xff\xff\xff",  # array32
    b"\xdf\xff\xff\xff\xff",  # map32
    b"\xdb\xff\xff\xff\xff",  # str32
    b"\xc6\xff\xff\xff\xff",  # bin32
    b"\xc9\xff\xff\xff\xff\x01",  # ext32
    b"\xdc\xff\xff",  # array16
]


def _mutate(data: bytes, other: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    if kind == 0 and data:  # bit flips
        out = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:  # insertion
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.randbytes(rng.randint(1, 4)) + data[at:]
    if kind == 2 and data:  # deletion
        at = rng.randrange(len(data))
        return data[:at] + data[at + rng.randint(1, 4) :]
    if kind == 3:  # splice two encodings
        return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]
    if kind == 4:  # a huge declared length
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice(_HUGE_HEADERS) + data[at:]
    if kind == 5:  # deep nesting in place of a field
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice([b"\x91", b"\x81\xa1k"]) * rng.randint(500, 5_000)
    return data[: rng.randrange(len(data) + 1)]  # truncation


def _fuzz_inputs(rng: random.Random) -> list[bytes]:
    """Hostile inputs: random bytes, and valid encodings broken every way we know."""
    registry_classes = list(REG.classes().items())
    valid: list[bytes] = []
    bodies: list[tuple[int, list[object]]] = []
    for _ in range(300):
        type_id, cls = rng.choice(registry_classes)
        message = _random_value(cls, rng)
        valid.append(REG.encode(message))
        bodies.append((type_id, _plain_of(message)))  # type: ignore[arg-type]

    inputs: list[bytes] = [b"\x91" * 100_000, b"\x81\xa1k" * 50_000]
    for data in valid[:40]:  # truncation at every point
        inputs.extend(data[:end] for end in range(len(data)))
    for _ in range(5_000):  # pure random bytes
        length = rng.choice([rng.randrange(8), rng.randrange(64), rng.randrange(2_000)])
        inputs.append(rng.randbytes(length))
    for _ in range(10_000):  # mutated valid encodings
        inputs.append(_mutate(rng.choice(valid), rng.choice(valid), rng))
    for _ in range(2_000):  # a field replaced by a value of another type
        type_id, body = rng.choice(bodies)
        body = list(body)
        if body:
            body[rng.randrange(len(body))] = _random_plain(rng)
        if rng.random() < 0.3:
            body.append(_random_plain(rng))
        if rng.random() < 0.1:
            type_id = rng.randrange(70_000)
        inputs.append(encode_envelope(type_id, body, minor=rng.choice([0, 0, 1, 99])))
    return inputs


def test_fuzz_decode_raises_only_wire_errors() -> None:
    rng = random.Random(20_240_917)
    inputs = _fuzz_inputs(rng)
    assert len(inputs) >= 10_000

    reasons: Counter[str] = Counter()
    for data in inputs:
        limit = rng.choice([1 << 20, 1 << 20, 1 << 20, 64])
        try:
            message = REG.decode(data, limit)
        except WireError as exc:
            reasons[exc.reason.value] += 1
            continue
        except Exception as exc:  # pragma: no cover - the failure being tested for
            raise AssertionError(f"{type(exc).__name__} escaped decode({data[:200]!r})") from exc
        reasons["ok"] += 1
        # Whatever decode accepts is a valid message that encodes again.
        assert isinstance(message, Message)
        assert REG.encode(message)
    assert all(reasons[reason.value] > 0 for reason in WireReason), reasons
    assert reasons["ok"] > 0, reasons
