"""Attacks on the surfaces added last (distributed spawn, `:pg`, fragments, the metrics
endpoint, TLS), each against a real `rustelixir serve` spoken to by raw peers that did a real
handshake with the cookie: what a hostile peer does must cost it at most its own
connection, never another peer's calls, and never unbounded state on the node."""

from __future__ import annotations

import os
import re
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from rustelixir import Atom, ImproperList, Pid, Reference
from rustelixir._native import decode_dist

from beamnodes import ServedNode, frame_bodies, pass_through_frame, raw_peer, served, unique_name, until_closed

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-attack-cookie"
OK = Atom("ok")


def dist_port(node: ServedNode) -> int:
    return int(node.banner.split(" on port ")[1].split(".")[0])


class Raw:
    """A raw peer of `node`: a real handshake, then frames of our own making."""

    def __init__(self, node: ServedNode, prefix: str = "raw") -> None:
        self.name = unique_name(prefix)
        self.sock = raw_peer(dist_port(node), node.name, COOKIE, self.name)
        self.buffer = bytearray()
        self.seen: list[tuple[Any, ...]] = []
        self.serial = 100

    def pid(self, n: int = 1) -> Pid:
        return Pid(self.name, n, 0, 7)

    def ref(self) -> Reference:
        self.serial += 1
        return Reference(self.name, 7, [self.serial, 2, 3])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, match: Callable[[tuple[Any, ...]], bool], timeout: float = 10) -> tuple[Any, ...]:
        """The first message (decoded control and payload) `match` accepts, read or seen."""
        for i, terms in enumerate(self.seen):
            if match(terms):
                return self.seen.pop(i)
        self.sock.settimeout(timeout)
        for body in frame_bodies(self.sock, self.buffer):
            terms = tuple(decode_dist(body))
            if match(terms):
                return terms
            self.seen.append(terms)
        raise ConnectionError("closed")

    def call(self, request: Any, timeout: float = 10) -> Any:
        caller, tag = self.pid(), self.ref()
        self.send(call_frame(caller, ImproperList([Atom("alias")], tag), request))
        return self.receive(lambda t: is_reply(t, tag), timeout)[1][1]

    def close(self) -> None:
        self.sock.close()


def call_frame(caller: Pid, tag: Any, request: Any) -> bytes:
    return pass_through_frame((6, caller, Atom(""), Atom("rustelixir")), (Atom("$gen_call"), (caller, tag), request))


def is_reply(terms: tuple[Any, ...], tag: Reference) -> bool:
    if len(terms) != 2 or type(terms[1]) is not tuple or len(terms[1]) != 2:
        return False
    got = terms[1][0]
    return got == tag or (isinstance(got, ImproperList) and got.tail == tag)


def spawn_frame(caller: Pid, ref: Reference, mfa: Any, options: Any, args: Any) -> bytes:
    return pass_through_frame((29, ref, caller, caller, mfa, options), args)


def erpc_call(caller: Pid, ref: Reference, result: Reference, fun: str, args: list[Any]) -> bytes:
    return spawn_frame(caller, ref, (Atom("erpc"), Atom("execute_call"), 4), [Atom("monitor")],
                       [result, Atom("rustelixir"), Atom(fun), args])  # fmt: skip


def info(node: ServedNode) -> dict[str, Any]:
    peer = Raw(node, "info")
    try:
        reply = peer.call(Atom("info"))
    finally:
        peer.close()
    assert reply[0] == OK, reply
    return {k.name: v for k, v in reply[1].items()}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    extra = ["--max-in-flight", "4", "--workers", "4", "--metrics-port", "0", "--pg-group", "attacked"]
    with served(tmp_path_factory.mktemp("attacks"), cookie=COOKIE, extra=extra) as node:
        yield node


# --- Cancelling another peer's calls ----------------------------------------------------------


def test_a_demonitor_from_another_node_does_not_cancel_a_call(node: ServedNode) -> None:
    victim, attacker = Raw(node, "victim"), Raw(node, "attacker")
    try:
        caller, tag = victim.pid(), victim.ref()
        victim.send(call_frame(caller, ImproperList([Atom("alias")], tag), (Atom("sleep"), 500)))
        time.sleep(0.1)  # the call is in flight
        # The victim's monitor (its alias), demonitored over the attacker's own connection.
        attacker.send(pass_through_frame((20, attacker.pid(), Atom("rustelixir"), tag)))
        assert attacker.call(Atom("functions"))[0] == OK  # the attacker's frame was read
        reply = victim.receive(lambda t: is_reply(t, tag), timeout=5)
        assert reply[1][1] == (OK, OK)
    finally:
        victim.close()
        attacker.close()


def test_a_demonitor_from_another_node_does_not_cancel_a_spawned_call(node: ServedNode) -> None:
    victim, attacker = Raw(node, "victim"), Raw(node, "attacker")
    try:
        caller, ref, result = victim.pid(), victim.ref(), victim.ref()
        victim.send(erpc_call(caller, ref, result, "sleep", [500]))
        (spawn_reply,) = victim.receive(lambda t: t[0][0] == 31)
        time.sleep(0.1)
        attacker.send(pass_through_frame((20, attacker.pid(), spawn_reply[4], ref)))
        assert attacker.call(Atom("functions"))[0] == OK
        exit_control, reason = victim.receive(lambda t: t[0][0] == 28, timeout=5)
        assert reason == (result, Atom("return"), OK)
    finally:
        victim.close()
        attacker.close()


# --- Spawn requests ---------------------------------------------------------------------------


def long_atom(n: int) -> bytes:
    """ATOM_UTF8_EXT of `n` ASCII characters (OTP refuses atoms over 255 characters)."""
    return bytes([118]) + struct.pack(">H", n) + b"a" * n


@pytest.mark.parametrize("where", ["module", "function", "erpc function", "call"])
def test_an_atom_over_255_characters_closes_its_connection_without_an_internal_error(node: ServedNode, where: str) -> None:
    peer = Raw(node, "longatom")
    try:
        caller, ref, result = peer.pid(), peer.ref(), peer.ref()
        marker = Atom("zzmarker")
        if where == "call":
            frame = call_frame(caller, ImproperList([Atom("alias")], ref), (marker, 1))
        elif where == "erpc function":
            frame = erpc_call(caller, ref, result, "zzmarker", [1, 2])
        else:
            mfa = (marker, Atom("f"), 0) if where == "module" else (Atom("rustelixir"), marker, 0)
            frame = spawn_frame(caller, ref, mfa, [Atom("monitor")], [])
        encoded = bytes([119, 8]) + b"zzmarker"  # SMALL_ATOM_UTF8_EXT
        assert frame.count(encoded) == 1
        body = frame[4:].replace(encoded, long_atom(300))
        before = node.log().count("internal error")
        peer.send(struct.pack(">I", len(body)) + body)
        assert until_closed(peer.sock, 10.0) < 10.0  # not a term any node may send
    finally:
        peer.close()
    deadline = time.monotonic() + 10
    while f"disconnected from {peer.name}" not in node.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert node.log().count("internal error") == before, node.log()[-2000:]
    assert info(node)["node"] == Atom(node.name)
