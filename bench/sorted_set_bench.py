"""Benchmark the SortedSet natives against :gb_sets in the caller's own process.

    python bench/sorted_set_bench.py [--quick] [--sizes 1000,100000,1000000]

Two real nodes on 127.0.0.1: the rustelixir node (`rustelixir serve`) and a BEAM node
that runs `bench/beam/sorted_set_bench.erl`. The same workload (same seed, same keys) runs
on a `:gb_sets` set held in the BEAM caller's own process (the baseline: no message at
all) and on a SortedSet resource on the rustelixir node (one `GenServer.call` per
operation), at each size, in alternating order. The ratio is rustelixir / gb_sets in
operations per second (> 1: the SortedSet is faster), measured in this run.

What each row times (see the Erlang module for details):
  add_many  build the set from empty in batches of 1,000 members: members/s
            (gb_sets: gb_sets:union(S, gb_sets:from_list(Batch)))
  add       absent members, one at a time; remove: the same ones again
  index_of  random members. gb_sets has no index: the baseline walks an iterator from the
            smallest member and counts, O(index) per lookup (time-boxed at large sizes)
  slice     100 members from a random index. gb_sets has no index: the baseline is
            gb_sets:iterator_from(StartElement) and 100 steps, handed the start element
            for free, O(log n + 100)
  size      ours: the round-trip floor of one call to the node; gb_sets: gb_sets:size/1

Not a test: nothing fails on the figures.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchnodes import bench_nodes
from report import Report, Row, Section, add_arguments, publish

PHASES = ("add_many", "add", "remove", "index_of", "slice", "size")
BATCH = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated set sizes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ops, budget_ms = (1000, 300) if args.quick else (10000, 2000)

    from rustelixir import Atom

    with bench_nodes("sorted_set_bench", "ssbench", []) as (served, client, _):
        client.set("Node", served.atom)
        functions = client.eval("{ok, Fs} = gen_server:call({rustelixir, Node}, functions), Fs.")
        if (Atom("sorted_set_new"), 0) not in functions:
            print("the rustelixir node serves no sorted_set_new/0: is the collections table registered?", file=sys.stderr)
            return 1
        client.eval("sorted_set_bench:run({ours, Node}, 1000, 1000, 100, 99).")  # connect, warm up

        results: dict[tuple[int, str], dict[str, tuple[int, int]]] = {}
        for i, n in enumerate(sizes):
            order = ("gb", "ours") if i % 2 == 0 else ("ours", "gb")
            for who in order:
                target = "gb" if who == "gb" else "{ours, Node}"
                reply: list[tuple[Any, tuple[int, int]]] = client.eval(
                    f"sorted_set_bench:run({target}, {n}, {ops}, {budget_ms}, {i + 1}).", timeout=1800
                )
                results[(n, who)] = {str(phase): (count, micros) for phase, (count, micros) in reply}
            print(f"size {n:,} done", file=sys.stderr)

        def rate(n: int, who: str, phase: str) -> float:
            count, micros = results[(n, who)][phase]
            if phase == "add_many":
                count = min(n, count * BATCH)  # batches -> members
            return count / (micros / 1e6) if micros else float("inf")

        sections = [
            Section(f"{n:,} members", "gb_sets in the caller", [
                Row(phase, "members/s" if phase == "add_many" else "ops/s", rate(n, "gb", phase), rate(n, "ours", phase), True)
                for phase in PHASES
            ], ours="SortedSet on the node")
            for n in sizes
        ]  # fmt: skip
        notes = [
            f"{ops} operations per phase (add_many: the whole build, in members/s); index_of, slice and size "
            f"time-boxed at {budget_ms} ms; ratio = rustelixir / gb_sets (>1: SortedSet faster). gb_sets runs in "
            "the caller's process; every SortedSet operation is a call to the rustelixir node."
        ]
        for n in sizes:
            done = results[(n, "gb")]["index_of"][0]
            if done < ops:
                notes.append(f"{n:,} members: gb_sets did {done} index_of in its time box.")
        publish(Report("sorted_set_bench", "The SortedSet natives against :gb_sets in the caller's own process", sections, notes,
                       args.quick), args)  # fmt: skip
        return 0


if __name__ == "__main__":
    sys.exit(main())
