"""The codec against real BEAM VMs (OTP 25 and OTP 28), compared byte for byte both ways:

- terms the VM makes at random: our decode -> encode gives back the VM's exact bytes;
- terms Hypothesis makes in Python: the VM reads our bytes as the same term, re-encodes it
  to our exact bytes where the encoding is determined (maps of two or more keys are written
  in the VM's internal order, see below), and we re-encode the VM's bytes exactly;
- Erlang term order: our sort agrees with lists:sort/1 and with map key order.

The VM's bytes are `term_to_binary(T, [{minor_version, 2}])`, OTP 26+'s default, on both.
Map order: the VM writes a small map in its key order, in which from OTP 26 on atoms sort by
their index in that VM's atom table; no outside encoder can know that order, so ours writes
a dict in its own order (decoded maps keep the wire order) and the VM accepts any order.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rustelixir
from rustelixir import Atom, _native
from strategies import hashable_terms, terms

pytestmark = pytest.mark.beam

HYPOTHESIS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("seed", range(1, 11))
def test_vm_random_terms_reencode_byte_exact(beam: Any, seed: int) -> None:
    encoded = beam.request((Atom("random"), seed, 100, 5))
    assert len(encoded) == 100
    for data in encoded:
        assert rustelixir.encode(rustelixir.decode(data)) == data
        assert _native.roundtrip_term(data) == data


def has_multi_key_map(value: Any) -> bool:
    if isinstance(value, dict):
        return len(value) > 1 or any(has_multi_key_map(k) or has_multi_key_map(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_multi_key_map(v) for v in value)
    if isinstance(value, rustelixir.ImproperList):
        return has_multi_key_map(value.items) or has_multi_key_map(value.tail)
    return False


@HYPOTHESIS
@given(value=terms)
def test_python_terms_survive_the_vm_byte_exact(beam: Any, value: Any) -> None:
    ours = rustelixir.encode(value)
    theirs = beam.roundtrip(ours)
    if not has_multi_key_map(value):
        assert theirs == ours
    assert beam.request((Atom("equal"), ours, theirs)) is True
    assert rustelixir.encode(rustelixir.decode(theirs)) == theirs
    assert rustelixir.encode(rustelixir.decode(ours)) == ours


@HYPOTHESIS
@given(value=terms)
def test_decoded_values_equal_what_was_encoded(value: Any) -> None:
    # Needs no VM, but lives beside its byte-level twin above.
    assert rustelixir.decode(rustelixir.encode(value)) == value


@HYPOTHESIS
@given(items=st.lists(terms, min_size=2, max_size=8))
def test_term_order_matches_lists_sort(beam: Any, items: list[Any]) -> None:
    encoded = [rustelixir.encode(t) for t in items]
    vm_order = beam.request((Atom("sort"), encoded))
    assert _native.sort_encoded(encoded) == vm_order


@HYPOTHESIS
@given(keys=st.lists(hashable_terms, min_size=2, max_size=32))
def test_map_key_order_matches_otp25(beam25: Any, keys: list[Any]) -> None:
    # OTP 25's small maps hold their keys in exact term order (integers before floats);
    # later VMs order atom keys by atom-table index, which is not term order.
    encoded = list(dict.fromkeys(rustelixir.encode(k) for k in keys))
    vm_order = beam25.request((Atom("map_key_order"), encoded))
    assert _native.sort_encoded(encoded, exact=True) == vm_order


def test_large_map_keeps_its_wire_order_and_python_built_ones_are_equal_in_the_vm(beam: Any) -> None:
    big = {Atom(f"k{i}"): i for i in range(100)}
    ours = rustelixir.encode(big)
    theirs = beam.request((Atom("encode"), big))
    # A map of over 32 keys is a hash map in the VM: its wire order is the VM's hash order,
    # which decoding keeps, so the VM's bytes round-trip exactly ...
    assert rustelixir.encode(rustelixir.decode(theirs)) == theirs
    # ... and ours, in dict order, are the same map to the VM.
    assert beam.request((Atom("equal"), ours, theirs)) is True


def test_str_encodes_as_utf8_binary(beam: Any) -> None:
    ours = rustelixir.encode("héllo ✓")
    assert beam.roundtrip(ours) == ours
    assert rustelixir.decode(ours) == "héllo ✓".encode()


def test_compressed_terms_from_the_vm_decode(beam: Any) -> None:
    value = (Atom("payload"), b"x" * 10_000, {Atom("n"): list(range(300))})
    plain = rustelixir.encode(value)
    compressed = beam.request((Atom("compress"), plain))
    assert compressed[1] == 80 and len(compressed) < len(plain) // 4
    assert rustelixir.decode(compressed) == value
    assert rustelixir.encode(rustelixir.decode(compressed)) == plain
