"""Benchmark the rustelixir node against a plain gen_server on a second BEAM node.

    python bench/node_bench.py [--quick]

Three real nodes on 127.0.0.1: the rustelixir node (`rustelixir serve`, also serving this
directory's `bench_natives` module), a BEAM node running a plain gen_server
(`bench/beam/node_bench.erl`, the baseline: what BEAM-to-BEAM distribution does on this
machine), and a BEAM client node that runs the load against both, alternating, round by
round, so both see the same conditions on a noisy machine. Each figure is the median over
the rounds; the ratio is rustelixir / baseline (latencies, CPU per call; lower is better)
or baseline-relative throughput (rustelixir / baseline; higher is better) for calls/s.

What each side is asked (rustelixir | BEAM gen_server):
  p50, p99, calls/s       {add, 1, 2}           | {add, 1, 2}       (Rust fast path)
  py p50, py calls/s x16  {py_add, 1, 2}        | {add, 1, 2}       (Python native)
  slow Rust p50           {sleep, 0}            | {sleep, 0}        (Rust native on the worker pool)
  slow py p50             {py_slow_add, 1, 2}   | {add, 1, 2}       (Python native on the worker pool)
  CPU us/call x64         the rustelixir serve process's utime+stime over the 64-caller
                          {add, 1, 2} run, per call | the same for the BEAM server node
  echo 1 MiB / 64 MiB p50 {echo, Binary}        | {echo, Binary}
  crate p50, calls/s x64  {test_checked_add, 1, 2} | {add, 1, 2}   (a quick Rust native of a
                          crate built as its own extension, rustelixir_test_natives: also
                          printed against the built-in add of the same node, same run)
  erpc p50                erpc:call(N, rustelixir, add, [1, 2]), printed against the
                          GenServer.call p50 of the same native on the same node, same run

TLS distribution against plain TCP, same run (issue 13): a second rustelixir node serving
over TLS (certificates made for the run) and a second BEAM client with `-proto_dist
inet_tls`; each round, {add, 1, 2} p50 and 1 MiB echo p50 from the TLS client to the TLS
node and from the plain client to the plain node, alternating; and, for scale, the same
from the TLS client to a BEAM gen_server node that speaks TLS too (what OTP's own TLS
distribution costs). Targets: add p50 <= 1.3x, 1 MiB echo p50 <= 1.5x plain.

Targets (issue 11): fast path p50 <= 0.9x; calls/s at 64 callers >= 1.3x; Python native
p50 <= 1.5x and its calls/s at 16 callers >= 0.7x; slow Rust native p50 <= 1.5x; slow
Python native p50 <= 2.0x; 1 MiB echo p50 <= 1.0x; 64 MiB echo p50 <= 1.0x. Issue 13:
erpc p50 <= 1.5x the GenServer.call p50. Nothing fails on them; a verdict is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchnodes import COOKIE, ROOT, DistClient, ServedNode, bench_nodes, unique_name
from report import Report, Row, Samples, Section, add_arguments, publish
from tlscerts import Authority, ssl_dist_optfile

# (metric, rustelixir's request, the BEAM server's request) for the sequential latencies.
LATENCIES = (
    ("p50", "{add, 1, 2}", "{add, 1, 2}"),
    ("py p50", "{py_add, 1, 2}", "{add, 1, 2}"),
    ("slow Rust p50", "{sleep, 0}", "{sleep, 0}"),
    ("slow py p50", "{py_slow_add, 1, 2}", "{add, 1, 2}"),
    ("crate p50", "{test_checked_add, 1, 2}", "{add, 1, 2}"),
)
# (metric, callers, rustelixir's request, the BEAM server's request) for the throughputs.
THROUGHPUTS = (
    ("calls/s x1", 1, "{add, 1, 2}", "{add, 1, 2}"),
    ("calls/s x16", 16, "{add, 1, 2}", "{add, 1, 2}"),
    ("calls/s x64", 64, "{add, 1, 2}", "{add, 1, 2}"),
    ("py calls/s x16", 16, "{py_add, 1, 2}", "{add, 1, 2}"),
    ("crate calls/s x64", 64, "{test_checked_add, 1, 2}", "{add, 1, 2}"),
)
CPU_METRIC = "calls/s x64"  # the run whose CPU time per call is measured on both servers
# (metric, request) measured from each client to its node, over TLS and over plain TCP.
TLS_LATENCIES = (("add p50", "{add, 1, 2}"), ("echo 1 MiB p50", "{echo, binary:copy(<<7>>, 1 bsl 20)}"))


@dataclass(frozen=True)
class Settings:
    rounds: int
    latency_calls: int
    throughput_ms: int
    echo_1mib_calls: int
    echo_64mib_calls: int


FULL = Settings(rounds=5, latency_calls=3000, throughput_ms=2000, echo_1mib_calls=40, echo_64mib_calls=3)
QUICK = Settings(rounds=2, latency_calls=500, throughput_ms=500, echo_1mib_calls=10, echo_64mib_calls=1)


def percentile(sorted_values: list[int], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def cpu_us(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far, in microseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) * 1e6 / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL

    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "bench"), str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    served_modules = ["--module", "bench_natives", "--module", "rustelixir_test_natives"]
    with bench_nodes("node_bench", "benchcli", served_modules, env={"PYTHONPATH": pythonpath}) as (
        served,
        client,
        build,
    ):
        server = DistClient("erl", build, cookie=COOKIE, name=unique_name("benchsrv"))
        ours = Authority(build.parent / "pki", "bench")
        optfile = ssl_dist_optfile(build.parent / "ssl_dist.conf", ours.issue("beam"))
        tls_served = ServedNode(build.parent / "logs", cookie=COOKIE, extra=["-q", *ours.issue("node").serve_args()])
        tls_client = DistClient(
            "erl", build, cookie=COOKIE, name=unique_name("benchtls"),
            extra=["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile)],
        )  # fmt: skip
        server_optfile = ssl_dist_optfile(build.parent / "ssl_dist_server.conf", ours.issue("beamserver"))
        tls_server = DistClient(
            "erl", build, cookie=COOKIE, name=unique_name("benchtlssrv"),
            extra=["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(server_optfile)],
        )  # fmt: skip
        try:
            report = _run(settings, served.atom, served.proc.pid, server, client, Tls(tls_served.atom, tls_client, tls_server))
            publish(report, args)
            return 0
        finally:
            tls_server.close()
            tls_client.close()
            tls_served.stop()
            server.close()


@dataclass(frozen=True)
class Tls:
    """The node serving over TLS, the BEAM client speaking TLS to it, and a BEAM gen_server
    node speaking TLS (the scale: OTP to OTP over TLS)."""

    served_atom: Any
    client: DistClient
    server: DistClient


def _run(settings: Settings, served_atom: Any, served_pid: int, server: DistClient, client: DistClient, tls: Tls) -> Report:
    server.eval("node_bench:start_server().")
    pids = {"Ours": served_pid, "Base": int(bytes(server.eval("os:getpid().")).decode())}
    client.set("Ours", (_atom("rustelixir"), served_atom))
    client.set("OursNode", served_atom)
    client.set("Base", (_atom("bench_server"), _atom(server.name)))
    tls.server.eval("node_bench:start_server().")
    tls.client.set("Ours", (_atom("rustelixir"), tls.served_atom))
    tls.client.set("Base", (_atom("bench_server"), _atom(tls.server.name)))
    # (client, target) of each side of the TLS comparison.
    tls_sides = {"Plain": (client, "Ours"), "Tls": (tls.client, "Ours"), "TlsBeam": (tls.client, "Base")}
    for who in ("Ours", "Base"):  # connect and warm up
        for _, ours, base in LATENCIES:
            client.eval(f"node_bench:latency({who}, {ours if who == 'Ours' else base}, 200).")
        client.eval(f"node_bench:latency({who}, {{echo, binary:copy(<<1>>, 1 bsl 20)}}, 5).")
    client.eval("node_bench:erpc_latency(OursNode, {rustelixir, add}, [1, 2], 200).")
    for _, request in TLS_LATENCIES:
        for who in ("Ours", "Base"):
            tls.client.eval(f"node_bench:latency({who}, {request}, 5).")

    samples = Samples()
    record = samples.add

    for round_ in range(settings.rounds):
        order = ("Base", "Ours") if round_ % 2 == 0 else ("Ours", "Base")
        for metric, ours, base in LATENCIES:
            for who in order:
                request = ours if who == "Ours" else base
                lat: list[int] = client.eval(f"node_bench:latency({who}, {request}, {settings.latency_calls}).")
                record(metric, who, percentile(lat, 0.5))
                if metric == "p50":
                    record("p99", who, percentile(lat, 0.99))
        lat = client.eval(f"node_bench:erpc_latency(OursNode, {{rustelixir, add}}, [1, 2], {settings.latency_calls}).")
        record("erpc p50", "Ours", percentile(lat, 0.5))
        for metric, concurrency, ours, base in THROUGHPUTS:
            for who in order:
                request = ours if who == "Ours" else base
                cpu_before = cpu_us(pids[who])
                calls = client.eval(
                    f"node_bench:throughput({who}, {request}, {concurrency}, {settings.throughput_ms}).",
                    timeout=120,
                )
                if metric == CPU_METRIC:
                    record("CPU us/call x64", who, (cpu_us(pids[who]) - cpu_before) / max(calls, 1))
                record(metric, who, calls * 1000 / settings.throughput_ms)
        for size_name, bits, calls in (("1 MiB", 20, settings.echo_1mib_calls), ("64 MiB", 26, settings.echo_64mib_calls)):
            for who in order:
                lat = client.eval(
                    f"B = binary:copy(<<7>>, 1 bsl {bits}), node_bench:latency({who}, {{echo, B}}, {calls}).",
                    timeout=600,
                )
                record(f"echo {size_name} p50", who, percentile(lat, 0.5))
        for metric, request in TLS_LATENCIES:
            calls = settings.latency_calls if metric == "add p50" else settings.echo_1mib_calls
            for side in ("Plain", "Tls", "TlsBeam") if round_ % 2 == 0 else ("TlsBeam", "Tls", "Plain"):
                tls_client, target = tls_sides[side]
                lat = tls_client.eval(f"node_bench:latency({target}, {request}, {calls}).", timeout=600)
                record(metric, side, percentile(lat, 0.5))
        print(f"round {round_ + 1}/{settings.rounds} done", file=sys.stderr)

    def row(metric: str, unit: str, higher: bool, target: float | None, base: str = "Base", ours: str = "Ours") -> Row:
        return samples.row(metric, unit, higher, target, baseline=base, ours=ours)

    def against_add(metric: str, unit: str, higher: bool, target: float | None, of: str) -> Row:
        return Row(metric, unit, samples.median(of, "Ours"), samples.median(metric, "Ours"), higher, target)

    return Report(
        "node_bench",
        "The rustelixir node against a BEAM gen_server, same run",
        [
            Section("the node against a BEAM gen_server", "BEAM gen_server", [
                row("p50", "us", False, 0.9),
                row("p99", "us", False, None),
                row("calls/s x1", "/s", True, None),
                row("calls/s x16", "/s", True, None),
                row("calls/s x64", "/s", True, 1.3),
                row("CPU us/call x64", "us", False, None),
                row("py p50", "us", False, 1.5),
                row("py calls/s x16", "/s", True, 0.7),
                row("slow Rust p50", "us", False, 1.5),
                row("slow py p50", "us", False, 2.0),
                row("echo 1 MiB p50", "us", False, 1.0),
                row("echo 64 MiB p50", "us", False, 1.0),
                row("crate p50", "us", False, None),
                row("crate calls/s x64", "/s", True, None),
            ]),
            Section("a user's crate and :erpc against the built-in add via GenServer.call (both rustelixir)",
                    "built-in, GenServer.call", [
                against_add("crate p50", "us", False, None, of="p50"),
                against_add("crate calls/s x64", "/s", True, None, of="calls/s x64"),
                against_add("erpc p50", "us", False, 1.5, of="p50"),
            ], ours="crate native / :erpc.call"),
            Section("TLS distribution against plain TCP, both rustelixir", "plain TCP", [
                row("add p50", "us", False, 1.3, base="Plain", ours="Tls"),
                row("echo 1 MiB p50", "us", False, 1.5, base="Plain", ours="Tls"),
            ], ours="TLS"),
            Section("over TLS: rustelixir against OTP-to-OTP", "BEAM gen_server over TLS", [
                row("add p50", "us", False, None, base="TlsBeam", ours="Tls"),
                row("echo 1 MiB p50", "us", False, None, base="TlsBeam", ours="Tls"),
            ], ours="rustelixir over TLS"),
        ],
        [
            f"{settings.rounds} rounds, medians; latency over {settings.latency_calls} sequential calls; "
            f"throughput over {settings.throughput_ms} ms per run; ratio = rustelixir / baseline. "
            "CPU: utime+stime of the rustelixir serve process / of the BEAM server node over the 64-caller run.",
        ],
        quick=settings is QUICK,
    )  # fmt: skip


def _atom(name: str) -> Any:
    from rustelixir import Atom

    return Atom(name)


if __name__ == "__main__":
    sys.exit(main())
