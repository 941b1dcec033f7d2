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
from typing import Any

import pytest

from rustelixir import Atom, ImproperList, Pid, Reference

from beamnodes import RawPeer, ServedNode, pass_through_frame, served, spawn_frame, until_closed

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-attack-cookie"
OK = Atom("ok")


def call_frame(caller: Pid, tag: Any, request: Any) -> bytes:
    return pass_through_frame((6, caller, Atom(""), Atom("rustelixir")), (Atom("$gen_call"), (caller, tag), request))


def is_reply(terms: tuple[Any, ...], tag: Reference) -> bool:
    if len(terms) != 2 or type(terms[1]) is not tuple or len(terms[1]) != 2:
        return False
    got = terms[1][0]
    return got == tag or (isinstance(got, ImproperList) and got.tail == tag)


def erpc_call(caller: Pid, ref: Reference, result: Reference, fun: str, args: list[Any]) -> bytes:
    return spawn_frame(caller, ref, (Atom("erpc"), Atom("execute_call"), 4), [Atom("monitor")],
                       [result, Atom("rustelixir"), Atom(fun), args])  # fmt: skip


def info(node: ServedNode) -> dict[str, Any]:
    peer = RawPeer(node, "info")
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
    victim, attacker = RawPeer(node, "victim"), RawPeer(node, "attacker")
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
    victim, attacker = RawPeer(node, "victim"), RawPeer(node, "attacker")
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
    peer = RawPeer(node, "longatom")
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


def test_spawns_past_max_in_flight_are_overloaded_and_a_dropped_asker_frees_its_workers(node: ServedNode) -> None:
    """Regression (no test covered spawns against --max-in-flight, or an asker's node that
    drops with its spawned processes running)."""
    peer = RawPeer(node, "flood")
    n = 200
    try:
        caller = peer.pid()
        asks = [(peer.ref(), peer.ref()) for _ in range(n)]
        peer.send(b"".join(erpc_call(caller, ref, result, "sleep", [3000]) for ref, result in asks))
        overloaded = 0
        for _ in range(n - 4):
            _, reason = peer.receive(lambda t: t[0][0] == 28, timeout=10)
            assert reason[1:3] == (Atom("error"), (Atom("rustelixir"), Atom("overloaded"))), reason
            overloaded += 1
        assert overloaded == n - 4
        now = info(node)
        assert now["in_flight"] == 4
        cancelled = now["cancelled"]
    finally:
        peer.close()
    deadline = time.monotonic() + 5
    while (now := info(node))["in_flight"] or now["cancelled"] != cancelled + 4:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    other = RawPeer(node, "after")
    try:  # the workers are free at once, not after the 3 s sleeps
        caller, ref, result = other.pid(), other.ref(), other.ref()
        started = time.monotonic()
        other.send(erpc_call(caller, ref, result, "sleep", [10]))
        assert other.receive(lambda t: t[0][0] == 28)[1] == (result, Atom("return"), OK)
        assert time.monotonic() - started < 2
    finally:
        other.close()


def test_spawn_options_of_any_shape_are_ignored_but_monitor_and_link(node: ServedNode) -> None:
    """Regression: junk options; a spawn linked and monitored exits to both."""
    peer = RawPeer(node, "opts")
    try:
        caller, ref, result = peer.pid(), peer.ref(), peer.ref()
        options = [Atom("link"), 1, (), (Atom("monitor"),), (Atom("monitor"), [Atom("x")]), [Atom("junk")], b"bin",
                   {Atom("a"): 1}, (Atom("reply"), Atom("error_only")), Atom("monitor")]  # fmt: skip
        peer.send(spawn_frame(caller, ref, (Atom("erpc"), Atom("execute_call"), 4), options,
                              [result, Atom("rustelixir"), Atom("add"), [1, 2]]))  # fmt: skip
        (reply,) = peer.receive(lambda t: t[0][0] == 31)
        assert reply[3] == 3  # linked and monitored
        assert peer.receive(lambda t: t[0][0] == 28)[1] == (result, Atom("return"), 3)
        assert peer.receive(lambda t: t[0][0] == 24)[1] == (result, Atom("return"), 3)
        # A DEMONITOR of a spawn never made, of the node's own pid and of a made-up one.
        peer.send(pass_through_frame((20, caller, reply[4], peer.ref())))
        peer.send(pass_through_frame((20, caller, Pid(node.name, 77777, 5, 1), peer.ref())))
        assert peer.call(Atom("functions"))[0] == OK
    finally:
        peer.close()


# --- :pg ----------------------------------------------------------------------------------------


def test_a_peer_posing_as_ever_new_scopes_leaves_one_monitor_not_one_each(node: ServedNode) -> None:
    peer = RawPeer(node, "pgscope")
    n = 300
    try:
        control, (_, us) = peer.receive(lambda t: t[0][0] == 6 and t[0][3] == Atom("pg") and t[1][0] == Atom("discover"))
        # Junk first: none of it may cost the connection or make a monitor.
        junk = [(), (Atom("discover"),), (Atom("discover"), 1), (Atom("discover"), Pid("other@127.0.0.1", 1, 0, 1)),
                (Atom("$gen_cast"), (Atom("sync"), 1, [])), (Atom("$gen_cast"), Atom("sync")),
                (Atom("$gen_cast"), (Atom("join"), Atom("g"), [peer.pid(5)] * 1000)),
                (Atom("$gen_cast"), (Atom("sync"), peer.pid(6), [(Atom("g"), [peer.pid(7)] * 10_000)]))]  # fmt: skip
        # ... then a "scope" that is a new process each time.
        frames = [pass_through_frame((2, Atom(""), us), message) for message in junk]
        frames += [pass_through_frame((2, Atom(""), us), (Atom("discover"), peer.pid(1000 + i))) for i in range(n)]
        peer.send(b"".join(frames))
        monitors: set[Any] = set()
        deadline = time.monotonic() + 20
        # One SYNC for each discover, and the node's monitors of the scopes.
        syncs = 0
        while syncs < n:
            assert time.monotonic() < deadline
            (control, *payload) = peer.receive(lambda t: True)
            if control[0] == 19 and control[1] == us:
                monitors.add(control[3])
            elif control[0] == 20 and control[1] == us:
                monitors.discard(control[3])
            elif control[0] in (2, 22) and payload and payload[0][0] == Atom("$gen_cast"):
                syncs += 1
        assert peer.call(Atom("functions"))[0] == OK
        while peer.seen:  # what came with the reply
            control = peer.seen.pop(0)[0]
            if control[0] == 19 and control[1] == us:
                monitors.add(control[3])
            elif control[0] == 20 and control[1] == us:
                monitors.discard(control[3])
        # The scope of a node is one process: the one it heard from last, monitored once.
        assert len(monitors) == 1, f"{len(monitors)} monitors held for {n} scope pids of one node"
    finally:
        peer.close()


# --- The metrics endpoint -----------------------------------------------------------------------


def metrics_url(node: ServedNode) -> str:
    match = re.search(r"Metrics: (http://\S+)/metrics", node.banner)
    assert match, node.banner
    return match.group(1)


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_idle_http_clients_cost_the_node_bounded_threads_and_are_dropped(node: ServedNode) -> None:
    base = metrics_url(node)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    pid = node.proc.pid
    threads_before, fds_before = threads(pid), len(os.listdir(f"/proc/{pid}/fd"))
    idle = []
    try:
        for i in range(150):
            s = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            idle.append(s)
        time.sleep(0.5)
        grown = threads(pid) - threads_before, len(os.listdir(f"/proc/{pid}/fd")) - fds_before
        assert grown[0] < 100 and grown[1] < 100, f"{grown[0]} threads and {grown[1]} descriptors for 150 idle clients"
        assert info(node)["node"] == Atom(node.name)  # calls go on meanwhile
        # The node lets go of idle clients: each is closed (or was refused) in bounded time.
        deadline = time.monotonic() + 30
        for s in idle:
            left = deadline - time.monotonic()
            assert until_closed(s, max(0.1, left)) < left, "an idle client kept its connection"
        with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        for s in idle:
            s.close()


def test_http_clients_that_trickle_their_requests_keep_no_place_past_the_deadline(node: ServedNode) -> None:
    """Slowloris: more clients than the endpoint serves at once, each sending its request a
    byte at a time (every byte in time for any idle timeout). Each is dropped at the request
    deadline however it trickles, so /healthz answers while they are still at it."""
    from rustelixir.metrics import MAX_CONNECTIONS, REQUEST_DEADLINE

    base = metrics_url(node)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n"
    tricklers = [socket.create_connection((host, int(port)), timeout=5) for _ in range(MAX_CONNECTIONS + 16)]
    healthy_after = None
    try:
        started = time.monotonic()
        for step in range(int(3 * REQUEST_DEADLINE / 0.25)):
            for s in tricklers:
                try:
                    s.sendall(request[step % len(request) : step % len(request) + 1])
                except OSError:
                    pass  # dropped already
            if healthy_after is None:
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=0.5) as response:
                        if response.status == 200:
                            healthy_after = time.monotonic() - started
                except OSError:
                    pass  # refused while the tricklers hold every place
            time.sleep(0.25)
        assert healthy_after is not None and healthy_after < 2 * REQUEST_DEADLINE, "/healthz refused while clients trickled"
        for s in tricklers:
            until_closed(s, 1.0)  # each was dropped (a timeout here: one still held its place)
    finally:
        for s in tricklers:
            s.close()


def test_http_requests_the_endpoint_does_not_serve_get_a_clear_answer(node: ServedNode) -> None:
    base = metrics_url(node)
    host, port = base.removeprefix("http://").rsplit(":", 1)

    def ask(head: bytes) -> bytes:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(head)
            answer = b""
            try:
                while chunk := s.recv(1 << 16):
                    answer += chunk
            except ConnectionResetError:
                pass  # closed with what it sent unread
            return answer

    assert ask(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert ask(b"GET /nothing HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert ask(b"junk\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert ask(b"GET /healthz?x=1 HTTP/1.0\r\n\r\n").split(b"\r\n\r\n", 1)[1] == b"serving\n"
    # A head longer than the endpoint reads: the connection ends, nothing is answered.
    assert ask(b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20_000 + b"\r\n\r\n") == b""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        assert response.status == 200 and b"rustelixir_calls_total" in response.read()


# --- TLS ------------------------------------------------------------------------------------------


def test_tls_peers_that_stall_or_send_junk_in_the_handshake_are_dropped_in_time(tmp_path: Path) -> None:
    """Regression (stalls inside TLS were not covered): each costs its connection within the
    handshake timeout, and a TLS peer that plays by the rules connects meanwhile."""
    import ssl

    from test_tls import TlsPeer
    from tlscerts import Authority

    authority = Authority(tmp_path / "pki", "ours")
    certs, beam = authority.issue("served"), authority.issue("beam")
    extra = [*certs.serve_args(), "--handshake-timeout", "2", "--max-pending-handshakes", "6"]
    with served(tmp_path / "logs", cookie=COOKIE, extra=extra) as node:
        port = node.dist_port

        def client_hello() -> bytes:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(beam.cacert))
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
            with pytest.raises(ssl.SSLWantReadError):
                tls.do_handshake()
            return outgoing.read()

        hello = client_hello()
        stalled = []
        for data in (hello[: len(hello) // 2], hello):  # half a ClientHello; one, then nothing
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(data)
            stalled.append(s)
        inside = TlsPeer(port, beam)  # TLS done, then no distribution handshake
        half = TlsPeer(port, beam)  # TLS done, then half a name message
        half.send(b"\x00\x00\x00\x40N")
        started = time.monotonic()
        # Junk right after a whole ClientHello: closed at once.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as junk:
            junk.sendall(hello + bytes([0x17, 3, 3, 0, 16]) + b"\xab" * 16)
            assert until_closed(junk, 5) < 2
        # A well-behaved TLS peer connects while the stalled ones wait.
        good = TlsPeer(port, beam)
        good.dist_handshake(node.name, "good", COOKIE)
        good.sock.close()
        for s in [*stalled, inside.sock, half.sock]:
            assert until_closed(s, 10) + (time.monotonic() - started) < 6, "a stalled TLS peer outlived the handshake timeout"
            s.close()


# --- A linked spawn's asker exits ---------------------------------------------------------------


@pytest.mark.parametrize("op", [3, 24], ids=["EXIT", "PAYLOAD_EXIT"])
def test_a_process_spawned_linked_dies_with_its_asker(node: ServedNode, op: int) -> None:
    """`spawn_request(Node, M, F, A, [link])` (as `Node.spawn_link/4`): the asker's exit
    signal reaches the spawned process; it does not trap exits, so its native is cancelled
    (not run to its end holding a worker and a slot of --max-in-flight)."""
    peer, other = RawPeer(node, "linker"), RawPeer(node, "bystander")
    try:
        caller, ref, result = peer.pid(), peer.ref(), peer.ref()
        peer.send(spawn_frame(caller, ref, (Atom("erpc"), Atom("execute_call"), 4), [Atom("link")],
                              [result, Atom("rustelixir"), Atom("sleep"), [3000]]))  # fmt: skip
        (reply,) = peer.receive(lambda t: t[0][0] == 31)
        spawned = reply[4]
        cancelled = info(node)["cancelled"]
        # Signals that must not kill it: `normal`, from another process, over another connection.
        peer.send(pass_through_frame((op, caller, spawned), Atom("normal")) if op == 24 else pass_through_frame((op, caller, spawned, Atom("normal"))))
        peer.send(pass_through_frame((3, peer.pid(9), spawned, Atom("killed"))))
        other.send(pass_through_frame((3, caller, spawned, Atom("killed"))))
        assert other.call(Atom("functions"))[0] == OK and peer.call(Atom("functions"))[0] == OK
        assert info(node)["cancelled"] == cancelled
        # Its asker's own exit does.
        peer.send(pass_through_frame((op, caller, spawned), Atom("boom")) if op == 24 else pass_through_frame((op, caller, spawned, Atom("boom"))))
        deadline = time.monotonic() + 2
        while (now := info(node))["cancelled"] != cancelled + 1 or now["in_flight"]:
            assert time.monotonic() < deadline, f"still running: {now['in_flight']} in flight"
            time.sleep(0.05)
    finally:
        peer.close()
        other.close()
