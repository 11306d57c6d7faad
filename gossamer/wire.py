"""The message codec: versioned msgpack envelopes, schema-checked fields, strict decoding.

Format
------
Every message, in a datagram or in a stream frame, is exactly one msgpack value::

    [major, minor, type_id, body]

``major`` and ``minor`` are the sender's protocol version (:data:`PROTOCOL_MAJOR`,
:data:`PROTOCOL_MINOR`); ``type_id`` (0..65535) names the message class in a
:class:`Registry`; ``body`` is an array of the message's field values in
declaration order.  Field values are encoded by their annotation:

=====================================  =========================================
annotation                             on the wire
=====================================  =========================================
``int``                                int, -2**63 .. 2**64-1 (``bool`` is refused)
``float``                              float64 (an ``int`` is accepted, converted)
``bool``, ``str``, ``bytes``           bool, str (UTF-8), bin
``NewType("N", T)``                    as ``T``
``X | None``, ``Optional[X]``          nil, or as ``X``
``tuple[T, ...]``, ``tuple[A, B]``     array
``frozenset[T]``                       array, sorted
``dict[str, V]``, ``dict[bytes, V]``   map, keys sorted
``dict[int, V]``                       array of ``[key, value]`` pairs, by key
``enum.IntEnum`` subclass              int (an unknown value is a schema error)
:class:`Record` subclass               array of the record's fields (no type id)
:class:`WireValue` class               what ``to_wire()`` returns, map keys sorted
=====================================  =========================================

Integer-keyed dicts travel as pairs because the decoder runs with
``strict_map_key=True``, msgpack's guard against hash flooding: a map may only
have str or bytes keys.  msgpack extension types (timestamps included) are
not part of the format.

Evolution
---------
Mixed-version clusters keep working, in the manner of memberlist's ``net.go``:

* Type ids are append-only.  An id, once released, always names the same
  message; a retired message keeps its id reserved.
* A minor release may add messages, and may append fields *with defaults* to
  the end of a message or record.  Receivers accept any minor version: extra
  trailing fields (from a newer peer) are ignored, and missing trailing fields
  that have defaults (from an older peer) take their defaults.  A missing
  required field is a schema error.
* Removing, reordering or retyping a field, or appending one without a
  default, needs a new major version.  The major is the envelope's first
  element and the only thing every version agrees on: a receiver refuses any
  other major (``version``) before reading further.

Determinism
-----------
The same value always encodes to the same bytes, so sizes the simulator counts
and digests peers compare are stable: dict keys and frozenset elements are
sorted (frozensets of ints, strings, bytes, bools and enums in natural order,
anything else by the bytes of each element's encoding), floats are always
float64, ints take msgpack's smallest form, and the maps a
:class:`WireValue` returns are re-sorted by key.  Decoding does not require
canonical input (unsorted or duplicated elements are accepted).

Limits
------
:meth:`Registry.encode` refuses to produce more than ``max_bytes``
(:class:`~gossamer.errors.MessageTooLarge`), and :meth:`Registry.decode`
refuses more than ``max_bytes`` before parsing (``oversize``); callers pass
:attr:`WireConfig.max_datagram_bytes <gossamer.config.WireConfig>` or
``max_frame_bytes``.  Inside that limit every declared length is bounded by the
input's size, and nesting by msgpack's stack (1,024 levels).

Invariants
----------
* A constructed message is valid: :class:`Message` checks every field in
  ``__post_init__`` against a schema compiled once per class, so a core that
  builds a bad message fails at once, in the simulator too, where messages are
  never encoded.  Values are immutable (tuples and frozensets, never lists or
  sets), except ``dict`` fields, which callers must not mutate (and which make
  a message unhashable).
* ``encode`` raises only :class:`~gossamer.errors.LocalError`; ``decode``
  raises only :class:`~gossamer.errors.WireError`, whatever the bytes: a peer
  can never crash a node.
* ``decode(encode(m)) == m`` and ``encode(decode(encode(m))) == encode(m)``.
* All msgpack use lives in this module.
"""

from __future__ import annotations

__all__ = [
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "TYPE_ID_RANGES",
    "Message",
    "MessageDefinitionError",
    "Record",
    "Registry",
    "WireValue",
    "digest_bytes",
    "encode_envelope",
    "is_wire_value_class",
    "registry",
]

import dataclasses
import enum
import operator
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any, Final, Protocol, Self, TypeGuard, TypeVar, cast

import msgpack

from gossamer.errors import (
    InvalidMessage,
    LocalError,
    MessageTooLarge,
    WireError,
    WireReason,
)

PROTOCOL_MAJOR: Final = 1
"""Bumped only by changes an older node cannot read; nodes refuse other majors."""
PROTOCOL_MINOR: Final = 0
"""Bumped by compatible additions (new messages, new defaulted trailing fields)."""

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_MAX_TYPE_ID: Final = 65_535


class MessageDefinitionError(LocalError, TypeError):
    """A message or record class cannot be put on the wire as written.

    Raised at registration (or, for a :class:`Record`, when its schema is
    first needed): a field annotation the codec does not support, a class that
    is not a frozen slotted dataclass, a duplicate type id.
    """


class WireValue(Protocol):
    """A value type that encodes itself (clocks, CRDT states).

    The codec calls ``to_wire()`` when encoding and ``from_wire(raw)`` when
    decoding; both must be pure and must not block.

    * ``to_wire`` returns plain data: ``None``, ``bool``, ``int`` (within
      -2**63 .. 2**64-1), ``float``, ``str``, ``bytes``, lists or tuples of
      plain data, and dicts with ``str`` or ``bytes`` keys.  The codec sorts
      map keys itself; the order of sequences is the value's own business and
      must be deterministic (sort it).  Anything else is an
      :class:`~gossamer.errors.InvalidMessage` when the message is encoded.
    * ``from_wire`` receives the msgpack decoding of that data, so sequences
      arrive as lists and maps as dicts.  The input comes from a peer: it must
      check everything and raise ``WireError(WireReason.SCHEMA, ...)`` when
      it cannot accept it.  (The codec turns any other exception into a
      schema error too, but an explicit one says what was wrong.)

    The value must be immutable, and ``from_wire(to_wire(v))`` must equal
    ``v``.  A field annotated with a WireValue class accepts instances of
    that class and its subclasses.
    """

    def to_wire(self) -> object:
        """Return this value as plain msgpack-able data."""
        ...

    @classmethod
    def from_wire(cls, raw: object) -> Self:
        """Rebuild a value from a peer's data; raise ``WireError(SCHEMA)`` on bad input."""
        ...


def is_wire_value_class(tp: object) -> TypeGuard[type[WireValue]]:
    """Whether ``tp`` is a class with the :class:`WireValue` pair of methods."""
    return (
        isinstance(tp, type)
        and callable(getattr(tp, "to_wire", None))
        and callable(getattr(tp, "from_wire", None))
    )


# --------------------------------------------------------------------------
# msgpack, wrapped: msgpack ships no type stubs.

# One shared packer: packing runs entirely in C without calling back into
# Python (the codec hands it only plain data), so the GIL makes each call
# atomic, and reusing the packer saves constructing one per message.
_PACKER = msgpack.Packer(use_bin_type=True, use_single_float=False, autoreset=True)
_Timestamp: Final = cast(type, msgpack.Timestamp)


# The packer's own bound method, called directly on the hot path (encode).
_PACK: Callable[[object], bytes] = _PACKER.pack


def _pack(value: object) -> bytes:
    return cast(bytes, _PACKER.pack(value))


def _digest_default(value: object) -> object:
    """Stand-ins, as plain data, for what msgpack cannot pack itself.  Never a
    ``repr`` of a set: its order changes with PYTHONHASHSEED."""
    if isinstance(value, set | frozenset):
        return ["set", *sorted(digest_bytes(item) for item in value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # A field outside equality (compare=False) is a cache, not state:
        # whether someone read it must not change a trace.
        fields = [getattr(value, f.name) for f in dataclasses.fields(value) if f.compare]
        return [type(value).__qualname__, *fields]
    if isinstance(value, enum.Enum):
        return [type(value).__qualname__, value.name]
    to_wire = getattr(value, "to_wire", None)
    if callable(to_wire):
        return [type(value).__qualname__, to_wire()]
    return repr(value)


def digest_bytes(value: object) -> bytes:
    """Deterministic bytes for ``value``, for hashing (never for the wire).

    Plain data (None, bool, int, float, str, bytes, tuples, lists, dicts) is
    packed as msgpack in C; sets are sorted, dataclasses become their class
    name and fields, enums their name, wire values their wire form, anything
    else its ``repr``.  Equal values built the same way give equal bytes in
    every process, whatever PYTHONHASHSEED says.
    """
    # A fresh packer per call: _digest_default calls back in for set items.
    packer = msgpack.Packer(use_bin_type=True, use_single_float=False, default=_digest_default)
    return cast(bytes, packer.pack(value))


def _refuse_ext(code: int, data: bytes) -> object:
    raise ValueError(f"msgpack extension type {code} is not part of the gossamer format")


def _unpack(data: bytes) -> object:
    # max_buffer_size defaults to len(data), which bounds every declared
    # length; nesting is bounded by msgpack's own stack (1,024 levels).
    return cast(
        object,
        msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext),
    )


# msgpack turns extension type -1 into a Timestamp without asking ext_hook.
# Such an extension is a header followed by the type byte 0xff; only when
# one of these patterns occurs in the bytes (rare by chance) is the decoded
# value searched.
_MAYBE_TIMESTAMP: Final = re.compile(
    rb"[\xd4-\xd8]\xff|\xc7.\xff|\xc8..\xff|\xc9....\xff", re.DOTALL
)


def _contains_timestamp(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Timestamp):
            return True
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.values())  # keys are str or bytes (strict_map_key)
    return False


# --------------------------------------------------------------------------
# Field kinds: how one annotation is checked, encoded and decoded.


class _Reject(Exception):
    """A peer's value does not fit the schema (becomes WireError(SCHEMA))."""


def _describe(value: object) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


class _Kind:
    """The compiled form of one field annotation.

    ``check`` says whether a Python value is acceptable; ``encode`` turns an
    accepted value into plain msgpack data (``None`` when it already is);
    ``decode`` turns a peer's plain data into a value or raises.
    ``natural_order`` says whether values sort deterministically with ``<``.
    ``raw_types``, when set, are the exact types of raw data that ``decode``
    returns unchanged (which lets a schema of such fields skip the calls).
    """

    __slots__ = ("check", "decode", "encode", "label", "natural_order", "raw_types")

    def __init__(
        self,
        label: str,
        check: Callable[[Any], bool],
        encode: Callable[[Any], object] | None,
        decode: Callable[[Any], object],
        *,
        natural_order: bool = False,
        raw_types: frozenset[type] | None = None,
    ) -> None:
        self.label = label
        self.check = check
        self.encode = encode
        self.decode = decode
        self.natural_order = natural_order
        self.raw_types = raw_types


def _is_int(value: object) -> bool:
    if type(value) is int:
        return -9_223_372_036_854_775_808 <= value <= 18_446_744_073_709_551_615
    return isinstance(value, int) and not isinstance(value, bool) and _INT_MIN <= value <= _INT_MAX


def _is_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return False
        return True
    return False


def _decode_int(raw: object) -> object:
    if type(raw) is int:  # msgpack ints always fit the range
        return raw
    raise _Reject(f"expected int, got {_describe(raw)}")


def _decode_float(raw: object) -> object:
    if type(raw) is float:
        return raw
    if type(raw) is int:
        return float(raw)
    raise _Reject(f"expected float, got {_describe(raw)}")


def _decode_bool(raw: object) -> object:
    if raw is True or raw is False:
        return raw
    raise _Reject(f"expected bool, got {_describe(raw)}")


def _decode_str(raw: object) -> object:
    if type(raw) is str:
        return raw
    raise _Reject(f"expected str, got {_describe(raw)}")


def _decode_bytes(raw: object) -> object:
    if type(raw) is bytes:
        return raw
    raise _Reject(f"expected bytes, got {_describe(raw)}")


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


_INT = _Kind("int", _is_int, None, _decode_int, natural_order=True, raw_types=frozenset({int}))
_FLOAT = _Kind("float", _is_float, float, _decode_float, raw_types=frozenset({float}))
_BOOL = _Kind(
    "bool",
    bool.__instancecheck__,
    None,
    _decode_bool,
    natural_order=True,
    raw_types=frozenset({bool}),
)
_STR = _Kind(
    "str", str.__instancecheck__, None, _decode_str, natural_order=True, raw_types=frozenset({str})
)
_BYTES = _Kind(
    "bytes",
    bytes.__instancecheck__,
    None,
    _decode_bytes,
    natural_order=True,
    raw_types=frozenset({bytes}),
)
_SCALARS: Final[dict[object, _Kind]] = {
    int: _INT,
    float: _FLOAT,
    bool: _BOOL,
    str: _STR,
    bytes: _BYTES,
}

_SUPPORTED = (
    "supported: int, float, bool, str, bytes, NewType over those, X | None, "
    "tuple[T, ...], tuple[A, B], frozenset[T], dict[str|int|bytes, V], IntEnum "
    "subclasses, Record subclasses and WireValue classes"
)


def _optional_kind(inner: _Kind) -> _Kind:
    check, encode, decode = inner.check, inner.encode, inner.decode

    def check_optional(value: object) -> bool:
        return value is None or check(value)

    def decode_optional(raw: object) -> object:
        return None if raw is None else decode(raw)

    encode_optional: Callable[[Any], object] | None = None
    if encode is float:
        encode_optional = _float_or_none
    elif encode is not None:
        inner_encode = encode

        def encode_optional(value: object) -> object:
            return None if value is None else inner_encode(value)

    raw_types = None if inner.raw_types is None else inner.raw_types | {type(None)}
    return _Kind(
        f"{inner.label} | None",
        check_optional,
        encode_optional,
        decode_optional,
        raw_types=raw_types,
    )


def _list_of(raw: object, label: str) -> list[object]:
    if type(raw) is not list:
        raise _Reject(f"expected an array ({label}), got {_describe(raw)}")
    return cast(list[object], raw)


def _variadic_tuple_kind(elem: _Kind) -> _Kind:
    label = f"tuple[{elem.label}, ...]"
    check, encode, decode = elem.check, elem.encode, elem.decode

    def check_tuple(value: object) -> bool:
        return isinstance(value, tuple) and all(map(check, value))

    def decode_tuple(raw: object) -> object:
        return tuple(map(decode, _list_of(raw, label)))

    encode_tuple: Callable[[Any], object] | None = None
    if encode is not None:
        inner_encode = encode

        def encode_tuple(value: tuple[object, ...]) -> object:
            return list(map(inner_encode, value))

    return _Kind(label, check_tuple, encode_tuple, decode_tuple)


def _fixed_tuple_kind(elems: list[_Kind]) -> _Kind:
    label = f"tuple[{', '.join(e.label for e in elems)}]" if elems else "tuple[()]"
    size = len(elems)
    checks = [e.check for e in elems]
    decoders = [e.decode for e in elems]
    encoders = [(i, e.encode) for i, e in enumerate(elems) if e.encode is not None]

    def check_fixed(value: object) -> bool:
        return (
            isinstance(value, tuple)
            and len(value) == size
            and all(map(operator.call, checks, value))
        )

    def decode_fixed(raw: object) -> object:
        items = _list_of(raw, label)
        if len(items) != size:
            raise _Reject(f"expected {size} elements ({label}), got {len(items)}")
        return tuple(map(operator.call, decoders, items))

    encode_fixed: Callable[[Any], object] | None = None
    if encoders:

        def encode_fixed(value: tuple[object, ...]) -> object:
            out = list(value)
            for i, encode in encoders:
                out[i] = encode(out[i])
            return out

    return _Kind(label, check_fixed, encode_fixed, decode_fixed)


def _frozenset_kind(elem: _Kind) -> _Kind:
    label = f"frozenset[{elem.label}]"
    check, encode, decode = elem.check, elem.encode, elem.decode

    def check_set(value: object) -> bool:
        return isinstance(value, frozenset) and all(map(check, value))

    def decode_set(raw: object) -> object:
        return frozenset(map(decode, _list_of(raw, label)))

    if elem.natural_order and encode is None:

        def encode_set(value: frozenset[Any]) -> object:
            return sorted(value)

    elif encode is None:

        def encode_set(value: frozenset[Any]) -> object:
            return sorted(value, key=_pack)

    else:
        inner_encode = encode

        def encode_set(value: frozenset[Any]) -> object:
            return sorted(map(inner_encode, value), key=_pack)

    return _Kind(label, check_set, encode_set, decode_set)


def _dict_kind(key: _Kind, key_base: type, value: _Kind) -> _Kind:
    label = f"dict[{key.label}, {value.label}]"
    check_key, decode_key = key.check, key.decode
    check_value, decode_value = value.check, value.decode
    encode_value = value.encode

    def check_dict(obj: object) -> bool:
        return (
            isinstance(obj, dict)
            and all(map(check_key, obj.keys()))
            and all(map(check_value, obj.values()))
        )

    if key_base is int:
        # An array of [key, value] pairs: int map keys would need
        # strict_map_key=False (see the module docstring).
        def decode_pairs(raw: object) -> object:
            out: dict[object, object] = {}
            for pair in _list_of(raw, label):
                if type(pair) is not list or len(pair) != 2:
                    raise _Reject(f"expected a [key, value] pair ({label}), got {_describe(pair)}")
                out[decode_key(pair[0])] = decode_value(pair[1])
            return out

        if encode_value is None:

            def encode_pairs(obj: dict[Any, Any]) -> object:
                return sorted(obj.items(), key=_first)

        else:
            inner_encode = encode_value

            def encode_pairs(obj: dict[Any, Any]) -> object:
                return [(k, inner_encode(v)) for k, v in sorted(obj.items(), key=_first)]

        return _Kind(label, check_dict, encode_pairs, decode_pairs)

    def decode_map(raw: object) -> object:
        if type(raw) is not dict:
            raise _Reject(f"expected a map ({label}), got {_describe(raw)}")
        return {decode_key(k): decode_value(v) for k, v in raw.items()}

    if encode_value is None:

        def encode_map(obj: dict[Any, Any]) -> object:
            return dict(sorted(obj.items(), key=_first))

    else:
        inner_encode = encode_value

        def encode_map(obj: dict[Any, Any]) -> object:
            return {k: inner_encode(v) for k, v in sorted(obj.items(), key=_first)}

    return _Kind(label, check_dict, encode_map, decode_map)


_first = itemgetter(0)


def _int_enum_kind(cls: type[enum.IntEnum], where: str) -> _Kind:
    for member in cls:
        if not _INT_MIN <= member.value <= _INT_MAX:
            raise MessageDefinitionError(
                f"{where}: {cls.__qualname__}.{member.name} = {member.value} is outside "
                "the msgpack int range -2**63 .. 2**64-1"
            )
    by_value = {member.value: member for member in cls}

    def check_enum(value: object) -> bool:
        return isinstance(value, cls)

    def decode_enum(raw: object) -> object:
        if type(raw) is not int:
            raise _Reject(f"expected int ({cls.__qualname__}), got {_describe(raw)}")
        try:
            return by_value[raw]
        except KeyError:
            raise _Reject(f"{raw} is not a known {cls.__qualname__} value") from None

    # IntEnum members are ints: msgpack packs them as such, no conversion.
    return _Kind(cls.__qualname__, check_enum, None, decode_enum, natural_order=True)


def _record_kind(schema: _Schema) -> _Kind:
    cls = schema.cls

    def check_record(value: object) -> bool:
        # Exactly the class: a subclass's own fields would be lost on the wire.
        # Its fields were checked when it was built, and it is immutable.
        return type(value) is cls

    return _Kind(cls.__qualname__, check_record, schema.encode_body, schema.decode_body)


def _plain(value: object, where: str) -> object:
    """Check and canonicalise what a WireValue's ``to_wire`` returned."""
    if value is None or isinstance(value, bool | str | bytes | float):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidMessage(f"{where}: to_wire returned {value}, outside -2**63 .. 2**64-1")
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict):
        if all(type(k) is str for k in value) or all(type(k) is bytes for k in value):
            items = sorted(value.items(), key=_first)
        elif all(isinstance(k, str | bytes) for k in value):
            items = sorted(value.items(), key=_str_or_bytes_order)
        else:
            raise InvalidMessage(
                f"{where}: to_wire returned a dict with a key that is not str or bytes"
            )
        return {k: _plain(v, where) for k, v in items}
    raise InvalidMessage(f"{where}: to_wire returned {_describe(value)}, which is not plain data")


def _str_or_bytes_order(item: tuple[str | bytes, object]) -> tuple[bool, str | bytes]:
    return (isinstance(item[0], bytes), item[0])


def _wire_value_kind(cls: type[WireValue]) -> _Kind:
    name = cls.__qualname__

    def check_value(value: object) -> bool:
        return isinstance(value, cls)

    def encode_value(value: WireValue) -> object:
        return _plain(value.to_wire(), name)

    def decode_value(raw: object) -> object:
        value = cls.from_wire(raw)
        if not isinstance(value, cls):
            raise _Reject(f"{name}.from_wire returned {_describe(value)}")
        return value

    return _Kind(name, check_value, encode_value, decode_value)


def _unwrap_new_type(tp: object) -> object:
    while isinstance(tp, typing.NewType):
        tp = tp.__supertype__
    return tp


def _kind_for(tp: object, where: str) -> _Kind:
    """Compile one annotation; raise MessageDefinitionError if unsupported."""
    scalar = _SCALARS.get(tp) if isinstance(tp, type) else None
    if scalar is not None:
        return scalar
    if isinstance(tp, typing.NewType):
        inner = _kind_for(tp.__supertype__, where)
        return _Kind(
            tp.__name__,
            inner.check,
            inner.encode,
            inner.decode,
            natural_order=inner.natural_order,
            raw_types=inner.raw_types,
        )
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return _optional_kind(_kind_for(others[0], where))
        raise MessageDefinitionError(
            f"{where}: {tp!r} is a union; only X | None is supported ({_SUPPORTED})"
        )
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _variadic_tuple_kind(_kind_for(args[0], where))
        if Ellipsis in args:
            raise MessageDefinitionError(f"{where}: malformed tuple annotation {tp!r}")
        return _fixed_tuple_kind([_kind_for(a, where) for a in args])
    if origin is frozenset:
        return _frozenset_kind(_kind_for(args[0], where))
    if origin is dict:
        key_base = _unwrap_new_type(args[0])
        if key_base not in (str, int, bytes):
            raise MessageDefinitionError(
                f"{where}: dict keys must be str, int or bytes (or a NewType of them), "
                f"got {args[0]!r}"
            )
        return _dict_kind(
            _kind_for(args[0], where), cast(type, key_base), _kind_for(args[1], where)
        )
    if tp is list or origin is list:
        raise MessageDefinitionError(
            f"{where}: lists are mutable and messages are not; use tuple[T, ...]"
        )
    if tp is set or origin is set:
        raise MessageDefinitionError(
            f"{where}: sets are mutable and messages are not; use frozenset[T]"
        )
    if isinstance(tp, type):
        if issubclass(tp, enum.IntEnum):
            return _int_enum_kind(tp, where)
        if issubclass(tp, Record):
            try:
                return _record_kind(_schema_for(tp))
            except MessageDefinitionError as exc:
                raise MessageDefinitionError(f"{where}: {exc}") from exc
        if issubclass(tp, Message):
            raise MessageDefinitionError(
                f"{where}: a Message cannot be a field; nest a Record subclass instead"
            )
        if is_wire_value_class(tp):
            return _wire_value_kind(tp)
    raise MessageDefinitionError(f"{where}: unsupported annotation {tp!r} ({_SUPPORTED})")


# --------------------------------------------------------------------------
# Per-class schemas.


def _hint(value: object) -> str:
    if isinstance(value, list):
        return " (messages are immutable: use a tuple)"
    if isinstance(value, set):
        return " (messages are immutable: use a frozenset)"
    if isinstance(value, int) and not isinstance(value, bool) and not _is_int(value):
        return " (ints on the wire are limited to -2**63 .. 2**64-1)"
    return ""


class _Schema:
    """Everything the codec needs about one Message or Record class, compiled once."""

    __slots__ = (
        "checks",
        "cls",
        "converters",
        "decoders",
        "getter",
        "kinds",
        "name",
        "names",
        "positional",
        "raw_types",
        "required",
    )

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.name = cls.__qualname__
        self.names: tuple[str, ...] = ()
        self.kinds: tuple[_Kind, ...] = ()
        self.checks: tuple[Callable[[Any], bool], ...] = ()
        self.decoders: tuple[Callable[[Any], object], ...] = ()
        self.converters: tuple[tuple[int, Callable[[Any], object]], ...] = ()
        self.getter: Callable[[Any], tuple[object, ...]] = _no_fields
        self.raw_types: tuple[frozenset[type], ...] | None = None
        self.required = 0
        self.positional = True

    def compile(self) -> None:
        cls = self.cls
        try:
            hints = typing.get_type_hints(cls)
        except Exception as exc:
            raise MessageDefinitionError(
                f"{self.name}: cannot resolve its annotations ({type(exc).__name__}: {exc}); "
                "names used in annotations must be importable from the class's module"
            ) from exc
        fields = dataclasses.fields(cls)
        for f in fields:
            if not f.init:
                raise MessageDefinitionError(
                    f"{self.name}.{f.name}: init=False fields cannot be decoded; "
                    "every field must be an __init__ argument"
                )
        self.names = tuple(f.name for f in fields)
        self.kinds = tuple(_kind_for(hints[f.name], f"{self.name}.{f.name}") for f in fields)
        self.checks = tuple(k.check for k in self.kinds)
        self.decoders = tuple(k.decode for k in self.kinds)
        raw_types = [k.raw_types for k in self.kinds]
        self.raw_types = (
            None if None in raw_types else tuple(cast(list[frozenset[type]], raw_types))
        )
        self.converters = tuple(
            (i, k.encode) for i, k in enumerate(self.kinds) if k.encode is not None
        )
        if len(self.names) == 1:
            self.getter = _single_getter(self.names[0])
        elif self.names:
            self.getter = attrgetter(*self.names)
        self.required = max(
            (
                i + 1
                for i, f in enumerate(fields)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ),
            default=0,
        )
        self.positional = not any(f.kw_only for f in fields)

    def raise_invalid(self, obj: object) -> typing.NoReturn:
        for name, kind in zip(self.names, self.kinds, strict=True):
            value = getattr(obj, name)
            if not kind.check(value):
                raise InvalidMessage(
                    f"{self.name}.{name}: expected {kind.label}, got {_describe(value)}"
                    f"{_hint(value)}"
                )
        raise AssertionError("raise_invalid called on a valid object")  # pragma: no cover

    def encode_body(self, obj: object) -> object:
        values = self.getter(obj)
        if not self.converters:
            return values  # a tuple: msgpack writes it as an array
        out = list(values)
        for i, convert in self.converters:
            out[i] = convert(out[i])
        return out

    def decode_body(self, raw: object) -> object:
        if type(raw) is not list:
            raise _Reject(f"{self.name}: expected an array of fields, got {_describe(raw)}")
        if len(raw) < self.required:
            raise _Reject(
                f"{self.name}: {len(raw)} fields received, required field "
                f"{self.names[len(raw)]!r} is missing"
            )
        # Only the fields both sides know are decoded: trailing fields from a
        # newer peer are dropped, and trailing fields an older peer did not
        # send take their dataclass defaults in the constructor.
        # Fast path: every field is a scalar and every raw type is already right.
        gate = self.raw_types
        if gate is not None and all(map(frozenset.__contains__, gate, map(type, raw))):
            return self._construct(raw if len(raw) <= len(gate) else raw[: len(gate)])
        values: list[object] = []
        append = values.append
        try:
            for decode, item in zip(self.decoders, raw, strict=False):
                append(decode(item))
        except Exception as exc:
            # len(values) is the index of the field that failed.
            raise _Reject(f"{self.name}.{self.names[len(values)]}: {_reason(exc)}") from exc
        return self._construct(values)

    def _construct(self, values: list[object]) -> object:
        try:
            if self.positional:
                return self.cls(*values)
            return self.cls(**dict(zip(self.names, values, strict=False)))
        except Exception as exc:
            raise _Reject(f"{self.name}: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    if isinstance(exc, _Reject):
        detail = str(exc)
    elif isinstance(exc, WireError):
        detail = exc.detail
    else:
        detail = f"{type(exc).__name__}: {exc}"
    # Deeply nested records prefix one path element per level: keep it short.
    return detail if len(detail) <= _MAX_DETAIL else detail[:_MAX_DETAIL] + "..."


_MAX_DETAIL: Final = 300


def _no_fields(obj: object) -> tuple[object, ...]:
    return ()


def _single_getter(name: str) -> Callable[[Any], tuple[object, ...]]:
    get = attrgetter(name)

    def getter(obj: object) -> tuple[object, ...]:
        return (get(obj),)

    return getter


_SCHEMAS: dict[type, _Schema] = {}
_compiling: list[_Schema] = []


def _check_struct_class(cls: object, base: type, how: str) -> type:
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise MessageDefinitionError(f"{cls!r} is not a subclass of {base.__qualname__}")
    params = cls.__dict__.get("__dataclass_params__")
    if params is None:
        raise MessageDefinitionError(
            f"{cls.__qualname__} is not a dataclass: declare it with "
            f"@dataclass(frozen=True, slots=True){how}"
        )
    if not params.frozen:
        raise MessageDefinitionError(
            f"{cls.__qualname__} must be immutable: declare it with @dataclass(frozen=True, ...)"
        )
    for klass in cls.__mro__[:-1]:
        if "__slots__" not in klass.__dict__:
            raise MessageDefinitionError(
                f"{cls.__qualname__} must be slotted: declare it with "
                f"@dataclass(..., slots=True) (and give {klass.__qualname__} __slots__)"
            )
    return cls


def _schema_for(cls: type) -> _Schema:
    """The compiled schema of a Message or Record class, built on first use."""
    schema = _SCHEMAS.get(cls)
    if schema is not None:
        return schema
    base = Record if issubclass(cls, Record) else Message
    _check_struct_class(cls, base, "")
    schema = _Schema(cls)
    # Cached before compiling so that a record can contain itself; on failure
    # every schema compiled alongside is dropped, none half-built survives.
    _SCHEMAS[cls] = schema
    outermost = not _compiling
    _compiling.append(schema)
    try:
        schema.compile()
    except BaseException:
        if outermost:
            for pending in _compiling:
                _SCHEMAS.pop(pending.cls, None)
        raise
    finally:
        if outermost:
            _compiling.clear()
    return schema


class _Struct:
    """What messages and records share: validation on construction."""

    __slots__ = ()

    def __post_init__(self) -> None:
        # The simulator's hot path: one dict lookup, then one C-level loop
        # over precompiled checkers.  Only a failure pays for a message.
        schema = _SCHEMAS.get(type(self)) or _schema_for(type(self))
        if not all(map(operator.call, schema.checks, schema.getter(self))):
            schema.raise_invalid(self)


class Message(_Struct):
    """Base of every wire message: a frozen, slotted dataclass registered under a type id.

    ::

        @registry.message(7)
        @dataclass(frozen=True, slots=True)
        class Ping(Message):
            \"\"\"A probe.\"\"\"

            seq: int
            target: Address
            note: str | None = None

    Construction checks every field against its annotation and raises
    :class:`~gossamer.errors.InvalidMessage` naming ``Class.field``.  A
    subclass that defines its own ``__post_init__`` must call
    ``super(Class, self).__post_init__()`` first (the zero-argument form
    fails in ``slots=True`` dataclasses before Python 3.14).
    """

    __slots__ = ()


class Record(_Struct):
    """Base of nested value types (a member entry inside a message).

    Declared like a :class:`Message` (frozen, slotted dataclass) but not
    registered: a record travels as the array of its fields, without a type
    id, under the same evolution rules (append defaulted fields only).  Its
    schema is compiled on first use and cached.  A field annotated with a
    record class takes exactly that class, not a subclass, whose extra fields
    the wire could not carry.
    """

    __slots__ = ()


# --------------------------------------------------------------------------
# Registries.


class _Entry:
    __slots__ = ("cls", "prefix", "schema", "type_id")

    def __init__(self, type_id: int, cls: type[Message], schema: _Schema) -> None:
        self.type_id = type_id
        self.cls = cls
        self.schema = schema
        # The first three envelope elements never change for a class: packed once.
        self.prefix = b"\x94" + _pack(PROTOCOL_MAJOR) + _pack(PROTOCOL_MINOR) + _pack(type_id)


_M = TypeVar("_M", bound=type[Message])


class Registry:
    """A table of message classes under append-only type ids (0..65535).

    One registry per protocol: :data:`registry` is gossamer's own.  A class
    may be registered once per registry; ids, once released, are never
    reused for another message.
    """

    def __init__(self, name: str, ranges: Mapping[str, range] | None = None) -> None:
        self.name = name
        self.ranges: Mapping[str, range] | None = ranges
        """When set, the blocks of type ids by owner: an id outside every block is refused."""
        self._by_id: dict[int, _Entry] = {}
        self._by_class: dict[type[Message], _Entry] = {}

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {len(self._by_id)} messages)"

    def message(self, type_id: int) -> Callable[[_M], _M]:
        """Class decorator: register a message class under ``type_id``.

        Put it above ``@dataclass(frozen=True, slots=True)``.  Raises
        :class:`MessageDefinitionError` at once for an id outside 0..65535, an
        id already taken, a class already registered here, a class that is not
        a frozen slotted dataclass subclass of :class:`Message`, or a field
        annotation the codec does not support.
        """
        if isinstance(type_id, bool) or not isinstance(type_id, int):
            raise MessageDefinitionError(f"type id must be an int, got {type_id!r}")
        if not 0 <= type_id <= _MAX_TYPE_ID:
            raise MessageDefinitionError(f"type id must be in 0..{_MAX_TYPE_ID}, got {type_id}")
        if self.ranges is not None and not any(type_id in r for r in self.ranges.values()):
            raise MessageDefinitionError(
                f"type id {type_id} of registry {self.name!r} is in no part's block; "
                f"take one from the owning part's block ({_blocks(self.ranges)})"
            )

        def register(cls: _M) -> _M:
            _check_struct_class(cls, Message, " below @registry.message(...)")
            taken = self._by_id.get(type_id)
            if taken is not None:
                raise MessageDefinitionError(
                    f"type id {type_id} of registry {self.name!r} is already "
                    f"{taken.cls.__qualname__}; ids are append-only, pick a new one"
                )
            if cls in self._by_class:
                raise MessageDefinitionError(
                    f"{cls.__qualname__} is already registered in {self.name!r} "
                    f"as type id {self._by_class[cls].type_id}"
                )
            entry = _Entry(type_id, cls, _schema_for(cls))
            self._by_id[type_id] = entry
            self._by_class[cls] = entry
            return cls

        return register

    def type_id_of(self, cls: type[Message]) -> int:
        """The type id ``cls`` is registered under; InvalidMessage if it is not."""
        entry = self._by_class.get(cls)
        if entry is None:
            raise InvalidMessage(f"{cls!r} is not registered in registry {self.name!r}")
        return entry.type_id

    def classes(self) -> dict[int, type[Message]]:
        """Every registered class by type id, in id order."""
        return {type_id: self._by_id[type_id].cls for type_id in sorted(self._by_id)}

    def owner_of(self, type_id: int) -> str | None:
        """The owner of the block ``type_id`` is in (see :data:`TYPE_ID_RANGES`), if any."""
        for owner, block in (self.ranges or {}).items():
            if type_id in block:
                return owner
        return None

    def encode(self, message: Message, max_bytes: int | None = None) -> bytes:
        """Encode ``message`` into one envelope.

        Raises :class:`~gossamer.errors.MessageTooLarge` when the result is
        over ``max_bytes`` (no limit when ``None``), and
        :class:`~gossamer.errors.InvalidMessage` for a class not registered
        here or a value msgpack cannot write (a ``str`` with lone surrogates,
        a WireValue whose ``to_wire`` returns something that is not plain data).
        """
        entry = self._by_class.get(type(message))
        if entry is None:
            raise InvalidMessage(
                f"{type(message).__qualname__} is not registered in registry {self.name!r}"
            )
        schema = entry.schema
        try:
            # Fields that are plain data already are packed as the getter's tuple.
            body = schema.encode_body(message) if schema.converters else schema.getter(message)
            data = entry.prefix + _PACK(body)
        except LocalError:
            raise
        except Exception as exc:
            raise InvalidMessage(
                f"{entry.schema.name} cannot be encoded: {type(exc).__name__}: {exc}"
            ) from exc
        if max_bytes is not None and len(data) > max_bytes:
            raise MessageTooLarge(len(data), max_bytes)
        return data

    def encoded_size(self, message: Message) -> int:
        """How many bytes :meth:`encode` produces for ``message``."""
        return len(self.encode(message))

    def decode(self, data: bytes, max_bytes: int) -> Message:
        """Decode one envelope from a peer.

        Raises only :class:`~gossamer.errors.WireError`, whatever ``data``
        holds, with its ``reason``: ``oversize`` (over ``max_bytes``, checked
        before parsing), ``malformed`` (not exactly one well-formed msgpack
        value of the types the format uses), ``envelope`` (not
        ``[major, minor, type_id, body]``), ``version`` (another major),
        ``unknown_type`` (a type id not in this registry) or ``schema`` (a
        field missing or of the wrong type).  Any minor version is accepted.
        Passing something that is not bytes at all is the caller's bug: a
        :class:`~gossamer.errors.LocalError`.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidMessage(f"decode takes bytes, got {type(data).__qualname__}")
        if len(data) > max_bytes:
            raise WireError(
                WireReason.OVERSIZE, f"{len(data)} bytes, over the limit of {max_bytes}"
            )
        try:
            envelope = _unpack(data)
        except Exception as exc:
            raise WireError(WireReason.MALFORMED, f"{type(exc).__name__}: {exc}") from exc
        if (
            0xFF in data
            and _MAYBE_TIMESTAMP.search(data) is not None
            and _contains_timestamp(envelope)
        ):
            raise WireError(
                WireReason.MALFORMED, "msgpack timestamps are not part of the gossamer format"
            )
        if type(envelope) is not list or not envelope or type(envelope[0]) is not int:
            raise WireError(
                WireReason.ENVELOPE,
                f"expected [major, minor, type_id, body], got {_describe(envelope)}",
            )
        # Only the major comes first in every version; check it before the rest.
        if envelope[0] != PROTOCOL_MAJOR:
            raise WireError(
                WireReason.VERSION,
                f"protocol major version {envelope[0]}, this node speaks {PROTOCOL_MAJOR}",
            )
        if (
            len(envelope) != 4
            or type(envelope[1]) is not int
            or type(envelope[2]) is not int
            or type(envelope[3]) is not list
        ):
            raise WireError(
                WireReason.ENVELOPE,
                f"expected [major, minor, type_id, body], got {_describe(envelope)}",
            )
        entry = self._by_id.get(envelope[2])
        if entry is None:
            raise WireError(
                WireReason.UNKNOWN_TYPE,
                f"type id {envelope[2]} is not in registry {self.name!r}",
            )
        try:
            return cast(Message, entry.schema.decode_body(envelope[3]))
        except Exception as exc:
            raise WireError(WireReason.SCHEMA, _reason(exc)) from exc


def encode_envelope(
    type_id: int,
    body: Sequence[object],
    *,
    major: int = PROTOCOL_MAJOR,
    minor: int = PROTOCOL_MINOR,
) -> bytes:
    """Pack a raw envelope ``[major, minor, type_id, body]`` without any schema.

    For tests and tools that need bytes no registered class would produce:
    a message from another version, a field of the wrong type.  ``body`` must
    be plain data (``None``, bools, ints, floats, str, bytes, lists, tuples,
    dicts).  Raises :class:`~gossamer.errors.InvalidMessage` if msgpack cannot
    write it.
    """
    try:
        return _pack([major, minor, type_id, list(body)])
    except Exception as exc:
        raise InvalidMessage(f"cannot pack envelope: {type(exc).__name__}: {exc}") from exc


TYPE_ID_RANGES: Final[Mapping[str, range]] = types.MappingProxyType(
    {
        "swim": range(1, 32),
        "overlay": range(32, 64),
        "broadcast": range(64, 96),
        "replicator": range(96, 128),
        "registry": range(128, 160),
        "messaging": range(160, 192),
        "keys": range(192, 224),
    }
)
"""The blocks of :data:`registry`'s type ids, one per part, by the part's name.

A part registers its messages only inside its own block, so two parts can
never take the same id, and an id tells which part a message belongs to
(the routing-coverage test checks both).  Ids 0 and 192..65535 are
unassigned; a new part gets the next block of 32 here.
"""


def _blocks(ranges: Mapping[str, range]) -> str:
    return ", ".join(f"{owner} {r.start}-{r.stop - 1}" for owner, r in ranges.items())


registry: Final = Registry("gossamer", TYPE_ID_RANGES)
"""gossamer's own protocol table; each part registers its messages here, in its block."""
