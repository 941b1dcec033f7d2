"""`serve --metrics-port`: Prometheus metrics scraped over HTTP while a real BEAM node calls
the node (fast-path, Python and failing calls), each counter and histogram moving by exactly
the calls made, the output parsed with prometheus_client's own parser; and /healthz through
start-up, serving and shutdown."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rustelixir import Atom

from beamnodes import DistClient, ServedNode, calling, served
from conftest import runtime_or_skip

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-metrics-cookie"


def metrics_url(node: ServedNode) -> str:
    match = re.search(r"Metrics: (http://\S+/metrics)", node.banner)
    assert match, node.banner
    return match.group(1)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by (name, sorted labels)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")  # the text format
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    extra = ["--metrics-port", "0", "--module", "natives_fixture", "--max-in-flight", "1"]
    with served(tmp_path_factory.mktemp("metrics"), cookie=COOKIE, extra=extra) as node:
        yield node


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, node: ServedNode) -> Iterator[DistClient]:
    with calling(runtime_or_skip("otp25"), tmp_path_factory.mktemp("metrics-beam"), node, ping=True) as client:
        yield client


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_counters_and_histograms_move_by_the_calls_made(node: ServedNode, client: DistClient) -> None:
    url = metrics_url(node)
    before = scrape(url)
    client.eval("[{ok, 3} = gen_server:call({rustelixir, Node}, {add, 1, 2}) || _ <- lists:seq(1, 10)], ok.")
    client.eval("[{error, {badarg, 2, _}} = gen_server:call({rustelixir, Node}, {add, 1, x}) || _ <- lists:seq(1, 3)], ok.")
    client.eval("[{ok, <<\"hello you\">>} = gen_server:call({rustelixir, Node}, {greet, <<\"you\">>}) || _ <- lists:seq(1, 4)], ok.")
    client.eval("[{error, {exception, _, _}} = gen_server:call({rustelixir, Node}, boom) || _ <- lists:seq(1, 2)], ok.")
    client.eval("[{error, {undef, nosuch, 0}} = gen_server:call({rustelixir, Node}, nosuch) || _ <- lists:seq(1, 2)], ok.")
    # Two slow calls at once past --max-in-flight 1: one is answered overloaded.
    replies = client.eval(
        "Self = self(), [spawn(fun() -> Self ! gen_server:call({rustelixir, Node}, {sleep, 300}) end) || _ <- [1, 2]],"
        " lists:sort([receive R -> R end || _ <- [1, 2]])."
    )
    assert replies == [(Atom("error"), Atom("overloaded")), (Atom("ok"), Atom("ok"))]
    client.eval("{ok, _} = gen_server:call({rustelixir, Node}, {buffer_new, 8}), ok.")
    after = scrape(url)

    assert moved(before, after, "rustelixir_calls_total", native="add/2", outcome="ok") == 10
    assert moved(before, after, "rustelixir_calls_total", native="add/2", outcome="badarg") == 3
    assert moved(before, after, "rustelixir_calls_total", native="greet/1", outcome="ok") == 4
    assert moved(before, after, "rustelixir_calls_total", native="boom/0", outcome="exception") == 2
    assert moved(before, after, "rustelixir_calls_total", native="sleep/1", outcome="ok") == 1
    assert moved(before, after, "rustelixir_calls_total", native="sleep/1", outcome="overloaded") == 1
    assert moved(before, after, "rustelixir_overloaded_total") == 1
    # Each native's histogram counts its calls, fast path included; the sleep took 300 ms.
    assert moved(before, after, "rustelixir_call_duration_seconds_count", native="add/2") == 13
    assert moved(before, after, "rustelixir_call_duration_seconds_count", native="greet/1") == 4
    assert moved(before, after, "rustelixir_call_duration_seconds_bucket", native="add/2", le="+Inf") == 13
    assert moved(before, after, "rustelixir_call_duration_seconds_bucket", native="sleep/1", le="0.1") == 1  # the overloaded one
    assert moved(before, after, "rustelixir_call_duration_seconds_sum", native="sleep/1") >= 0.29
    assert moved(before, after, "rustelixir_resources_created_total", type="buffer") == 1
    assert after[("rustelixir_resources_live", (("type", "buffer"),))] >= 1
    assert after[("rustelixir_peers", ())] >= 1
    assert after[("rustelixir_calls_in_flight", ())] == 0
    # The caller's connection: 10 + 3 + 4 + 2 + 2 + 2 + 1 calls and their replies, each a
    # message (monitors, demonitors and the buffer's holder monitor go too, so at least).
    peer = client.name
    assert moved(before, after, "rustelixir_peer_received_messages_total", peer=peer) >= 24
    assert moved(before, after, "rustelixir_peer_sent_messages_total", peer=peer) >= 24
    assert moved(before, after, "rustelixir_peer_received_bytes_total", peer=peer) > 24 * 20
    assert moved(before, after, "rustelixir_peer_sent_bytes_total", peer=peer) > 24 * 20
    assert after[("rustelixir_peer_frames_waiting", (("peer", peer),))] == 0
    # The process's own: CPU, memory, file descriptors.
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert after[(name, ())] > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as e:
        try:
            return e.code, e.read().decode().strip()
        except (http.client.HTTPException, OSError):
            return None  # cut off: the node exited while answering
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None


def test_healthz_through_start_up_serving_and_shutdown(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "rustelixir", "serve", "--name", f"health{port}@127.0.0.1", "--cookie", COOKIE,
               "--metrics-port", str(port), "--module", "slow_import_natives"]  # fmt: skip
    env_path = str(Path(__file__).parent)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**__import__("os").environ, "PYTHONPATH": env_path})
    try:
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = healthz(port)
            if answer is not None and (not seen or seen[-1] != answer):
                seen.append(answer)
            if answer == (200, "serving"):
                break
            time.sleep(0.05)
        # While its natives' module loads, the node is not up: 503; then it serves: 200.
        assert seen[0] == (503, "starting") and seen[-1] == (200, "serving"), seen
        proc.terminate()
        # The signal is handled on the node's event loop: serving until then, and from the
        # first answer that is not, never again (503 stopping, then nobody answers).
        after = [healthz(port)]
        deadline = time.monotonic() + 10
        while after[-1] == (200, "serving") and time.monotonic() < deadline:
            after.append(healthz(port))
        after += [healthz(port) for _ in range(10)]
        first = next(i for i, answer in enumerate(after) if answer != (200, "serving"))
        assert all(answer in ((503, "stopping"), None) for answer in after[first:]), after
        assert proc.wait(timeout=10) == 0
        assert healthz(port) is None  # gone with the node
    finally:
        proc.kill()
        proc.wait()


def test_an_unusable_metrics_port_stops_serve_with_the_reason() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "rustelixir", "serve", "--name", "nometrics@127.0.0.1",
                               "--cookie", COOKIE, "--metrics-port", str(port)], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr


def test_the_state_a_healthz_answers_follows_the_node() -> None:
    from rustelixir.metrics import MetricsServer

    metrics = MetricsServer("127.0.0.1", 0)
    try:
        for state, status in (("starting", 503), ("serving", 200), ("stopping", 503)):
            metrics.state = state
            assert healthz(metrics.port) == (status, state)
    finally:
        metrics.close()
