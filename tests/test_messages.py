"""Messages from natives (issue 12, item 5), against real nodes: a native sends to its
caller or to any process during its call, streams items to its caller
(`{rustelixir_stream, Tag, Item}`, before its reply), and a thread or task it started
sends after the call returned; in Rust (rustelixir_test_natives) and in Python
(tests/natives_fixture.py). Also: a Rust native named apart from its function."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamnodes import TEST_NATIVES, DistClient, ServedNode, calling, client_fixture, node_fixture
from conftest import runtime_or_skip
from rustelixir import Atom

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-messages-cookie"

node = node_fixture("messages-node", cookie=COOKIE, extra=["--module", TEST_NATIVES, "--module", "natives_fixture"])
client = client_fixture("messages-client", ping=True)

# Makes the call the way gen_server:call does (a monitor that is also the alias the reply
# comes to), then collects the call's stream items until its reply: {Items, Reply}.
COLLECT = (
    "Collect = fun(Request) ->"
    "  M = erlang:monitor(process, {rustelixir, Node}, [{alias, demonitor}]),"
    "  Tag = [alias | M],"
    "  {rustelixir, Node} ! {'$gen_call', {self(), Tag}, Request},"
    "  Loop = fun L(Acc) -> receive"
    "    {rustelixir_stream, Tag, Item} -> L([Item | Acc]);"
    "    {Tag, Reply} -> erlang:demonitor(M, [flush]), {lists:reverse(Acc), Reply}"
    "    after 5000 -> {lists:reverse(Acc), timeout} end end,"
    "  Loop([])"
    " end,"
)
FLUSH = "Flush = fun F(Acc) -> receive X -> F([X | Acc]) after 200 -> lists:reverse(Acc) end end,"


@pytest.mark.parametrize("native", ["test_emit", "py_emit", "py_emit_slow"])
def test_items_stream_to_the_caller_in_order_before_the_reply(client: DistClient, native: str) -> None:
    assert client.eval(COLLECT + f"Collect({{{native}, 4}}).") == ([1, 2, 3, 4], (Atom("ok"), 4))
    assert client.eval(COLLECT + f"Collect({{{native}, 0}}).") == ([], (Atom("ok"), 0))


def test_a_plain_gen_server_call_takes_its_reply_not_an_item(client: DistClient) -> None:
    """Items carry the call's tag inside a 3-tuple: gen_server:call never mistakes one for
    its reply; they wait in the mailbox (gen_server's alias is gone by then: they may be
    dropped, but never taken for a reply)."""
    assert client.eval(FLUSH + "{gen_server:call({rustelixir, Node}, {test_emit, 3}), Flush([])}.")[0] == (Atom("ok"), 3)


def test_items_of_calls_made_at_once_never_mix(client: DistClient) -> None:
    got = client.eval(
        COLLECT + "Self = self(),"
        "Ps = [spawn(fun() -> Self ! {self(), Collect({test_emit, 100})} end) || _ <- lists:seq(1, 8)],"
        "[receive {P, R} -> R after 10000 -> timeout end || P <- Ps]."
    )
    assert got == [(list(range(1, 101)), (Atom("ok"), 100))] * 8


def test_a_slow_native_streams_until_its_caller_gives_up(client: DistClient) -> None:
    _, seen = client.eval("gen_server:call({rustelixir, Node}, {test_cancel_seen}).")
    items = client.eval(
        FLUSH + "catch gen_server:call({rustelixir, Node}, {test_emit_slow, 1000, 5}, 100),"
        "[I || {rustelixir_stream, _, I} <- Flush([])]."
    )
    assert items == [] or items == list(range(1, len(items) + 1))  # in order, if any got through
    for _ in range(100):
        _, now = client.eval("gen_server:call({rustelixir, Node}, {test_cancel_seen}).")
        if now > seen:
            break
        client.eval("timer:sleep(20).")
    assert now == seen + 1


@pytest.mark.parametrize("native,sent", [("test_send", (Atom("ok"), Atom("sent"))), ("py_send", (Atom("ok"), True))])
def test_a_native_sends_to_its_caller_and_to_a_process_on_another_node(
    client: DistClient, node: ServedNode, tmp_path: Path, native: str, sent: object
) -> None:
    assert client.eval(
        FLUSH + f"R = gen_server:call({{rustelixir, Node}}, {{{native}, self(), {{hello, [1, 2], <<\"x\">>}}}}), {{R, Flush([])}}."
    ) == (sent, [(Atom("hello"), [1, 2], b"x")])
    with calling(runtime_or_skip("otp25"), tmp_path, node, ping=True) as other:
        other_pid = other.eval("self().")
        client.set("Other", other_pid)
        assert client.eval(f"gen_server:call({{rustelixir, Node}}, {{{native}, Other, from_a_native}}).") == sent
        assert other.eval("receive M -> M after 5000 -> timeout end.") == Atom("from_a_native")


def test_sending_to_a_node_that_is_not_connected_says_so(client: DistClient) -> None:
    elsewhere = "binary_to_term(<<131, 88, 119, 17, \"nowhere@127.0.0.1\", 0:32, 1:32, 1:32, 1:32>>)"
    assert client.eval(f"gen_server:call({{rustelixir, Node}}, {{test_send, {elsewhere}, hi}}).") == (
        Atom("error"),
        b"the destination's node is not connected",
    )
    assert client.eval(f"gen_server:call({{rustelixir, Node}}, {{py_send, {elsewhere}, hi}}).") == (Atom("ok"), False)


def test_a_thread_started_by_a_native_sends_after_the_call(client: DistClient) -> None:
    got = client.eval(
        "R = gen_server:call({rustelixir, Node}, {test_spawn, 50, [a, 1]}),"
        "{R, receive M -> M after 5000 -> timeout end}."
    )
    assert got == ((Atom("ok"), Atom("started")), (Atom("done"), [Atom("a"), 1]))
    got = client.eval(
        "R = gen_server:call({rustelixir, Node}, {test_spawn, 0, panic}), {R, receive M -> M after 5000 -> timeout end}."
    )
    assert got == ((Atom("ok"), Atom("started")), (Atom("error"), (Atom("panic"), b"the thread panicked")))


def test_a_python_task_sends_after_the_call(client: DistClient) -> None:
    got = client.eval(
        "R = gen_server:call({rustelixir, Node}, {py_send_later, 50, later}), {R, receive M -> M after 5000 -> timeout end}."
    )
    assert got == ((Atom("ok"), Atom("started")), Atom("later"))


def test_caller_and_make_ref(client: DistClient, node: ServedNode) -> None:
    me, (ok, (caller, reference, sender_caller)) = client.eval("{self(), gen_server:call({rustelixir, Node}, {test_caller})}.")
    assert ok == Atom("ok") and caller == me and sender_caller == me
    assert reference.node == node.atom
    # Each call makes a new one.
    _, (_, other, _) = client.eval("gen_server:call({rustelixir, Node}, {test_caller}).")
    assert other != reference


def test_a_native_named_apart_from_its_function(client: DistClient) -> None:
    assert client.eval("gen_server:call({rustelixir, Node}, {'test_even?', 4}).") == (Atom("ok"), True)
    assert client.eval("gen_server:call({rustelixir, Node}, {'test_even?', 3}).") == (Atom("ok"), False)
    _, functions = client.eval("gen_server:call({rustelixir, Node}, functions).")
    assert (Atom("test_even?"), 1) in functions and (Atom("test_is_even"), 1) not in functions
