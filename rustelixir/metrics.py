"""`serve --metrics-port P`: the node's metrics in Prometheus' text format at `/metrics`, and
its health at `/healthz`, over HTTP on 127.0.0.1 (or `--metrics-host`), served by an asyncio
loop in a thread of its own.

The numbers are counted in Rust where calls are answered (the fast path included) and read
at each scrape; `prometheus_client` makes the exposition. `/healthz` answers 200 while the
node serves, 503 while it starts or shuts down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

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


# HTTP clients served at once (more are closed unread), how long one has from connecting to
# the end of its request's head, and how long that head may be. The clients are coroutines
# of one event loop in the endpoint's thread, not a thread each; the deadline counts from the
# connection, so a client that sends its request a byte at a time keeps its place no longer
# than one that sends nothing.
MAX_CONNECTIONS = 64
REQUEST_DEADLINE = 2.0
MAX_REQUEST_HEAD = 8192

_TEXT = "text/plain; charset=utf-8"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class MetricsServer:
    """The HTTP endpoint: `/metrics` and `/healthz`, served from a thread of its own. Its
    `state` is "starting" until the node serves ("serving"), then "stopping"."""

    def __init__(self, host: str, port: int) -> None:
        self.state = "starting"
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open file descriptors
        self._clients: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        listening: Future[asyncio.Server] = Future()

        def run() -> None:  # the endpoint's own loop, in its own thread (whatever runs in the caller's)
            try:
                listening.set_result(self._loop.run_until_complete(
                    asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_HEAD, backlog=128)
                ))  # fmt: skip
            except BaseException as e:  # the address is taken, say: the constructor raises it
                listening.set_exception(e)
                self._loop.close()
                return
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="rustelixir-metrics", daemon=True)
        self._thread.start()
        self._server = listening.result()
        self.port: int = self._server.sockets[0].getsockname()[1]

    def watch(self, node: Node, server: RustelixirServer) -> None:
        self.registry.register(NodeCollector(node, server))

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= MAX_CONNECTIONS or task is None:
            writer.transport.abort()
            return
        self._clients.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_DEADLINE)
            status, content_type, body = self._answer(head)
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await asyncio.wait_for(writer.drain(), REQUEST_DEADLINE)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # too slow, gone, or a head past the limit: the connection just ends
        finally:
            self._clients.discard(task)
            writer.transport.abort()

    def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        """Status, content type and body for a request whose head is `head`."""
        request_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/"):
            return 400, _TEXT, b"bad request\n"
        method, target = request_line[0], request_line[1]
        if method != b"GET":
            return 405, _TEXT, b"GET only\n"
        path = target.split(b"?", 1)[0]
        if path == b"/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == b"/healthz":
            return 200 if self.state == "serving" else 503, _TEXT, f"{self.state}\n".encode()
        return 404, _TEXT, b"not found: /metrics or /healthz\n"
