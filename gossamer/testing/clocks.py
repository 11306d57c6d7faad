"""Hypothesis strategies for the values in :mod:`gossamer.clocks`.

The strategies favour collisions: node names come mostly from a handful of
short names and counters mostly from a small range, so generated vectors
share entries, compare every way (before, after, equal, concurrent) and
causal contexts have gaps, chains and covered dots.  Occasional arbitrary
names (up to the 128-character limit) and counters (up to ``2**63-1``) keep
the edges covered.
"""

from __future__ import annotations

__all__ = [
    "causal_contexts",
    "counters",
    "dots",
    "lamport_timestamps",
    "node_names",
    "version_vectors",
]

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from gossamer.clocks import (
    MAX_COUNTER,
    CausalContext,
    Dot,
    LamportTimestamp,
    VersionVector,
)
from gossamer.clocks._checks import MAX_NODE_CHARS

_COMMON_NAMES = ("a", "b", "c", "d", "node-1")
_SMALL_COUNTER = 12


def node_names() -> SearchStrategy[str]:
    """Valid node names: usually one of a few short names, sometimes any 1-128 character text."""
    return st.one_of(
        st.sampled_from(_COMMON_NAMES),
        # codec="utf-8" leaves out lone surrogates, which msgpack cannot encode.
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_NODE_CHARS),
    )


def counters(max_value: int = MAX_COUNTER) -> SearchStrategy[int]:
    """Counters in ``1..max_value``, mostly small so that generated clocks overlap."""
    if not 1 <= max_value <= MAX_COUNTER:
        raise ValueError(f"max_value must be in 1..2**63-1, got {max_value!r}")
    return st.one_of(
        st.integers(1, min(_SMALL_COUNTER, max_value)),
        st.integers(1, max_value),
    )


def dots() -> SearchStrategy[Dot]:
    """Any valid :class:`~gossamer.clocks.Dot`."""
    return st.builds(Dot, node_names(), counters())


def lamport_timestamps() -> SearchStrategy[LamportTimestamp]:
    """Any valid :class:`~gossamer.clocks.LamportTimestamp`."""
    return st.builds(LamportTimestamp, counters(), node_names())


def version_vectors(max_size: int = 8) -> SearchStrategy[VersionVector]:
    """Version vectors of up to ``max_size`` entries."""
    return st.dictionaries(node_names(), counters(), max_size=max_size).map(VersionVector)


def causal_contexts(compacted: bool | None = None) -> SearchStrategy[CausalContext]:
    """Causal contexts with cloud dots just above, and in gaps beyond, their vectors.

    ``compacted=True`` yields only compacted contexts; ``False`` only contexts
    whose stored form is *not* compacted (some cloud dot sits right at the top
    of its node's prefix); ``None`` yields either, as generated.
    """
    return _contexts(compacted)


@st.composite
def _contexts(draw: st.DrawFn, compacted: bool | None) -> CausalContext:
    vector = draw(version_vectors(max_size=5))
    cloud: list[Dot] = []
    for node in draw(st.lists(node_names(), max_size=8)):
        # Offsets around the prefix's top give covered dots (dropped by the
        # constructor), gap-closing dots and dots beyond a gap.
        counter = vector.get(node) + draw(st.integers(-2, 6))
        if 1 <= counter <= MAX_COUNTER:
            cloud.append(Dot(node, counter))
    if compacted is False:
        node = draw(node_names().filter(lambda name: vector.get(name) < MAX_COUNTER))
        cloud.append(Dot(node, vector.get(node) + 1))
    context = CausalContext(vector, cloud)
    return context.compact() if compacted else context
