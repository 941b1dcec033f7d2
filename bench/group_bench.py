"""Calls/s through a `:pg` group of two rustelixir nodes against a group of one, same run.

    python bench/group_bench.py [--quick]

Real nodes on 127.0.0.1: three `rustelixir serve` nodes (`--pg-group two` on two of them,
`--pg-group one` on the third, all serving `bench_natives`) connected to a BEAM client node
running the `pg` scope; the client (bench/beam/group_bench.erl) runs 64 callers, each call
to a member picked at random from `pg:get_members/2`, against each group in turn, round by
round, so both see the same conditions. Requests: `{add, 1, 2}` (the Rust fast path) and
`{py_add, 1, 2}` (a Python native: one interpreter per node). The figure is the median over
the rounds; the ratio is two / one (issue 13: reported, no target: on a 2-core machine the
nodes and the client share the cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchnodes import COOKIE, ROOT, DistClient, ServedNode, unique_name
from report import Report, Samples, Section, add_arguments, publish

REQUESTS = (("add", "{add, 1, 2}"), ("py_add", "{py_add, 1, 2}"))
CALLERS = 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    rounds, millis = (2, 500) if args.quick else (5, 2000)

    tmp = Path(tempfile.mkdtemp(prefix="rustelixir-group-bench-"))
    build = tmp / "beam"
    build.mkdir()
    subprocess.run(["erlc", "-o", str(build), str(ROOT / "bench" / "beam" / "group_bench.erl")], check=True)
    client = DistClient("erl", build, cookie=COOKIE, name=unique_name("groupbench"))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench"), str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))}
    nodes: list[ServedNode] = []
    try:
        assert client.eval("{ok, P} = pg:start(pg), is_pid(P).") is True
        for group in ("two", "two", "one"):
            nodes.append(ServedNode(tmp / "logs", cookie=COOKIE, env=env,
                                    extra=["-q", "--module", "bench_natives", "--connect", client.name, "--pg-group", group]))  # fmt: skip
        client.eval("W = fun W(0) -> timeout; W(N) -> case {length(pg:get_members(pg, two)), length(pg:get_members(pg, one))} of"
                    " {2, 1} -> ok; _ -> timer:sleep(50), W(N - 1) end end, ok = W(400).")  # fmt: skip
        samples = Samples()
        for name, request in REQUESTS:  # warm up
            for group in ("one", "two"):
                client.eval(f"group_bench:throughput(pg, {group}, {request}, {CALLERS}, 200).")
        for round_ in range(rounds):
            order = ("one", "two") if round_ % 2 == 0 else ("two", "one")
            for name, request in REQUESTS:
                for group in order:
                    calls = client.eval(f"group_bench:throughput(pg, {group}, {request}, {CALLERS}, {millis}).", timeout=120)
                    samples.add(name, group, calls * 1000 / millis)
            print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
        rows = [samples.row(name, "/s", True, baseline="one", ours="two", metric=f"{name} calls/s x{CALLERS}") for name, _ in REQUESTS]
        notes = [
            f"{rounds} rounds, medians; {CALLERS} callers for {millis} ms per run, each call to a random member; "
            f"ratio = two nodes / one node. {os.cpu_count()} cores shared by the nodes and the client."
        ]
        section = Section("calls through a :pg group", "group of one node", rows, ours="group of two nodes")
        publish(Report("group_bench", "A :pg group of two rustelixir nodes against a group of one", [section], notes, args.quick), args)
        return 0
    finally:
        for node in nodes:
            node.stop()
        client.close()


if __name__ == "__main__":
    sys.exit(main())
