"""Codec benchmark: our Rust codec against the pure-Python `erlang_py`, in one run.

For each term of a representative corpus, the same ETF bytes are decoded by both libraries,
and each library encodes its own decoded value; ops/s and the ratio (ours / erlang_py) are
printed. Timings alternate between the two libraries, repeat, and keep the best, so both see
the same (noisy, shared) machine. The 1 MiB binary is also set against a plain 1 MiB copy
measured in the same run: "memory speed".

    python bench/codec.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import erlang  # erlang_py

import rustelixir
from rustelixir import Atom, ImproperList, Pid, Reference

SMALL_TERM_TARGET = 20.0  # the bar: at least 20x erlang_py on small terms


def gen_call() -> Any:
    caller = Pid("app@127.0.0.1", 113, 0, 1)
    alias = Reference("app@127.0.0.1", 1, [178_023, 3_260_022_785, 2_361_204_119])
    return (Atom("$gen_call"), (caller, ImproperList([Atom("alias")], alias)), (Atom("add"), 1, 2))


def small_maps() -> Any:
    return [{Atom("id"): i, Atom("name"): f"user{i}".encode(), Atom("active"): True} for i in range(100)]


def nested(depth: int) -> Any:
    value: Any = Atom("leaf")
    for _ in range(depth):
        value = (value,)
    return value


@dataclass
class Case:
    name: str
    value: Any
    small: bool  # held to the 20x bar
    data: bytes = b""
    theirs: Any = None


def corpus() -> list[Case]:
    return [
        Case("$gen_call envelope", gen_call(), True),
        Case("100 small maps", small_maps(), True),
        Case("1 MiB binary", bytes(range(256)) * 4096, False),
        Case("1,000-deep nesting", nested(1000), False),
        Case("10,000 small ints", list(range(10_000)), False),
        Case("2^4000", 2**4000, True),
    ]


def best_rate(fn: Callable[[], Any], budget: float, repeats: int) -> float:
    """Calls per second, best of `repeats` timed batches sized to ~budget seconds each."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= budget / 10 or n >= 1 << 24:
            break
        n *= 4
    per_batch = max(1, int(n * budget / max(elapsed, 1e-9)))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_batch):
            fn()
        best = max(best, per_batch / (time.perf_counter() - start))
    return best


def paired(ours: Callable[[], Any], theirs: Callable[[], Any] | None, budget: float, repeats: int) -> tuple[float, float | None]:
    """Best rates of the two, measured alternately."""
    best_ours, best_theirs = 0.0, 0.0
    for _ in range(repeats):
        best_ours = max(best_ours, best_rate(ours, budget, 1))
        if theirs is not None:
            best_theirs = max(best_theirs, best_rate(theirs, budget, 1))
    return best_ours, (best_theirs if theirs is not None else None)


def prepare(case: Case) -> str | None:
    """Our bytes, checked both ways; erlang_py's own value for them. Returns why erlang_py
    cannot take part, if it cannot."""
    case.data = rustelixir.encode(case.value)
    assert rustelixir.encode(rustelixir.decode(case.data)) == case.data
    try:
        case.theirs = erlang.binary_to_term(case.data)
        erlang.term_to_binary(case.theirs)
    except RecursionError:
        return "recursion limit"
    except Exception as e:  # erlang_py's own failure, reported in the table
        return f"{type(e).__name__}"
    return None


def fmt_rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:>12,.0f}"


def fmt_ratio(ours: float, theirs: float | None) -> str:
    return "n/a" if not theirs else f"{ours / theirs:>7.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short timings (a smoke run)")
    args = parser.parse_args()
    budget, repeats = (0.05, 2) if args.quick else (0.25, 5)
    sys.setrecursionlimit(20_000)

    header = f"{'term':<22} {'bytes':>8} | {'decode ours/s':>13} {'erlang_py/s':>12} {'ratio':>8} | {'encode ours/s':>13} {'erlang_py/s':>12} {'ratio':>8}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for case in corpus():
        why_not = prepare(case)
        theirs_ok = why_not is None
        dec_ours, dec_theirs = paired(
            lambda: rustelixir.decode(case.data),
            (lambda: erlang.binary_to_term(case.data)) if theirs_ok else None,
            budget,
            repeats,
        )
        enc_ours, enc_theirs = paired(
            lambda: rustelixir.encode(case.value),
            (lambda: erlang.term_to_binary(case.theirs)) if theirs_ok else None,
            budget,
            repeats,
        )
        note = "" if theirs_ok else f"  (erlang_py: {why_not})"
        print(
            f"{case.name:<22} {len(case.data):>8} | {fmt_rate(dec_ours):>13} {fmt_rate(dec_theirs):>12} {fmt_ratio(dec_ours, dec_theirs):>8} |"
            f" {fmt_rate(enc_ours):>13} {fmt_rate(enc_theirs):>12} {fmt_ratio(enc_ours, enc_theirs):>8}{note}"
        )
        if case.small and dec_theirs and enc_theirs:
            worst = min(dec_ours / dec_theirs, enc_ours / enc_theirs)
            ok = "meets" if worst >= SMALL_TERM_TARGET else "MISSES"
            verdicts.append(f"{case.name}: {ok} the {SMALL_TERM_TARGET:.0f}x bar (worst of decode/encode: {worst:.1f}x)")

    blob = bytes(range(256)) * 4096
    data = rustelixir.encode(blob)
    mib = len(blob) / (1 << 20)
    copy_rate, _ = paired(lambda: bytearray(blob), None, budget, repeats)
    dec_rate, _ = paired(lambda: rustelixir.decode(data), None, budget, repeats)
    enc_rate, _ = paired(lambda: rustelixir.encode(blob), None, budget, repeats)
    print()
    print(f"1 MiB binary against a plain 1 MiB copy (bytearray(b)) in this run: copy {copy_rate * mib:,.0f} MiB/s")
    print(f"  decode {dec_rate * mib:,.0f} MiB/s = {dec_rate / copy_rate:.2f}x copy speed (one copy into a bytes object)")
    print(f"  encode {enc_rate * mib:,.0f} MiB/s = {enc_rate / copy_rate:.2f}x copy speed (one copy, straight into the bytes object)")
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
