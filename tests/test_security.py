"""Resource references against hostile peers, on real nodes: a process cannot reach another
process's resource by guessing its reference from one of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from beamnodes import DistClient, ServedNode
from conftest import runtime_or_skip
from rustelixir import Atom, Pid, Reference
from rustelixir.node import Node

COOKIE = "rustelixir-security-cookie"
OK = Atom("ok")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    served = ServedNode(tmp_path_factory.mktemp("security-node"), cookie=COOKIE, extra=["-v"])
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, node: ServedNode) -> Iterator[DistClient]:
    runtime = runtime_or_skip("otp25")
    c = DistClient(runtime.erl, tmp_path_factory.mktemp("security-client"), cookie=COOKIE, erlc=runtime.erlc)
    c.set("Node", node.atom)
    c.eval("pong = net_adm:ping(Node), ok.")
    try:
        yield c
    finally:
        c.close()


def holders(client: DistClient, ref: Reference) -> list[Pid] | None:
    client.set("Ref", ref)
    reply = client.eval("gen_server:call({rustelixir, Node}, {resource_info, Ref}).")
    if reply[0] != OK:
        return None
    return reply[1][Atom("holders")]  # type: ignore[no-any-return]


# Two helpers evaluated in the client: a process that runs F, reports its value, then waits
# to be told to stop (so it stays a holder); and the wait for that value.
SPAWN_HOLDER = (
    "Holder = fun(F) -> Parent = self(), spawn(fun() -> R = F(), Parent ! {self(), R},"
    " receive stop -> ok end end) end,"
    "Result = fun(P) -> receive {P, R} -> R after 300000 -> timeout end end,"
)


def stop(client: DistClient, *processes: Pid) -> None:
    client.set("StopThese", list(processes))
    client.eval("[P ! stop || P <- StopThese], ok.")


# --- Guessing a neighbour's reference ------------------------------------------------------

# Process B takes its own Buffer's reference apart (NEWER_REFERENCE_EXT: the node, the
# creation, three id words) and asks buffer_read of every reference near it: each id word
# moved by +-1..16667, and each of its 96 bits flipped. All in the Erlang node, one eval.
GUESS_NEIGHBOURS = (
    "fun(Own) ->"
    "  <<131, 90, 3:16, Rest/binary>> = term_to_binary(Own),"
    "  Size = byte_size(Rest) - 12,"
    "  <<Prefix:Size/binary, W0:32, W1:32, W2:32>> = Rest,"
    "  Words = {W0, W1, W2},"
    "  Moved = [setelement(I, Words, (element(I, Words) + S * K) band 16#FFFFFFFF)"
    "           || I <- [1, 2, 3], S <- [1, -1], K <- lists:seq(1, 16667)],"
    "  Flipped = [setelement(I, Words, element(I, Words) bxor (1 bsl Bit))"
    "             || I <- [1, 2, 3], Bit <- lists:seq(0, 31)],"
    "  Guesses = lists:usort(Moved ++ Flipped) -- [Words],"
    "  Found = lists:filtermap(fun({G0, G1, G2}) ->"
    "      Guess = binary_to_term(<<131, 90, 3:16, Prefix/binary, G0:32, G1:32, G2:32>>),"
    "      case gen_server:call({rustelixir, Node}, {buffer_read, Guess, 0, 16}) of"
    "        {error, {badresource, Guess}} -> false;"
    "        Other -> {true, {Guess, Other}}"
    "      end end, Guesses),"
    "  {length(Guesses), Found}"
    " end"
)


@pytest.mark.beam
def test_no_neighbour_of_a_reference_reaches_another_processs_resource(client: DistClient) -> None:
    a, ref_a, b, (tried, found) = client.eval(
        SPAWN_HOLDER + f"Guess = {GUESS_NEIGHBOURS},"
        "A = Holder(fun() -> {ok, R} = gen_server:call({rustelixir, Node}, {buffer_new, 16}),"
        "  {ok, ok} = gen_server:call({rustelixir, Node}, {buffer_write, R, 0, <<\"A's secret bytes\">>}), R end),"
        "RefA = Result(A),"
        "B = Holder(fun() -> {ok, Own} = gen_server:call({rustelixir, Node}, {buffer_new, 16}), Guess(Own) end),"
        "{A, RefA, B, Result(B)}.",
        timeout=600,
    )
    assert tried >= 100_000
    assert found == []  # every guess answered {error, {badresource, Guess}}
    assert holders(client, ref_a) == [a]  # B did not become a holder of A's buffer
    stop(client, a, b)


@pytest.mark.beam
@pytest.mark.parametrize("otp", ["otp25", "otp28"])
def test_random_references_work_for_every_peer_release(otp: str, node: ServedNode, tmp_path: Path) -> None:
    # Every id word is random now (the first holds 18 bits): each of 2,000 references a peer
    # of that release gets back is distinct, survives its term_to_binary round trip, and
    # reaches its own resource.
    runtime = runtime_or_skip(otp)
    c = DistClient(runtime.erl, tmp_path, cookie=COOKIE, erlc=runtime.erlc)
    try:
        c.set("Node", node.atom)
        assert c.eval(
            "Rx = {rustelixir, Node},"
            "Refs = [element(2, {ok, _} = gen_server:call(Rx, {buffer_new, N rem 7 + 1})) || N <- lists:seq(1, 2000)],"
            "Distinct = length(lists:usort(Refs)) =:= 2000,"
            "Round = lists:all(fun(R) -> binary_to_term(term_to_binary(R)) =:= R end, Refs),"
            "Sizes = [element(2, gen_server:call(Rx, {buffer_size, R})) || R <- Refs],"
            "[{ok, ok} = gen_server:call(Rx, {release, R}) || R <- Refs],"
            "{Distinct, Round, Sizes =:= [N rem 7 + 1 || N <- lists:seq(1, 2000)]}.",
            timeout=120,
        ) == (True, True, True)
    finally:
        c.close()


def test_python_references_are_random() -> None:
    # The references the node makes in Python (Node.call's monitors and tags) are as
    # unguessable as the resource table's: 18 + 32 + 32 random bits.
    node = Node("refs@127.0.0.1", cookie="c", epmd="none", port=1)
    made = [node.make_ref() for _ in range(20_000)]
    assert all(r.node == Atom("refs@127.0.0.1") and r.creation == node.creation and len(r.ids) == 3 for r in made)
    assert len({tuple(r.ids) for r in made}) == len(made)
    assert all(r.ids[0] < 1 << 18 for r in made)
    for word, bits in ((0, 18), (1, 32), (2, 32)):
        for bit in range(bits):
            set_in = sum(r.ids[word] >> bit & 1 for r in made)
            assert 9_000 < set_in < 11_000, (word, bit, set_in)
