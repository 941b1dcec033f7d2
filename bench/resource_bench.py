"""Benchmark resource objects: what holding natives' data on the node costs.

    python bench/resource_bench.py [--quick]

Two real nodes on 127.0.0.1: the rustelixir node (`rustelixir serve`) and a BEAM client
running `bench/beam/resource_bench.erl`. Every figure is printed beside a baseline measured
in the same run, alternating round by round:

- create+release pairs/s (`sorted_set_new` then `{:release, ref}`), 1 and 16 callers,
  against the same number of plain calls (two `{:add, 1, 2}`): the cost of the table,
  holders and monitors over the round trips themselves;
- bytes of overhead per live resource with 1,000,000 live: the node's RSS growth divided by
  the count, beside the size of the object itself (an empty SortedSet);
- `buffer_write` of 4 KiB chunks into one shared buffer, MB/s, 1 and 16 writers, against
  `echo` of the same 4 KiB (the same bytes over the same wire, no resource).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchnodes import bench_nodes
from report import Report, Row, Samples, Section, add_arguments, publish


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    rounds, millis, live_count = (2, 500, 100_000) if args.quick else (5, 2000, 1_000_000)

    with bench_nodes("resource_bench", "resbench", ["--max-in-flight", "100000"]) as (served, client, _):
        from rustelixir import Atom

        client.set("Node", served.atom)
        client.eval("pong = net_adm:ping(Node), ok.")
        samples = Samples()
        for r in range(rounds):
            for concurrency in (1, 16):
                for kind in (("calls", "pairs") if r % 2 else ("pairs", "calls")):
                    n = client.eval(f"resource_bench:{kind}(Node, {concurrency}, {millis}).", timeout=120)
                    samples.add(f"pairs/s x{concurrency}", kind, n * 1000 / millis)
                for mode in (("echo", "write") if r % 2 else ("write", "echo")):
                    n = client.eval(f"resource_bench:writes(Node, {mode}, {concurrency}, {millis}).", timeout=120)
                    samples.add(f"MB/s x{concurrency}", mode, n / 1e6 * 1000 / millis)
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)

        before = rss_kib(served.proc.pid)
        made = client.eval(f"resource_bench:make(Node, {live_count}, 16).", timeout=1800)
        after = rss_kib(served.proc.pid)
        info = client.eval("{ok, I} = gen_server:call({rustelixir, Node}, info), I.")
        live = info[Atom("resources")][Atom("by_type")][Atom("sorted_set")][Atom("live")]
        per_resource = (after - before) * 1024 / made
        object_bytes = 64  # an empty SortedSet: its lock and its (empty) bucket vectors

        sections = [
            Section("create+release pairs (sorted_set_new, release)", "two {add, 1, 2} calls", [
                samples.row(f"pairs/s x{c}", "/s", True, baseline="calls", ours="pairs") for c in (1, 16)
            ], ours="resource pair"),
            Section("buffer_write of 4 KiB chunks into one buffer", "echo of the same 4 KiB", [
                samples.row(f"MB/s x{c}", "MB/s", True, baseline="echo", ours="write") for c in (1, 16)
            ], ours="buffer_write"),
            Section(f"memory per live resource ({made:,} live)", "the object's own size", [
                Row("bytes per resource", "B", object_bytes, per_resource, False)
            ], ours="table, holders and monitors included"),
        ]  # fmt: skip
        notes = [f"{rounds} rounds of {millis} ms, medians. Live sorted sets after the fill: {live:,}."]
        publish(Report("resource_bench", "Resource objects: what holding natives' data on the node costs", sections, notes, args.quick), args)
        return 0


if __name__ == "__main__":
    sys.exit(main())
