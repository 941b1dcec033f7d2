"""EPMD over asyncio: register a node, look nodes up, and an EPMD server written in Python.

This is the only module that opens sockets for EPMD; the bytes are made and read by
`rustelixir.protocol.epmd`. Every client call opens its own connection, as OTP's `erl_epmd`
does; a registration holds its connection open, because the EPMD unregisters a name when the
connection that registered it closes.

`EpmdServer` is for machines with no Erlang installed: real `erl` nodes register with it and
find each other through it (start them with `ERL_EPMD_PORT` set to its port).
`ensure_epmd()` makes sure some EPMD answers: one already running, else the system's `epmd`,
else an `EpmdServer` in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import socket
import subprocess
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from rustelixir.errors import EpmdError, EpmdProtocolError
from rustelixir.protocol.epmd import (
    DIST_VERSION,
    NODE_TYPE_HIDDEN,
    NODE_TYPE_NORMAL,
    PROTOCOL_TCP_IPV4,
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

__all__ = [
    "DEFAULT_EPMD_PORT",
    "EpmdRegistration",
    "EpmdServer",
    "NodeAddress",
    "ensure_epmd",
    "lookup",
    "names",
    "register",
]

log = logging.getLogger(__name__)

_STANDARD_EPMD_PORT: Final = 4369


def _port_from_env() -> int:
    """The EPMD port OTP uses: $ERL_EPMD_PORT, else 4369."""
    value = os.environ.get("ERL_EPMD_PORT", "").strip()
    if not value:
        return _STANDARD_EPMD_PORT
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise EpmdError(f"ERL_EPMD_PORT must be a TCP port number, not {value!r}")
    return port


def _default_port_at_import() -> int:
    try:
        return _port_from_env()
    except EpmdError:
        # A bad variable is reported by the first call that relies on it, not by an import.
        return _STANDARD_EPMD_PORT


DEFAULT_EPMD_PORT: Final[int] = _default_port_at_import()
"""$ERL_EPMD_PORT when this module was imported, else 4369. Calls given `epmd_port=None`
read the variable again, so a change made after import is seen."""


def _resolve_port(epmd_port: int | None) -> int:
    return _port_from_env() if epmd_port is None else epmd_port


@dataclass(frozen=True)
class NodeAddress:
    """Where a node listens for distribution connections, as its EPMD tells it."""

    port: int
    node_type: int
    highest_version: int
    lowest_version: int
    name: str
    protocol: int = PROTOCOL_TCP_IPV4
    extra: bytes = b""

    @property
    def hidden(self) -> bool:
        return self.node_type == NODE_TYPE_HIDDEN


# -- client ---------------------------------------------------------------------------------


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port)
    except OSError as exc:
        raise EpmdError(f"cannot reach EPMD at {host}:{port}: {exc}") from exc


async def _read_response(
    reader: asyncio.StreamReader, parser: ResponseParser, where: str
) -> Response:
    try:
        while True:
            response = parser.next_response()
            if not isinstance(response, NeedData):
                return response
            data = await reader.read(4096)
            if data:
                parser.receive_data(data)
            else:
                parser.receive_eof()
    except EpmdProtocolError as exc:
        raise EpmdProtocolError(f"{exc} [EPMD at {where}]") from exc
    except OSError as exc:
        raise EpmdError(f"lost the connection to EPMD at {where}: {exc}") from exc


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _request(request: Request, host: str, port: int, timeout: float) -> Response:
    """One request on its own connection, closed once the response is read."""
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(host, port)
            try:
                writer.write(request.to_bytes())
                return await _read_response(reader, ResponseParser(request), where)
            finally:
                await _close(writer)
    except TimeoutError:
        raise EpmdError(
            f"EPMD at {where} did not answer {type(request).__name__} within {timeout} s"
        ) from None


class EpmdRegistration:
    """A node name registered with an EPMD. The registration lasts while this object's
    connection is open: `close()` (or leaving `async with`) unregisters the name."""

    def __init__(
        self,
        name: str,
        port: int,
        creation: int,
        hidden: bool,
        epmd_host: str,
        epmd_port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.name = name
        self.port = port
        self.creation = creation
        self.hidden = hidden
        self.epmd_host = epmd_host
        self.epmd_port = epmd_port
        self._reader = reader
        self._writer = writer

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    async def close(self) -> None:
        await _close(self._writer)

    async def wait_lost(self) -> None:
        """Return when the registration has ended: the EPMD closed the connection (it
        stopped, and a restarted EPMD does not know the name), or `close()` was called.
        A node that wants to stay findable registers again then."""
        with contextlib.suppress(OSError):
            # An EPMD sends nothing on a registration's connection: wait for its end.
            while await self._reader.read(4096):
                pass

    async def __aenter__(self) -> EpmdRegistration:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<EpmdRegistration {self.name!r} port={self.port} creation={self.creation} "
            f"at {self.epmd_host}:{self.epmd_port} {state}>"
        )


async def register(
    name: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    epmd_port: int | None = None,
    hidden: bool = True,
    timeout: float = 5.0,
) -> EpmdRegistration:
    """Register node `name` (the part before '@') listening on distribution port `port`
    with the EPMD at `host` (an EPMD accepts registrations from its own host only).

    Raises `EpmdError` when the EPMD cannot be reached or refuses the name (it is in use).
    """
    epmd_port = _resolve_port(epmd_port)
    request = Alive2Req(
        port=port,
        node_type=NODE_TYPE_HIDDEN if hidden else NODE_TYPE_NORMAL,
        protocol=PROTOCOL_TCP_IPV4,
        highest_version=DIST_VERSION,
        lowest_version=DIST_VERSION,
        name=name,
    )
    where = f"{host}:{epmd_port}"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(host, epmd_port)
            writer.write(request.to_bytes())
            response = await _read_response(reader, ResponseParser(request), where)
    except TimeoutError:
        if writer is not None:
            await _close(writer)
        raise EpmdError(f"EPMD at {where} did not answer the registration of {name!r} within {timeout} s") from None
    except BaseException:
        if writer is not None:
            await _close(writer)
        raise
    assert isinstance(response, Alive2Resp)
    if not response.ok:
        await _close(writer)
        raise EpmdError(
            f"EPMD at {where} refused to register node name {name!r} (result {response.result}): "
            f"the name is most likely in use by another node"
        )
    return EpmdRegistration(name, port, response.creation, hidden, host, epmd_port, reader, writer)


async def lookup(
    name: str, host: str, *, epmd_port: int | None = None, timeout: float = 5.0
) -> NodeAddress | None:
    """Where node `name` (the part before '@') on `host` listens, or None when it is not
    registered there."""
    epmd_port = _resolve_port(epmd_port)
    response = await _request(PortPlease2Req(name), host, epmd_port, timeout)
    assert isinstance(response, Port2Resp)
    if not response.ok:
        return None
    return NodeAddress(
        port=response.port,
        node_type=response.node_type,
        highest_version=response.highest_version,
        lowest_version=response.lowest_version,
        name=response.name,
        protocol=response.protocol,
        extra=response.extra,
    )


async def names(host: str = "127.0.0.1", epmd_port: int | None = None, *, timeout: float = 5.0) -> dict[str, int]:
    """The nodes registered with the EPMD at `host`: name -> distribution port."""
    epmd_port = _resolve_port(epmd_port)
    response = await _request(NamesReq(), host, epmd_port, timeout)
    assert isinstance(response, NamesResp)
    return dict(response.nodes)


# -- server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Registered:
    request: Alive2Req
    creation: int
    writer: asyncio.StreamWriter


class EpmdServer:
    """An EPMD in this process, for machines without Erlang.

    It answers ALIVE2 (handing out creation numbers, refusing a name already registered, and
    unregistering a name when the connection that registered it closes), PORT_PLEASE2 and
    NAMES, like OTP's `epmd`. It listens on 127.0.0.1 unless told another host.

        async with EpmdServer(port=0) as server:
            ... server.port ...
    """

    # A connection that has not sent a complete request this many seconds after it was
    # made is dropped, however slowly its bytes trickle in. A registered node's connection
    # is not subject to it: it stays silent for as long as the node lives.
    request_timeout: float = 30.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = 1024) -> None:
        """`max_connections`: connections open at once (registered nodes' included); past
        it a new one is closed at once."""
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, not {max_connections!r}")
        self.max_connections = max_connections
        self.host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._nodes: dict[str, _Registered] = {}
        self._connections: set[asyncio.Task[None]] = set()
        # Creations identify incarnations of a node; starting at random (never 0, which
        # means "any" in the distribution protocol) makes a restarted server unlikely to
        # hand a restarted node the creation it had before.
        self._next_creation = random.randrange(1, 1 << 32)

    @property
    def port(self) -> int:
        """The port the server listens on (the bound one, when it was created with 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("EpmdServer.port is known once start() has returned")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def nodes(self) -> dict[str, NodeAddress]:
        """The names registered now."""
        return {
            name: NodeAddress(
                port=r.request.port,
                node_type=r.request.node_type,
                highest_version=r.request.highest_version,
                lowest_version=r.request.lowest_version,
                name=name,
                protocol=r.request.protocol,
                extra=r.request.extra,
            )
            for name, r in self._nodes.items()
        }

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("EpmdServer.start() called twice")
        try:
            self._server = await asyncio.start_server(self._on_connection, self.host, self._requested_port)
        except OSError as exc:
            raise EpmdError(f"cannot listen on {self.host}:{self._requested_port} for EPMD: {exc}") from exc

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    def close(self) -> None:
        """Stop listening and drop every connection (which unregisters every node)."""
        if self._server is not None:
            self._server.close()
        for task in self._connections:
            task.cancel()

    async def wait_closed(self) -> None:
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> EpmdServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server is not None and self._server.sockets else "not listening"
        return f"<EpmdServer {where} nodes={sorted(self._nodes)}>"

    def _new_creation(self, highest_version: int) -> int:
        creation = self._next_creation
        self._next_creation = creation % ((1 << 32) - 1) + 1
        if highest_version < DIST_VERSION:
            # Nodes older than version 6 take a 2-bit creation, 1..3.
            return creation % 3 + 1
        return creation

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self.max_connections:
            log.debug("EPMD server: refused a connection from %s: %d open already", peer, len(self._connections))
            writer.transport.abort()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except EpmdProtocolError as exc:
            log.warning("EPMD server: dropping connection from %s: %s", peer, exc)
        except (OSError, TimeoutError) as exc:
            log.debug("EPMD server: connection from %s ended: %r", peer, exc)
        except asyncio.CancelledError:
            pass
        finally:
            # _serve records the name it registered in self._nodes with this writer; find it
            # there, so a name is dropped however the connection ended.
            for name, entry in list(self._nodes.items()):
                if entry.writer is writer:
                    del self._nodes[name]
                    log.debug("EPMD server: unregistered %r", name)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self._connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection; returns when it should be closed."""
        parser = RequestParser()
        registered: str | None = None
        deadline = asyncio.get_running_loop().time() + self.request_timeout
        while True:
            if registered is None:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(4096)
            else:
                data = await reader.read(4096)
            if not data:
                parser.receive_eof()
                return
            parser.receive_data(data)
            request = parser.next_request()
            if isinstance(request, NeedData):
                continue
            if registered is not None:
                raise EpmdProtocolError(f"client sent {type(request).__name__} on the connection that registered {registered!r}")
            if isinstance(request, Alive2Req):
                response = self._alive2(request, writer)
                writer.write(response.to_bytes())
                await writer.drain()
                if not response.ok:
                    return
                registered = request.name
                if not isinstance(parser.next_request(), NeedData):
                    raise EpmdProtocolError(f"client sent another request right after registering {registered!r}")
            elif isinstance(request, PortPlease2Req):
                writer.write(self._port_please2(request).to_bytes())
                await writer.drain()
                return
            else:
                # Newest first, as OTP's epmd lists them.
                listed = tuple((n, r.request.port) for n, r in reversed(self._nodes.items()))
                writer.write(NamesResp(self.port, listed).to_bytes())
                await writer.drain()
                return

    def _alive2(self, request: Alive2Req, writer: asyncio.StreamWriter) -> Alive2Resp:
        reply = Alive2XResp if request.highest_version >= DIST_VERSION else Alive2Resp
        if request.name in self._nodes:
            log.info("EPMD server: refused %r: the name is registered already", request.name)
            return reply(1, 0)
        creation = self._new_creation(request.highest_version)
        self._nodes[request.name] = _Registered(request, creation, writer)
        log.debug("EPMD server: registered %r at port %d, creation %d", request.name, request.port, creation)
        return reply(0, creation)

    def _port_please2(self, request: PortPlease2Req) -> Port2Resp:
        entry = self._nodes.get(request.name)
        if entry is None:
            return Port2Resp(1)
        r = entry.request
        return Port2Resp(0, r.port, r.node_type, r.protocol, r.highest_version, r.lowest_version, r.name, r.extra)


# -- ensure_epmd ----------------------------------------------------------------------------


async def _answers(host: str, port: int) -> bool:
    """Does an EPMD answer NAMES_REQ at host:port? False when nothing listens; an error when
    something listens that does not speak EPMD (starting another EPMD would not help)."""
    try:
        await names(host, port, timeout=1.0)
    except EpmdProtocolError as exc:
        raise EpmdError(f"something listens on {host}:{port}, but it is not an EPMD: {exc}") from exc
    except EpmdError:
        return False
    return True


async def _numeric_address(host: str, port: int) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise EpmdError(f"cannot resolve {host!r}")
    return str(infos[0][4][0])


async def ensure_epmd(
    host: str = "127.0.0.1", port: int | None = None, *, allow_system: bool = True, timeout: float = 5.0
) -> EpmdServer | None:
    """Make sure an EPMD answers on host:port (port: $ERL_EPMD_PORT, else 4369).

    Returns None when one answers already, or when the system's `epmd` (found on PATH, and
    only if `allow_system`) was started as a daemon and answered within `timeout` seconds.
    Otherwise starts an `EpmdServer` in this process and returns it: keep it (and the event
    loop) alive for as long as nodes need it, and close it afterwards.
    """
    port = _resolve_port(port)
    if await _answers(host, port):
        return None
    epmd = shutil.which("epmd") if allow_system else None
    if epmd is not None:
        command = [epmd, "-daemon", "-port", str(port)]
        address = await _numeric_address(host, port)
        if address not in ("0.0.0.0", "::"):
            command += ["-address", address]
        # -daemon forks; the process we start exits as soon as the daemon is on its way.
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, stderr = await proc.communicate()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await _answers(host, port):
                return None
            await asyncio.sleep(0.05)
        raise EpmdError(
            f"started `{' '.join(command)}` (exit status {proc.returncode}"
            f"{', ' + stderr.decode(errors='replace').strip() if stderr.strip() else ''}), "
            f"but no EPMD answered on {host}:{port} within {timeout} s"
        )
    server = EpmdServer(host, port)
    await server.start()
    return server
