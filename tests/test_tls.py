"""TLS distribution against real BEAM nodes started with `-proto_dist inet_tls
-ssl_dist_optfile FILE` (OTP 25, and OTP 28 running OTP 25's ssl: see conftest's
`Runtime.tls_dist_args`): they call the node, the node dials them, peers without a
certificate our CA signed, or without TLS at all, are refused, and the node serves on.
Certificates are made for each run (tests/tlscerts.py)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rustelixir import Atom
from rustelixir.errors import CallError, TlsConfigError, TlsError
from rustelixir.node import Node, TlsConfig
from rustelixir.protocol.handshake import Handshake, HandshakeComplete, Role
from beamnodes import DistClient, ServedNode, executable_or_skip, served, unique_name, until_closed
from conftest import Runtime, runtime_or_skip
from tlscerts import Authority, NodeCerts, ssl_dist_optfile

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-tls-cookie"
RUNTIMES = ["otp25", "otp28"]
# The BEAM nodes' log to stderr: ssl reports a refused handshake, and on stdout the report
# would cut into the frames dist_client answers the test with.
LOG_TO_STDERR = ["-kernel", "logger", "[{handler, default, logger_std_h, #{config => #{type => standard_error}}}]"]


@dataclass(frozen=True)
class Pki:
    """What the tests' nodes hold: `node` is the served node's; `beam` and `beam_rsa` (an
    RSA key) those of BEAM nodes our CA signed; `rogue` one another CA signed (trusting
    ours, so only its own certificate is wrong)."""

    directory: Path
    node: NodeCerts
    beam: NodeCerts
    beam_rsa: NodeCerts
    rogue: NodeCerts


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    executable_or_skip("openssl")
    directory = tmp_path_factory.mktemp("pki")
    ours, rogue = Authority(directory, "ours"), Authority(directory, "rogue")
    return Pki(
        directory=directory,
        node=ours.issue("served"),
        beam=ours.issue("beam"),
        beam_rsa=ours.issue("beam-rsa", kind="rsa"),
        rogue=rogue.issue("rogue", trusts=ours),
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServedNode]:
    with served(tmp_path_factory.mktemp("tls-node-logs"), cookie=COOKIE, extra=[*pki.node.serve_args(), "-v"]) as node:
        yield node


def tls_beam(runtime: Runtime, directory: Path, certs: NodeCerts, *, erl_args: tuple[str, ...] = (), **optfile: object) -> DistClient:
    """A BEAM node speaking TLS distribution with `certs` (`optfile`: ssl_dist_optfile's
    options; `erl_args`: more of erl's), compiled and started in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    options = ssl_dist_optfile(directory / f"ssl_dist_{unique_name('o').split('@')[0]}.conf", certs, **optfile)  # type: ignore[arg-type]
    extra = [*runtime.tls_dist_args(options), *LOG_TO_STDERR, *erl_args]
    return DistClient(runtime.erl, directory, cookie=COOKIE, erlc=runtime.erlc, extra=extra)


def connection_protocol(beam: DistClient, peer: Atom) -> Atom:
    """How `beam` is connected to `peer` (`tls` or `tcp`), from its net_kernel."""
    beam.set("Peer", peer)
    result: Atom = beam.eval(
        "{ok, Info} = net_kernel:node_info(Peer), {net_address, _, _, Protocol, _} = proplists:get_value(address, Info), Protocol."
    )
    return result


def assert_serves(beam: DistClient, node: ServedNode) -> None:
    """`beam` reaches `node` over TLS: add, echo of 1 MiB, and a resource made, used, passed
    back and released."""
    beam.set("Node", node.atom)
    assert beam.eval("net_adm:ping(Node).") == Atom("pong")
    assert connection_protocol(beam, node.atom) == Atom("tls")
    assert beam.eval("gen_server:call({rustelixir, Node}, {add, 1, 2}).") == (Atom("ok"), 3)
    assert beam.eval("gen_server:call({rustelixir, Node}, {add, 1 bsl 100, 1}).") == (Atom("ok"), (1 << 100) + 1)
    assert beam.eval(
        "B = list_to_binary([I rem 251 || I <- lists:seq(1, 1 bsl 20)]),"
        "{ok, Back} = gen_server:call({rustelixir, Node}, {echo, B}, 30000), Back =:= B."
    ) is True  # fmt: skip
    assert beam.eval(
        "R = {rustelixir, Node},"
        "{ok, S} = gen_server:call(R, {sorted_set_new}),"
        "{ok, _} = gen_server:call(R, {sorted_set_add_many, S, [3, 1, 2]}),"
        "{ok, [1, 2, 3]} = gen_server:call(R, {sorted_set_to_list, S}),"
        "{ok, #{type := Type}} = gen_server:call(R, {resource_info, S}),"
        "{ok, ok} = gen_server:call(R, {release, S}),"
        "{error, {badresource, S}} = gen_server:call(R, {sorted_set_size, S}),"
        "Type."
    ) == Atom("sorted_set")  # fmt: skip


# --- A BEAM node dials us ------------------------------------------------------------------


@pytest.mark.parametrize("runtime_name", RUNTIMES)
@pytest.mark.parametrize(
    ("certs", "versions"), [("beam", None), ("beam_rsa", ["tlsv1.3"])], ids=["ecdsa, OTP's TLS versions", "rsa, TLS 1.3"]
)
def test_a_tls_beam_node_calls_add_echo_and_a_resource(
    runtime_name: str, certs: str, versions: list[str] | None, tmp_path: Path, pki: Pki, node: ServedNode
) -> None:
    runtime = runtime_or_skip(runtime_name)
    beam = tls_beam(runtime, tmp_path, getattr(pki, certs), versions=versions)
    try:
        assert_serves(beam, node)
    finally:
        beam.close()
    assert f"TLS with {beam.name}: TLSv1_3" in node.log() or versions is None


# --- We dial a BEAM node --------------------------------------------------------------------


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_the_node_dials_a_tls_beam_node_at_start_up(runtime_name: str, tmp_path: Path, pki: Pki) -> None:
    """`serve --connect NODE` over TLS: the BEAM node sees us (hidden, over TLS) before it
    has dialled anything, and calls us over the connection we made."""
    runtime = runtime_or_skip(runtime_name)
    beam = tls_beam(runtime, tmp_path / "beam", pki.beam_rsa)
    try:
        with served(tmp_path / "logs", cookie=COOKIE, extra=[*pki.node.serve_args(), "--connect", beam.name, "-v"]) as ours:
            assert beam.eval("nodes(hidden).") == [ours.atom]
            assert connection_protocol(beam, ours.atom) == Atom("tls")
            assert f"connected to {beam.name} (initiator)" in ours.log()
            assert_serves(beam, ours)
    finally:
        beam.close()


async def call_rex(pki: Pki, beam: DistClient) -> object:
    """`erlang:node()` on `beam` through its rex, from a Python node with the served node's
    certificate, connecting on demand."""
    tls = TlsConfig(cert=pki.node.cert, key=pki.node.key, cacert=pki.node.cacert)
    async with Node(unique_name("ondemand"), COOKIE, tls=tls) as ours:
        request = (Atom("call"), Atom("erlang"), Atom("node"), [], Atom("user"))
        return await ours.call(("rex", beam.name), request, timeout=10)


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_a_python_node_connects_on_demand_over_tls(runtime_name: str, tmp_path: Path, pki: Pki) -> None:
    """`Node.call` to a BEAM node it is not connected to: it dials it, over TLS; a node whose
    certificate another CA signed is down to it, as to a BEAM caller."""
    runtime = runtime_or_skip(runtime_name)
    beam = tls_beam(runtime, tmp_path / "good", pki.beam)
    try:
        assert asyncio.run(call_rex(pki, beam)) == Atom(beam.name)
    finally:
        beam.close()
    rogue = tls_beam(runtime, tmp_path / "rogue", pki.rogue)
    try:
        with pytest.raises(CallError) as refused:
            asyncio.run(call_rex(pki, rogue))
        assert refused.value.reason == (Atom("nodedown"), Atom(rogue.name))
        assert isinstance(refused.value.__cause__, TlsError)
    finally:
        rogue.close()


def test_ticks_inside_tls_keep_an_idle_connection_up(tmp_path: Path, pki: Pki) -> None:
    """net_ticktime 4 s on both sides and nothing to say for 9: each side's ticks, sent and
    read through TLS, keep the other from dropping the connection."""
    runtime = runtime_or_skip("otp25")
    with served(tmp_path / "logs", cookie=COOKIE, extra=[*pki.node.serve_args(), "--net-ticktime", "4"]) as ours:
        beam = tls_beam(runtime, tmp_path / "beam", pki.beam, erl_args=("-kernel", "net_ticktime", "4"))
        try:
            beam.set("Node", ours.atom)
            assert beam.eval("ok = net_kernel:monitor_nodes(true, [{node_type, all}]), net_adm:ping(Node).") == Atom("pong")
            assert beam.eval("timer:sleep(9000), receive {nodedown, Node, _} -> down after 0 -> up end.", timeout=30) == Atom("up")
            assert beam.eval("gen_server:call({rustelixir, Node}, {add, 1, 2}).") == (Atom("ok"), 3)
            assert "disconnected" not in ours.log()
        finally:
            beam.close()


# --- Peers refused ----------------------------------------------------------------------------


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_peers_without_a_valid_certificate_or_tls_are_refused_and_the_node_serves_on(
    runtime_name: str, tmp_path: Path, pki: Pki
) -> None:
    runtime = runtime_or_skip(runtime_name)
    # A node of this test's own: what it logs of refused peers is rate-limited per node.
    with served(tmp_path / "logs", cookie=COOKIE, extra=pki.node.serve_args()) as node:
        refuses_then_serves(runtime, tmp_path, pki, node)


def refuses_then_serves(runtime: Runtime, tmp_path: Path, pki: Pki, node: ServedNode) -> None:
    refused = {
        "another CA's certificate": (tls_beam, {"certs": pki.rogue}, "UnknownIssuer"),
        "no certificate": (tls_beam, {"certs": pki.beam, "client_cert": False}, "no certificates"),
        "plain TCP": (None, {}, "corrupt message"),
    }
    for what, (make, options, reason) in refused.items():
        logged = len(node.log())
        if make is None:
            beam = DistClient(runtime.erl, tmp_path / "plain", cookie=COOKIE, erlc=runtime.erlc, extra=LOG_TO_STDERR)
        else:
            beam = make(runtime, tmp_path / what.replace(" ", "-"), **options)  # type: ignore[operator]
        try:
            beam.set("Node", node.atom)
            assert beam.eval("net_adm:ping(Node).") == Atom("pang"), what
            assert beam.eval("nodes(hidden).") == [], what
        finally:
            beam.close()
        said = node.log()[logged:]
        assert "TLS with" in said and reason in said, f"{what}: {said}"
        assert node.proc.poll() is None
    good = tls_beam(runtime, tmp_path / "good", pki.beam)
    try:
        assert_serves(good, node)
    finally:
        good.close()


def test_the_node_refuses_to_dial_a_beam_node_another_ca_signed(tmp_path: Path, pki: Pki) -> None:
    runtime = runtime_or_skip("otp25")
    rogue = tls_beam(runtime, tmp_path / "rogue", pki.rogue)
    try:
        with served(tmp_path / "logs", cookie=COOKIE, extra=[*pki.node.serve_args(), "--connect", rogue.name]) as ours:
            assert rogue.eval("nodes(hidden).") == []
            assert f"cannot connect to {rogue.name} at start-up" in ours.log()
            assert "UnknownIssuer" in ours.log()
            good = tls_beam(runtime, tmp_path / "good", pki.beam)
            try:
                assert_serves(good, ours)
            finally:
                good.close()
    finally:
        rogue.close()


# --- Hostile bytes inside TLS ------------------------------------------------------------------


class TlsPeer:
    """A peer speaking TLS from Python's ssl module over a socket it keeps its hands on, so a
    test can write what TLS would never send beneath it."""

    def __init__(self, port: int, certs: NodeCerts) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.cacert))
        context.load_cert_chain(str(certs.cert), str(certs.key))
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.incoming.write(data)

    def send(self, plaintext: bytes) -> None:
        self.tls.write(plaintext)
        self._flush()

    def receive(self) -> bytes:
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._fill()

    def dist_handshake(self, node_name: str, prefix: str, cookie: str = COOKIE) -> None:
        """The distribution handshake inside TLS, to its end, with 4-byte lengths (what
        inet_tls_dist sends)."""
        handshake = Handshake(Role.INITIATOR, name=unique_name(prefix), cookie=cookie, creation=7, peer_name=node_name, length_prefix=4)
        self.send(handshake.data_to_send())
        done = False
        while not done:
            events = handshake.receive_data(self.receive())
            self.send(handshake.data_to_send())
            done = any(isinstance(e, HandshakeComplete) for e in events)


def test_the_handshake_inside_tls_has_4_byte_lengths_and_bad_records_close_only_that_connection(
    tmp_path: Path, pki: Pki, node: ServedNode
) -> None:
    port = node.dist_port
    # A handshake from Python with 4-byte lengths completes (what inet_tls_dist sends).
    peer = TlsPeer(port, pki.beam)
    peer.dist_handshake(node.name, "raw")
    # Then a record that is not TLS, written beneath the session: that connection closes.
    peer.sock.sendall(bytes([0x17, 3, 3, 0, 32]) + b"\xab" * 32)
    assert until_closed(peer.sock, 10) < 5
    # A handshake message claiming 4 GiB inside TLS: refused from its length.
    logged = len(node.log())
    peer = TlsPeer(port, pki.beam)
    peer.send(b"\xff\xff\xff\xff" + b"N" * 64)
    assert until_closed(peer.sock, 10) < 5
    assert "4294967295 bytes" in node.log()[logged:]
    # A record claiming more than TLS allows: refused from its header, before the handshake.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(bytes([0x16, 3, 1, 0xFF, 0xFF]) + b"\x00" * 64)
        assert until_closed(plain, 10) < 5
    runtime = runtime_or_skip("otp25")
    good = tls_beam(runtime, tmp_path, pki.beam)
    try:
        assert_serves(good, node)
    finally:
        good.close()


# --- Configuration -----------------------------------------------------------------------------


def test_unusable_tls_files_stop_serve_with_the_file_named(tmp_path: Path, pki: Pki) -> None:
    def serve(*tls: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rustelixir", "serve", "--name", unique_name("bad"), "--cookie", COOKIE, *tls],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    missing = str(tmp_path / "missing.pem")
    result = serve("--tls-cert", missing, "--tls-key", str(pki.node.key), "--tls-cacert", str(pki.node.cacert))
    assert result.returncode == 2 and "missing.pem" in result.stderr
    result = serve("--tls-cert", str(pki.node.cert), "--tls-key", str(pki.beam.key), "--tls-cacert", str(pki.node.cacert))
    assert result.returncode == 2 and "beam.key" in result.stderr
    result = serve("--tls-cert", str(pki.node.cert))
    assert result.returncode == 2 and "together" in result.stderr
    with pytest.raises(TlsConfigError, match="missing.pem"):
        TlsConfig(cert=pki.node.cert, key=pki.node.key, cacert=missing)
    with pytest.raises(ValueError, match="TlsConfig"):
        Node(unique_name("x"), COOKIE, tls="yes")  # type: ignore[arg-type]
