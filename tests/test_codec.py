"""The codec's Python API, without a VM: the types, the errors, the limits."""

from __future__ import annotations

import pickle
import sys
import tracemalloc
import zlib

import pytest

import rustelixir
from rustelixir import (
    Atom,
    BitString,
    DecodeError,
    EncodeError,
    Export,
    ImproperList,
    MapKey,
    Pid,
    Port,
    Reference,
    TermTooLarge,
    decode,
    encode,
)
from rustelixir._native import decode_dist


def test_atoms_are_their_own_type_and_true_false_nil_are_python_constants() -> None:
    assert decode(encode(Atom("ok"))) == Atom("ok")
    assert Atom("ok") != "ok" and Atom("ok") != b"ok"
    assert decode(bytes([131, 119, 4]) + b"true") is True
    assert decode(bytes([131, 119, 5]) + b"false") is False
    assert decode(bytes([131, 119, 3]) + b"nil") is None
    assert str(Atom("héllo")) == "héllo" and repr(Atom("ok")) == "Atom('ok')"
    assert sorted([Atom("b"), Atom("a")]) == [Atom("a"), Atom("b")]


def test_atom_length_is_checked_in_characters() -> None:
    assert Atom("✓" * 255).name == "✓" * 255
    with pytest.raises(ValueError):
        Atom("a" * 256)


def test_binaries_are_bytes_and_str_encodes_as_utf8_binary() -> None:
    assert decode(encode("héllo")) == "héllo".encode()
    assert decode(encode(bytearray(b"ab"))) == b"ab"
    assert decode(encode(memoryview(b"cd"))) == b"cd"


def test_charlists_stay_lists_of_ints() -> None:
    assert encode([104, 105])[1] == 107  # STRING_EXT, as term_to_binary writes it
    assert decode(encode([104, 105])) == [104, 105]


def test_improper_lists_and_bitstrings_have_their_own_types() -> None:
    value = ImproperList([1, 2], 3)
    assert decode(encode(value)) == value
    with pytest.raises(ValueError):
        ImproperList([], 3)
    with pytest.raises(ValueError):
        ImproperList([1], [2])
    bits = BitString(b"\xff\xff", 3)
    assert bits.data == b"\xff\xe0" and bits.bit_length == 11  # unused bits are zeroed
    assert decode(encode(bits)) == bits


def test_identifiers_round_trip_and_are_hashable() -> None:
    pid = Pid("a@b", 1, 2, 3)
    ref = Reference(Atom("a@b"), 7, [1, 2, 3, 4, 5])
    export = Export("lists", "map", 2)
    for value in (pid, ref, export, Port("a@b", 2**40, 9)):
        assert decode(encode(value)) == value
        assert {value: 1}[decode(encode(value))] == 1
    assert pid.node == Atom("a@b")
    with pytest.raises(ValueError):
        Reference("a@b", 1, [])


def test_a_decoded_port_is_written_back_with_the_tag_it_came_in() -> None:
    new_port_ext = bytes([131, 89, 119, 3]) + b"a@b" + (5).to_bytes(4, "big") + (1).to_bytes(4, "big")
    v4_port_ext = bytes([131, 120, 119, 3]) + b"a@b" + (5).to_bytes(8, "big") + (1).to_bytes(4, "big")
    assert encode(decode(new_port_ext)) == new_port_ext
    assert encode(decode(v4_port_ext)) == v4_port_ext
    assert decode(new_port_ext) == decode(v4_port_ext)
    assert encode(Port("a@b", 5, 1)) == v4_port_ext  # OTP 26+'s choice


def test_map_keys_python_would_merge_or_cannot_hash_are_kept_apart() -> None:
    # #{1 => a, 1.0 => b, true => c, [1] => d, #{} => e}, keys in the VM's order
    data = encode({1: Atom("a")})[:2] + bytes([0, 0, 0, 5])
    data += encode(1)[1:] + encode(Atom("a"))[1:]
    data += encode(1.0)[1:] + encode(Atom("b"))[1:]
    data += encode(True)[1:] + encode(Atom("c"))[1:]
    data += encode([1])[1:] + encode(Atom("d"))[1:]
    data += encode({})[1:] + encode(Atom("e"))[1:]
    value = decode(data)
    assert value == {
        1: Atom("a"),
        MapKey(1.0): Atom("b"),
        MapKey(True): Atom("c"),
        MapKey([1]): Atom("d"),
        MapKey({}): Atom("e"),
    }
    assert encode(value) == data


def test_large_and_deep_values() -> None:
    assert decode(encode(2**4000)) == 2**4000
    assert decode(encode(-(2**64))) == -(2**64)
    blob = bytes(range(256)) * 4096
    assert decode(encode(blob)) == blob
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    data = encode(deep)
    decoded = decode(data)
    assert encode(decoded) == data
    levels = 0
    while decoded:
        (decoded,) = decoded
        levels += 1
    assert levels == 5000


def test_decode_errors_name_the_offset() -> None:
    with pytest.raises(DecodeError) as e:
        decode(b"")
    assert e.value.offset == 0
    with pytest.raises(DecodeError) as e:
        decode(bytes([130, 97, 1]))
    assert e.value.offset == 0 and "version" in str(e.value)
    with pytest.raises(DecodeError) as e:
        decode(bytes([131, 104, 2, 97, 1]))  # a 2-tuple with one element
    assert e.value.offset == 5
    with pytest.raises(DecodeError) as e:
        decode(bytes([131, 109, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]))  # a 4 GiB binary claim
    assert e.value.offset == 6 and "truncated" in str(e.value)
    with pytest.raises(DecodeError) as e:
        decode(bytes([131, 97, 1, 0]))
    assert e.value.offset == 3 and "trailing" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, rustelixir.RustelixirError)
    assert pickle.loads(pickle.dumps(e.value)).offset == 3


def test_depth_limit_is_configurable() -> None:
    nested = bytes([131]) + bytes([104, 1]) * 50 + bytes([97, 1])
    assert decode(nested, max_depth=50) is not None
    with pytest.raises(DecodeError, match="depth"):
        decode(nested, max_depth=49)
    with pytest.raises(EncodeError):
        encode(((((1,),),),), max_depth=3)


def test_compressed_terms_are_bounded_by_what_they_really_inflate_to() -> None:
    body = encode(b"x" * 100_000)[1:]
    compressed = bytes([131, 80]) + len(body).to_bytes(4, "big") + zlib.compress(body)
    assert decode(compressed) == b"x" * 100_000
    with pytest.raises(DecodeError, match="limit"):
        decode(compressed, max_uncompressed_size=1000)
    lying = bytes([131, 80]) + (2**32 - 1).to_bytes(4, "big") + zlib.compress(body)
    with pytest.raises(DecodeError):
        decode(lying)


def test_term_bombs_raise_term_too_large_which_is_a_decode_error() -> None:
    # 100,000 empty lists: 100 KB on the wire, megabytes decoded.
    bomb = bytes([131, 108]) + (100_000).to_bytes(4, "big") + bytes([106]) * 100_001
    assert decode(bomb) == [[]] * 100_000
    with pytest.raises(TermTooLarge, match="memory limit") as e:
        decode(bomb, max_memory=1 << 20)
    assert isinstance(e.value, DecodeError) and e.value.offset == 1
    assert type(pickle.loads(pickle.dumps(e.value))) is TermTooLarge
    with pytest.raises(DecodeError):  # what callers catch today still catches it
        decode(bomb, max_memory=1 << 20)
    # A compressed term claiming more than the budget: refused on its size field.
    body = encode(bytes(16 << 20))[1:]
    packed = bytes([131, 80]) + len(body).to_bytes(4, "big") + zlib.compress(body)
    with pytest.raises(TermTooLarge) as e:
        decode(packed, max_memory=8 << 20)
    assert e.value.offset == 2
    # Every limit is a TermTooLarge; malformed bytes are not.
    with pytest.raises(TermTooLarge, match="limit"):
        decode(packed, max_uncompressed_size=1 << 20)
    with pytest.raises(TermTooLarge, match="depth"):
        decode(bytes([131]) + bytes([104, 1]) * 3 + bytes([97, 1]), max_depth=2)
    with pytest.raises(DecodeError) as malformed:
        decode(bytes([131, 108, 0, 0, 0, 9, 106]))
    assert type(malformed.value) is DecodeError
    assert rustelixir.DEFAULT_MAX_MEMORY == 1 << 30


NODE_DEFAULT = 128 << 20  # the node's default --max-message-size, every peer message's budget
ORDINARY = {
    "2,000,000 small integers": [7] * 2_000_000,
    "1,000,000 floats": [1.5] * 1_000_000,
    "500,000 {key, integer}": [(Atom("key"), i) for i in range(500_000)],
    "a map of 100,000 integer keys": {i: 1 for i in range(100_000)},
}


@pytest.mark.parametrize("shape", ORDINARY)
def test_ordinary_large_terms_decode_under_the_node_default(shape: str) -> None:
    data = encode(ORDINARY[shape])
    assert decode(data, max_memory=NODE_DEFAULT) == ORDINARY[shape]


@pytest.mark.parametrize("element", [b"\x6a", b"\x74\x00\x00\x00\x00"], ids=["[]", "%{}"])
def test_bombs_as_large_on_the_wire_as_those_are_refused_under_it(element: bytes) -> None:
    # As many bytes as the largest of them (the floats, 9 MB), of new lists or dicts.
    wire = max(len(encode(value)) for value in ORDINARY.values())
    count = wire // len(element)
    bomb = bytes([131, 108]) + count.to_bytes(4, "big") + element * count + bytes([106])
    with pytest.raises(TermTooLarge, match="memory limit"):
        decode(bomb, max_memory=NODE_DEFAULT)


def test_decode_dist_charges_control_and_payload_to_one_budget() -> None:
    control = encode((2, Atom(""), Pid("a@b", 1, 0, 1)))
    payload = encode([b"x" * 1000] * 100)
    message = bytes([112]) + control + payload
    need = memory_needed(message, decode_dist)
    assert decode_dist(message, max_memory=need) == (decode(control), decode(payload))
    with pytest.raises(TermTooLarge) as e:
        decode_dist(message, max_memory=need - 1)
    assert e.value.offset > len(control)  # the payload passed it
    # Each term alone would have fit.
    assert memory_needed(control) < need and memory_needed(payload) < need


def memory_needed(data: bytes, decoder: object = decode) -> int:
    """The smallest `max_memory` under which `data` decodes: the codec's estimate."""
    assert callable(decoder)
    lo, hi = 0, 1 << 40
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            decoder(data, max_memory=mid)
            hi = mid
        except TermTooLarge:
            lo = mid + 1
    return lo


def python_size(value: object, seen: set[int] | None = None) -> int:
    """What `value` takes as `sys.getsizeof` counts it, every object once, leaving out the
    objects that are shared rather than made for the value: small ints, True/False/None,
    the empty tuple, atoms (cached by the codec)."""
    seen = set() if seen is None else seen
    shared = (
        value is None
        or isinstance(value, (bool, Atom))
        or (type(value) is int and -5 <= value <= 256)
        or (type(value) is tuple and not value)
    )
    if shared or id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, (list, tuple)):
        size += sum(python_size(v, seen) for v in value)
    elif isinstance(value, dict):
        size += sum(python_size(k, seen) + python_size(v, seen) for k, v in value.items())
    elif isinstance(value, MapKey):
        size += python_size(value.value, seen)
    elif isinstance(value, ImproperList):
        size += python_size(value.items, seen) + python_size(value.tail, seen)
    return size


N = 3000
SHAPES = {
    "list of empty lists": [[] for _ in range(N)],
    "list of empty dicts": [{} for _ in range(N)],
    "list of dicts": [{Atom("a"): i + 1000, Atom("b"): [i], Atom("c"): 1.5} for i in range(N)],
    "one big dict": {i + 1000: (i, b"v") for i in range(N)},
    "dict with keys Python cannot hash": {MapKey([i, [i]]): i for i in range(N)},
    "list of large ints": [2**40 + i for i in range(N)] + [2**200 + i for i in range(N)] + [-(2**70) - i for i in range(N)],
    "list of binaries": [b"x" * (i % 300) for i in range(N)],
    "list of bitstrings": [BitString(b"\xf0" * (i % 30 + 1), i % 7 + 1) for i in range(N)],
    "tuples": [(i + 1000, 1.5 + i, (i,), ()) for i in range(N)],
    "a large tuple of small ints": tuple(i % 256 for i in range(N)),
    "charlists": [[104, 105] * (i % 20 + 1) for i in range(N)],
    "improper lists": [ImproperList([i + 1000], i + 2000) for i in range(N)],
    "pids and references": [(Pid("a@b", i, 0, 1), Reference("a@b", 1, [i, 2, 3])) for i in range(N)],
    # Each kind whose object passes what its place in a list holds, many times over:
    "floats and ints": [1.5 + i for i in range(N)] + [100_000 + i for i in range(N)] + [2**62 + i for i in range(N)],
    "list of pairs": [(Atom("key"), i + 1000) for i in range(N)],
    "tuples past 512 bytes": [tuple(range(1000, 1070)) for _ in range(N // 30)],
    "binaries past 512 bytes": [b"x" * 600 for _ in range(N)],
    "nested lists": [[[i + 1000]] for i in range(N)],
    "exports and ports": [(Export("m", "f", 1), Port("a@b", 2**40 + i, 1)) for i in range(N)],
    "dict of empty dicts": {i + 1000: {} for i in range(N)},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_memory_estimate_is_not_below_what_the_python_value_takes(shape: str) -> None:
    data = encode(SHAPES[shape])
    need = memory_needed(data)
    # Exact at its estimate: decodes there, TermTooLarge one byte below.
    assert decode(data, max_memory=need) == decode(data)
    with pytest.raises(TermTooLarge):
        decode(data, max_memory=need - 1)
    # Not below the objects made (sys.getsizeof), nor below the Python heap decoding took,
    # transients included (tracemalloc; the Rust side is tests/budget.rs's).
    made = python_size(decode(data))
    tracemalloc.start()
    try:
        value = decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del value
    assert need >= made and need >= peak, f"{shape}: estimate {need}, objects {made}, heap peak {peak}"


def test_what_has_no_term_is_refused_clearly() -> None:
    with pytest.raises(EncodeError, match="set"):
        encode({1, 2})
    with pytest.raises(EncodeError):
        encode(float("nan"))
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(EncodeError, match="deeper"):
        encode(loop)


def test_types_pickle() -> None:
    for value in (Atom("x"), Pid("a@b", 1, 2, 3), Reference("a@b", 1, [2]), Export("m", "f", 1), BitString(b"\x80", 1)):
        assert pickle.loads(pickle.dumps(value)) == value


def test_terms_nested_to_the_depth_limit_work_on_a_small_thread_stack() -> None:
    import threading

    from rustelixir import _native

    depth = rustelixir.DEFAULT_MAX_DEPTH
    tuples = bytes([131]) + bytes([104, 1]) * depth + bytes([97, 1])
    lists = bytes([131]) + bytes([108, 0, 0, 0, 1]) * depth + bytes([106]) * (depth + 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for data in (tuples, lists):
                assert encode(decode(data)) == data
                assert _native.roundtrip_term(data) == data  # Rust Term: encode, drop
            assert _native.sort_encoded([tuples, lists, tuples]) == [0, 2, 1]  # term order
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    old = threading.stack_size(256 * 1024)
    try:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    assert not errors, errors


def test_a_map_with_a_repeated_key_is_refused_as_binary_to_term_refuses_it() -> None:
    header = bytes([131, 116, 0, 0, 0])
    same_int = header + bytes([2, 97, 1, 97, 1, 97, 1, 97, 2])
    same_list = header + bytes([2]) + (encode([1])[1:] + bytes([97, 1])) * 2
    same_float_beside_an_int = header + bytes([3]) + encode(1)[1:] + bytes([97, 1]) + (encode(1.0)[1:] + bytes([97, 2])) * 2
    for data in (same_int, same_list, same_float_beside_an_int):
        with pytest.raises(DecodeError, match="repeated key") as e:
            decode(data)
        assert e.value.offset == 1
