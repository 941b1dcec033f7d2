"""Benchmark rustelixir's ETF codec against the pure-Python erlang_py, in the same run.

    python bench/codec_bench.py [--quick]

For each term of a small corpus of representative terms:

- the bytes come from our encoder and are checked first: our decode(encode(x)) must
  re-encode to the same bytes, and erlang_py must decode them;
- decode: both libraries decode those same bytes;
- encode: each library encodes its own Python value for the term (ours: the value the
  corpus built; erlang_py: what its binary_to_term gave for the bytes);
- ops/s is the best of several timed batches. A round times every contestant once, in
  turn (order reversed on every other round), so both libraries see the same conditions
  on a noisy machine. The garbage collector is off inside a batch, as in `timeit`.

The 1 MiB binary is also timed against a plain 1 MiB copy (`bytes(memoryview(b))`: one
allocation and one memcpy, the least any decode or encode of it can do), in the same
rounds, to show how close the codec comes to memory speed.

The issue's target is at least 20x erlang_py on the small terms and a 1 MiB binary at
memory speed; a verdict line is printed per term, but nothing fails on it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import erlang  # erlang_py (PyPI: erlang-py)

import rustelixir
from report import Report, Row, Section, add_arguments, publish
from rustelixir import Atom, ImproperList, Pid, Reference

SPEEDUP_TARGET = 20.0  # ours / erlang_py, for every term but the 1 MiB binary
MEMORY_SPEED_TARGET = 0.8  # ours / plain copy, for the 1 MiB binary
RAISED_RECURSION_LIMIT = 20_000  # tried for erlang_py when the default limit is too low
MB = 1_000_000


@dataclass(frozen=True)
class Settings:
    batch_seconds: float  # target duration of one timed batch
    rounds: int  # timed batches per contestant; the best one counts


FULL = Settings(batch_seconds=0.25, rounds=5)
QUICK = Settings(batch_seconds=0.02, rounds=3)


# --- The corpus -------------------------------------------------------------------------


def gen_call_envelope() -> Any:
    """{:"$gen_call", {pid, [:alias | ref]}, {:add, 1, 2}}"""
    node = "app@127.0.0.1"
    caller = Pid(node, 113, 0, 1)
    alias = Reference(node, 1, [178_023, 3_260_022_785, 2_361_204_119])
    return (
        Atom("$gen_call"),
        (caller, ImproperList([Atom("alias")], alias)),
        (Atom("add"), 1, 2),
    )


def small_maps(count: int = 100) -> list[dict[Atom, Any]]:
    """[%{id: i, name: "user#{i}", active: true}, ...]"""
    return [
        {Atom("id"): i, Atom("name"): f"user{i}", Atom("active"): True}
        for i in range(count)
    ]


def binary_1mib() -> bytes:
    return bytes(range(256)) * 4096


def deep_nesting(depth: int = 1000) -> Any:
    """{{{...{:leaf}...}}}: `depth` nested 1-tuples."""
    value: Any = Atom("leaf")
    for _ in range(depth):
        value = (value,)
    return value


def small_ints(count: int = 10_000) -> list[int]:
    """0..count-1: most are over 255, so the list cannot be a STRING_EXT."""
    return list(range(count))


@dataclass(frozen=True)
class Term:
    name: str
    value: Any
    memory_bound: bool = False  # judged against a plain copy rather than erlang_py


CORPUS = [
    Term("$gen_call envelope", gen_call_envelope()),
    Term("100 small maps", small_maps()),
    Term("1 MiB binary", binary_1mib(), memory_bound=True),
    Term("1,000-deep nesting", deep_nesting()),
    Term("10,000 small ints", small_ints()),
    Term("2**4000", 2**4000),
]


# --- Checking the bytes and getting erlang_py's value -----------------------------------


@dataclass
class Prepared:
    term: Term
    data: bytes  # our encoding of term.value: what both decoders read
    theirs: Any = None  # erlang_py's own value for the term (None if it cannot decode)
    decode_error: str | None = None  # why erlang_py cannot decode `data`
    encode_error: str | None = None  # why erlang_py cannot encode `theirs`
    recursion_limit: int = field(default_factory=sys.getrecursionlimit)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def check_ours(prep: Prepared) -> None:
    """Our decode of our bytes must re-encode to the very same bytes."""
    try:
        again = rustelixir.encode(rustelixir.decode(prep.data))
    except Exception as exc:  # a codec bug: report it, keep benchmarking the rest
        prep.notes.append(f"OUR ROUND TRIP FAILED: {describe(exc)}")
        return
    if again != prep.data:
        prep.notes.append("OUR ROUND TRIP CHANGED THE BYTES: encode(decode(b)) != b")


def call_erlang_py(prep: Prepared, fn: Callable[[], Any]) -> Any:
    """fn() under the recursion limit `prep` times erlang_py with; if that is too low for
    erlang_py's recursive codec, raise it once (for the timings too) and try again."""
    try:
        with recursion_limit(prep.recursion_limit):
            return fn()
    except RecursionError:
        if prep.recursion_limit >= RAISED_RECURSION_LIMIT:
            raise
    prep.notes.append(
        f"erlang_py hits RecursionError at Python's recursion limit ({prep.recursion_limit}); "
        f"timed with sys.setrecursionlimit({RAISED_RECURSION_LIMIT})"
    )
    prep.recursion_limit = RAISED_RECURSION_LIMIT
    with recursion_limit(prep.recursion_limit):
        return fn()


def check_erlang_py(prep: Prepared) -> None:
    """erlang_py must decode our bytes; its value is what it encodes. Its failures are
    recorded on `prep`, for the table, rather than raised."""
    try:
        prep.theirs = call_erlang_py(prep, lambda: erlang.binary_to_term(prep.data))
    except Exception as exc:
        prep.decode_error = describe(exc)
        return
    try:
        theirs_bytes = call_erlang_py(prep, lambda: erlang.term_to_binary(prep.theirs))
    except Exception as exc:
        prep.encode_error = describe(exc)
        return
    if theirs_bytes != prep.data:
        prep.notes.append("erlang_py re-encodes its value to different bytes than ours")


def prepare(term: Term) -> Prepared:
    prep = Prepared(term, rustelixir.encode(term.value))
    check_ours(prep)
    check_erlang_py(prep)
    return prep


# --- Timing -----------------------------------------------------------------------------


def time_batch(fn: Callable[[], object], calls: int) -> float:
    """Seconds taken by `calls` calls of fn, with the garbage collector off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def calls_per_batch(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of fn take about `seconds`."""
    calls = 1
    while True:
        elapsed = time_batch(fn, calls)
        if elapsed >= seconds / 10:
            return max(1, round(calls * seconds / elapsed))
        calls *= 4


def best_rates(contestants: dict[str, Callable[[], object]], settings: Settings) -> dict[str, float]:
    """Best calls/s of each contestant over interleaved rounds."""
    calls = {name: calls_per_batch(fn, settings.batch_seconds) for name, fn in contestants.items()}
    best = dict.fromkeys(contestants, 0.0)
    order = list(contestants)
    for round_no in range(settings.rounds):
        for name in order if round_no % 2 == 0 else reversed(order):
            rate = calls[name] / time_batch(contestants[name], calls[name])
            best[name] = max(best[name], rate)
    return best


def measure(prep: Prepared, settings: Settings) -> dict[str, float]:
    """ops/s for "our decode", "their decode", "our encode", "their encode" (those erlang_py
    can do) and, for a memory-bound term, "copy"."""
    data, ours, theirs = prep.data, prep.term.value, prep.theirs
    contestants: dict[str, Callable[[], object]] = {
        "our decode": lambda: rustelixir.decode(data),
        "our encode": lambda: rustelixir.encode(ours),
    }
    if prep.decode_error is None:
        contestants["their decode"] = lambda: erlang.binary_to_term(data)
    if prep.decode_error is None and prep.encode_error is None:
        contestants["their encode"] = lambda: erlang.term_to_binary(theirs)
    if prep.term.memory_bound:
        contestants["copy"] = lambda: bytes(memoryview(ours))
    with recursion_limit(prep.recursion_limit):
        return best_rates(contestants, settings)


# --- Report -----------------------------------------------------------------------------

COLUMNS = [
    ("term", 20),
    ("our decode ops/s", 16),
    ("erlang_py decode ops/s", 22),
    ("ratio", 8),
    ("our encode ops/s", 16),
    ("erlang_py encode ops/s", 22),
    ("ratio", 8),
]


def row(cells: list[str]) -> str:
    first, *rest = zip(cells, COLUMNS)
    return " | ".join([first[0].ljust(first[1][1])] + [c.rjust(w) for c, (_, w) in rest])


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


def fmt_ratio(ours: float, theirs: float | None) -> str:
    return "n/a" if theirs is None else f"{ours / theirs:.1f}x"


def table_row(prep: Prepared, rates: dict[str, float]) -> str:
    their_dec, their_enc = rates.get("their decode"), rates.get("their encode")
    return row([
        prep.term.name,
        fmt_rate(rates["our decode"]),
        fmt_rate(their_dec),
        fmt_ratio(rates["our decode"], their_dec),
        fmt_rate(rates["our encode"]),
        fmt_rate(their_enc),
        fmt_ratio(rates["our encode"], their_enc),
    ])


def speedup_verdict(prep: Prepared, rates: dict[str, float]) -> str:
    their_dec, their_enc = rates.get("their decode"), rates.get("their encode")
    if their_dec is None or their_enc is None:
        return f"no verdict: erlang_py cannot {'decode' if their_dec is None else 'encode'} it"
    worst = min(rates["our decode"] / their_dec, rates["our encode"] / their_enc)
    outcome = "MEETS" if worst >= SPEEDUP_TARGET else "MISSES"
    return f"{outcome} the {SPEEDUP_TARGET:.0f}x target (worst of decode/encode: {worst:.1f}x)"


def memory_verdict(rates: dict[str, float]) -> str:
    worst = min(rates["our decode"], rates["our encode"]) / rates["copy"]
    outcome = "MEETS" if worst >= MEMORY_SPEED_TARGET else "MISSES"
    return (
        f"{outcome} memory speed (worst of decode/encode: {worst:.2f}x a plain copy; "
        f"target >= {MEMORY_SPEED_TARGET:.1f}x)"
    )


def memory_speed_lines(prep: Prepared, rates: dict[str, float]) -> list[str]:
    size = len(prep.term.value)
    copy = rates["copy"]

    def line(label: str, rate: float) -> str:
        return f"  {label:<28} {rate * size / MB:>9,.0f} MB/s  ({rate / copy:.2f}x copy)"

    return [
        f"{prep.term.name} ({size:,} bytes) against a plain copy, same rounds:",
        line("copy: bytes(memoryview(b))", copy),
        line("our decode", rates["our decode"]),
        line("our encode", rates["our encode"]),
    ]


def report_notes(prep: Prepared) -> list[str]:
    notes = list(prep.notes)
    if prep.decode_error:
        notes.append(f"erlang_py cannot decode it: {prep.decode_error}")
    elif prep.encode_error:
        notes.append(f"erlang_py cannot encode it: {prep.encode_error}")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL

    print(
        f"Python {sys.version.split()[0]}, rustelixir {rustelixir.__version__}, "
        f"erlang_py {metadata.version('erlang_py')}; batches of ~{settings.batch_seconds}s, "
        f"best of {settings.rounds} interleaved rounds"
    )
    print()
    header = row([name for name, _ in COLUMNS])
    print(header)
    print("-" * len(header))

    verdicts, notes, memory_lines = [], [], []
    chart: dict[str, list[Row]] = {"decode": [], "encode": [], "copy": []}
    for term in CORPUS:
        prep = prepare(term)
        rates = measure(prep, settings)
        print(table_row(prep, rates), flush=True)
        if term.memory_bound:
            verdicts.append(f"{term.name}: {memory_verdict(rates)}")
            memory_lines = memory_speed_lines(prep, rates)
            size = len(term.value) / MB
            chart["copy"] += [
                Row(f"our {op}", "MB/s", rates["copy"] * size, rates[f"our {op}"] * size, True, MEMORY_SPEED_TARGET)
                for op in ("decode", "encode")
            ]
        else:
            verdicts.append(f"{term.name}: {speedup_verdict(prep, rates)}")
        target = None if term.memory_bound else SPEEDUP_TARGET
        for op in ("decode", "encode"):
            chart[op].append(Row(term.name, "ops/s", rates.get(f"their {op}"), rates[f"our {op}"], True, target))
        notes += [f"{term.name}: {note}" for note in report_notes(prep)]

    for section in (memory_lines, verdicts, notes):
        if section:
            print()
            print("\n".join(section))
    sections = [Section(f"{op} against erlang_py", "erlang_py", chart[op]) for op in ("decode", "encode")]
    sections.append(Section("the 1 MiB binary against a plain copy", "bytes(memoryview(b))", chart["copy"]))
    runs = f"batches of ~{settings.batch_seconds}s, best of {settings.rounds} interleaved rounds"
    report = Report("codec_bench", "The ETF codec against the pure-Python erlang_py", sections, [runs, *notes], args.quick)
    publish(report, args, tables=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
