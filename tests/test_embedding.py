"""The Python API for embedding a node (`async with Node(...)`, `send`, `call`,
`call_threadsafe`, Python-side GenServers), against real BEAM nodes."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beamnodes import DistClient, unique_name
from conftest import runtime_or_skip
from rustelixir import Atom, Pid
from rustelixir.errors import CallError
from rustelixir.node import GenServer, Node

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-embedding-cookie"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def erl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistClient]:
    """An OTP 25 node running a plain gen_server registered as `bench_server`."""
    runtime = runtime_or_skip("otp25")
    build = tmp_path_factory.mktemp("embedding-beam")
    subprocess.run([runtime.erlc, "-o", str(build), str(ROOT / "bench" / "beam" / "node_bench.erl")], check=True)
    client = DistClient(runtime.erl, build, cookie=COOKIE, erlc=runtime.erlc)
    client.eval("node_bench:start_server().")
    client.eval("register(harness, self()).")
    try:
        yield client
    finally:
        client.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_call_a_beam_gen_server(erl: DistClient) -> None:
    async def main() -> Any:
        async with Node(unique_name("emb"), COOKIE) as node:
            return await node.call(("bench_server", erl.name), (Atom("add"), 1, 2**70))

    assert run(main()) == (Atom("ok"), 1 + 2**70)


def test_call_unknown_name_exits_noproc(erl: DistClient) -> None:
    async def main() -> tuple[Any, float]:
        async with Node(unique_name("emb"), COOKIE) as node:
            await node.connect(erl.name)
            start = time.monotonic()
            with pytest.raises(CallError) as info:
                await node.call(("nobody_here", erl.name), Atom("hello"))
            return info.value.reason, time.monotonic() - start

    reason, elapsed = run(main())
    assert reason == Atom("noproc") and elapsed < 1.0


def test_call_times_out(erl: DistClient) -> None:
    async def main() -> Any:
        async with Node(unique_name("emb"), COOKIE) as node:
            with pytest.raises(CallError) as info:
                # the harness process is registered but never answers a $gen_call
                await node.call(("harness", erl.name), Atom("hello"), timeout=0.3)
            return info.value.reason

    assert run(main()) == Atom("timeout")
    erl.eval("receive {'$gen_call', _, hello} -> ok after 1000 -> none end.")


def test_send_to_a_registered_process(erl: DistClient) -> None:
    async def main() -> None:
        async with Node(unique_name("emb"), COOKIE) as node:
            await node.send(("harness", erl.name), (Atom("hello"), [1, 2, 3], b"bin"))
            await asyncio.sleep(0.2)

    run(main())
    assert erl.eval("receive {hello, _, _} = M -> M after 5000 -> timeout end.") == (Atom("hello"), [1, 2, 3], b"bin")


def test_call_threadsafe_from_another_thread(erl: DistClient) -> None:
    results: list[Any] = []

    async def main() -> None:
        async with Node(unique_name("emb"), COOKIE) as node:
            def worker() -> None:
                results.append(node.call_threadsafe(("bench_server", erl.name), (Atom("echo"), b"from a thread")))

            thread = threading.Thread(target=worker)
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.01)

    run(main())
    assert results == [(Atom("ok"), b"from a thread")]


class Greeter(GenServer):
    def handle_call(self, request: Any, from_: tuple[Pid, Any], peer: Any) -> None:
        self.reply(from_, (Atom("hello"), request))


def test_beam_calls_a_python_gen_server(erl: DistClient) -> None:
    async def main() -> Any:
        async with Node(unique_name("emb"), COOKIE) as node:
            node.register("greeter", Greeter(node))
            erl.set("Py", Atom(node.name))
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, erl.eval, "gen_server:call({greeter, Py}, <<\"world\">>).")

    assert run(main()) == (Atom("hello"), b"world")


def test_nodedown_when_the_called_node_dies(tmp_path: Path) -> None:
    runtime = runtime_or_skip("otp25")
    victim = DistClient(runtime.erl, tmp_path, cookie=COOKIE, erlc=runtime.erlc)

    async def main() -> Any:
        async with Node(unique_name("emb"), COOKIE) as node:
            await node.connect(victim.name)
            call = asyncio.create_task(node.call(("harness_never", victim.name), Atom("x"), timeout=10))
            victim.eval("register(harness_never, self()).")
            await asyncio.sleep(0.3)
            call2 = asyncio.create_task(node.call(("harness_never", victim.name), Atom("x"), timeout=10))
            await asyncio.sleep(0.3)
            victim.proc.kill()
            start = time.monotonic()
            with pytest.raises(CallError) as info:
                await call2
            call.cancel()
            return info.value.reason, time.monotonic() - start

    try:
        reason, elapsed = run(main())
    finally:
        victim.proc.kill()
        victim.proc.wait()
    assert reason == (Atom("nodedown"), Atom(victim.name))
    assert elapsed < 2.0


def test_node_name_and_port_read_back() -> None:
    async def main() -> tuple[str, int]:
        async with Node(unique_name("emb"), COOKIE, port=0) as node:
            return node.name, node.port

    name, port = run(main())
    assert name.endswith("@127.0.0.1") and port > 0


def test_simultaneous_connect_leaves_one_connection() -> None:
    # Two nodes dial each other at the same moment, many times: each time exactly one
    # connection survives (the tie-break of the handshake) and both connects succeed.
    async def main() -> list[tuple[bool, bool]]:
        outcomes = []
        for _ in range(10):
            async with Node(unique_name("sima"), COOKIE) as a, Node(unique_name("simb"), COOKIE) as b:
                pa, pb = await asyncio.gather(a.connect(b.name), b.connect(a.name))
                await asyncio.sleep(0.05)
                outcomes.append((a.peers.get(b.name) is pa, b.peers.get(a.name) is pb))
                assert len(a.peers) == 1 and len(b.peers) == 1
        return outcomes

    assert run(main()) == [(True, True)] * 10
