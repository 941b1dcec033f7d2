"""Fuzzing the decoder from Python: mutated and random bytes never crash the process, never
hang, never grow memory by what a length claims; the only error is DecodeError, with an
offset inside the input."""

from __future__ import annotations

import random
import resource
import time
import zlib
from typing import Any

import rustelixir
from rustelixir import Atom, BitString, DecodeError, Export, ImproperList, Pid, Port, Reference

SEEDS: list[Any] = [
    (Atom("$gen_call"), (Pid("a@b", 1, 2, 3), ImproperList([Atom("alias")], Reference("a@b", 1, [1, 2, 3]))), (Atom("add"), 1, 2)),
    {Atom("k"): [1, 2.5, b"bin", "str"], 2**70: BitString(b"\xf0", 4)},
    [Port("a@b", 2**40, 1), Export("lists", "map", 2), None, True, [], (), {}],
    list(range(300)),
    [[[[[[[Atom("deep")]]]]]]],
    -(2**2000),
]


def check(data: bytes) -> None:
    try:
        rustelixir.decode(data)
    except DecodeError as e:
        assert isinstance(e.offset, int) and 0 <= e.offset <= max(len(data), 6), (e.offset, len(data))


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and len(b) > 1:
            del b[i : i + rng.randint(1, 8)]
        else:
            other = rustelixir.encode(rng.choice(SEEDS))
            j = rng.randrange(len(other))
            b[i:] = other[j:]
    if b:
        b[0] = 131 if rng.random() < 0.95 else b[0]
    return bytes(b)


def test_mutated_and_random_bytes_only_ever_raise_decode_error() -> None:
    rng = random.Random(20261124)
    seeds = [rustelixir.encode(s) for s in SEEDS]
    started = time.monotonic()
    slowest = 0.0
    for n in range(200_000):
        data = mutate(rng, rng.choice(seeds)) if n % 3 else bytes([131]) + rng.randbytes(rng.randint(0, 64))
        t = time.perf_counter()
        check(data)
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 0.5, f"one input took {slowest:.3f}s"
    assert time.monotonic() - started < 60


def test_length_claims_do_not_allocate_what_they_claim() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    claims = [
        bytes([131, 109, 0xFF, 0xFF, 0xFF, 0xF0]) + b"x" * 100,  # a 4 GiB binary
        bytes([131, 108, 0xFF, 0xFF, 0xFF, 0xF0]) + bytes([97, 1]) * 50,  # a 4G-element list
        bytes([131, 105, 0xFF, 0xFF, 0xFF, 0xF0]) + bytes([97, 1]) * 50,  # a 4G-element tuple
        bytes([131, 116, 0xFF, 0xFF, 0xFF, 0xF0]) + bytes([97, 1]) * 50,  # a 4G-pair map
        bytes([131, 111, 0xFF, 0xFF, 0xFF, 0xF0, 0]) + b"\x01" * 100,  # a 4 GiB bignum
        bytes([131, 80, 0xFF, 0xFF, 0xFF, 0xF0]) + zlib.compress(b"\x61\x01"),  # inflates to 4 GiB?
    ]
    for data in claims:
        for _ in range(200):
            check(data)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100, f"peak RSS grew {grown_mib:.0f} MiB"


def test_a_zlib_bomb_is_stopped_at_the_limit_without_inflating_it_all() -> None:
    body = rustelixir.encode(b"\0" * (64 << 20))[1:]
    bomb = bytes([131, 80]) + len(body).to_bytes(4, "big") + zlib.compress(body, 9)
    assert len(bomb) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        rustelixir.decode(bomb, max_uncompressed_size=1 << 20)
    except DecodeError as e:
        assert "limit" in str(e)
    else:
        raise AssertionError("a 64 MiB term decoded under a 1 MiB limit")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50
