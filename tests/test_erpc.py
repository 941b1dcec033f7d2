"""`:erpc` and `:rpc` against the node: real `erl` nodes (OTP 25 and 28) spawn on it over the
distribution protocol (SPAWN_REQUEST, SPAWN_REPLY, and the spawned process's exit as the
monitor's DOWN), as `erpc:call/4,5`, `erpc:cast/4`, `erpc:multicall/4` and `rpc:call/4` do."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rustelixir import Atom, ImproperList, Pid, Reference
from rustelixir._native import decode_dist

from beamnodes import TEST_NATIVES, DistClient, ServedNode, client_fixture, epmd_port_of, frame_bodies, node_fixture, pass_through_frame, raw_peer, spawn_frame, unique_name, until_closed

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-erpc-cookie"
SERVED = ["--module", "natives_fixture", "--module", TEST_NATIVES]

node = node_fixture("erpc-logs", cookie=COOKIE, extra=SERVED)


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    served = ServedNode(tmp_path_factory.mktemp("erpc-second"), cookie=COOKIE, extra=SERVED)
    try:
        yield served
    finally:
        served.stop()


client = client_fixture("erpc", runtimes=("otp25", "otp28"))


def caught(client: DistClient, expression: str) -> object:
    """What `expression` raises, as {Class, Reason}; or {returned, Value}."""
    return client.eval(f"try {expression} of V -> {{returned, V}} catch C:R -> {{C, R}} end.")


def test_erpc_call_returns_the_natives_value(client: DistClient) -> None:
    assert client.eval("erpc:call(Node, rustelixir, add, [1, 2]).") == 3
    assert client.eval("erpc:call(Node, rustelixir, add, [1 bsl 70, 1], 5000).") == 2**70 + 1
    term = client.eval("T = #{list => [1, 2.5, atom], pid => self(), bin => <<\"é\"/utf8>>}, T.")
    client.set("T", term)
    assert client.eval("T =:= erpc:call(Node, rustelixir, echo, [T]).") is True


def test_erpc_call_of_a_large_binary(client: DistClient) -> None:
    assert client.eval("B = crypto:strong_rand_bytes(1 bsl 20), B =:= erpc:call(Node, rustelixir, echo, [B]).") is True


def test_rpc_call_returns_the_natives_value(client: DistClient) -> None:
    assert client.eval("rpc:call(Node, rustelixir, add, [20, 22]).") == 42
    assert client.eval("rpc:call(Node, rustelixir, add, [20, 22], 5000).") == 42


def test_a_served_modules_name_is_a_module(client: DistClient) -> None:
    # A Rust crate served with --module, and a Python module (its natives run as jobs).
    assert client.eval(f"erpc:call(Node, {TEST_NATIVES}, 'test_even?', [4]).") is True
    assert client.eval("erpc:call(Node, natives_fixture, slow_sum, [[1, 2, 3]]).") == 6
    assert client.eval("erpc:call(Node, natives_fixture, greet, [<<\"you\">>]).") == b"hello you"
    assert client.eval("erpc:call(Node, rustelixir, slow_sum, [[1, 2, 3]]).") == 6
    # A module serves only its own natives.
    assert caught(client, "erpc:call(Node, natives_fixture, add, [1, 2])") == (
        Atom("error"), (Atom("exception"), Atom("undef"), [(Atom("natives_fixture"), Atom("add"), 2, [])]),
    )


def test_a_natives_error_raises_in_the_caller(client: DistClient) -> None:
    cls, (exception, reason, stack) = caught(client, "erpc:call(Node, rustelixir, add, [one, 2])")
    assert (cls, exception) == (Atom("error"), Atom("exception"))
    assert reason[0] == Atom("rustelixir") and reason[1][0] == Atom("badarg") and reason[1][1] == 1
    assert stack == [(Atom("rustelixir"), Atom("add"), 2, [])]
    # A Python native's exception, and rpc's form of the same.
    cls, (_, reason, _) = caught(client, "erpc:call(Node, natives_fixture, boom, [])")
    assert reason[0] == Atom("rustelixir") and reason[1][0] == Atom("exception")
    badrpc = client.eval("rpc:call(Node, rustelixir, add, [one, 2]).")
    assert badrpc[0] == Atom("badrpc") and badrpc[1][0] == Atom("EXIT")
    assert badrpc[1][1][0][0] == Atom("rustelixir")


def test_what_the_node_does_not_serve_is_undef(client: DistClient) -> None:
    assert caught(client, "erpc:call(Node, nosuch, add, [1, 2])") == (
        Atom("error"), (Atom("exception"), Atom("undef"), [(Atom("nosuch"), Atom("add"), 2, [])]),
    )
    assert caught(client, "erpc:call(Node, rustelixir, nosuch, [])") == (
        Atom("error"), (Atom("exception"), Atom("undef"), [(Atom("rustelixir"), Atom("nosuch"), 0, [])]),
    )
    # Elixir sees an UndefinedFunctionError; rpc a badrpc.
    assert client.eval("element(1, rpc:call(Node, rustelixir, add, [1])).") == Atom("badrpc")
    # The node serves on.
    assert client.eval("erpc:call(Node, rustelixir, add, [1, 1]).") == 2


def test_reserved_requests_through_erpc(client: DistClient, node: ServedNode) -> None:
    info = client.eval("erpc:call(Node, rustelixir, info, []).")
    assert info[Atom("node")] == node.atom
    assert (Atom("add"), 2) in client.eval("erpc:call(Node, rustelixir, functions, []).")
    cls, (_, reason, _) = caught(client, "erpc:call(Node, rustelixir, info, [extra])")
    assert reason[1][0] == Atom("badrequest")


def test_a_resource_made_through_erpc_is_held_by_the_calling_process(client: DistClient) -> None:
    assert client.eval(
        "Buf = erpc:call(Node, rustelixir, buffer_new, [16]),"
        " ok = erpc:call(Node, rustelixir, buffer_write, [Buf, 2, <<\"abc\">>]),"
        " {erpc:call(Node, rustelixir, buffer_read, [Buf, 2, 3]), gen_server:call({rustelixir, Node}, {buffer_size, Buf})}."
    ) == (b"abc", (Atom("ok"), 16))


def test_erpc_cast_runs_the_native(client: DistClient) -> None:
    assert client.eval(f"erpc:cast(Node, {TEST_NATIVES}, test_send, [self(), cast_arrived]).") == Atom("ok")
    assert client.eval("receive cast_arrived -> yes after 10000 -> no end.") == Atom("yes")


def test_erpc_multicall_across_two_nodes(client: DistClient, second: ServedNode) -> None:
    client.set("Second", second.atom)
    assert client.eval("erpc:multicall([Node, Second], rustelixir, add, [2, 3]).") == [(Atom("ok"), 5), (Atom("ok"), 5)]
    results = client.eval("erpc:multicall([Node, Second, 'nobody@127.0.0.1'], nosuch, f, [], 5000).")
    assert [r[0] for r in results] == [Atom("error")] * 3
    assert results[0][1][1] == Atom("undef") and results[2][1] == (Atom("erpc"), Atom("noconnection"))
    # multicast: each node runs it.
    client.eval(f"erpc:multicast([Node, Second], {TEST_NATIVES}, test_send, [self(), multicast_arrived]).")
    assert client.eval("[receive multicast_arrived -> yes after 10000 -> no end || _ <- [1, 2]].") == [Atom("yes")] * 2


def test_a_call_that_times_out_is_cancelled(client: DistClient) -> None:
    before = client.eval(f"erpc:call(Node, {TEST_NATIVES}, test_cancel_seen, []).")
    assert caught(client, f"erpc:call(Node, {TEST_NATIVES}, test_wait_cancel, [20000], 300)") == (
        Atom("error"), (Atom("erpc"), Atom("timeout")),
    )
    deadline = time.monotonic() + 10
    while client.eval(f"erpc:call(Node, {TEST_NATIVES}, test_cancel_seen, []).") == before:
        assert time.monotonic() < deadline, "the native went on after its caller gave up"
        time.sleep(0.05)
    # and no late DOWN reaches the caller
    assert client.eval("receive {'DOWN', _, process, _, _} = D -> D after 300 -> none end.") == Atom("none")


# --- Spawn requests no BEAM would send ----------------------------------------------------


def _exchange(sock: socket.socket, data: bytes, until: int) -> list[object]:
    """Sends `data`, then reads decoded messages until `until` of them came (or 10 s)."""
    sock.sendall(data)
    sock.settimeout(10)
    got: list[object] = []
    for body in frame_bodies(sock, bytearray()):
        got.append(decode_dist(body))
        if len(got) == until:
            break
    return got


@pytest.mark.parametrize("through_python", [False, True], ids=["link", "python"])
def test_a_spawn_request_is_answered_with_the_process_and_its_exit(node: ServedNode, through_python: bool) -> None:
    me = unique_name("spawner")
    sock = raw_peer(epmd_port_of(node.name), node.name, COOKIE, me)
    try:
        caller, ref, res = Pid(me, 1, 0, 7), Reference(me, 7, [1, 2, 3]), Reference(me, 7, [4, 5, 6])
        # A message to no process goes to Python; the frames behind it in the same read follow.
        lead = pass_through_frame((2, Atom(""), Pid(node.name, 999_999, 0, 1)), Atom("nobody")) if through_python else b""
        spawn = spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("erpc"), Atom("execute_call"), 4), [Atom("monitor")],
                             [res, Atom("rustelixir"), Atom("add"), [40, 2]])  # fmt: skip
        (reply_control,), (exit_control, reason) = _exchange(sock, lead + spawn, 2)
        assert reply_control[:4] == (31, ref, caller, 2) and isinstance(reply_control[4], Pid)
        assert reply_control[4].node == Atom(node.name)
        assert exit_control == (28, reply_control[4], caller, ref)
        assert reason == (res, Atom("return"), 42)
    finally:
        sock.close()


MALFORMED_SPAWNS = {
    "arity 5": lambda me, ref: pass_through_frame((29, ref, Pid(me, 1, 0, 7), Atom("x"), (Atom("m"), Atom("f"), 0)), []),
    "mfa not a tuple": lambda me, ref: spawn_frame(Pid(me, 1, 0, 7), ref, Atom("m"), [], []),
    "options not a list": lambda me, ref: spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("m"), Atom("f"), 0), Atom("monitor"), []),
    "args improper": lambda me, ref: spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("m"), Atom("f"), 1), [], ImproperList([1], 2)),
    "args not a list": lambda me, ref: spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("m"), Atom("f"), 1), [], Atom("x")),
    "no payload": lambda me, ref: pass_through_frame((29, ref, Pid(me, 1, 0, 7), Atom("x"), (Atom("m"), Atom("f"), 0), [])),
    "string list lies about its length": lambda me, ref: (
        lambda f: f[:-5] + b"\xff\xff" + f[-3:]  # [1, 2] as a string of 65535 bytes
    )(spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("erpc"), Atom("execute_cast"), 3), [], [Atom("rustelixir"), Atom("add"), [1, 2]])),
}


@pytest.mark.parametrize("make", MALFORMED_SPAWNS.values(), ids=MALFORMED_SPAWNS.keys())
def test_a_malformed_spawn_request_costs_at_most_its_connection(node: ServedNode, make: Any) -> None:
    me = unique_name("badspawn")
    sock = raw_peer(epmd_port_of(node.name), node.name, COOKIE, me)
    try:
        sock.sendall(make(me, Reference(me, 7, [1, 2, 3])))
        assert until_closed(sock, 10.0) < 10.0  # that connection is closed; the node goes on
    finally:
        sock.close()
    me = unique_name("after")
    sock = raw_peer(epmd_port_of(node.name), node.name, COOKIE, me)
    try:
        ref, res = Reference(me, 7, [1, 2, 3]), Reference(me, 7, [4, 5, 6])
        spawn = spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("erpc"), Atom("execute_call"), 4), [Atom("monitor")],
                             [res, Atom("rustelixir"), Atom("add"), [1, 2]])  # fmt: skip
        assert _exchange(sock, spawn, 2)[1][1] == (res, Atom("return"), 3)
    finally:
        sock.close()


def test_an_erpc_call_that_names_no_function_is_the_spawned_functions_undef(node: ServedNode) -> None:
    me = unique_name("oddspawn")
    sock = raw_peer(epmd_port_of(node.name), node.name, COOKIE, me)
    try:
        ref = Reference(me, 7, [1, 2, 3])
        spawn = spawn_frame(Pid(me, 1, 0, 7), ref, (Atom("erpc"), Atom("execute_call"), 4), [Atom("monitor")], [ref, 1, 2, 3])
        (_, (_, reason)) = _exchange(sock, spawn, 2)
        assert reason == (Atom("undef"), [(Atom("erpc"), Atom("execute_call"), 4, [])])
    finally:
        sock.close()
