"""Benchmark the rustelixir node against a plain gen_server on a second BEAM node.

    python bench/node_bench.py [--quick]

Three real nodes on 127.0.0.1: the rustelixir node (`rustelixir serve`), a BEAM node running
a plain gen_server (`bench/beam/node_bench.erl`, the baseline: what BEAM-to-BEAM
distribution does on this machine), and a BEAM client node that runs the load against both,
alternating, round by round, so both see the same conditions on a noisy machine. Each figure
is the median over the rounds; the ratio is rustelixir / baseline for latencies and
baseline-relative throughput (rustelixir / baseline) for calls/s.

Targets (issue 3): p50 latency within 1.5x of the baseline, throughput at 16 and 64 callers
at least 0.7x, 1 MiB echo within 3x. Nothing fails on them; a verdict is printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from beamnodes import DistClient, ServedNode, unique_name  # noqa: E402

COOKIE = "rustelixir-bench"


@dataclass(frozen=True)
class Settings:
    rounds: int
    latency_calls: int
    throughput_ms: int
    echo_1mib_calls: int
    echo_64mib_calls: int


FULL = Settings(rounds=5, latency_calls=3000, throughput_ms=2000, echo_1mib_calls=40, echo_64mib_calls=3)
QUICK = Settings(rounds=2, latency_calls=500, throughput_ms=500, echo_1mib_calls=10, echo_64mib_calls=1)


@dataclass
class Row:
    metric: str
    unit: str
    baseline: float
    ours: float
    higher_is_better: bool
    target: float | None  # ratio bound: max for latencies, min for throughput

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline

    def verdict(self) -> str:
        if self.target is None:
            return ""
        ok = self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target
        bound = f"{'>=' if self.higher_is_better else '<='} {self.target:g}x"
        return f"{'meets' if ok else 'MISSES'} {bound}"


def percentile(sorted_values: list[int], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL

    tmp = Path(tempfile.mkdtemp(prefix="rustelixir-bench-"))
    build = tmp / "beam"
    build.mkdir()
    subprocess.run(["erlc", "-o", str(build), str(ROOT / "bench" / "beam" / "node_bench.erl")], check=True)

    served = ServedNode(tmp / "logs", cookie=COOKIE, extra=["-q"])
    server = DistClient("erl", build, cookie=COOKIE, name=unique_name("benchsrv"))
    client = DistClient("erl", build, cookie=COOKIE, name=unique_name("benchcli"))
    try:
        server.eval("node_bench:start_server().")
        client.set("Ours", (_atom("rustelixir"), served.atom))
        client.set("Base", (_atom("bench_server"), _atom(server.name)))
        for target in ("Ours", "Base"):  # connect and warm up
            client.eval(f"node_bench:latency({target}, {{add, 1, 2}}, 200).")
            client.eval(f"node_bench:latency({target}, {{echo, binary:copy(<<1>>, 1 bsl 20)}}, 5).")

        samples: dict[tuple[str, str], list[float]] = {}

        def record(metric: str, who: str, value: float) -> None:
            samples.setdefault((metric, who), []).append(value)

        for round_ in range(settings.rounds):
            order = ("Base", "Ours") if round_ % 2 == 0 else ("Ours", "Base")
            for who in order:
                lat: list[int] = client.eval(f"node_bench:latency({who}, {{add, 1, 2}}, {settings.latency_calls}).")
                record("p50", who, percentile(lat, 0.5))
                record("p99", who, percentile(lat, 0.99))
            for concurrency in (1, 16, 64):
                for who in order:
                    calls = client.eval(
                        f"node_bench:throughput({who}, {{add, 1, 2}}, {concurrency}, {settings.throughput_ms}).",
                        timeout=120,
                    )
                    record(f"calls/s x{concurrency}", who, calls * 1000 / settings.throughput_ms)
            for size_name, bits, calls in (("1 MiB", 20, settings.echo_1mib_calls), ("64 MiB", 26, settings.echo_64mib_calls)):
                for who in order:
                    lat = client.eval(
                        f"B = binary:copy(<<7>>, 1 bsl {bits}), node_bench:latency({who}, {{echo, B}}, {calls}).",
                        timeout=600,
                    )
                    record(f"echo {size_name} p50", who, percentile(lat, 0.5))
            print(f"round {round_ + 1}/{settings.rounds} done", file=sys.stderr)

        def row(metric: str, unit: str, higher: bool, target: float | None) -> Row:
            return Row(
                metric,
                unit,
                statistics.median(samples[(metric, "Base")]),
                statistics.median(samples[(metric, "Ours")]),
                higher,
                target,
            )

        rows = [
            row("p50", "us", False, 1.5),
            row("p99", "us", False, None),
            row("calls/s x1", "calls/s", True, None),
            row("calls/s x16", "calls/s", True, 0.7),
            row("calls/s x64", "calls/s", True, 0.7),
            row("echo 1 MiB p50", "us", False, 3.0),
            row("echo 64 MiB p50", "us", False, None),
        ]
        print(f"\n{'metric':<18}{'BEAM gen_server':>18}{'rustelixir':>14}{'ratio':>9}  target")
        for r in rows:
            print(f"{r.metric:<18}{r.baseline:>14,.0f} {r.unit:<3}{r.ours:>10,.0f} {r.unit:<3}{r.ratio:>8.2f}x  {r.verdict()}")
        print(
            f"\n{settings.rounds} rounds, medians; latency over {settings.latency_calls} sequential {{add, 1, 2}} calls; "
            f"throughput over {settings.throughput_ms} ms per run; ratio = rustelixir / baseline."
        )
        return 0
    finally:
        client.close()
        server.close()
        served.stop()


def _atom(name: str) -> Any:
    from rustelixir import Atom

    return Atom(name)


if __name__ == "__main__":
    sys.exit(main())
