"""Natives, called by real BEAM nodes: typed Rust natives (conversions, badarg with the
argument's index, panics), Python natives (plain, slow, async, exceptions), cancellation
of both when the caller gives up, quick calls unaffected by slow ones, and isolation: a
native that crashes the node process takes only that process down."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from beamnodes import TEST_NATIVES, DistClient, ServedNode, client_fixture, elixir_or_skip, node_fixture, unique_name
from rustelixir import Atom

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-natives-cookie"


node = node_fixture("natives-node", cookie=COOKIE, extra=["--module", "natives_fixture", "--module", TEST_NATIVES, "--workers", "24"])
client = client_fixture("natives-client")


def call(client: DistClient, request: str, timeout_ms: int = 5000) -> object:
    return client.eval(f"gen_server:call({{rustelixir, Node}}, {request}, {timeout_ms}).")


def ok(client: DistClient, request: str) -> object:
    result = call(client, request)
    assert isinstance(result, tuple) and result[0] == Atom("ok"), result
    return result[1]


# --- Rust natives: conversions ---------------------------------------------------------------


def test_typed_rust_natives_convert_both_ways(client: DistClient) -> None:
    assert client.eval(
        "Args = {42, 2.5, true, <<\"héllo\"/utf8>>},"
        "{ok, Args} =:= gen_server:call({rustelixir, Node}, erlang:insert_element(1, Args, test_scalars))."
    ) is True
    assert client.eval(
        "Args = {<<1,2,3>>, [1, -2, 1 bsl 40], {7, false}, nil},"
        "{ok, Args} =:= gen_server:call({rustelixir, Node}, erlang:insert_element(1, Args, test_containers))."
    ) is True
    assert client.eval(
        "Args = {#{<<\"a\">> => 1}, some_atom, self(), make_ref()},"
        "{ok, Args} =:= gen_server:call({rustelixir, Node}, erlang:insert_element(1, Args, test_terms))."
    ) is True
    # A #[native] taking &[u8] and &str borrows the binaries from the call's bytes.
    assert ok(client, "{test_borrowed, binary:copy(<<1>>, 100000), <<\"żółw\"/utf8>>}") == (100000, "ŻÓŁW".encode())
    assert call(client, "{test_borrowed, [1, 2], <<>>}") == (Atom("error"), (Atom("badarg"), 1, b"expected a binary, got a list"))
    assert call(client, "{test_borrowed, <<>>, <<255>>}") == (Atom("error"), (Atom("badarg"), 2, b"expected a UTF-8 binary"))
    # An integer is a float too (as Rustler takes it), big ones included.
    assert ok(client, "{test_scalars, 1, 2, true, <<\"s\">>}") == (1, 2.0, True, b"s")
    assert ok(client, "{test_scalars, 1, -(1 bsl 70), true, <<\"s\">>}")[1] == -(2.0**70)
    # A charlist is a Vec<u8> too; Option takes a value as well as nil.
    assert ok(client, "{test_containers, [1, 2], [], {0, true}, 5}") == (b"\x01\x02", [], (0, True), 5)


GOOD = {"test_scalars": ["1", "1.0", "true", "<<\"s\">>"],
        "test_containers": ["<<>>", "[1]", "{1, true}", "nil"],
        "test_terms": ["#{}", "a", "self()", "make_ref()"]}  # fmt: skip
BAD = {
    "test_scalars": [("a", "an atom"), ("<<1>>", "a binary"), ("3", "an integer"), ("[]", "a list")],
    "test_containers": [("a", "an atom"), ("<<1>>", "a binary"), ("{1}", "a tuple"), ("1.5", "a float")],
    "test_terms": [("[]", "a list"), ("1", "an integer"), ("make_ref()", "a reference"), ("self()", "a pid")],
}
EXPECTED = {
    "test_scalars": ["an integer", "a number", "a boolean", "a binary"],
    "test_containers": ["a binary", "a list", "a tuple of 2", "an integer"],
    "test_terms": ["a map", "an atom", "a pid", "a reference"],
}


@pytest.mark.parametrize("native", sorted(GOOD))
@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_badarg_names_the_argument_and_its_type(client: DistClient, native: str, index: int) -> None:
    args = list(GOOD[native])
    bad, got = BAD[native][index - 1]
    args[index - 1] = bad
    result = call(client, "{" + ", ".join([native, *args]) + "}")
    assert result == (Atom("error"), (Atom("badarg"), index, f"expected {EXPECTED[native][index - 1]}, got {got}".encode()))


def test_integer_ranges_are_checked(client: DistClient) -> None:
    assert call(client, "{test_small, 256, 0, 0}") == (
        Atom("error"),
        (Atom("badarg"), 1, b"integer 256 out of range for u8 (0..=255)"),
    )
    assert call(client, "{test_small, 0, 1 bsl 31, 0}")[1][1] == 2
    assert call(client, "{test_small, 0, 0, -1}")[1][1] == 3
    assert ok(client, "{test_small, 255, -(1 bsl 31), (1 bsl 64) - 1}") == (255, -(2**31), 2**64 - 1)


def test_a_rust_panic_is_an_error_and_the_node_serves_on(client: DistClient) -> None:
    assert call(client, "{test_panic, <<\"bad state\">>}") == (Atom("error"), (Atom("panic"), b"bad state"))
    assert ok(client, "{add, 1, 2}") == 3


def test_test_natives_are_listed_only_under_the_flag(client: DistClient, tmp_path: Path) -> None:
    names = {a.name for a, _ in ok(client, "functions")}
    assert "test_panic" in names
    plain = ServedNode(tmp_path, cookie=COOKIE)
    try:
        client.set("Plain", plain.atom)
        listed = client.eval("{ok, L} = gen_server:call({rustelixir, Plain}, functions), [N || {N, _} <- L].")
        assert not any(a.name.startswith("test_") for a in listed)
        assert client.eval("gen_server:call({rustelixir, Plain}, {test_panic, <<>>}).") == (
            Atom("error"),
            (Atom("undef"), Atom("test_panic"), 1),
        )
    finally:
        plain.stop()


# --- Python natives ----------------------------------------------------------------------------


def test_python_natives(client: DistClient) -> None:
    assert ok(client, "{greet, <<\"José\"/utf8>>}") == "hello José".encode()
    assert ok(client, "{slow_sum, [1, 2, 3]}") == 6
    assert ok(client, "{later, 50, {any, [term]}}") == (Atom("any"), [Atom("term")])
    assert call(client, "{checked, -1}") == (Atom("error"), (Atom("badarg"), 1, b"expected a non-negative index"))
    assert call(client, "async_boom") == (Atom("error"), (Atom("exception"), b"KeyError", b"'nope'"))
    assert call(client, "{greet, 1, 2}") == (Atom("error"), (Atom("undef"), Atom("greet"), 2))


def test_a_python_value_that_is_no_term_is_answered_as_an_exception(client: DistClient) -> None:
    # On the event loop and on the worker pool alike; the node serves on.
    for native in ("no_term", "slow_no_term"):
        reply = call(client, native)
        assert reply[0] == Atom("error") and reply[1][:2] == (Atom("exception"), b"EncodeError"), reply
        assert reply[1][2].startswith(b"the native's value is no term: ")
    assert ok(client, "{greet, <<\"x\">>}") == b"hello x"


# --- Concurrency and cancellation --------------------------------------------------------------


def test_16_slow_natives_in_flight_do_not_slow_quick_calls(client: DistClient) -> None:
    result = client.eval(
        "Self = self(),"
        "[spawn(fun() -> Self ! {slow, gen_server:call({rustelixir, Node}, {sleep, 1500})} end) || _ <- lists:seq(1, 16)],"
        "timer:sleep(100),"
        "Quick = [element(1, timer:tc(fun() -> {ok, _} = gen_server:call({rustelixir, Node}, R) end))"
        "         || R <- lists:append(lists:duplicate(10, [{add, 1, 2}, functions, {greet, <<\"x\">>}]))],"
        "Slow = [receive {slow, S} -> S after 5000 -> lost end || _ <- lists:seq(1, 16)],"
        "{lists:max(Quick), lists:usort(Slow)}."
    )
    worst_quick_us, slow = result
    assert slow == [(Atom("ok"), Atom("ok"))]
    assert worst_quick_us < 50_000


def _seen(client: DistClient, counter: str) -> int:
    value = ok(client, counter)
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize(
    ("native", "counter"),
    [("test_wait_cancel", "test_cancel_seen"), ("wait_cancel", "cancel_seen"), ("async_wait_cancel", "cancel_seen")],
)
def test_a_caller_that_gives_up_cancels_the_native(client: DistClient, native: str, counter: str) -> None:
    before = _seen(client, counter)
    # The caller times out after 200 ms: its DEMONITOR_P sets the call's cancellation.
    reason = client.eval(f"catch gen_server:call({{rustelixir, Node}}, {{{native}, 10000}}, 200).")
    assert reason[0] == Atom("EXIT") and reason[1][0] == Atom("timeout")
    deadline = time.monotonic() + 3
    while _seen(client, counter) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _seen(client, counter) == before + 1
    # The caller's mailbox gets no late reply.
    assert client.eval("receive {[alias | _], _} = M -> M after 300 -> none end.") == Atom("none")


def test_a_caller_that_dies_cancels_the_native(client: DistClient) -> None:
    before = _seen(client, "test_cancel_seen")
    client.eval(
        "P = spawn(fun() -> gen_server:call({rustelixir, Node}, {test_wait_cancel, 10000}, 20000) end),"
        "timer:sleep(200), exit(P, kill), ok."
    )
    deadline = time.monotonic() + 3
    while _seen(client, "test_cancel_seen") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _seen(client, "test_cancel_seen") == before + 1


# --- Isolation ---------------------------------------------------------------------------------




@pytest.mark.parametrize("native", ["test_segfault", "test_abort"])
def test_a_crashing_native_takes_down_only_the_node_process(tmp_path: Path, native: str) -> None:
    elixir = elixir_or_skip()
    victim = ServedNode(tmp_path, cookie=COOKIE, extra=["--module", TEST_NATIVES])
    script = f"""
    node = String.to_atom(System.fetch_env!("RUSTELIXIR_NODE"))
    {{:ok, 3}} = GenServer.call({{:rustelixir, node}}, {{:add, 1, 2}})
    {{time, result}} =
      :timer.tc(fn ->
        try do
          GenServer.call({{:rustelixir, node}}, {{:{native}}})
        catch
          :exit, reason -> reason
        end
      end)
    IO.inspect(elem(result, 0))
    IO.puts("survived: #{{Enum.sum(1..100)}} in #{{div(time, 1000)}} ms")
    """
    try:
        out = subprocess.run(
            [elixir, "--name", unique_name("ex"), "--cookie", COOKIE, "-e", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RUSTELIXIR_NODE": victim.name},
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.strip().splitlines()
        assert lines[0] == f'{{:nodedown, :"{victim.name}"}}'
        assert lines[1].startswith("survived: 5050 in ")
        assert int(lines[1].split(" in ")[1].split()[0]) < 2000
        victim.proc.wait(timeout=10)
        assert victim.proc.returncode in (-11, -6)  # SIGSEGV, SIGABRT
    finally:
        victim.stop()


# --- Built-in collections (the README's examples, as written) --------------------------------


def test_readme_collections_examples(client: DistClient) -> None:
    assert client.eval(
        "Rx = {rustelixir, Node},"
        "{ok, Set} = gen_server:call(Rx, {sorted_set_new}),"
        "{ok, 0} = gen_server:call(Rx, {sorted_set_add, Set, 42}),"
        "{ok, 4} = gen_server:call(Rx, {sorted_set_add_many, Set, [7, a, <<\"b\">>]}),"
        "{ok, 1} = gen_server:call(Rx, {sorted_set_index_of, Set, 42}),"
        "{ok, nil} = gen_server:call(Rx, {sorted_set_index_of, Set, 43}),"
        "{ok, [42, a]} = gen_server:call(Rx, {sorted_set_slice, Set, 1, 2}),"
        "{ok, Buf} = gen_server:call(Rx, {buffer_new, 16}),"
        "{ok, ok} = gen_server:call(Rx, {buffer_write, Buf, 4, <<1, 2>>}),"
        "{ok, <<0, 1, 2, 0>>} = gen_server:call(Rx, {buffer_read, Buf, 3, 4}),"
        "{error, {badarg, 2, _}} = gen_server:call(Rx, {buffer_read, Buf, 17, 1}),"
        "{ok, ok} = gen_server:call(Rx, {release, Set}),"
        "{error, {badresource, Set}} = gen_server:call(Rx, {sorted_set_size, Set}),"
        "{error, {badresource, Set}} = gen_server:call(Rx, {release, Set}),"
        "{error, {badarg, 1, _}} = gen_server:call(Rx, {sorted_set_size, Buf}),"
        "done."
    ) == Atom("done")
