"""EPMD: the sans-IO messages byte for byte, our client against OTP's `epmd` and against our
own EpmdServer, and real `erl` nodes registering with and finding each other through
EpmdServer."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from beamnodes import until_closed
from conftest import IN_CI, runtime_or_skip
from rustelixir.epmd import EpmdServer, NodeAddress, ensure_epmd, lookup, names, register
from rustelixir.errors import EpmdError, EpmdProtocolError, RustelixirError
from rustelixir.protocol.epmd import (
    MAX_NAMES_RESPONSE,
    MAX_REQUEST_LENGTH,
    NEED_DATA,
    Alive2Req,
    Alive2Resp,
    Alive2XResp,
    NamesReq,
    NamesResp,
    NeedData,
    Port2Resp,
    PortPlease2Req,
    Request,
    RequestParser,
    Response,
    ResponseParser,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} still false after {timeout} s")
        time.sleep(0.02)


# -- sans-IO: exact bytes -------------------------------------------------------------------

REQUEST_CASES: list[tuple[Request, bytes]] = [
    (
        Alive2Req(port=5555, node_type=72, protocol=0, highest_version=6, lowest_version=6, name="py"),
        b"\x00\x0f" b"x" b"\x15\xb3" b"H" b"\x00" b"\x00\x06" b"\x00\x06" b"\x00\x02py" b"\x00\x00",
    ),
    (
        Alive2Req(port=1, node_type=77, protocol=0, highest_version=6, lowest_version=5, name="é", extra=b"xy"),
        b"\x00\x11" b"x" b"\x00\x01" b"M" b"\x00" b"\x00\x06" b"\x00\x05" b"\x00\x02\xc3\xa9" b"\x00\x02xy",
    ),
    (PortPlease2Req("py"), b"\x00\x03" b"z" b"py"),
    (NamesReq(), b"\x00\x01" b"n"),
]

RESPONSE_CASES: list[tuple[Request, Response, bytes]] = [
    (REQUEST_CASES[0][0], Alive2XResp(result=0, creation=0x01020304), b"v\x00\x01\x02\x03\x04"),
    (REQUEST_CASES[0][0], Alive2XResp(result=1, creation=99), b"v\x01\x00\x00\x00c"),
    (REQUEST_CASES[0][0], Alive2Resp(result=0, creation=3), b"y\x00\x00\x03"),
    (PortPlease2Req("a"), Port2Resp(result=1), b"w\x01"),
    (
        PortPlease2Req("a"),
        Port2Resp(0, port=5555, node_type=77, protocol=0, highest_version=6, lowest_version=5, name="a"),
        b"w\x00" b"\x15\xb3" b"M" b"\x00" b"\x00\x06" b"\x00\x05" b"\x00\x01a" b"\x00\x00",
    ),
    (
        PortPlease2Req("py"),
        Port2Resp(0, port=1, node_type=72, protocol=0, highest_version=6, lowest_version=6, name="py", extra=b"\x07"),
        b"w\x00" b"\x00\x01" b"H" b"\x00" b"\x00\x06" b"\x00\x06" b"\x00\x02py" b"\x00\x01\x07",
    ),
    (NamesReq(), NamesResp(4369), b"\x00\x00\x11\x11"),
    (
        NamesReq(),
        NamesResp(4369, (("a", 5555), ("py", 40001))),
        b"\x00\x00\x11\x11" b"name a at port 5555\n" b"name py at port 40001\n",
    ),
]


@pytest.mark.parametrize(("request_", "wire"), REQUEST_CASES)
def test_request_bytes(request_: Request, wire: bytes) -> None:
    assert request_.to_bytes() == wire
    parser = RequestParser()
    parser.receive_data(wire)
    assert parser.next_request() == request_
    assert parser.next_request() is NEED_DATA


@pytest.mark.parametrize(("request_", "response", "wire"), RESPONSE_CASES)
def test_response_bytes(request_: Request, response: Response, wire: bytes) -> None:
    assert response.to_bytes() == wire
    parser = ResponseParser(request_)
    parser.receive_data(wire)
    parser.receive_eof()
    assert parser.next_response() == response


@pytest.mark.parametrize(("request_", "response", "wire"), RESPONSE_CASES)
def test_responses_parse_one_byte_at_a_time(request_: Request, response: Response, wire: bytes) -> None:
    parser = ResponseParser(request_)
    for i in range(len(wire)):
        assert parser.next_response() is NEED_DATA
        parser.receive_data(wire[i : i + 1])
    if isinstance(request_, NamesReq):
        # A NAMES response has no length: it ends when the EPMD closes the connection.
        assert parser.next_response() is NEED_DATA
        parser.receive_eof()
    assert parser.next_response() == response


def test_requests_parse_one_byte_at_a_time_and_back_to_back() -> None:
    wire = b"".join(w for _, w in REQUEST_CASES)
    parser = RequestParser()
    seen = []
    for i in range(len(wire)):
        parser.receive_data(wire[i : i + 1])
        request = parser.next_request()
        if request is not NEED_DATA:
            seen.append(request)
    assert seen == [r for r, _ in REQUEST_CASES]
    parser.receive_eof()


def test_alive2_x_resp_is_a_kind_of_alive2_resp_but_not_equal() -> None:
    assert isinstance(Alive2XResp(0, 5), Alive2Resp)
    assert Alive2XResp(0, 5) != Alive2Resp(0, 5)


@pytest.mark.parametrize(
    ("request_", "wire", "message"),
    [
        (REQUEST_CASES[0][0], b"w\x00\x00\x01", "message code 119, not ALIVE2_X_RESP"),
        (REQUEST_CASES[0][0], b"v\x00\x00\x00\x00\x01!", "1 bytes after its complete response"),
        (REQUEST_CASES[0][0], b"v\x00\x00", "closed the connection before completing its response to Alive2Req"),
        (PortPlease2Req("a"), b"y\x00", "message code 121, not PORT2_RESP"),
        (PortPlease2Req("a"), b"w\x00\x15\xb3M\x00\x00\x06\x00\x05\x00\x05a", "closed the connection before"),
        (PortPlease2Req("a"), b"w\x00\x15\xb3M\x00\x00\x06\x00\x05\x00\x01\xff\x00\x00", "not UTF-8"),
        (PortPlease2Req("a"), b"w\x00\x15\xb3M\x00\x00\x06\x00\x05\x00\x00\x00\x00", "invalid node name"),
        (PortPlease2Req("a"), b"", "closed the connection before completing"),
        (NamesReq(), b"\x00\x00", "closed the connection before"),
        (NamesReq(), b"\x00\x00\x11\x11hello\n", "not 'name NAME at port PORT'"),
        (NamesReq(), b"\x00\x00\x11\x11name a at port 99999\n", "above 65535"),
        (NamesReq(), b"\x00\x00\x11\x11name \xff at port 1\n", "not UTF-8"),
    ],
)
def test_malformed_responses_raise(request_: Request, wire: bytes, message: str) -> None:
    parser = ResponseParser(request_)
    with pytest.raises(EpmdProtocolError, match=message) as info:
        parser.receive_data(wire)
        parser.next_response()
        parser.receive_eof()
        parser.next_response()
    assert isinstance(info.value, RustelixirError)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x00\x00", "empty EPMD request"),
        (b"\x00\x01q", "unknown or unsupported EPMD request code 113"),
        (b"\x00\x01x", "fields run past its length prefix"),
        (b"\x00\x0fx\x15\xb3H\x00\x00\x06\x00\x06\x00\x05py\x00\x00", "fields run past its length prefix"),
        (b"\x00\x10x\x15\xb3H\x00\x00\x06\x00\x06\x00\x02py\x00\x00!", "1 bytes past its extra field"),
        (b"\x00\x0fx\x15\xb3H\x00\x00\x05\x00\x06\x00\x02py\x00\x00", "lowest_version 6 is above highest_version 5"),
        (b"\x00\x0dx\x15\xb3H\x00\x00\x06\x00\x06\x00\x00\x00\x00", "invalid node name"),
        (b"\x00\x03z\xc3(", "not UTF-8"),
        (b"\x00\x01z", "invalid node name"),
        (b"\x00\x02n!", "NAMES_REQ with 1 bytes after the code"),
    ],
)
def test_malformed_requests_raise(wire: bytes, message: str) -> None:
    parser = RequestParser()
    parser.receive_data(wire)
    with pytest.raises(EpmdProtocolError, match=message):
        parser.next_request()


def test_a_request_cut_short_by_end_of_file_raises() -> None:
    parser = RequestParser()
    parser.receive_data(b"\x00\x03z")
    assert parser.next_request() is NEED_DATA
    with pytest.raises(EpmdProtocolError, match="middle of a request"):
        parser.receive_eof()


# -- sizes on the wire: refused, not waited for ------------------------------------------------


def test_a_request_longer_than_any_is_refused_from_its_length_alone() -> None:
    parser = RequestParser()
    parser.receive_data(b"\xff\xff")  # 65535 bytes to come: not buffered, not waited for
    with pytest.raises(EpmdProtocolError, match="request of 65535 bytes"):
        parser.next_request()
    parser = RequestParser()
    parser.receive_data(MAX_REQUEST_LENGTH.to_bytes(2, "big") + b"z")
    assert parser.next_request() is NEED_DATA  # the largest is waited for


def test_a_port2_response_with_a_name_longer_than_any_is_refused_before_the_name() -> None:
    parser = ResponseParser(PortPlease2Req("a"))
    parser.receive_data(b"w\x00\x15\xb3M\x00\x00\x06\x00\x05\xff\xff")  # name of 65535 bytes
    with pytest.raises(EpmdProtocolError, match="65535-byte node name"):
        parser.next_response()


def test_a_names_response_is_bounded_before_the_end_of_file() -> None:
    line = b"name " + b"a" * 200 + b" at port 4000\n"
    parser = ResponseParser(NamesReq())
    parser.receive_data(b"\x00\x00\x11\x11")
    with pytest.raises(EpmdProtocolError, match="more than such a response can hold"):
        for _ in range(MAX_NAMES_RESPONSE // len(line) + 1):
            parser.receive_data(line)
            assert parser.next_response() is NEED_DATA


def test_a_names_line_with_a_port_of_5000_digits_is_a_protocol_error() -> None:
    # int() of more than 4,300 digits raises ValueError in Python 3.11+: the callers expect
    # EpmdProtocolError from a bad response, and nothing else.
    parser = ResponseParser(NamesReq())
    parser.receive_data(b"\x00\x00\x11\x11name a at port " + b"9" * 5000 + b"\n")
    parser.receive_eof()
    with pytest.raises(EpmdProtocolError, match="not 'name NAME at port PORT'"):
        parser.next_response()


def test_our_server_refuses_a_long_request_at_once(python_epmd: ThreadedEpmdServer) -> None:
    with socket.create_connection(("127.0.0.1", python_epmd.port), timeout=5) as s:
        s.sendall(b"\xff\xffz" + b"a" * 100)
        assert until_closed(s, 5) < 1.0  # not after request_timeout (30 s)
    assert answers(python_epmd.port)


def test_our_server_drops_a_trickling_client_at_the_request_deadline(python_epmd: ThreadedEpmdServer) -> None:
    # One byte every 0.1 s of a request that would take minutes: the deadline is the whole
    # request's, not each read's.
    python_epmd.server.request_timeout = 0.8
    with socket.create_connection(("127.0.0.1", python_epmd.port), timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"\x0f\xa0z")  # PORT_PLEASE2_REQ of 4,000 bytes
        closed = False
        for _ in range(40):
            try:
                s.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            ready, _, _ = select.select([s], [], [], 0.1)
            if ready:
                try:
                    closed = s.recv(100) == b""
                except ConnectionResetError:
                    closed = True
                if closed:
                    break
        took = time.monotonic() - started
    assert closed and 0.6 < took < 2.0, took
    assert answers(python_epmd.port)


def test_our_server_bounds_its_connections() -> None:
    async def scenario() -> None:
        async with EpmdServer(max_connections=4) as server:
            idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(4)]
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(), 1) == b""  # the fifth: closed at once
            writer.close()
            idle.pop()[1].close()
            await asyncio.sleep(0.1)
            assert await names("127.0.0.1", server.port, timeout=2) == {}
            for _, w in idle:
                w.close()

    run(scenario())


@pytest.mark.parametrize(
    "make",
    [
        lambda: Alive2Req(70000, 72, 0, 6, 6, "a"),
        lambda: Alive2Req(1, 72, 0, 6, 6, ""),
        lambda: Alive2Req(1, 72, 0, 6, 6, "a@host"),
        lambda: Alive2Req(1, 72, 0, 6, 6, "a" * 256),
        lambda: Alive2Req(1, 72, 0, 5, 6, "a"),
        lambda: PortPlease2Req(""),
        lambda: Alive2Resp(0, 1 << 16),
        lambda: Port2Resp(1, port=5),
        lambda: NamesResp(1, (("a", -1),)),
    ],
)
def test_messages_that_cannot_go_on_the_wire_are_refused_when_built(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


# -- EPMD servers: OTP's epmd, and ours -----------------------------------------------------


def epmd_binary() -> str:
    runtime_or_skip("otp25")
    epmd = shutil.which("epmd")
    if epmd is None:
        message = "epmd not on PATH (it comes with Erlang/OTP)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return epmd


def answers(port: int) -> bool:
    try:
        run(names("127.0.0.1", port, timeout=1.0))
    except EpmdError:
        return False
    return True


@pytest.fixture
def system_epmd() -> Iterator[int]:
    """OTP's epmd in the foreground on a free port, terminated at teardown."""
    port = free_port()
    proc = subprocess.Popen(
        [epmd_binary(), "-port", str(port), "-address", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: answers(port))
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


class ThreadedEpmdServer:
    """Our EpmdServer on an event loop in a thread of its own, so tests can block on
    subprocesses (erl) and run client calls with asyncio.run meanwhile."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = EpmdServer()
        self.call(self.server.start())
        self.port = self.server.port

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def nodes(self) -> dict[str, NodeAddress]:
        async def read() -> dict[str, NodeAddress]:
            return self.server.nodes

        return self.call(read())

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def python_epmd() -> Iterator[ThreadedEpmdServer]:
    server = ThreadedEpmdServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["system", "python"])
def any_epmd(request: pytest.FixtureRequest) -> int:
    """The port of an EPMD: OTP's, or ours. Client behaviour must not tell them apart."""
    if request.param == "system":
        port: int = request.getfixturevalue("system_epmd")
        return port
    server: ThreadedEpmdServer = request.getfixturevalue("python_epmd")
    return server.port


def test_register_lookup_names_and_unregister_on_close(any_epmd: int) -> None:
    name = unique("py")

    async def scenario() -> None:
        registration = await register(name, 40123, epmd_port=any_epmd)
        assert registration.creation > 0 and registration.name == name and not registration.closed
        assert await lookup(name, "127.0.0.1", epmd_port=any_epmd) == NodeAddress(
            port=40123, node_type=72, highest_version=6, lowest_version=6, name=name
        )
        assert (await names("127.0.0.1", any_epmd))[name] == 40123
        await registration.close()
        assert registration.closed
        for _ in range(100):
            if await lookup(name, "127.0.0.1", epmd_port=any_epmd) is None:
                break
            await asyncio.sleep(0.02)
        assert await lookup(name, "127.0.0.1", epmd_port=any_epmd) is None
        assert name not in await names("127.0.0.1", any_epmd)

    run(scenario())


def test_a_name_in_use_is_refused_and_the_first_registration_stays(any_epmd: int) -> None:
    name = unique("dup")

    async def scenario() -> None:
        async with await register(name, 40001, epmd_port=any_epmd):
            with pytest.raises(EpmdError, match=f"refused to register node name '{name}'.*in use"):
                await register(name, 40002, epmd_port=any_epmd)
            address = await lookup(name, "127.0.0.1", epmd_port=any_epmd)
            assert address is not None and address.port == 40001
        # Once the first one is gone, the name is free again.
        for _ in range(100):
            try:
                again = await register(name, 40003, epmd_port=any_epmd)
            except EpmdError:
                await asyncio.sleep(0.02)
                continue
            await again.close()
            return
        raise AssertionError("the name was never freed")

    run(scenario())


def test_a_normal_node_and_an_unknown_name(any_epmd: int) -> None:
    name = unique("normal")

    async def scenario() -> None:
        async with await register(name, 40200, epmd_port=any_epmd, hidden=False) as registration:
            assert not registration.hidden
            address = await lookup(name, "127.0.0.1", epmd_port=any_epmd)
            assert address is not None and address.node_type == 77 and not address.hidden
        assert await lookup(unique("nobody"), "127.0.0.1", epmd_port=any_epmd) is None

    run(scenario())


def test_a_registration_knows_when_the_epmd_went_away() -> None:
    async def scenario() -> None:
        server = EpmdServer()
        await server.start()
        registration = await register(unique("orphan"), 40700, epmd_port=server.port)
        waiter = asyncio.create_task(registration.wait_lost())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(waiter, 2)
        await registration.close()

    run(scenario())


def test_epmd_port_comes_from_erl_epmd_port(any_epmd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERL_EPMD_PORT", str(any_epmd))
    assert isinstance(run(names("127.0.0.1")), dict)
    monkeypatch.setenv("ERL_EPMD_PORT", "nope")
    with pytest.raises(EpmdError, match="ERL_EPMD_PORT must be a TCP port number"):
        run(names("127.0.0.1"))


def raw_exchange(port: int, request: Request) -> tuple[Response, bytes]:
    """One request over a plain socket: the parsed response and the raw bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request.to_bytes())
        parser = ResponseParser(request)
        raw = b""
        while True:
            response = parser.next_response()
            if not isinstance(response, NeedData):
                return response, raw
            data = s.recv(4096)
            raw += data
            if data:
                parser.receive_data(data)
            else:
                parser.receive_eof()


def test_our_server_answers_like_otp_epmd(system_epmd: int, python_epmd: ThreadedEpmdServer) -> None:
    """Same requests to both: the same kinds of answers, and NAMES text byte for byte."""
    held = []
    answers_of: dict[str, list[Response]] = {}
    names_text = {}
    for kind, port in [("system", system_epmd), ("python", python_epmd.port)]:
        got = []
        for request in [
            Alive2Req(40300, 77, 0, 6, 5, "new"),
            Alive2Req(40301, 72, 0, 5, 5, "old"),
        ]:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(s)
            s.sendall(request.to_bytes())
            parser = ResponseParser(request)
            while isinstance(response := parser.next_response(), NeedData):
                parser.receive_data(s.recv(4096))
            got.append(response)
        answers_of[kind] = got
        _, raw = raw_exchange(port, NamesReq())
        names_text[kind] = raw[4:]
        assert int.from_bytes(raw[:4], "big") == port
    for s in held:
        s.close()
    for kind, (new, old) in answers_of.items():
        assert type(new) is Alive2XResp and new.ok, kind
        # A node of version 5 gets a 16-bit creation in 1..3.
        assert type(old) is Alive2Resp and old.ok and 1 <= old.creation <= 3, kind
    assert names_text["python"] == names_text["system"]


def test_our_server_drops_a_client_that_breaks_the_protocol_and_keeps_serving(
    python_epmd: ThreadedEpmdServer,
) -> None:
    for garbage in [b"\x00\x01q", b"\x00\x00", b"\x00\x02n!"]:
        with socket.create_connection(("127.0.0.1", python_epmd.port), timeout=5) as s:
            s.sendall(garbage)
            assert s.recv(100) == b""
    # A registered connection that sends anything more is dropped, and its name with it.
    name = unique("chatty")
    with socket.create_connection(("127.0.0.1", python_epmd.port), timeout=5) as s:
        s.sendall(Alive2Req(40400, 72, 0, 6, 6, name).to_bytes())
        assert s.recv(100)[:2] == b"v\x00"
        assert name in python_epmd.nodes()
        s.sendall(NamesReq().to_bytes())
        assert s.recv(100) == b""
    eventually(lambda: name not in python_epmd.nodes())
    assert answers(python_epmd.port)


def test_the_client_reports_an_epmd_that_breaks_the_protocol_or_stays_silent() -> None:
    async def scenario() -> None:
        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            writer.close()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        bad = await asyncio.start_server(garbage, "127.0.0.1", 0)
        quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
        bad_port, quiet_port = (s.sockets[0].getsockname()[1] for s in (bad, quiet))
        with pytest.raises(EpmdProtocolError, match=f"not PORT2_RESP.*EPMD at 127.0.0.1:{bad_port}"):
            await lookup("a", "127.0.0.1", epmd_port=bad_port)
        with pytest.raises(EpmdError, match="did not answer PortPlease2Req within 0.2 s"):
            await lookup("a", "127.0.0.1", epmd_port=quiet_port, timeout=0.2)
        with pytest.raises(EpmdError, match="did not answer the registration"):
            await register("a", 1, epmd_port=quiet_port, timeout=0.2)
        with pytest.raises(EpmdError, match="not an EPMD"):
            await ensure_epmd("127.0.0.1", bad_port)
        bad.close()
        quiet.close()
        closed_port = free_port()
        with pytest.raises(EpmdError, match=f"cannot reach EPMD at 127.0.0.1:{closed_port}"):
            await names("127.0.0.1", closed_port)

    run(scenario())


# -- ensure_epmd ----------------------------------------------------------------------------


def kill_epmd_daemon(epmd: str, port: int) -> None:
    """Stop the daemon ensure_epmd started: `epmd -kill`, then by its own pid if needed."""
    subprocess.run([epmd, "-port", str(port), "-kill"], capture_output=True, timeout=10)
    if not answers(port):
        return
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-daemon" in argv and b"-port" in argv and argv[argv.index(b"-port") + 1 : argv.index(b"-port") + 2] == [
            str(port).encode()
        ]:
            os.kill(int(cmdline.parent.name), signal.SIGTERM)


@pytest.mark.beam
def test_ensure_epmd_starts_the_system_epmd_and_then_finds_it_running() -> None:
    epmd = epmd_binary()
    port = free_port()
    try:
        assert run(ensure_epmd("127.0.0.1", port)) is None
        assert run(names("127.0.0.1", port)) == {}
        # A second call finds it answering and starts nothing.
        assert run(ensure_epmd("127.0.0.1", port)) is None
    finally:
        kill_epmd_daemon(epmd, port)
    eventually(lambda: not answers(port))


def test_ensure_epmd_without_the_system_epmd_starts_ours() -> None:
    port = free_port()

    async def scenario() -> None:
        server = await ensure_epmd("127.0.0.1", port, allow_system=False)
        assert isinstance(server, EpmdServer) and server.port == port
        try:
            async with await register("solo", 40500, epmd_port=port):
                assert await names("127.0.0.1", port) == {"solo": 40500}
            assert await ensure_epmd("127.0.0.1", port, allow_system=False) is None
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())
    assert not answers(port)


# -- real erl nodes and our EpmdServer ------------------------------------------------------


def erl(port: int, name: str, *args: str) -> subprocess.Popen[str]:
    runtime = runtime_or_skip("otp25")
    return subprocess.Popen(
        [runtime.erl, "-noshell", "-name", f"{name}@127.0.0.1", "-setcookie", "epmdtest", "-start_epmd", "false", *args],
        env={**os.environ, "ERL_EPMD_PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.beam
def test_two_erl_nodes_register_with_our_server_and_ping_each_other(python_epmd: ThreadedEpmdServer) -> None:
    b, a = unique("b"), unique("a")
    node_b = erl(python_epmd.port, b)
    try:
        ping = (
            "F = fun Loop(0) -> pang; Loop(N) -> "
            f"case net_adm:ping('{b}@127.0.0.1') of pong -> pong; pang -> timer:sleep(100), Loop(N - 1) end end, "
            'io:format("~p~n", [F(50)]), halt().'
        )
        node_a = erl(python_epmd.port, a, "-eval", ping)
        out, _ = node_a.communicate(timeout=20)
        assert out.strip() == "pong", out
        address = run(lookup(b, "127.0.0.1", epmd_port=python_epmd.port))
        assert address is not None and address.node_type == 77 and address.highest_version == 6
        assert address.lowest_version == 5 and address.name == b
        # a halted: its connection closed, and with it its registration.
        eventually(lambda: a not in python_epmd.nodes())
        assert b in python_epmd.nodes()
    finally:
        node_b.kill()
        node_b.wait(timeout=5)
    eventually(lambda: b not in python_epmd.nodes())


@pytest.mark.beam
def test_erl_finds_a_node_our_client_registered(python_epmd: ThreadedEpmdServer) -> None:
    name, asker = unique("py"), unique("asker")

    # Registered from the server's loop, where the registration's connection then lives.
    registration = python_epmd.call(register(name, 40600, epmd_port=python_epmd.port))
    try:
        query = (
            f'io:format("~p~n~p~n", [erl_epmd:port_please("{name}", "127.0.0.1"), net_adm:names()]), halt().'
        )
        out, _ = erl(python_epmd.port, asker, "-eval", query).communicate(timeout=20)
        port_please, node_names = out.strip().splitlines()
        assert port_please == "{port,40600,6}", out
        assert f'{{"{name}",40600}}' in node_names and f'"{asker}"' in node_names, out
    finally:
        python_epmd.call(registration.close())
