"""Async Rust natives (issue 12, item 6), against real nodes: `#[native] async fn` tasks
polled by the node's runtime, many waiting at once without a thread each, dropped (and so
cancelled) when their caller gives up, with a host while they run (they can emit)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from beamnodes import TEST_NATIVES, DistClient, ServedNode, client_fixture, node_fixture
from rustelixir import Atom

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-async-cookie"

node = node_fixture("async-node", cookie=COOKIE, extra=["--module", TEST_NATIVES])
client = client_fixture("async-client", ping=True)


def threads(node: ServedNode) -> int:
    status = Path(f"/proc/{node.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_many_wait_at_once_without_a_thread_each(client: DistClient, node: ServedNode) -> None:
    assert client.eval("gen_server:call({rustelixir, Node}, {test_async_sleep, 0, warm}).") == (Atom("ok"), Atom("warm"))
    before = threads(node)
    client.eval(
        "Self = self(),"
        "[spawn(fun() -> Self ! {done, I, gen_server:call({rustelixir, Node}, {test_async_sleep, 1500, I}, 30000)} end)"
        " || I <- lists:seq(1, 300)], ok."
    )
    time.sleep(0.5)
    during = threads(node)
    started = time.monotonic()
    got = client.eval("[receive {done, I, R} -> R after 30000 -> timeout end || I <- lists:seq(1, 300)].", timeout=60)
    waited = time.monotonic() - started
    assert got == [(Atom("ok"), i) for i in range(1, 301)]
    # 300 calls of 1.5 s each, all waiting at once: one after another they would take 450 s.
    assert waited < 30
    assert during - before <= 2, (before, during)  # the runtime's thread and the timers', at most


def test_a_task_is_dropped_when_its_caller_gives_up(client: DistClient) -> None:
    _, before = client.eval("gen_server:call({rustelixir, Node}, test_async_cancelled).")
    assert client.eval("catch gen_server:call({rustelixir, Node}, {test_async_sleep, 10000, x}, 100).")[0] == Atom("EXIT")
    for _ in range(100):
        _, now = client.eval("gen_server:call({rustelixir, Node}, test_async_cancelled).")
        if now > before:
            break
        time.sleep(0.02)
    assert now == before + 1
    # A caller that exits: the same.
    client.eval("P = spawn(fun() -> gen_server:call({rustelixir, Node}, {test_async_sleep, 10000, y}) end), timer:sleep(100), exit(P, kill), ok.")
    for _ in range(100):
        _, now = client.eval("gen_server:call({rustelixir, Node}, test_async_cancelled).")
        if now > before + 1:
            break
        time.sleep(0.02)
    assert now == before + 2


def test_a_wrong_argument_is_answered_at_once_and_a_task_can_emit(client: DistClient) -> None:
    assert client.eval("gen_server:call({rustelixir, Node}, {test_async_sleep, -1, x}).") == (
        Atom("error"),
        (Atom("badarg"), 1, b"integer -1 out of range for u64 (0..=18446744073709551615)"),
    )
    items = client.eval(
        "M = erlang:monitor(process, {rustelixir, Node}, [{alias, demonitor}]), Tag = [alias | M],"
        "{rustelixir, Node} ! {'$gen_call', {self(), Tag}, {test_async_emit, 5}},"
        "L = fun Loop(Acc) -> receive {rustelixir_stream, Tag, I} -> Loop([I | Acc]); {Tag, R} -> {lists:reverse(Acc), R}"
        " after 5000 -> timeout end end, L([])."
    )
    assert items == ([1, 2, 3, 4, 5], (Atom("ok"), 5))
