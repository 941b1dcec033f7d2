"""Binary arguments borrowed from the call's bytes against the same binary copied first.

    python bench/binary_args_bench.py [--quick]

One rustelixir node serving the test natives (`make test-natives`) and a BEAM client node
on 127.0.0.1. The client calls `{test_len_borrowed, Binary}` (a `#[native]` taking
`&[u8]`: the binary as it lies in the received frame) and `{test_len_owned, Binary}` (the
same native taking `Vec<u8>`: a copy first), alternating round by round, for 1 MiB and 16
MiB binaries: p50 latency, and the node process's CPU time (utime+stime) per call. (Since
a `Vec<u8>` argument is itself copied once, straight from the call's bytes.) The
ratio is borrowed / owned (lower is better); the owned native is the baseline.
"""

from __future__ import annotations

import argparse
import sys

from benchnodes import bench_nodes
from node_bench import cpu_us, percentile
from report import Report, Samples, Section, add_arguments, publish


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    rounds, scale = (2, 1) if args.quick else (5, 4)
    with bench_nodes("node_bench", "binbench", ["--module", "rustelixir_test_natives"]) as (served, client, _):
        client.set("Node", served.atom)
        results = Samples()
        # Enough calls per run that the node's CPU time (counted in 10 ms ticks) means something.
        for bits, label, calls in ((20, "1 MiB", 25 * scale), (24, "16 MiB", 5 * scale)):
            client.eval(f"put(bin, binary:copy(<<7>>, 1 bsl {bits})), ok.")
            for native in ("test_len_borrowed", "test_len_owned"):  # warm up
                client.eval(f"{{ok, _}} = gen_server:call({{rustelixir, Node}}, {{{native}, get(bin)}}, 60000), ok.")
            for round_ in range(rounds):
                order = ("test_len_borrowed", "test_len_owned") if round_ % 2 == 0 else ("test_len_owned", "test_len_borrowed")
                for native in order:
                    before = cpu_us(served.proc.pid)
                    lat: list[int] = client.eval(
                        f"B = get(bin), lists:sort([begin T0 = erlang:monotonic_time(microsecond),"
                        f" {{ok, _}} = gen_server:call({{rustelixir, Node}}, {{{native}, B}}, 60000),"
                        f" erlang:monotonic_time(microsecond) - T0 end || _ <- lists:seq(1, {calls})]).",
                        timeout=600,
                    )
                    results.add(f"{label} p50", native, percentile(lat, 0.5))
                    results.add(f"{label} node CPU/call", native, (cpu_us(served.proc.pid) - before) / calls)
            print(f"{label} done", file=sys.stderr)
    rows = [
        results.row(f"{label} {figure}", "us", False, baseline="test_len_owned", ours="test_len_borrowed")
        for label in ("1 MiB", "16 MiB")
        for figure in ("p50", "node CPU/call")
    ]
    notes = [f"{rounds} rounds of {25 * scale} (1 MiB) and {5 * scale} (16 MiB) sequential calls, medians; ratio = borrowed / owned."]
    section = Section("a binary argument", "owned (Vec<u8>)", rows, ours="borrowed (&[u8])")
    publish(Report("binary_args_bench", "Binary arguments borrowed from the call's bytes against copied first", [section], notes, args.quick), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
