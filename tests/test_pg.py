"""`serve --pg-group`: the node's server in a `:pg` group of real BEAM nodes (OTP 25 and 28).

Two `erl` nodes run the scope; rustelixir nodes connect to them (`--connect`), start pg's
exchange themselves (a hidden node is never discovered), and are listed by
`pg:get_members/2` on both; killed, they leave; restarted, they are back; when a scope
process restarts, they join the new one; shut down, they leave. Every exchange runs against
the real scope process, whose gen_server crashes on a message it does not expect: the tests
check it is still the same process afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rustelixir import Atom

from beamnodes import DistClient, ServedNode, unique_name
from conftest import runtime_or_skip

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-pg-cookie"


@pytest.fixture(scope="module", params=["otp25", "otp28"])
def beams(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DistClient, DistClient]]:
    """Two connected BEAM nodes, each running the default scope `pg` and a scope `natives`."""
    runtime = runtime_or_skip(request.param)
    build = tmp_path_factory.mktemp(f"pg-{runtime.name}")
    a = DistClient(runtime.erl, build, cookie=COOKIE, erlc=runtime.erlc)
    b = DistClient(runtime.erl, build, cookie=COOKIE, erlc=runtime.erlc)
    try:
        b.set("A", Atom(a.name))
        assert b.eval("net_adm:ping(A).") == Atom("pong")
        for beam in (a, b):
            for scope in ("pg", "natives"):
                assert beam.eval(f"{{ok, P}} = pg:start({scope}), is_pid(P).") is True
        yield a, b
    finally:
        a.close()
        b.close()


def start(log_dir: Path, beams: tuple[DistClient, DistClient], *extra: str, name: str | None = None) -> ServedNode:
    connects = [arg for beam in beams for arg in ("--connect", beam.name)]
    return ServedNode(log_dir, cookie=COOKIE, name=name, extra=[*connects, *extra])


def members(beam: DistClient, group: str = "workers", scope: str = "pg") -> list[str]:
    names = beam.eval(f"lists:sort([atom_to_binary(node(P)) || P <- pg:get_members({scope}, {group})]).")
    return [bytes(n).decode() for n in names]


def until_members(beams: tuple[DistClient, ...], expected: list[str], group: str = "workers", scope: str = "pg") -> None:
    """Waits (bounded) until every BEAM lists exactly the servers of the `expected` nodes."""
    want = sorted(expected)
    deadline = time.monotonic() + 20
    while True:
        seen = [members(b, group, scope) for b in beams]
        if all(s == want for s in seen):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"members of {scope}/{group}: {seen}, expected {want} on each")
        time.sleep(0.05)


def scope_pid(beam: DistClient, scope: str = "pg") -> Any:
    return beam.eval(f"whereis({scope}).")


def test_two_nodes_join_a_group_on_two_beams_and_serve_through_it(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    a, b = beams
    scopes = [scope_pid(a), scope_pid(b)]
    one = start(tmp_path, beams, "--pg-group", "workers", "--pg-group", "all")
    two = start(tmp_path, beams, "--pg-group", "workers")
    try:
        until_members(beams, [one.name, two.name])
        until_members(beams, [one.name], group="all")
        # The members are the servers: a call through each pid is answered.
        assert a.eval("[gen_server:call(P, {add, 1, 2}) || P <- pg:get_members(pg, workers)].") == [(Atom("ok"), 3)] * 2
        # Nothing the nodes said crashed a scope.
        assert [scope_pid(a), scope_pid(b)] == scopes
        # Shut down (SIGTERM), a node leaves at once, before its connections close.
        two.stop()
        until_members(beams, [one.name])
        assert [scope_pid(a), scope_pid(b)] == scopes
    finally:
        one.stop()
        two.stop()
    until_members(beams, [])


def test_a_killed_node_leaves_and_is_back_when_restarted(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    name = unique_name("pgkill")
    other = start(tmp_path, beams, "--pg-group", "workers")
    node = start(tmp_path / "1", beams, "--pg-group", "workers", name=name)
    try:
        until_members(beams, [other.name, name])
        node.kill()  # SIGKILL: no leave; the scopes' monitors of it fire with the connections
        until_members(beams, [other.name])
        node = start(tmp_path / "2", beams, "--pg-group", "workers", name=name)
        until_members(beams, [other.name, name])
    finally:
        node.stop()
        other.stop()
    until_members(beams, [])


def test_nodes_rejoin_a_restarted_scope_process(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    a, b = beams
    node = start(tmp_path, beams, "--pg-group", "workers")
    try:
        until_members(beams, [node.name])
        old = scope_pid(a)
        a.eval("P = whereis(pg), R = monitor(process, P), exit(P, kill), receive {'DOWN', R, _, _, _} -> ok end.")
        assert a.eval("{ok, P} = pg:start(pg), is_pid(P).") is True
        assert scope_pid(a) != old
        until_members(beams, [node.name])
    finally:
        node.stop()
    until_members(beams, [])


def test_a_scope_started_after_the_connection_is_joined(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    a, _ = beams
    scope = unique_name("late").split("@")[0]
    node = start(tmp_path, beams, "--pg-scope", scope, "--pg-group", "workers")
    try:
        time.sleep(0.5)  # the node asked, and nobody answered
        assert a.eval(f"{{ok, P}} = pg:start({scope}), is_pid(P).") is True
        until_members((a,), [node.name], scope=scope)
        assert a.eval(f"[gen_server:call(P, {{add, 2, 2}}) || P <- pg:get_members({scope}, workers)].") == [(Atom("ok"), 4)]
    finally:
        node.stop()
    until_members((a,), [], scope=scope)
    a.eval(f"exit(whereis({scope}), kill).")


def test_a_node_joins_its_scope_only(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    node = start(tmp_path, beams, "--pg-scope", "natives", "--pg-group", "workers")
    try:
        until_members(beams, [node.name], scope="natives")
        assert members(beams[0]) == [] and members(beams[1]) == []
    finally:
        node.stop()
    until_members(beams, [], scope="natives")


def test_a_node_dialled_by_a_beam_joins_too(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    a, _ = beams
    node = ServedNode(tmp_path, cookie=COOKIE, extra=["--pg-group", "dialled"])
    try:
        a.set("N", node.atom)
        assert a.eval("gen_server:call({rustelixir, N}, {add, 1, 1}).") == (Atom("ok"), 2)
        until_members((a,), [node.name], group="dialled")
    finally:
        node.stop()
    until_members((a,), [], group="dialled")


def test_the_exchange_in_pg_shapes_and_junk_from_a_peer_ignored(tmp_path: Path, beams: tuple[DistClient, DistClient]) -> None:
    """A BEAM process posing as a scope sees the node's exact messages, and sends it junk."""
    a, _ = beams
    a.eval("Self = self(), spawn(fun() -> register(fakescope, self()),"
           " receive {discover, P} -> Self ! {asked, P} end end), ok.")  # fmt: skip
    node = start(tmp_path, (a,), "--pg-scope", "fakescope", "--pg-group", "workers", "--pg-group", "more")
    try:
        us = a.eval("receive {asked, P} -> P after 10000 -> none end.")
        assert us.node == node.atom
        a.set("Us", us)
        junk = [
            "{discover, not_a_pid}", "{discover, Us}", "{discover}", "{'$gen_cast', {sync, 1, 2}}",
            "{'$gen_cast', junk}", "{join, self(), workers, [self()]}", "{leave, x}", "[1, 2, 3]", "<<\"bytes\">>",
            "{'$gen_call', {self(), make_ref()}, hello}",
        ]  # fmt: skip
        for message in junk:
            a.eval(f"Us ! {message}, ok.")
        # Then a scope's discover (OTP 26+'s form too): answered with our members, as pg's sync cast.
        for discover in ("{discover, self()}", "{discover, self(), #{}}"):
            reply = a.eval(f"Us ! {discover}, receive {{'$gen_cast', M}} -> M after 10000 -> none end.")
            assert reply == (Atom("sync"), us, [(Atom("workers"), [reply[2][0][1][0]]), (Atom("more"), [reply[2][0][1][0]])])
            server = reply[2][0][1][0]
            assert server.node == node.atom
            a.set("Server", server)
            assert a.eval("gen_server:call(Server, {add, 1, 2}).") == (Atom("ok"), 3)
        # The node watches the scope it joined; and at shutdown it leaves in pg's shape.
        node.stop()
        assert a.eval("receive {leave, _, _, _} = L -> L after 10000 -> none end.") == (
            Atom("leave"), us, server, [Atom("workers"), Atom("more")])  # fmt: skip
    finally:
        node.stop()
