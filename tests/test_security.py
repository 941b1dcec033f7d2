"""Resource references and holder monitors against hostile peers, on real nodes: a process
cannot reach another process's resource by guessing its reference from one of its own, and
a peer cannot free other processes' resources with MONITOR_P_EXITs it forges."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rustelixir
from beamnodes import DistClient, RawPeer, ServedNode, client_fixture, node_fixture
from conftest import runtime_or_skip
from rustelixir import Atom, Pid, Reference
from rustelixir.node import Node

COOKIE = "rustelixir-security-cookie"
OK = Atom("ok")


node = node_fixture("security-node", cookie=COOKIE, extra=["-v"])
client = client_fixture("security-client", ping=True)


def resources(client: DistClient) -> dict[Atom, Any]:
    ok, value = client.eval("gen_server:call({rustelixir, Node}, info).")
    assert ok == OK
    return value[Atom("resources")]  # type: ignore[no-any-return]


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


# --- Forged MONITOR_P_EXIT -----------------------------------------------------------------


def _ext(term: Any) -> bytes:
    return rustelixir.encode(term)[1:]


def _pid_with_long_atom(pid: Pid) -> bytes:
    """`pid` encoded with its node as ATOM_UTF8_EXT instead of SMALL_ATOM_UTF8_EXT: the same
    pid to any decoder, other bytes (the fast path compares the server's pid byte for byte,
    so an exit to the server written this way is handled in Python)."""
    encoded = _ext(pid)
    assert encoded[0] == 88 and encoded[1] == 119, encoded[:2]
    name_len = encoded[2]
    return bytes([88, 118, 0, name_len]) + encoded[3:]


def monitor_exit_frame(shape: int, from_proc: Any, to_pid: bytes, ref: Reference, reason: Any = Atom("normal")) -> bytes:
    """A pass-through MONITOR_P_EXIT ({21, From, To, Ref, Reason}) or PAYLOAD_MONITOR_P_EXIT
    ({28, From, To, Ref} then Reason), `to_pid` given as its bytes."""
    if shape == 21:
        control = bytes([104, 5, 97, 21]) + _ext(from_proc) + to_pid + _ext(ref) + _ext(reason)
        body = bytes([112, 131]) + control
    else:
        control = bytes([104, 4, 97, 28]) + _ext(from_proc) + to_pid + _ext(ref)
        body = bytes([112, 131]) + control + rustelixir.encode(reason)
    return struct.pack(">I", len(body)) + body


def neighbours(ref: Reference, spread: int = 40) -> list[Reference]:
    """References near `ref`: each id word moved by +-1..spread, and each bit flipped."""
    out = set()
    for i, word in enumerate(ref.ids):
        for value in [*(word + k for k in range(-spread, spread + 1) if k), *(word ^ (1 << b) for b in range(32))]:
            ids = list(ref.ids)
            ids[i] = value & 0xFFFFFFFF
            out.add(tuple(ids))
    return [Reference(ref.node.name, ref.creation, list(ids)) for ids in sorted(out)]


@pytest.fixture
def holdings(client: DistClient, node: ServedNode) -> Iterator[dict[str, Any]]:
    """Processes A and B on the erl node each hold a Buffer; a raw peer's process P holds a
    third one (shared with it, then released by its creator), and the raw peer has read the
    MONITOR_P the node sent for P."""
    peer = RawPeer(node)
    p = peer.pid(11)
    client.set("RawHolder", p)
    a, ref_a, b, ref_b, ref_p = client.eval(
        SPAWN_HOLDER + "New = fun() -> {ok, R} = gen_server:call({rustelixir, Node}, {buffer_new, 8}), R end,"
        "HA = Holder(New), RefA = Result(HA), HB = Holder(New), RefB = Result(HB),"
        "{ok, RefP} = gen_server:call({rustelixir, Node}, {buffer_new, 8}),"
        "{ok, ok} = gen_server:call({rustelixir, Node}, {share, RefP, RawHolder}),"
        "{ok, ok} = gen_server:call({rustelixir, Node}, {release, RefP}),"
        "{HA, RefA, HB, RefB, RefP}."
    )
    server = client.eval("{ok, #{pid := Pid}} = gen_server:call({rustelixir, Node}, info), Pid.")
    (control,) = peer.receive(lambda t: type(t[0]) is tuple and t[0][0] == 19 and t[0][2] == p)
    assert control[1] == server
    try:
        yield {"peer": peer, "server": server, "monitor": control[3], "p": p, "a": a, "b": b,
               "refs": {"a": ref_a, "b": ref_b, "p": ref_p}}  # fmt: skip
    finally:
        peer.close()
        stop(client, a, b)


def assert_intact(client: DistClient, h: dict[str, Any], live_before: int) -> None:
    assert resources(client)[Atom("live")] == live_before
    assert holders(client, h["refs"]["a"]) == [h["a"]]
    assert holders(client, h["refs"]["b"]) == [h["b"]]
    assert holders(client, h["refs"]["p"]) == [h["p"]]


PATHS = {
    "fast": lambda server: _ext(server),  # the server's pid in the node's own bytes
    "python": _pid_with_long_atom,  # the same pid in other bytes: past the fast path
}


@pytest.mark.beam
@pytest.mark.parametrize("shape", [21, 28])
@pytest.mark.parametrize("path", sorted(PATHS))
def test_forged_monitor_exits_free_nothing(
    client: DistClient, node: ServedNode, holdings: dict[str, Any], path: str, shape: int
) -> None:
    h = holdings
    peer, to_server, monitor = h["peer"], PATHS[path](h["server"]), h["monitor"]
    live_before = resources(client)[Atom("live")]
    forged_before = resources(client)[Atom("forged_exits")]
    logged_before = node.log().count("forged")
    other = RawPeer(node)
    try:
        frames = []
        # Exits for the other holders, with references near the one monitor reference the
        # peer has seen, and with that reference itself.
        for victim in (h["a"], h["b"]):
            frames += [monitor_exit_frame(shape, victim, to_server, guess) for guess in neighbours(monitor)]
            frames.append(monitor_exit_frame(shape, victim, to_server, monitor))
        # P's own monitor, named for another process of P's node.
        frames.append(monitor_exit_frame(shape, peer.pid(12), to_server, monitor))
        # Guesses near P's monitor, naming P.
        frames += [monitor_exit_frame(shape, h["p"], to_server, guess) for guess in neighbours(monitor, 5)]
        peer.send(b"".join(frames))
        assert peer.call(Atom("functions"))[0] == OK  # all dealt with, and the connection is up
        # Right process, right reference, but sent over another node's connection.
        other.send(monitor_exit_frame(shape, h["p"], to_server, monitor))
        assert other.call(Atom("functions"))[0] == OK
    finally:
        other.close()
    assert_intact(client, h, live_before)
    # Counted: the four naming the real monitor, for another process or from another node
    # (the guesses name no monitor at all); those that reached Python are logged too.
    assert resources(client)[Atom("forged_exits")] == forged_before + 4
    if path == "python":
        assert node.log().count("forged") == logged_before + 4
    else:
        assert node.log().count("forged") == logged_before  # absorbed by the fast path

    # P's own exit, on its own connection, for the monitor sent to it: P's buffer is freed.
    peer.send(monitor_exit_frame(shape, h["p"], to_server, monitor))
    assert peer.call(Atom("functions"))[0] == OK
    assert resources(client)[Atom("live")] == live_before - 1
    assert holders(client, h["refs"]["p"]) is None
    assert holders(client, h["refs"]["a"]) == [h["a"]]
    assert holders(client, h["refs"]["b"]) == [h["b"]]
