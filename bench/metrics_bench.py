"""The node with metrics on (`serve --metrics-port`, scraped every second) against the same
node with them off, same run (issue 14: fast-path p50 and calls/s at 64 callers within 5%).

    python bench/metrics_bench.py [--quick]

Two `rustelixir serve` nodes, alike but for `--metrics-port`, and a BEAM client node
(bench/beam/node_bench.erl) that measures each in turn, round by round: 3000 sequential
`{add, 1, 2}` (p50) and 64 callers for 2 s (calls/s). A thread of this script scrapes the
metrics node's /metrics every second throughout, as Prometheus would. The per-native
counting in Rust (calls, errors, latency bins) is always on, in both nodes: what the flag
adds is the exporter and its scrapes.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import urllib.request

from benchnodes import COOKIE, ServedNode, bench_nodes
from report import Report, Samples, Section, add_arguments, publish
from rustelixir import Atom

TOLERANCE = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    rounds, calls, millis = (2, 500, 500) if args.quick else (5, 3000, 2000)
    with bench_nodes("node_bench", "metricscli", []) as (plain, client, build):
        metered = ServedNode(build.parent / "logs", cookie=COOKIE, extra=["-q", "--metrics-port", "0"])
        url = re.search(r"Metrics: (http://\S+/metrics)", metered.banner).group(1)  # type: ignore[union-attr]
        stop = threading.Event()
        scrapes = [0]

        def scraper() -> None:
            while not stop.wait(1.0):
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                scrapes[0] += 1

        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        try:
            client.set("Off", (Atom("rustelixir"), plain.atom))
            client.set("On", (Atom("rustelixir"), metered.atom))
            for who in ("Off", "On"):
                client.eval(f"node_bench:latency({who}, {{add, 1, 2}}, 300).")
            samples = Samples()
            for round_ in range(rounds):
                for who in ("Off", "On") if round_ % 2 == 0 else ("On", "Off"):
                    lat = client.eval(f"node_bench:latency({who}, {{add, 1, 2}}, {calls}).")
                    samples.add("p50", who, float(lat[len(lat) // 2]))
                    n = client.eval(f"node_bench:throughput({who}, {{add, 1, 2}}, 64, {millis}).", timeout=120)
                    samples.add("calls/s x64", who, n * 1000 / millis)
                print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
        finally:
            stop.set()
            thread.join()
            metered.stop()
    section = Section("the fast path, {add, 1, 2}", "metrics off", [
        samples.row("p50", "us", False, 1 + TOLERANCE, baseline="Off", ours="On"),
        samples.row("calls/s x64", "/s", True, 1 - TOLERANCE, baseline="Off", ours="On"),
    ], ours="metrics on")  # fmt: skip
    report = Report("metrics_bench", "The node with metrics on against metrics off (target: within 5%)", [section],
                    [f"{rounds} rounds, medians; {calls} sequential calls, 64 callers for {millis} ms; "
                     f"/metrics scraped {scrapes[0]} times."], args.quick)  # fmt: skip
    publish(report, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
