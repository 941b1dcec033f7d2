"""asyncio glue between sockets and the sans-IO protocol objects: the only code of the node
that touches a socket. One `DistProtocol` per TCP connection to a peer node; it runs the
handshake, then hands the socket to the Rust link and what the link reads to its host.

With TLS (`-proto_dist inet_tls`) a connection's bytes go through its TLS session (sans-IO,
in Rust) from the first: the distribution handshake runs inside it once the peer's
certificate is verified, and the link takes the session over with the socket.

The transport does not know the node: it asks and tells a `ConnectionHost`, an interface
the node implements."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Protocol

from rustelixir._native import DistLink, TlsConfig, TlsSession
from rustelixir.errors import AuthenticationError, HandshakeError, LocalProtocolError, RemoteProtocolError, TlsError
from rustelixir.protocol.connection import ConnectionEvent, DistConnection, encoded
from rustelixir.protocol.control import Control
from rustelixir.protocol.flags import DFlag
from rustelixir.protocol.handshake import (
    Handshake, HandshakeComplete, NameReceived, Role, StatusReceived, split_node_name,
)  # fmt: skip

__all__ = [
    "ConnectionHost", "DistProtocol", "RefusedConnection", "SimultaneousConnect", "WarningLimiter",
    "DEFAULT_HANDSHAKE_TIMEOUT",
]  # fmt: skip

log = logging.getLogger("rustelixir.transport")

# Seconds a connection may take from its start to the end of its handshake.
DEFAULT_HANDSHAKE_TIMEOUT = 7.0


class SimultaneousConnect(ConnectionError):
    """Our connection attempt lost a simultaneous connect; the peer's is kept."""


@dataclass
class _Window:
    start: float
    logger: logging.Logger
    count: int = 0
    flush: asyncio.TimerHandle | None = None


class WarningLimiter:
    """At most `burst` warnings of one kind every `interval` seconds; the rest are counted
    and told in one line when the interval is over. Strangers make the node warn as fast as
    they can connect (a connection refused, a handshake that fails or times out): a line
    each would be a flood of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, interval: float = 10.0, burst: int = 5) -> None:
        self.loop = loop
        self.interval = interval
        self.burst = burst
        self._windows: dict[str, _Window] = {}

    def warning(self, logger: logging.Logger, kind: str, message: str, *args: object) -> None:
        now = self.loop.time()
        window = self._windows.get(kind)
        if window is not None and now >= window.start + self.interval:
            self._flush(kind)
            window = None
        if window is None:
            window = self._windows[kind] = _Window(now, logger)
        window.count += 1
        if window.count <= self.burst:
            logger.warning(message, *args)
        elif window.flush is None:
            window.flush = self.loop.call_at(window.start + self.interval, self._flush, kind)

    def _flush(self, kind: str) -> None:
        window = self._windows.pop(kind)
        if window.flush is not None:
            window.flush.cancel()
        if window.count > self.burst:
            window.logger.warning(
                "%d more like that (%s) in %g s, not logged one by one", window.count - self.burst, kind, self.interval
            )

    def close(self) -> None:
        for kind in list(self._windows):
            self._flush(kind)


class ConnectionHost(Protocol):
    """What a `DistProtocol` asks of the node it works for, and what it tells it. The node
    implements it; the transport knows nothing else of the node.

    Everything is called on the event loop. Of one connection the host hears, in this
    order: `handshake_status` (acceptor) or `answer_alive` (initiator) while the handshake
    runs; `handshake_ended` once, however the handshake ends; if it succeeded,
    `peer_up`, then `control_received` any number of times; and
    `connection_closed` when the connection is gone (also when the handshake failed)."""

    @property
    def name(self) -> str:
        """This node's name (`alive@host`), given in the handshake."""

    @property
    def cookie(self) -> str:
        """The cookie both sides prove they know in the handshake."""

    @property
    def creation(self) -> int:
        """This node's creation, given in the handshake (read when a connection starts)."""

    @property
    def handshake_timeout(self) -> float:
        """Seconds a connection has, from its start, to finish its handshake."""

    @property
    def ticktime(self) -> float:
        """net_ticktime in seconds: the link ticks every quarter of it when it has nothing
        else to send, and drops a peer silent (or not reading) for as long."""

    @property
    def max_message_size(self) -> int:
        """Bytes a message from a peer may take; larger ones are discarded (`TooLarge`)."""

    @property
    def native_server(self) -> Any:
        """The node's server (a `rustelixir._native.NativeServer`) whose calls the link
        answers itself on connections made from now on, or None."""

    @property
    def tls(self) -> TlsConfig | None:
        """The node's TLS configuration: with one, every connection is TLS, as
        `-proto_dist inet_tls` speaks it (the handshake inside with 4-byte lengths); None:
        plain TCP."""

    @property
    def warnings(self) -> WarningLimiter:
        """Where to warn of what strangers do (failed and timed-out handshakes): rate-limited,
        as a stranger can make them happen as fast as it connects."""

    def handshake_status(self, peer_name: str) -> str:
        """Acceptor: `peer_name` asks to connect. The status to answer it: "ok";
        "ok_simultaneous" (we were connecting to it too and give our attempt up); "nok" (we
        were connecting to it too and keep ours); "alive" (we are connected to it already);
        "not_allowed". Anything but "ok", "ok_simultaneous" or "alive" closes the connection."""

    def answer_alive(self, peer_name: str) -> bool:
        """Initiator: `peer_name` answered "alive" (it believes it is still connected to us).
        True goes on (its old connection is stale), False gives up this one."""

    def handshake_ended(self, connection: DistProtocol) -> None:
        """`connection`'s handshake is over: done, failed, timed out or closed. Once per
        connection, and before `peer_up`."""

    def peer_up(self, connection: DistProtocol) -> None:
        """The handshake with `connection.peer_name` succeeded: the peer is connected, and
        `connection.send` reaches it."""

    def control_received(self, connection: DistProtocol, events: Sequence[ConnectionEvent]) -> None:
        """What the peer sent that the Rust link did not answer itself, in its order: control
        messages, and `TooLarge` for those too large to decode."""

    def connection_closed(self, connection: DistProtocol) -> None:
        """`connection` is gone, in its handshake or after: whatever the peer held through
        it (monitors, links, calls) is over. At most once per connection (a connection asyncio
        never got to make, closed by `abort` or the handshake timeout, is not reported)."""


class RefusedConnection(asyncio.Protocol):
    """An incoming connection the node has no room for: closed at once, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


class DistProtocol(asyncio.Protocol):
    """One connection to one peer node, for `host` (see `ConnectionHost` for what it hears
    and when). `ready` resolves when the handshake is done (or fails with the reason)."""

    def __init__(self, host: ConnectionHost, role: Role, peer_name: str | None = None) -> None:
        self.host = host
        self.role = role
        # Over TLS the session carries every byte; dialling, the peer's certificate must
        # name the host of its node name (as OTP's client checks it).
        self.tls: TlsSession | None = None
        self.tls_agreed: str | None = None  # the TLS version and cipher suite, once agreed
        if host.tls is not None:
            if role is Role.ACCEPTOR:
                self.tls = host.tls.accept()
            else:
                self.tls = host.tls.connect(split_node_name(peer_name or "")[1])
        self.handshake: Handshake | None = Handshake(
            role,
            name=host.name,
            cookie=host.cookie,
            creation=host.creation,
            peer_name=peer_name,
            length_prefix=2 if self.tls is None else 4,
        )
        self.conn: DistConnection | None = None
        self.peer_name = peer_name
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[DistProtocol] = asyncio.get_running_loop().create_future()
        self.closed = False
        # Per-peer state the node keeps; all of it dies with the connection.
        self.monitors: dict[Any, tuple[Any, Any]] = {}  # ref -> (monitoring pid, our target)
        self.links: set[tuple[Any, Any]] = set()
        # From the moment the connection exists, even before asyncio calls connection_made
        # (which it might never do): a slot the node counts is freed by the deadline whatever
        # happens.
        self._handshake_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            host.handshake_timeout, self._handshake_timed_out
        )
        self._handshaking = True
        # After the handshake a Rust thread owns the socket (reads, fast path, ticks).
        self.link: DistLink | None = None
        self._wake_fd: int | None = None

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self.closed:  # timed out before asyncio got here
            transport.abort()
            return
        if self.handshake is not None and self.role is Role.INITIATOR:
            # (Over TLS: the TLS handshake's first message; ours follows when it is done.)
            self._write(self.handshake.data_to_send())

    def data_received(self, data: bytes) -> None:
        # Only the handshake comes this way: then the socket is the link's.
        if self.tls is not None:
            data = self._tls_data(data)
        if data:
            self._handshake_data(data)

    def _write(self, data: bytes) -> None:
        """Handshake bytes for the peer (through the TLS session, if any)."""
        assert self.transport is not None
        if self.tls is not None:
            self.tls.send(data)
            data = self.tls.data_to_send()
        if data:
            self.transport.write(data)

    def _tls_data(self, data: bytes) -> bytes:
        """The plaintext that `data` from the socket carried; the TLS handshake's answers
        are written. A peer that fails TLS (no TLS, a certificate that does not verify) is
        told why by an alert, and its connection closed."""
        assert self.tls is not None and self.transport is not None
        try:
            plaintext, closed = self.tls.receive(data)
        except TlsError as e:
            self.transport.write(self.tls.data_to_send())
            self.host.warnings.warning(
                log, "TLS handshakes failed", "TLS with %s failed: %s", self.peer_name or self._peer_address(), e
            )
            self.abort(e)
            return b""
        out = self.tls.data_to_send()
        if out:
            self.transport.write(out)
        if closed:
            self.abort(ConnectionError(f"{self.peer_name or self._peer_address()} ended TLS in the handshake"))
            return b""
        return plaintext

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            return  # the asyncio transport let go of a socket the link owns now
        self.closed = True
        self._end_handshake()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection to {self.peer_name or 'a peer'} closed in the handshake"))
            self.ready.exception()  # retrieved: nobody may be waiting on it
        self.host.connection_closed(self)

    # --- Handshake -----------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        hs = self.handshake
        if hs is None or self.transport is None:
            return
        try:
            events = hs.receive_data(data)
        except (HandshakeError, LocalProtocolError) as e:
            # A wrong cookie apart: other failures must not hide the most common mistake.
            kind = "wrong cookies" if isinstance(e, AuthenticationError) else "handshakes failed"
            self.host.warnings.warning(log, kind, "handshake with %s failed: %s", hs.peer_name or self._peer_address(), e)
            self.abort(e)
            return
        for event in events:
            if isinstance(event, NameReceived):
                self.peer_name = event.name
                status = self.host.handshake_status(event.name)
                hs.accept(status)
                if status not in ("ok", "ok_simultaneous", "alive"):
                    self._write(hs.data_to_send())
                    self.abort(ConnectionError(f"handshake with {event.name}: {status}"))
                    return
            elif isinstance(event, StatusReceived):
                if event.status == "alive":
                    go_on = self.host.answer_alive(self.peer_name or "")
                    hs.answer_alive(go_on)
                    if not go_on:
                        self._write(hs.data_to_send())
                        self.abort(SimultaneousConnect(f"already connected to {self.peer_name}"))
                        return
                elif event.status == "nok":
                    self.abort(SimultaneousConnect(f"{self.peer_name} is connecting to us at the same time and wins"))
                    return
                elif event.status == "not_allowed":
                    self.abort(ConnectionError(f"{self.peer_name} refused the connection: {event.status}"))
                    return
            elif isinstance(event, HandshakeComplete):
                self._write(hs.data_to_send())
                self._complete(event)
                return
        out = hs.data_to_send()
        if out:
            self._write(out)
        if hs.state == "closed":
            self.abort(ConnectionError(f"handshake with {hs.peer_name or self._peer_address()} ended"))

    def _end_handshake(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._handshaking:
            self._handshaking = False
            self.host.handshake_ended(self)

    def _complete(self, done: HandshakeComplete) -> None:
        self._end_handshake()
        self.handshake = None
        self.peer_name = done.peer_name
        self.flags = done.flags
        self.tls_agreed = self.tls.agreed if self.tls is not None else None
        self.conn = DistConnection(
            peer_name=done.peer_name, flags=done.flags, max_message_size=self.host.max_message_size
        )
        self._hand_over(done.leftover)
        self.host.peer_up(self)
        if not self.ready.done():
            self.ready.set_result(self)

    def _hand_over(self, leftover: bytes) -> None:
        """Gives the socket to a Rust link (DistLink): from now on its threads read, answer
        the node's server, frame what is sent and tick, without the GIL; the frames left for
        Python come back through a pipe this loop watches."""
        assert self.transport is not None and self.conn is not None
        sock = self.transport.get_extra_info("socket")
        fd = os.dup(sock.fileno())
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        self.link = DistLink(
            fd,
            leftover,
            wake_w,
            peer_name=self.peer_name or "",
            alias=bool(self.flags & DFlag.ALIAS),
            send_sender=bool(self.flags & DFlag.SEND_SENDER),
            header=bool(self.flags & DFlag.FRAGMENTS),
            max_message_size=self.conn.max_message_size,
            fragment_size=self.conn.fragment_size,
            ticktime_ms=int(self.host.ticktime * 1000),
            server=self.host.native_server,
            tls=self.tls,
        )
        if self.tls is not None:
            log.debug("TLS with %s: %s", self.peer_name, self.tls_agreed)
        self._wake_fd = wake_r
        self.transport.abort()  # closes asyncio's descriptor; the link holds its duplicate
        asyncio.get_running_loop().add_reader(wake_r, self._link_ready)

    def _link_ready(self) -> None:
        assert self.link is not None and self.conn is not None and self._wake_fd is not None
        try:
            os.read(self._wake_fd, 4096)
        except BlockingIOError:
            pass
        link = self.link
        frames, _ticks, closed = link.take()  # ticks: the link watches for silence itself
        try:
            if frames:
                try:
                    events = self.conn.receive_frames(frames)
                    self.host.control_received(self, events)
                except RemoteProtocolError as e:
                    log.warning("closing the connection to %s: %s", self.peer_name, e, extra={"peer": self.peer_name})
                    self.abort(e)
                    return
                except Exception as e:
                    # Frames that broke our reading some other way (a bug of ours): the
                    # connection goes all the same, or it would stay open, unread, until
                    # net_ticktime.
                    log.exception("closing the connection to %s: its frames could not be read", self.peer_name, extra={"peer": self.peer_name})
                    self.abort(e)
                    return
        finally:
            if frames:
                link.handled()  # the link reads on (what follows these frames on the wire)
            if closed is not None and not self.closed:
                level = logging.WARNING if closed.startswith("protocol error") else logging.INFO
                log.log(level, "connection to %s ended: %s", self.peer_name, closed, extra={"peer": self.peer_name})
                self._shut_link()

    def _shut_link(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._wake_fd is not None:
            asyncio.get_running_loop().remove_reader(self._wake_fd)
            os.close(self._wake_fd)
            self._wake_fd = None
        self.host.connection_closed(self)
        if self.link is not None:
            self.link.close()  # joins its threads, closes the socket's descriptors, tells the server
            self.link = None

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self.conn is not None or self.closed:
            return
        self.host.warnings.warning(log, "handshakes timed out", "handshake with %s timed out", self.peer_name or self._peer_address())
        if self.transport is None:
            # asyncio never called connection_made: nothing to close, only the slot to free.
            self.closed = True
            self._end_handshake()
            if not self.ready.done():
                self.ready.set_exception(TimeoutError("distribution handshake timed out"))
                self.ready.exception()
            return
        self.abort(TimeoutError("distribution handshake timed out"))

    def _peer_address(self) -> str:
        if self.transport is None:
            return "?"
        peer = self.transport.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    # --- Out -----------------------------------------------------------------------------

    def send(self, message: Control) -> None:
        """Sends a control message (framed by the link); a peer that does not read what it
        is sent loses its connection."""
        if self.link is None or self.closed:
            return
        control, payload = encoded(message)
        try:
            self.link.send_message(control, payload)
        except OSError as e:
            log.info("cannot write to %s: %s", self.peer_name, e, extra={"peer": self.peer_name})
            self._shut_link()

    def refuse(self, body: bytes) -> bool:
        """A message too large to decode: when it is a call to the server, its caller is
        answered `{error, overloaded}` (by the link, which knows how to reach it)."""
        if self.link is None:
            return False
        try:
            return self.link.refuse(body)
        except OSError as e:
            log.info("cannot write to %s: %s", self.peer_name, e, extra={"peer": self.peer_name})
            self._shut_link()
            return False

    def abort(self, reason: BaseException) -> None:
        if not self.ready.done():
            self.ready.set_exception(reason)
            self.ready.exception()
        if self.link is not None:
            self._shut_link()
        elif self.transport is not None and not self.closed:
            self.transport.abort()
        elif self.transport is None and not self.closed:
            self.closed = True  # connection_made, if it comes, closes the transport
            self._end_handshake()
