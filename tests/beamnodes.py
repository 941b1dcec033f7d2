"""Real nodes for the node tests: the rustelixir node as a subprocess (`rustelixir serve`),
and real Erlang nodes (`erl` running tests/beam/dist_client.erl) that call it."""

from __future__ import annotations

import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rustelixir
from rustelixir import Atom, Pid, Reference
from rustelixir._native import decode_dist

TESTS = Path(__file__).parent
# The natives only the tests serve (`--module TEST_NATIVES`): native/testnatives, a crate
# built as its own extension as a user's is (`make test-natives` installs it).
TEST_NATIVES = "rustelixir_test_natives"


def unique_name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}@127.0.0.1"


class ClientError(Exception):
    """The Erlang expression raised: `reason` is {Class, Reason, Stack}."""

    def __init__(self, reason: Any) -> None:
        super().__init__(repr(reason)[:2000])
        self.reason = reason


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    chunks = []
    while n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the Erlang node in time")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the Erlang node exited")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class PacketErl:
    """An `erl` process that reads requests and writes replies as terms in {packet, 4}
    frames on its stdin/stdout."""

    proc: subprocess.Popen[bytes]

    def _write(self, request: Any) -> None:
        assert self.proc.stdin is not None
        payload = rustelixir.encode(request)
        self.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class DistClient(PacketErl):
    """A distributed `erl` node evaluating Erlang expressions sent from the test."""

    def __init__(
        self,
        erl: str,
        build_dir: Path,
        *,
        cookie: str,
        name: str | None = None,
        erlc: str = "erlc",
        extra: list[str] | None = None,
        short_name: str | None = None,
    ) -> None:
        build_dir.mkdir(parents=True, exist_ok=True)
        if not (build_dir / "dist_client.beam").exists():
            subprocess.run(
                [erlc, "-o", str(build_dir), str(TESTS / "beam" / "dist_client.erl")], check=True, capture_output=True
            )
        self.name = name or unique_name("client")
        name_args = ["-name", self.name]
        if short_name is not None:
            self.name = f"{short_name}@{socket.gethostname().split('.')[0]}"
            name_args = ["-sname", short_name]
        self.proc = subprocess.Popen(
            [erl, "-noinput", *name_args, "-setcookie", cookie, "-pa", str(build_dir),
             *(extra or []), "-run", "dist_client", "main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        self.name = self.eval_term(Atom("ping")).name

    def eval_term(self, request: Any, timeout: float = 60.0) -> Any:
        assert self.proc.stdout is not None
        self._write(request)
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        (length,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
        reply = rustelixir.decode(_read_exact(fd, length, deadline))
        if isinstance(reply, tuple) and reply[0] == Atom("ok"):
            return reply[1]
        raise ClientError(reply[1] if isinstance(reply, tuple) else reply)

    def eval(self, source: str, timeout: float = 60.0) -> Any:
        """The value of Erlang expressions (`source` ends with a full stop)."""
        return self.eval_term((Atom("eval"), source), timeout)

    def set(self, variable: str, value: Any) -> None:
        """Binds an Erlang variable to a term, for later `eval`s."""
        self.eval_term((Atom("set"), Atom(variable), value))


class ServedNode:
    """`rustelixir serve` in a subprocess, up when it has printed its connect line."""

    def __init__(self, log_dir: Path, *, cookie: str, name: str | None = None, extra: list[str] | None = None,
                 env: dict[str, str] | None = None, short_name: str | None = None) -> None:  # fmt: skip
        self.name = name or unique_name("py")
        name_args = ["--name", self.name]
        if short_name is not None:
            self.name = f"{short_name}@{socket.gethostname().split('.')[0]}"
            name_args = ["--sname", short_name]
        self.cookie = cookie
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rustelixir", "serve", *name_args, "--cookie", cookie, *(extra or [])],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
                 **(env or {})},  # fmt: skip
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"rustelixir serve did not come up:\n{self.log()}")
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError(f"rustelixir serve exited:\n{self.log()}")
                line += chunk
        self.banner = line.decode()
        self.atom = Atom(self.name)

    @property
    def dist_port(self) -> int:
        """The port the node takes distribution connections on, from its "is up" line."""
        return int(self.banner.split(" on port ")[1].split(".")[0])

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextmanager
def served(log_dir: Path, **options: Any) -> Iterator[ServedNode]:
    """`rustelixir serve` (see ServedNode for the options) for the length of the block."""
    node = ServedNode(log_dir, **options)
    try:
        yield node
    finally:
        node.stop()


@contextmanager
def calling(runtime: Any, build_dir: Path, node: ServedNode, *, ping: bool = False) -> Iterator[DistClient]:
    """A real `erl` of `runtime` (conftest's Runtime) with `Node` bound to the served node
    (and connected to it first, with `ping`), for the length of the block."""
    client = DistClient(runtime.erl, build_dir, cookie=node.cookie, erlc=runtime.erlc)
    try:
        client.set("Node", node.atom)
        if ping:
            client.eval("pong = net_adm:ping(Node), ok.")
        yield client
    finally:
        client.close()


def node_fixture(log_dir_name: str, **options: Any) -> Any:
    """A module-scoped pytest fixture: `rustelixir serve` with ServedNode's `options`, its log
    in a temporary directory named after `log_dir_name`, for all of a test module's tests."""
    import pytest

    @pytest.fixture(scope="module")
    def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
        with served(tmp_path_factory.mktemp(log_dir_name), **options) as node:
            yield node

    return node


def client_fixture(build_dir_name: str, *, ping: bool = False, runtimes: tuple[str, ...] = ("otp25",)) -> Any:
    """A module-scoped pytest fixture: an `erl` calling the module's `node` fixture (see
    `calling`), one per runtime of `runtimes` (the module's tests run against each)."""
    import pytest
    from conftest import runtime_or_skip

    @pytest.fixture(scope="module", params=runtimes)
    def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, node: ServedNode) -> Iterator[DistClient]:
        runtime = runtime_or_skip(request.param)
        with calling(runtime, tmp_path_factory.mktemp(f"{build_dir_name}-{runtime.name}"), node, ping=ping) as client:
            yield client

    return client


def epmd_port_of(name: str) -> int:
    """The port the node `name` registered in the EPMD on this host (PORT_PLEASE2)."""
    alive = name.split("@")[0].encode()
    with socket.create_connection(("127.0.0.1", 4369), timeout=5) as s:
        s.sendall(struct.pack(">HB", len(alive) + 1, 122) + alive)
        data = b""
        while len(data) < 4:
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
    assert data[0] == 119 and data[1] == 0, data
    return int(struct.unpack(">H", data[2:4])[0])


def until_closed(sock: socket.socket, timeout: float) -> float:
    """Seconds until the node closed the connection (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def raw_peer(port: int, node_name: str, cookie: str, my_name: str | None = None) -> Any:
    """A socket to the node at `port` that has done a real handshake from Python, as a peer
    named `my_name` (for tests that send the node frames no BEAM would)."""
    import socket as socket_module

    from rustelixir.protocol.handshake import Handshake, HandshakeComplete, Role

    sock = socket_module.create_connection(("127.0.0.1", port), timeout=10)
    hs = Handshake(Role.INITIATOR, name=my_name or unique_name("raw"), cookie=cookie, creation=7, peer_name=node_name)
    sock.sendall(hs.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the node closed the handshake")
        events = hs.receive_data(data)
        out = hs.data_to_send()
        if out:
            sock.sendall(out)
        if any(isinstance(e, HandshakeComplete) for e in events):
            return sock


def frame_bodies(sock: socket.socket, buffer: bytearray) -> Iterator[bytes]:
    """The frame bodies a raw peer reads, as they arrive (ticks skipped); returns at end of
    file (or raises the socket's timeout)."""
    while True:
        while len(buffer) >= 4:
            (length,) = struct.unpack_from(">I", buffer)
            if len(buffer) < 4 + length:
                break
            body = bytes(buffer[4 : 4 + length])
            del buffer[: 4 + length]
            if body:
                yield body
        chunk = sock.recv(1 << 16)
        if not chunk:
            return
        buffer += chunk


def pass_through_frame(*terms: Any) -> bytes:
    body = bytes([112]) + b"".join(rustelixir.encode(t) for t in terms)
    return struct.pack(">I", len(body)) + body


def spawn_frame(caller: Pid, ref: Reference, mfa: Any, options: Any, args: Any) -> bytes:
    """A SPAWN_REQUEST as `spawn_request/5` sends it: from `caller`, who is also the new
    process's group leader; `args` as its payload."""
    return pass_through_frame((29, ref, caller, caller, mfa, options), args)


class RawPeer:
    """A peer node speaking the distribution protocol from the test: a real handshake with
    the node's cookie, then any frame the test makes; it reads what the node sends it."""

    def __init__(self, node: ServedNode, prefix: str = "raw") -> None:
        self.name = unique_name(prefix)
        self.sock = raw_peer(node.dist_port, node.name, node.cookie, self.name)
        self.buffer = bytearray()
        self.seen: list[tuple[Any, ...]] = []  # messages read while the test waited for another
        self.serial = 0
        # Our side of the handshake ends before the node's link (and its server) knows us:
        # one answered call, and the node knows this peer for what the tests make it do.
        assert self.call(Atom("functions"))[0] == Atom("ok")

    def pid(self, number: int = 1) -> Pid:
        return Pid(self.name, number, 0, 7)  # raw_peer's creation is 7

    def ref(self) -> Reference:
        self.serial += 1
        return Reference(self.name, 7, [self.serial, 2, 3])

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def receive(self, match: Any, timeout: float = 10.0) -> tuple[Any, ...]:
        """The first message from the node, (control,) or (control, payload), for which
        `match(terms)` holds: one read before (and kept in `seen`), or the next to come."""
        for i, terms in enumerate(self.seen):
            if match(terms):
                return self.seen.pop(i)
        self.sock.settimeout(timeout)
        try:
            for body in frame_bodies(self.sock, self.buffer):
                terms = tuple(decode_dist(body))
                if match(terms):
                    return terms
                self.seen.append(terms)
        except TimeoutError:
            raise AssertionError(f"no such message from the node in {timeout} s") from None
        raise AssertionError("the node closed the connection")

    def call(self, request: Any, timeout: float = 10.0) -> Any:
        """A gen_server call to the node's rustelixir server from this peer's process 1.
        The connection's frames are handled in order, so its answer also says that every
        frame sent before it has been dealt with."""
        caller, tag = self.pid(1), self.ref()
        self.send(pass_through_frame((6, caller, Atom(""), Atom("rustelixir")), (Atom("$gen_call"), (caller, tag), request)))
        terms = self.receive(lambda t: len(t) == 2 and type(t[1]) is tuple and len(t[1]) == 2 and t[1][0] == tag, timeout)
        return terms[1][1]

    def close(self) -> None:
        self.sock.close()


def executable_or_skip(name: str) -> str:
    """The executable `name` on the PATH; under CI a missing one fails the test instead of
    skipping it (the README's test command installs it)."""
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{name} not found (the README's test command installs it)")
        pytest.skip(f"{name} not found")
    return path


def elixir_or_skip() -> str:
    """The `elixir` executable (see `executable_or_skip`)."""
    return executable_or_skip("elixir")
