"""The hidden node against real BEAM nodes: `rustelixir serve` in a subprocess, called by
real `erl` nodes (OTP 25 from Debian and OTP 28) over the distribution protocol."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import pytest

from rustelixir import Atom, BitString, ImproperList, Pid, Reference
from beamnodes import TEST_NATIVES, DistClient, ServedNode, client_fixture, epmd_port_of, node_fixture, pass_through_frame, raw_peer, unique_name
from conftest import runtime_or_skip

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-test-cookie"


node = node_fixture("node-logs", cookie=COOKIE, extra=["--module", "natives_fixture", "--max-in-flight", "40", "--module", TEST_NATIVES])


client = client_fixture("client", runtimes=("otp25", "otp28"))


def call(client: DistClient, request: str, timeout_ms: int = 5000) -> object:
    return client.eval(f"gen_server:call({{rustelixir, Node}}, {request}, {timeout_ms}).")


# --- Connecting ----------------------------------------------------------------------------


def test_banner_says_how_to_connect(node: ServedNode) -> None:
    assert node.name in node.banner
    assert "iex --name" in node.banner and "GenServer.call({:rustelixir" in node.banner


def test_ping_answers_pong(client: DistClient) -> None:
    assert client.eval("net_adm:ping(Node).") == Atom("pong")


def test_node_is_hidden(client: DistClient, node: ServedNode) -> None:
    client.eval("pong = net_adm:ping(Node).")
    assert client.eval("lists:member(Node, nodes(hidden)).") is True
    assert client.eval("lists:member(Node, nodes()).") is False


def test_connect_at_start_up_joins_a_node_before_it_dials(tmp_path: Path) -> None:
    """`serve --connect NODE`: the node is connected (as a hidden node) by the time it says
    it is up, with no ping from the BEAM side; a node that is not there is logged, not
    fatal."""
    runtime = runtime_or_skip("otp25")
    erl = DistClient(runtime.erl, tmp_path / "erl", cookie=COOKIE, erlc=runtime.erlc)
    try:
        served = ServedNode(tmp_path / "logs", cookie=COOKIE, extra=["--connect", erl.name, "--connect", "nobody@127.0.0.1"])
        try:
            assert erl.eval("nodes(hidden).") == [served.atom]
            erl.set("Node", served.atom)
            assert erl.eval("gen_server:call({rustelixir, Node}, {add, 1, 2}).") == (Atom("ok"), 3)
            assert "cannot connect to nobody@127.0.0.1 at start-up" in served.log()
        finally:
            served.stop()
    finally:
        erl.close()


# --- The call contract ---------------------------------------------------------------------


def test_functions_lists_natives_sorted(client: DistClient) -> None:
    ok, natives = call(client, "functions")
    assert ok == Atom("ok")
    names = [(a.name, n) for a, n in natives]
    assert names == sorted(names)
    assert {("add", 2), ("echo", 1), ("sleep", 1), ("boom", 0)} <= set(names)


@pytest.mark.parametrize(
    ("a", "b"),
    [("1", "2"), ("-5", "3"), ("1 bsl 64", "1"), ("-(1 bsl 200)", "7"), ("134217727", "134217727"), ("0", "0")],
)
def test_add(client: DistClient, a: str, b: str) -> None:
    expected = client.eval(f"{a} + {b}.")
    assert call(client, f"{{add, {a}, {b}}}") == (Atom("ok"), expected)


def test_info(client: DistClient, node: ServedNode) -> None:
    ok, info = call(client, "info")
    assert ok == Atom("ok")
    assert info[Atom("node")] == node.atom
    assert isinstance(info[Atom("version")], bytes)
    assert info[Atom("calls")] >= 1
    resources = info[Atom("resources")]
    assert {Atom("live"), Atom("created"), Atom("freed"), Atom("by_type")} <= set(resources)


def native_stats(client: DistClient, name: str) -> dict[str, Any]:
    ok, info = call(client, "info")
    return {k.name: v for k, v in info[Atom("natives")][Atom(name)].items()}


@pytest.mark.parametrize("native, request_, failing", [
    ("add", "{add, 1, 2}", "{add, 1, two}"),  # a quick Rust native: the fast path
    ("sleep", "{sleep, 1}", "{sleep, -1}"),  # a slow one, on the worker pool
    ("greet", "{greet, <<\"you\">>}", "{greet, 1}"),  # a Python native
    ("slow_sum", "{slow_sum, [1, 2]}", "{slow_sum, x}"),  # a slow Python native
])  # fmt: skip
def test_info_counts_each_natives_calls_errors_and_latency(client: DistClient, native: str, request_: str, failing: str) -> None:
    before = native_stats(client, native)
    for _ in range(5):
        assert call(client, request_)[0] == Atom("ok")
    for _ in range(2):
        assert call(client, failing)[0] == Atom("error")
    after = native_stats(client, native)
    assert (after["calls"] - before["calls"], after["errors"] - before["errors"]) == (7, 2)
    assert 0 <= after["p50_us"] <= after["p99_us"] < 5_000_000
    if native == "sleep":
        assert after["p99_us"] >= 1000  # it slept a millisecond
    # Natives nobody called have no latency yet; undefined ones are not counted.
    assert call(client, "{nosuch, 1}")[0] == Atom("error")
    ok, info = call(client, "info")
    assert Atom("nosuch") not in info[Atom("natives")]
    assert info[Atom("natives")][Atom("sorted_set_index_of")][Atom("p50_us")] in (None, *range(10**7))


ECHO_TERMS = [
    "0", "-1", "1 bsl 100", "-(1 bsl 100)", "3.25", "-0.0", "atom", "'Ünïcødé ✓'", "true", "nil",
    "<<>>", "<<1,2,3>>", "<<1:3>>", "<<255, 7:5>>", "[]", "[1,2,3]", "\"charlist\"", "[a | b]",
    "[1, 2 | <<3>>]", "{}", "{a, {b, [c]}}", "#{}", "#{a => 1, <<\"b\">> => [2]}",
    "#{#{k => v} => map_key, [1] => list_key, {t} => tuple_key}", "self()", "make_ref()",
    "hd(erlang:ports())", "fun erlang:node/0", "fun(X) -> X + 1 end",
    "(fun() -> Y = 5, fun(X) -> X + Y end end)()",
    "lists:seq(1, 1000)", "list_to_tuple(lists:seq(1, 300))", "binary:copy(<<\"x\">>, 100000)",
]  # fmt: skip


@pytest.mark.parametrize("term", ECHO_TERMS)
def test_echo_round_trips_every_kind_of_term(client: DistClient, term: str) -> None:
    assert client.eval(f"T = {term}, {{ok, T}} =:= gen_server:call({{rustelixir, Node}}, {{echo, T}}).") is True


def test_echo_64_mib_binary(client: DistClient) -> None:
    result = client.eval(
        "B = crypto:strong_rand_bytes(1 bsl 26),"
        "{ok, B2} = gen_server:call({rustelixir, Node}, {echo, B}, 60000),"
        "{byte_size(B2), B2 =:= B}.",
        timeout=120,
    )
    assert result == (1 << 26, True)


def test_echo_returns_terms_as_python_sees_them(client: DistClient) -> None:
    ok, value = call(client, "{echo, {<<1:3>>, [a | b], nil}}")
    assert value == (BitString(b"\x20", 3), ImproperList([Atom("a")], Atom("b")), None)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        ("{nope, 1}", "{undef, nope, 1}"),
        ("nope", "{undef, nope, 0}"),
        ("{add, 1}", "{undef, add, 1}"),
        ("{add, 1, a}", "{badarg, 2, <<\"expected an integer, got an atom\">>}"),
        ("{add, <<1>>, 2}", "{badarg, 1, <<\"expected an integer, got a binary\">>}"),
        ("{sleep, -1}", "{badarg, 1, <<\"expected a non-negative number of milliseconds\">>}"),
        ("{release, make_ref()}", "badresource"),
        ("{share, make_ref(), self()}", "badresource"),
        ("42", "badrequest"),
        ("{1, 2}", "badrequest"),
        ("{functions, 1}", "badrequest"),
        ("boom", "{exception, <<\"ValueError\">>, <<\"boom\">>}"),
        ("{test_panic, <<\"kaboom\">>}", "{panic, <<\"kaboom\">>}"),
    ],
)
def test_error_reasons(client: DistClient, request_: str, reason: str) -> None:
    result = call(client, request_)
    assert isinstance(result, tuple) and result[0] == Atom("error")
    got = result[1]
    if reason in ("badresource", "badrequest"):
        assert isinstance(got, tuple) and got[0] == Atom(reason)
        if reason == "badrequest":
            assert isinstance(got[1], bytes) and got[1]
    else:
        assert client.eval(f"{reason}.") == got


def test_node_serves_on_after_a_panic(client: DistClient) -> None:
    for _ in range(3):
        assert call(client, "{test_panic, <<\"again\">>}") == (Atom("error"), (Atom("panic"), b"again"))
        assert call(client, "{add, 1, 2}") == (Atom("ok"), 3)


def test_overloaded_past_max_in_flight(client: DistClient) -> None:
    # The node runs with --max-in-flight 40: 60 slow calls at once, some get :overloaded.
    replies = client.eval(
        "Self = self(),"
        "[spawn(fun() -> Self ! {r, gen_server:call({rustelixir, Node}, {sleep, 300})} end) || _ <- lists:seq(1, 60)],"
        "[receive {r, R} -> R end || _ <- lists:seq(1, 60)].",
    )
    assert replies.count((Atom("error"), Atom("overloaded"))) >= 20
    assert replies.count((Atom("ok"), Atom("ok"))) >= 1
    assert call(client, "{add, 1, 1}") == (Atom("ok"), 2)


def test_cast_runs_without_reply(client: DistClient) -> None:
    before = call(client, "info")[1][Atom("calls")]
    assert client.eval("gen_server:cast({rustelixir, Node}, {add, 1, 2}).") == Atom("ok")
    deadline = time.monotonic() + 5
    while call(client, "info")[1][Atom("calls")] < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call(client, "info")[1][Atom("calls")] >= before + 2


def test_unknown_name_exits_noproc_at_once(client: DistClient) -> None:
    micros, reason = client.eval(
        "timer:tc(fun() -> catch gen_server:call({nobody_here, Node}, hello, 5000) end)."
    )
    assert reason[0] == Atom("EXIT") and reason[1][0] == Atom("noproc")
    assert micros < 100_000


def test_reply_tag_is_unchanged(client: DistClient) -> None:
    # A hand-made $gen_call with a plain reference tag (not an alias) gets {Tag, Reply} back.
    result = client.eval(
        "Tag = make_ref(), {rustelixir, Node} ! {'$gen_call', {self(), Tag}, {add, 2, 3}},"
        "receive {Tag, R} -> R after 5000 -> timeout end."
    )
    assert result == (Atom("ok"), 5)


def test_many_concurrent_callers(client: DistClient) -> None:
    # 1,000 calls from 100 concurrent processes, each checking its own answers.
    result = client.eval(
        "Self = self(),"
        "Pids = [spawn(fun() ->"
        "   Ok = lists:all(fun(J) -> gen_server:call({rustelixir, Node}, {add, I * 1000, J}) =:= {ok, I * 1000 + J} end,"
        "                  lists:seq(1, 10)),"
        "   Self ! {done, self(), Ok} end) || I <- lists:seq(1, 100)],"
        "[receive {done, P, Ok} -> Ok end || P <- Pids].",
        timeout=120,
    )
    assert result == [True] * 100


def test_slow_native_does_not_delay_quick_calls(client: DistClient) -> None:
    micros = client.eval(
        "Self = self(),"
        "spawn(fun() -> Self ! {slept, gen_server:call({rustelixir, Node}, {sleep, 2000})} end),"
        "timer:sleep(20),"
        "{T, {ok, 3}} = timer:tc(fun() -> gen_server:call({rustelixir, Node}, {add, 1, 2}) end),"
        "receive {slept, {ok, ok}} -> T after 5000 -> slow_call_lost end.",
    )
    assert isinstance(micros, int) and micros < 50_000


# --- Links and exit signals ----------------------------------------------------------------


def server_pid(client: DistClient) -> object:
    return call(client, "info")[1][Atom("pid")]


def test_link_to_a_pid_that_does_not_exist_exits_noproc(client: DistClient) -> None:
    real = server_pid(client)
    client.set("Fake", Pid(real.node, 999_999, 0, real.creation))
    assert client.eval(
        "Self = self(), spawn(fun() -> process_flag(trap_exit, true), link(Fake),"
        " Self ! {linked, receive {'EXIT', Fake, R} -> R after 3000 -> no_exit end} end),"
        "receive {linked, R} -> R after 5000 -> timeout end."
    ) == Atom("noproc")


def test_link_unlink_and_exit_signals_leave_the_server_serving(client: DistClient) -> None:
    client.set("Server", server_pid(client))
    assert client.eval(
        "Self = self(), spawn(fun() -> process_flag(trap_exit, true), true = link(Server),"
        " true = unlink(Server), true = link(Server), exit(Server, kill), exit(Server, shutdown),"
        " Self ! {done, receive {'EXIT', Server, R} -> R after 500 -> no_exit end} end),"
        "receive {done, R} -> R after 5000 -> timeout end."
    ) == Atom("no_exit")
    assert call(client, "{add, 2, 3}") == (Atom("ok"), 5)


# --- Failures ------------------------------------------------------------------------------


def test_nodedown_when_node_is_killed_mid_call(tmp_path: Path) -> None:
    runtime = runtime_or_skip("otp25")
    victim = ServedNode(tmp_path, cookie=COOKIE)
    c = DistClient(runtime.erl, tmp_path / "client", cookie=COOKIE, erlc=runtime.erlc)
    try:
        c.set("Node", victim.atom)
        c.set("Server", server_pid(c))
        c.eval(
            "Self = self(), Caller = spawn(fun() -> Self ! {result, catch gen_server:call({rustelixir, Node}, {sleep, 10000}, 20000)} end),"
            "spawn(fun() -> process_flag(trap_exit, true), link(Server),"
            "      Self ! {linked_exit, receive {'EXIT', Server, R} -> R end} end), ok."
        )
        time.sleep(0.5)
        killed_at = time.monotonic()
        victim.kill()
        reason = c.eval("receive {result, R} -> R after 5000 -> no_answer end.")
        elapsed = time.monotonic() - killed_at
        assert reason[0] == Atom("EXIT") and reason[1][0] == (Atom("nodedown"), victim.atom)
        assert elapsed < 2.0
        assert c.eval("receive {linked_exit, R} -> R after 5000 -> no_exit end.") == Atom("noconnection")
    finally:
        c.close()
        victim.stop()


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    served = ServedNode(tmp_path, cookie=COOKIE)
    assert served.stop() == 0
    assert "shutting down" in served.log()


def test_wrong_cookie_is_refused(tmp_path: Path, node: ServedNode) -> None:
    runtime = runtime_or_skip("otp25")
    intruder = DistClient(runtime.erl, tmp_path, cookie="not-the-cookie", erlc=runtime.erlc)
    try:
        intruder.set("Node", node.atom)
        assert intruder.eval("net_adm:ping(Node).") == Atom("pang")
        reason = intruder.eval("catch gen_server:call({rustelixir, Node}, {add, 1, 2}, 2000).")
        assert reason[0] == Atom("EXIT") and reason[1][0] == (Atom("nodedown"), node.atom)
    finally:
        intruder.close()
    assert "wrong cookie" in node.log()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x05Nxxxx",  # a name message too short
        b"\xff\xff" + b"A" * 100,  # a length it never fills
        struct.pack(">H", 30) + b"N" + b"\x00" * 29,  # flags without the mandatory ones
    ],
)
def test_garbage_peer_is_dropped_while_others_are_served(client: DistClient, node: ServedNode, garbage: bytes) -> None:
    port = epmd_port_of(node.name)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(garbage)
        s.settimeout(10)
        assert call(client, "{add, 20, 22}") == (Atom("ok"), 42)
        try:
            leftover = s.recv(100)
        except (TimeoutError, ConnectionResetError):
            leftover = b""
        # Either closed at once, or still waiting for a length it will never get.
        assert leftover in (b"",) or garbage.startswith(b"\xff\xff")
    assert call(client, "{add, 1, 2}") == (Atom("ok"), 3)


def test_malformed_frame_after_handshake_drops_only_that_peer(tmp_path: Path, node: ServedNode, client: DistClient) -> None:
    # A real handshake from Python, then a frame whose control message is nonsense.
    import asyncio

    from rustelixir.protocol.handshake import Handshake, HandshakeComplete, Role

    async def bad_peer() -> bytes:
        port = epmd_port_of(node.name)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        hs = Handshake(Role.INITIATOR, name=unique_name("bad"), cookie=COOKIE, creation=7, peer_name=node.name)
        writer.write(hs.data_to_send())
        done = False
        while not done:
            data = await asyncio.wait_for(reader.read(4096), 5)
            assert data, "node closed the handshake"
            for event in hs.receive_data(data):
                done = done or isinstance(event, HandshakeComplete)
            writer.write(hs.data_to_send())
        body = b"\x83D\x00" + b"\x61\x07"  # a control message that is the integer 7
        writer.write(struct.pack(">I", len(body)) + body)
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return rest

    assert asyncio.run(bad_peer()) == b""  # the node closed the connection
    assert call(client, "{add, 2, 2}") == (Atom("ok"), 4)
    assert "not a tuple with an opcode" in node.log()


# --- Ticks, EPMD-less operation ------------------------------------------------------------


def test_ticks_flow_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    # net_ticktime 4 s on both sides; a Python native blocks the node's event loop for 7 s.
    # The Rust link keeps ticking and answering fast-path calls, so the BEAM keeps the
    # connection and `add` stays quick.
    runtime = runtime_or_skip("otp25")
    served = ServedNode(tmp_path, cookie=COOKIE, extra=["--module", "natives_fixture", "--net-ticktime", "4"])
    c = DistClient(runtime.erl, tmp_path / "client", cookie=COOKIE, erlc=runtime.erlc, extra=["-kernel", "net_ticktime", "4"])
    try:
        c.set("Node", served.atom)
        result = c.eval(
            "ok = net_kernel:monitor_nodes(true, [{node_type, all}]),"
            "pong = net_adm:ping(Node),"
            "Self = self(),"
            "spawn(fun() -> Self ! {spun, gen_server:call({rustelixir, Node}, {spin, 7000}, 20000)} end),"
            "timer:sleep(500),"
            "Lat = [element(1, timer:tc(fun() -> {ok, 2} = gen_server:call({rustelixir, Node}, {add, 1, 1}) end))"
            "       || _ <- lists:seq(1, 10)],"
            "Spun = receive {spun, S} -> S after 15000 -> no_answer end,"
            "Down = receive {nodedown, Node, _} -> nodedown after 0 -> still_up end,"
            "{Spun, Down, lists:max(Lat)}.",
            timeout=60,
        )
        spun, down, worst_add_us = result
        assert spun == (Atom("ok"), b"spun")
        assert down == Atom("still_up")
        assert worst_add_us < 100_000
    finally:
        c.close()
        served.stop()


def test_epmd_less_operation_at_a_fixed_port(tmp_path: Path) -> None:
    # No EPMD registration: the node listens on 127.0.0.1:PORT; an erl on 127.0.0.2 that
    # assumes every node listens on PORT (-erl_epmd_port) reaches it directly.
    runtime = runtime_or_skip("otp25")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = ServedNode(tmp_path, cookie=COOKIE, extra=["--no-epmd", "--port", str(port)])
    c = DistClient(
        runtime.erl,
        tmp_path / "client",
        cookie=COOKIE,
        erlc=runtime.erlc,
        name=unique_name("noepmd").replace("@127.0.0.1", "@127.0.0.2"),
        extra=["-start_epmd", "false", "-erl_epmd_port", str(port), "-kernel", "inet_dist_use_interface", "{127,0,0,2}"],
    )
    try:
        c.set("Node", served.atom)
        assert f"-erl_epmd_port {port}" in served.banner
        assert call(c, "{add, 40, 2}") == (Atom("ok"), 42)
    finally:
        c.close()
        served.stop()


def test_short_names(tmp_path: Path) -> None:
    runtime = runtime_or_skip("otp25")
    served = ServedNode(tmp_path, cookie=COOKIE, name=None, extra=[], short_name=f"pyshort{os.getpid()}")
    c = DistClient(runtime.erl, tmp_path / "client", cookie=COOKIE, erlc=runtime.erlc, short_name=f"cshort{os.getpid()}")
    try:
        assert "iex --sname" in served.banner
        c.set("Node", served.atom)
        assert call(c, "{add, 1, 2}") == (Atom("ok"), 3)
    finally:
        c.close()
        served.stop()


def test_peer_state_is_dropped_when_a_peer_disconnects(tmp_path: Path, node: ServedNode, client: DistClient) -> None:
    runtime = runtime_or_skip("otp25")
    other = DistClient(runtime.erl, tmp_path, cookie=COOKIE, erlc=runtime.erlc)
    other.set("Node", node.atom)
    assert call(other, "{add, 1, 1}") == (Atom("ok"), 2)
    assert Atom(other.name) in call(client, "info")[1][Atom("peers")]
    other.close()
    deadline = time.monotonic() + 5
    while Atom(other.name) in call(client, "info")[1][Atom("peers")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Atom(other.name) not in call(client, "info")[1][Atom("peers")]


# --- Hostile and odd peers -------------------------------------------------------------------


def test_a_peer_that_stops_reading_does_not_stall_the_others(node: ServedNode, client: DistClient) -> None:
    # A raw peer asks (through the Python path: REG_SEND_TT) for a 32 MB echo and never reads
    # the answer. Other peers' calls, Python-path ones included, must go on.
    port = epmd_port_of(node.name)
    me = unique_name("stuck")
    sock = raw_peer(port, node.name, COOKIE, me)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        caller = Pid(me, 1, 0, 7)
        ref = Reference(me, 7, [1, 2, 3])
        request = (Atom("$gen_call"), (caller, ref), (Atom("echo"), b"x" * (32 << 20)))
        sock.sendall(pass_through_frame((16, caller, Atom(""), Atom("rustelixir"), Atom("token")), request))
        time.sleep(1.0)
        started = time.monotonic()
        ok, natives = call(client, "functions")
        assert ok == Atom("ok") and time.monotonic() - started < 2.0
        assert call(client, "{add, 1, 1}") == (Atom("ok"), 2)
    finally:
        sock.close()


def test_control_fields_of_the_wrong_kind_close_only_that_connection(node: ServedNode, client: DistClient) -> None:
    port = epmd_port_of(node.name)
    me = unique_name("odd")
    sock = raw_peer(port, node.name, COOKIE, me)
    try:
        # MONITOR_P whose reference is a list, then a call in the same write.
        caller = Pid(me, 1, 0, 7)
        sock.sendall(
            pass_through_frame((19, caller, Atom("net_kernel"), [1]))
            + pass_through_frame((6, caller, Atom(""), Atom("rustelixir")), (Atom("$gen_call"), (caller, Reference(me, 7, [1, 2, 3])), Atom("functions")))
        )
        sock.settimeout(5)
        assert sock.recv(1 << 16) in (b"",)  # closed, nothing answered on it
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    assert "MonitorP control message: ref is list" in node.log()
    assert call(client, "{add, 2, 2}") == (Atom("ok"), 4)


def test_a_forwarded_from_is_answered_where_the_caller_lives(tmp_path: Path, node: ServedNode) -> None:
    # Node A sends a $gen_call whose From is a process on node B (the proxy pattern): the
    # reply must reach B, for a fast-path native and a Python-path request alike.
    runtime = runtime_or_skip("otp25")
    a = DistClient(runtime.erl, tmp_path / "a", cookie=COOKIE, erlc=runtime.erlc)
    b = DistClient(runtime.erl, tmp_path / "b", cookie=COOKIE, erlc=runtime.erlc)
    try:
        for c in (a, b):
            c.set("Node", node.atom)
        b.eval("pong = net_adm:ping(Node), register(waiter, self()), ok.")
        for request in ("{add, 1, 2}", "functions"):
            b_pid_tag = b.eval("{self(), make_ref()}.")
            a.set("From", b_pid_tag)
            a.eval(f"{{rustelixir, Node}} ! {{'$gen_call', From, {request}}}, ok.")
            b.set("Tag", b_pid_tag[1])
            reply = b.eval("receive {Tag, R} -> R after 5000 -> no_reply end.")
            assert reply != Atom("no_reply") and reply[0] == Atom("ok")
    finally:
        a.close()
        b.close()


def test_closed_connections_release_their_descriptors(node: ServedNode) -> None:
    import os as os_module

    pid = int(node.proc.pid)
    port = epmd_port_of(node.name)
    before = len(os_module.listdir(f"/proc/{pid}/fd"))
    for _ in range(60):
        raw_peer(port, node.name, COOKIE).close()
    deadline = time.monotonic() + 5
    while len(os_module.listdir(f"/proc/{pid}/fd")) > before + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(os_module.listdir(f"/proc/{pid}/fd")) <= before + 10


def test_sleep_is_bounded(client: DistClient) -> None:
    assert call(client, "{sleep, 1 bsl 80}") == (
        Atom("error"),
        (Atom("badarg"), 1, b"expected at most 86400000 milliseconds (a day)"),
    )
