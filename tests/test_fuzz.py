"""Fuzzing `rustelixir.decode` with untrusted bytes.

Mutated valid encodings (bit flips, byte sets, truncations, insertions, deletions, length
fields overwritten, splices of two encodings) and random bytes: the only exception allowed is
`rustelixir.DecodeError`, whose `.offset` is an int inside the input; no input takes long
(a per-case time budget, and a watchdog that kills the run if one hangs); and inputs that
claim absurd lengths do not grow memory by what they claim (peak RSS measured in a fresh
interpreter).

The valid seeds are the golden files a real OTP 25 VM wrote for the Rust codec's tests
(native/etf/tests/golden/*.bin), plus encodings of Python values. Everything is seeded, so
every run feeds the same inputs.
"""

from __future__ import annotations

import faulthandler
import json
import random
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rustelixir
from rustelixir import Atom, BitString, DecodeError, Export, ImproperList, Pid, Port, Reference

GOLDEN = Path(__file__).resolve().parent.parent / "native" / "etf" / "tests" / "golden"

PY_SEEDS: list[Any] = [
    (Atom("ok"), 1, 2.5, b"bin", "str", [1, 2, 3], {Atom("k"): []}),
    ImproperList([Atom("a"), 1], 2),
    BitString(b"\xf0", 4),
    {Atom("pid"): Pid("a@b", 1, 2, 3), Atom("port"): Port("a@b", 2**40, 1), 2**70: Reference("a@b", 1, [1, 2, 3])},
    [Export("lists", "map", 2), None, True, [], (), {}, -(2**300), 1.0e300],
    list(range(300)),
    [[[[[[[Atom("deep")]]]]]]],
    {i: i for i in range(40)},
]


def _seeds() -> list[bytes]:
    seeds = [rustelixir.encode(v) for v in PY_SEEDS]
    if GOLDEN.is_dir():
        seeds += [p.read_bytes() for p in sorted(GOLDEN.glob("*.bin")) if p.stat().st_size <= 4096]
    node = bytes([119, 3]) + b"a@b"
    seeds += [
        bytes([131, 99]) + b"1.50000000000000000000e+00".ljust(31, b"\0"),  # FLOAT_EXT
        bytes([131, 100, 0, 5]) + b"h\xe9llo",  # ATOM_EXT (Latin-1)
        bytes([131, 115, 1, 0xE9]),  # SMALL_ATOM_EXT
        bytes([131, 103]) + node + bytes([0, 0, 0, 1, 0, 0, 0, 2, 3]),  # PID_EXT
        bytes([131, 102]) + node + bytes([0, 0, 0, 9, 3]),  # PORT_EXT
        bytes([131, 101]) + node + bytes([0, 0, 0, 9, 3]),  # REFERENCE_EXT
        bytes([131, 114, 0, 2]) + node + bytes([3, 0, 0, 0, 1, 0, 0, 0, 2]),  # NEW_REFERENCE_EXT
        bytes([131, 80]) + (1005).to_bytes(4, "big") + zlib.compress(bytes([109, 0, 0, 3, 232]) + b"\7" * 1000),
    ]
    for s in seeds:
        rustelixir.decode(s)  # every seed is valid
    return seeds


SEEDS = _seeds()

def offset_ok(data: bytes, e: DecodeError) -> bool:
    if not isinstance(e.offset, int) or e.offset < 0:
        return False
    return e.offset <= len(data)


class Fuzzer:
    """Feeds inputs to a decode function; collects failures."""

    def __init__(self, fn: Callable[[bytes], Any], budget_s: float = 0.5) -> None:
        self.fn = fn
        self.budget_s = budget_s
        self.slowest = (0.0, b"")
        self.failures: list[str] = []
        self.ok = 0
        self.errors = 0

    def feed(self, data: bytes) -> None:
        t = time.perf_counter()
        try:
            self.fn(data)
            self.ok += 1
        except DecodeError as e:
            self.errors += 1
            if not offset_ok(data, e):
                self.failures.append(f"offset {e.offset!r} for {len(data)} bytes ({e.reason}): {data!r}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # PanicException derives from BaseException
            self.failures.append(f"{type(e).__name__}: {e} for {data!r}")
        elapsed = time.perf_counter() - t
        if elapsed > self.slowest[0]:
            self.slowest = (elapsed, data)

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} bad outcomes, first: {self.failures[:3]}"
        took, data = self.slowest
        assert took < self.budget_s, f"one input took {took:.3f}s: {data[:200]!r}"


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:  # bit flip
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # interesting byte
            b[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(70, 122), rng.randrange(256)])
        elif op == 2:  # insertion
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and len(b) > 1:  # deletion
            del b[i : i + rng.randint(1, 8)]
        elif op == 4:  # truncation
            del b[rng.randint(1, max(1, len(b))) :]
        elif op == 5 and len(b) >= 4:  # a length field
            j = rng.randrange(len(b) - 3)
            n = rng.choice([0, 1, 2, 255, 256, 65535, 2**31, 2**32 - 1, rng.randrange(2**32)])
            b[j : j + 4] = n.to_bytes(4, "big")
        elif op == 6:  # splice of another encoding
            other = rng.choice(SEEDS)
            b[i:] = other[rng.randrange(len(other)) :]
        else:  # duplicate a chunk
            j = rng.randrange(len(b) + 1)
            b[j:j] = b[i : i + rng.randint(1, 16)]
    if b and rng.random() < 0.9:
        b[0] = 131
    return bytes(b)


def random_input(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 64))
    if kind == 1:
        return bytes([131]) + rng.randbytes(rng.randint(0, 64))
    # Tags and small lengths only.
    alphabet = [70, 77, 80, 88, 89, 90, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
                114, 115, 116, 118, 119, 120, 0, 0, 0, 1, 2, 3, 255]
    return bytes([131] + [rng.choice(alphabet) for _ in range(rng.randint(1, 48))])


@pytest.fixture
def watchdog() -> Any:
    """Kills the run (with every thread's traceback) if the decoder hangs: a hang inside
    native code would never return to a Python-level timeout."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


CASES = 50_000


def test_mutated_and_random_inputs_only_raise_decode_error(watchdog: Any) -> None:
    rng = random.Random(0x5EED_F022)
    fuzz = Fuzzer(rustelixir.decode)
    started = time.monotonic()
    for n in range(CASES):
        data = random_input(rng) if n % 4 == 0 else mutate(rng, rng.choice(SEEDS))
        fuzz.feed(data)
    took = time.monotonic() - started
    fuzz.check()
    assert fuzz.ok > 500 and fuzz.errors > 5000, (fuzz.ok, fuzz.errors)  # both paths exercised
    assert took < 20, f"{CASES} inputs took {took:.1f}s"
    print(f"\n{CASES} inputs in {took:.1f}s: {fuzz.ok} decoded, {fuzz.errors} DecodeError")


def test_mutated_funs_only_raise_decode_error(watchdog: Any) -> None:
    """Funs are where the decoder recurses and where Size must agree with the contents: a
    stream of mutations of VM-made funs alone."""
    funs = [s for s in SEEDS if len(s) > 1 and s[1] == 112]
    assert funs, "no fun seeds (native/etf/tests/golden missing?)"
    rng = random.Random(0xF_0F)
    fuzz = Fuzzer(rustelixir.decode)
    for _ in range(20_000):
        fuzz.feed(mutate(rng, rng.choice(funs)))
    fuzz.check()
    print(f"\nmutated funs: {fuzz.ok} decoded, {fuzz.errors} DecodeError")


def test_the_rust_term_path_only_raises_decode_error(watchdog: Any) -> None:
    """The same through `_native.roundtrip_term` (decode to the Rust `Term`, encode back)."""
    roundtrip = rustelixir._native.roundtrip_term

    def through_terms(data: bytes) -> None:
        out = roundtrip(data)  # what decodes, encodes
        # What the Rust path re-encodes is canonical and decodes again.
        assert roundtrip(out) == out, data

    rng = random.Random(0x7E_4A5)
    fuzz = Fuzzer(through_terms)
    for n in range(CASES // 4):
        fuzz.feed(random_input(rng) if n % 4 == 0 else mutate(rng, rng.choice(SEEDS)))
    fuzz.check()


@settings(
    max_examples=3000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.sampled_from(SEEDS),
    ops=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2**16), st.binary(min_size=1, max_size=6)), min_size=1, max_size=4),
)
def test_hypothesis_mutations_only_raise_decode_error(seed: bytes, ops: list[tuple[int, int, bytes]]) -> None:
    b = bytearray(seed)
    for op, pos, payload in ops:
        i = pos % (len(b) + 1)
        if op == 0 and i < len(b):
            b[i] ^= payload[0] or 1
        elif op == 1:
            b[i:i] = payload
        elif op == 2:
            del b[i : i + len(payload)]
        elif op == 3:
            del b[i:]
        elif len(b) >= 4:
            j = pos % (len(b) - 3)
            b[j : j + 4] = b"\xff\xff\xff\xff"
    fuzz = Fuzzer(rustelixir.decode)
    fuzz.feed(bytes(b))
    fuzz.check()


# ---------------------------------------------------------------------------------------
# Absurd lengths: memory
# ---------------------------------------------------------------------------------------

_MEMORY_PROBE = r"""
import json, resource, sys, zlib
import rustelixir
from rustelixir import DecodeError

def rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

FF = bytes([0xFF] * 4)
few = bytes([97, 1]) * 8 + bytes([106])
claims = [
    bytes([131, 108]) + FF + few,                      # a list of 2^32 - 1 elements
    bytes([131, 105]) + FF + few,                      # a tuple
    bytes([131, 116]) + FF + few,                      # a map
    bytes([131, 109]) + FF + few,                      # a 4 GiB binary
    bytes([131, 77]) + FF + bytes([3]) + few,          # a 4 GiB bitstring
    bytes([131, 111]) + FF + bytes([0]) + few,         # a 4 GiB bignum
    bytes([131, 107, 0xFF, 0xFF]) + few,               # a 65535-byte string
    bytes([131, 118, 0xFF, 0xFF]) + few,               # a 65535-byte atom
    bytes([131, 90, 0xFF, 0xFF, 119, 1, 97]) + few,    # a 65535-word reference
    bytes([131, 112]) + FF + few,                      # a 4 GiB fun
    bytes([131, 104, 3, 108]) + FF + few,              # nested
    bytes([131, 108, 0, 0, 0, 1, 97, 1, 108]) + FF + few,  # in a list's tail
    bytes([131, 80]) + FF + zlib.compress(bytes([97, 1])),  # compressed, claims 4 GiB
    bytes([131, 80, 0x3F, 0xFF, 0xFF, 0xFF]) + zlib.compress(bytes([97, 1])),  # claims 1 GiB
]
# Plausible claims: as many elements as bytes follow, all of them bad.
claims.append(bytes([131, 108]) + (1 << 20).to_bytes(4, "big") + bytes([97]) * (1 << 20))
claims.append(bytes([131, 116]) + (1 << 19).to_bytes(4, "big") + bytes([97]) * (1 << 20))

before = rss_kib()
refused = 0
for data in claims:
    for _ in range(100):
        try:
            rustelixir.decode(data)
        except DecodeError as e:
            refused += 1
            assert 0 <= e.offset <= len(data), (e.offset, len(data))
after_claims = rss_kib()

# A zlib bomb: a 256 MiB binary of zeros in well under 1 MiB (compressed as a stream, so the
# 256 MiB never exist here), claiming only what the limit allows.
z = zlib.compressobj(9)
parts = [z.compress(bytes([109]) + (256 << 20).to_bytes(4, "big"))]
zeros = bytes(1 << 20)
for _ in range(256):
    parts.append(z.compress(zeros))
packed = b"".join(parts) + z.flush()
bomb = bytes([131, 80]) + (1 << 20).to_bytes(4, "big") + packed
honest = bytes([131, 80]) + ((256 << 20) + 5).to_bytes(4, "big") + packed
before_bomb = rss_kib()
messages = []
for data in (bomb, honest):
    for _ in range(20):
        try:
            rustelixir.decode(data, max_uncompressed_size=1 << 20)
        except DecodeError as e:
            messages.append(e.reason)
after_bomb = rss_kib()
print(json.dumps({
    "claims": len(claims), "refused": refused, "claims_growth_kib": after_claims - before,
    "bomb_len": len(bomb), "bomb_growth_kib": after_bomb - before_bomb, "messages": sorted(set(messages)),
}))
"""


def test_absurd_lengths_and_zlib_bombs_do_not_grow_memory() -> None:
    # A fresh interpreter: ru_maxrss is a high-water mark, so earlier tests must not hide growth.
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["refused"] == r["claims"] * 100, r
    assert r["claims_growth_kib"] < 200 * 1024, r
    assert r["bomb_len"] < 1 << 20, r
    assert r["bomb_growth_kib"] < 50 * 1024, r
    assert any("more than the 1048576 bytes" in m for m in r["messages"]), r
    assert any("over the limit" in m for m in r["messages"]), r


# ---------------------------------------------------------------------------------------
# Depth
# ---------------------------------------------------------------------------------------


def test_nesting_up_to_the_limit_decodes_and_one_more_is_refused() -> None:
    def nested(depth: int) -> bytes:
        return bytes([131]) + bytes([104, 1]) * depth + bytes([97, 1])

    assert rustelixir.DEFAULT_MAX_DEPTH == 10_000
    value = rustelixir.decode(nested(10_000))
    for _ in range(10_000):
        assert isinstance(value, tuple) and len(value) == 1
        value = value[0]
    assert value == 1
    with pytest.raises(DecodeError) as e:
        rustelixir.decode(nested(10_001))
    assert e.value.offset == 1 + 2 * 10_000 and "depth" in e.value.reason
    rustelixir.decode(nested(50), max_depth=50)
    with pytest.raises(DecodeError):
        rustelixir.decode(nested(51), max_depth=50)
    started = time.perf_counter()
    with pytest.raises(DecodeError):
        rustelixir.decode(nested(1_000_000))
    assert time.perf_counter() - started < 2


# ---------------------------------------------------------------------------------------
# Bugs the fuzzing found, fixed: each input as it was found
# ---------------------------------------------------------------------------------------

FUN_WITH_SHORT_SIZE = bytes(
    [131, 112, 0, 0, 0, 29, 1] + [7] * 16 + [0, 0, 0, 0, 0, 0, 0, 1]
    + [119, 1, 109, 97, 0, 97, 0]
    + [88, 119, 3, 97, 64, 98, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    + [97, 1]
)


def _outcome(data: bytes) -> BaseException | None:
    try:
        rustelixir.decode(data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        return e
    return None


def test_fun_whose_size_ends_inside_its_fields_raises_decode_error() -> None:
    e = _outcome(FUN_WITH_SHORT_SIZE)
    assert isinstance(e, DecodeError), f"{type(e).__name__}: {e}"


def test_offsets_inside_compressed_terms_lie_within_the_input() -> None:
    body = bytes([108, 0, 0, 0, 200]) + bytes([97, 1]) * 200 + bytes([1])
    data = bytes([131, 80]) + len(body).to_bytes(4, "big") + zlib.compress(body)
    with pytest.raises(DecodeError) as e:
        rustelixir.decode(data)
    assert 0 <= e.value.offset <= len(data), (e.value.offset, len(data))


def test_ascii_atom_ext_over_255_characters_is_refused() -> None:
    with pytest.raises(DecodeError):
        rustelixir.decode(bytes([131, 100, 1, 0]) + b"a" * 256)


CORPUS = Path(__file__).resolve().parent.parent / "native" / "dist" / "tests" / "corpus"


def _corpus_bodies() -> list[bytes]:
    """The whole messages a real OTP 25 and OTP 28 node sent (native/dist/tests/corpus)."""
    bodies = []
    for path in sorted(CORPUS.glob("*.bin")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            body = data[pos + 4 : pos + 4 + length]
            pos += 4 + length
            if body[:2] == b"\x83D" and length <= 4096:
                bodies.append(body)
    return bodies


def test_mutated_real_frames_through_the_python_path(watchdog: Any) -> None:
    """What the Rust link hands Python (whole messages it did not answer) goes through
    `DistConnection.receive_frames`: decode, then the control message's checks. A malformed
    one may only raise RemoteProtocolError (the connection is then closed); nothing else
    escapes, and nothing is slow."""
    from rustelixir.errors import RemoteProtocolError
    from rustelixir.protocol.connection import DistConnection
    from rustelixir.protocol.flags import DFlag

    bodies = _corpus_bodies()
    assert len(bodies) > 50
    rng = random.Random(0xD157)
    failures: list[str] = []
    decoded = refused = 0
    slowest = 0.0
    for _ in range(30_000):
        body = mutate(rng, rng.choice(bodies))
        conn = DistConnection(peer_name="fuzz@127.0.0.1", flags=DFlag(0), max_message_size=1 << 20)
        started = time.perf_counter()
        try:
            conn.receive_frames([body])
            decoded += 1
        except RemoteProtocolError:
            refused += 1
        except BaseException as e:  # PanicException derives from BaseException
            failures.append(f"{type(e).__name__}: {e} for {body!r}")
        slowest = max(slowest, time.perf_counter() - started)
    assert not failures, f"{len(failures)} bad outcomes, first: {failures[:3]}"
    assert decoded > 1000 and refused > 1000, (decoded, refused)
    assert slowest < 0.5, slowest
    print(f"\nmutated real frames: {decoded} decoded, {refused} refused")
