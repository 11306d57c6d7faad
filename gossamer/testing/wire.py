"""Hypothesis strategies for wire messages and every field type the codec supports.

An application that defines its own messages, records or
:class:`~gossamer.wire.WireValue` types tests their round trip with these::

    from hypothesis import given

    from gossamer.testing.wire import messages, register_strategy

    register_strategy(MyClock, my_clocks())  # values that from_type cannot build


    @given(messages(my_registry))
    def test_round_trip(message):
        data = my_registry.encode(message)
        assert my_registry.decode(data, len(data)) == message

:func:`values_for` follows the same annotations as the codec (see
:mod:`gossamer.wire`).  Floats are never NaN (NaN is not equal to itself,
so no round trip could compare equal); collections hold at most
:data:`MAX_COLLECTION_SIZE` elements to keep nested messages small.
"""

from __future__ import annotations

__all__ = [
    "MAX_COLLECTION_SIZE",
    "messages",
    "register_strategy",
    "values_for",
]

import dataclasses
import enum
import types
import typing
from typing import Any, Final, TypeVar

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from gossamer.wire import (
    Message,
    MessageDefinitionError,
    Record,
    Registry,
    is_wire_value_class,
)

MAX_COLLECTION_SIZE: Final = 6
"""The most elements a generated tuple, frozenset or dict holds."""

_T = TypeVar("_T")

_REGISTERED: dict[type, SearchStrategy[Any]] = {}

_SCALARS: Final[dict[object, SearchStrategy[Any]]] = {
    int: st.integers(min_value=-(2**63), max_value=2**64 - 1),
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
    # Lone surrogates cannot be written as UTF-8, so msgpack refuses them.
    str: st.text(st.characters(codec="utf-8")),
    bytes: st.binary(),
}


def register_strategy(cls: type[_T], strategy: SearchStrategy[_T]) -> None:
    """Make :func:`values_for` draw ``cls`` values from ``strategy``.

    Meant for :class:`~gossamer.wire.WireValue` classes (otherwise built with
    ``st.from_type``), and usable for a :class:`~gossamer.wire.Record` or
    :class:`~gossamer.wire.Message` whose ``__post_init__`` adds constraints
    the field types do not express.  A later call for the same class replaces
    the earlier one.
    """
    _REGISTERED[cls] = strategy


def values_for(annotation: object) -> SearchStrategy[Any]:
    """A strategy for values of a field annotated ``annotation``.

    Accepts every annotation the codec supports, and also a Message or
    Record class (built field by field).  Raises
    :class:`~gossamer.wire.MessageDefinitionError` for anything else.
    """
    if isinstance(annotation, type) and annotation in _REGISTERED:
        return _REGISTERED[annotation]
    scalar = _SCALARS.get(annotation) if isinstance(annotation, type) else None
    if scalar is not None:
        return scalar
    if isinstance(annotation, typing.NewType):
        return values_for(annotation.__supertype__)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return st.none() | values_for(others[0])
    elif origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values_for(args[0]), max_size=MAX_COLLECTION_SIZE).map(tuple)
        return st.tuples(*(values_for(a) for a in args))
    elif origin is frozenset:
        return st.frozensets(values_for(args[0]), max_size=MAX_COLLECTION_SIZE)
    elif origin is dict:
        return st.dictionaries(
            values_for(args[0]), values_for(args[1]), max_size=MAX_COLLECTION_SIZE
        )
    elif isinstance(annotation, type):
        if issubclass(annotation, enum.IntEnum):
            return st.sampled_from(list(annotation))
        if issubclass(annotation, Message | Record):
            # Deferred, so that a record may contain itself (behind an
            # optional or a tuple, which end the recursion).
            cls = annotation
            return st.deferred(lambda: _fields_of(cls))
        if is_wire_value_class(annotation):
            return st.from_type(annotation)
    raise MessageDefinitionError(f"values_for: unsupported annotation {annotation!r}")


def _fields_of(cls: type) -> SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: values_for(hints[f.name]) for f in dataclasses.fields(cls)})


def messages(registry: Registry) -> SearchStrategy[Message]:
    """Any message registered in ``registry``, of any class, in type-id order.

    Shrinks towards the lowest type id.  An empty registry gives
    ``st.nothing()``.
    """
    classes = list(registry.classes().values())
    if not classes:
        return st.nothing()
    return st.one_of([values_for(cls) for cls in classes])
