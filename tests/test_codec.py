"""The codec's Python API, without a VM: the types, the errors, the limits."""

from __future__ import annotations

import pickle
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
    decode,
    encode,
)


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
