"""`serve --metrics-port P`: the node's metrics in Prometheus' text format at `/metrics`, and
its health at `/healthz`, over HTTP on 127.0.0.1 (or `--metrics-host`).

The numbers are counted in Rust where calls are answered (the fast path included) and read
at each scrape; `prometheus_client` makes the exposition. `/healthz` answers 200 while the
node serves, 503 while it starts or shuts down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rustelixir.node import Node
    from rustelixir.server import RustelixirServer

__all__ = ["MetricsServer", "NodeCollector", "LATENCY_BUCKETS_US"]

# The latency histogram's bucket bounds, in microseconds (exported in seconds). The node
# counts latencies in finer log-scale bins; each bin goes to the first bucket that holds its
# whole range.
LATENCY_BUCKETS_US = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000,
                      100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000)  # fmt: skip


class NodeCollector(Collector):
    """What the node and its server say of themselves, read at each scrape."""

    def __init__(self, node: Node, server: RustelixirServer) -> None:
        self.node = node
        self.server = server

    def collect(self) -> Iterator[Metric]:
        native = self.server.native
        calls = CounterMetricFamily("rustelixir_calls", "Calls answered, by native and outcome (ok, or the error reason)",
                                    labels=["native", "outcome"])  # fmt: skip
        latency = HistogramMetricFamily("rustelixir_call_duration_seconds",
                                        "Time from a call's dispatch on the node to its reply, by native", labels=["native"])  # fmt: skip
        for name, arity, total, errors, outcomes, bins, sum_us in native.native_stats():
            label = f"{name}/{arity}"
            calls.add_metric([label, "ok"], total - errors)
            for reason, count in outcomes:
                if count:
                    calls.add_metric([label, reason], count)
            latency.add_metric([label], _buckets(bins, total), sum_value=sum_us / 1e6)
        yield calls
        yield latency
        answered, errors, cancelled, oversized, overloaded = native.stats
        yield _counter("rustelixir_overloaded", "Calls answered {:error, :overloaded}", overloaded)
        yield _counter("rustelixir_cancelled", "Calls cancelled (their caller gave up or went away)", cancelled)
        yield _counter("rustelixir_oversized_messages", "Messages over --max-message-size, discarded", oversized)
        yield GaugeMetricFamily("rustelixir_calls_in_flight", "Slow, async and Python calls running", value=native.in_flight)
        live = GaugeMetricFamily("rustelixir_resources_live", "Resources alive, by type", labels=["type"])
        created = CounterMetricFamily("rustelixir_resources_created", "Resources made, by type", labels=["type"])
        freed = CounterMetricFamily("rustelixir_resources_freed", "Resources freed, by type", labels=["type"])
        for kind, n_live, n_created, n_freed in native.resource_counts():
            live.add_metric([kind], n_live)
            created.add_metric([kind], n_created)
            freed.add_metric([kind], n_freed)
        yield live
        yield created
        yield freed
        yield GaugeMetricFamily("rustelixir_resource_holders", "Processes holding resources", value=native.resource_holder_count())
        yield GaugeMetricFamily("rustelixir_peers", "Nodes connected", value=len(self.node.peers))
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "bytes_in": CounterMetricFamily("rustelixir_peer_received_bytes", "Bytes read from a peer (TLS records included)", labels=["peer"]),
            "bytes_out": CounterMetricFamily("rustelixir_peer_sent_bytes", "Bytes written to a peer (TLS records included)", labels=["peer"]),
            "messages_in": CounterMetricFamily("rustelixir_peer_received_messages", "Messages from a peer (ticks not counted)", labels=["peer"]),
            "messages_out": CounterMetricFamily("rustelixir_peer_sent_messages", "Messages to a peer (ticks not counted)", labels=["peer"]),
            "waiting": GaugeMetricFamily("rustelixir_peer_frames_waiting", "Frames read from a peer waiting for Python", labels=["peer"]),
        }  # fmt: skip
        for name, proto in list(self.node.peers.items()):
            link = proto.link
            if link is None:
                continue
            try:
                counts = link.traffic()
            except Exception:  # closed meanwhile
                continue
            for family, value in zip(families.values(), counts):
                family.add_metric([name], value)
        yield from families.values()


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _buckets(bins: list[tuple[int, int]], total: int) -> list[tuple[str, float]]:
    """Cumulative counts at LATENCY_BUCKETS_US (in seconds) and +Inf from the node's bins
    [(count, the largest microseconds it holds)]."""
    per_bucket = [0] * (len(LATENCY_BUCKETS_US) + 1)
    for count, upper_us in bins:
        if count:
            index = next((i for i, bound in enumerate(LATENCY_BUCKETS_US) if upper_us <= bound), len(LATENCY_BUCKETS_US))
            per_bucket[index] += count
    cumulative, out = 0, []
    for bound, count in zip(LATENCY_BUCKETS_US, per_bucket):
        cumulative += count
        out.append((repr(bound / 1e6), float(cumulative)))
    out.append(("+Inf", float(total)))
    return out


# HTTP clients served at once, and how long one may leave its socket idle: past the bound a
# connection is closed unread, so idle or slow clients cost a few dozen threads and
# descriptors, not one of each per connection for as long as they stay.
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 5.0


class _BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 made a burst of scrapes wait for SYN retries

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    """The HTTP endpoint: `/metrics` and `/healthz`, served from a thread of its own. Its
    `state` is "starting" until the node serves ("serving"), then "stopping"."""

    def __init__(self, host: str, port: int) -> None:
        self.state = "starting"
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open file descriptors
        self._http = _BoundedHTTPServer((host, port), _handler(self), MAX_CONNECTIONS)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="rustelixir-metrics", daemon=True)
        self._thread.start()

    def watch(self, node: Node, server: RustelixirServer) -> None:
        self.registry.register(NodeCollector(node, server))

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def _handler(metrics: MetricsServer) -> Any:
    class Handler(BaseHTTPRequestHandler):
        timeout = IDLE_TIMEOUT  # a client that sends nothing (or stops) is dropped

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            elif path == "/healthz":
                status = 200 if metrics.state == "serving" else 503
                self._answer(status, "text/plain; charset=utf-8", f"{metrics.state}\n".encode())
            else:
                self._answer(404, "text/plain; charset=utf-8", b"not found: /metrics or /healthz\n")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    return Handler
