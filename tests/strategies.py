"""Hypothesis strategies for Python values that are Erlang terms, in the canonical Python
form `decode` gives back (bytes, not str; lists, not tuples, for lists)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from rustelixir import Atom, BitString, Export, ImproperList, Pid, Port, Reference

RESERVED_ATOMS = {"true", "false", "nil"}

node_names = st.builds(
    lambda name, host: f"{name}@{host}",
    st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
    st.sampled_from(["127.0.0.1", "localhost", "h1.example", "x"]),
)

atoms = st.text(max_size=255).filter(lambda s: s not in RESERVED_ATOMS).map(Atom)

integers = st.one_of(
    st.integers(0, 255),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**64), 2**64),
    st.integers(-(2**1100), 2**1100),
)

floats = st.floats(allow_nan=False, allow_infinity=False)

bitstrings = st.builds(BitString, st.binary(min_size=1, max_size=20), st.integers(1, 7))

pids = st.builds(Pid, node_names, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
# Python-made ports encode as V4_PORT_EXT, as OTP 26+ always does; OTP 25 also does for ids
# of 2^28 and over, so those are the ids that both VMs re-encode the same way. (Ports that
# came from the wire keep their tag: see test_codec.py.)
ports = st.builds(Port, node_names, st.integers(2**28, 2**64 - 1), st.integers(0, 2**32 - 1))
references = st.builds(
    Reference, node_names, st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5)
)
exports = st.builds(Export, atoms, atoms, st.integers(0, 255))

scalars = st.one_of(
    integers,
    floats,
    atoms,
    st.booleans(),
    st.none(),
    st.binary(max_size=40),
    bitstrings,
    pids,
    ports,
    references,
    exports,
)

hashable_terms = st.recursive(scalars, lambda inner: st.tuples(inner) | st.tuples(inner, inner), max_leaves=6)


def _improper(items: list[Any], tail: Any) -> ImproperList:
    return ImproperList(items, tail)


def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    non_list = inner.filter(lambda t: not isinstance(t, (list, ImproperList)))
    return st.one_of(
        st.lists(inner, max_size=6).map(tuple),
        st.lists(inner, max_size=6),
        st.lists(st.integers(0, 255), min_size=1, max_size=20),  # charlists (STRING_EXT)
        st.builds(_improper, st.lists(inner, min_size=1, max_size=4), non_list),
        st.dictionaries(hashable_terms, inner, max_size=8),
    )


terms = st.recursive(scalars, containers, max_leaves=25)
