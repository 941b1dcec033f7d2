"""The node: a hidden Erlang node in Python. It listens for peers, registers with EPMD,
connects out, keeps registered names and Python-side processes with pids, answers
monitors, and routes every control message the peers send.

    async with Node("py@127.0.0.1", cookie="secret") as node:
        reply = await node.call(("some_server", "app@127.0.0.1"), request)

Everything here runs on one asyncio event loop; `call_threadsafe` and `send_threadsafe`
are the doors for other threads.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from rustelixir._native import TlsConfig
from rustelixir.errors import CallError, ConnectionLostError, HandshakeError, NodeClosedError, RemoteProtocolError
from rustelixir.protocol import control as c
from rustelixir.protocol.connection import DEFAULT_MAX_MESSAGE_SIZE, ConnectionEvent, TooLarge
from rustelixir.protocol.flags import DFlag
from rustelixir.protocol.handshake import Role, split_node_name
from rustelixir.terms import Atom, ImproperList, Pid, Reference
from rustelixir.transport import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DistProtocol,
    RefusedConnection,
    SimultaneousConnect,
    WarningLimiter,
)

__all__ = ["Node", "Process", "GenServer", "TlsConfig", "EPMD_MODES"]

log = logging.getLogger("rustelixir.node")

EPMD_MODES = ("auto", "system", "internal", "none")
DEFAULT_MAX_PENDING_HANDSHAKES = 256
GEN_CALL = Atom("$gen_call")
GEN_CAST = Atom("$gen_cast")
NOPROC = Atom("noproc")


class _Intent:
    """A connection we are making; cancelled when the peer's simultaneous attempt wins."""

    def __init__(self) -> None:
        self.protocol: DistProtocol | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.protocol is not None:
            self.protocol.abort(SimultaneousConnect("simultaneous connect: the peer's attempt wins"))


class Process:
    """A process living in this node: it has a pid, and messages sent to the pid (or to its
    registered name, or to one of its aliases) arrive at `deliver`, on the event loop."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pid = node._new_pid(self)

    def deliver(self, message: Any, sender: Pid | None, peer: DistProtocol | None) -> None:
        raise NotImplementedError

    def monitored(self, ref: Reference, by: Pid, peer: DistProtocol) -> None:
        """A remote process started monitoring this one."""

    def demonitored(self, ref: Reference, by: Pid, peer: DistProtocol) -> None:
        """A remote process stopped monitoring this one (for a call: its caller gave up)."""

    def monitor_exit(self, ref: Reference, reason: Any, from_proc: Any, peer: DistProtocol) -> None:
        """A process this one monitors (MONITOR_P sent in its name) is gone, says the peer
        `peer`: `from_proc` is the process that exited (a pid, or the name monitored). A peer
        can send any exit: check that it names what was monitored, from that process's node."""

    def exit_signal(self, sender: Pid, reason: Any, peer: DistProtocol) -> None:
        """An exit signal from a linked or exiting remote process. Servers ignore them."""
        log.debug("%s ignores exit signal from %s: %r", self.pid, sender, reason)


class GenServer(Process):
    """A process that speaks the gen_server protocol: `handle_call(request, from_, peer)`
    answers with `reply(from_, value)` now or later; `handle_cast(request, peer)`."""

    def deliver(self, message: Any, sender: Pid | None, peer: DistProtocol | None) -> None:
        if type(message) is tuple:
            if len(message) == 3 and message[0] == GEN_CALL:
                from_ = message[1]
                if type(from_) is tuple and len(from_) == 2 and isinstance(from_[0], Pid):
                    self.handle_call(message[2], from_, peer)
                    return
            elif len(message) == 2 and message[0] == GEN_CAST:
                self.handle_cast(message[1], peer, sender)
                return
        self.handle_info(message, peer)

    def handle_call(self, request: Any, from_: tuple[Pid, Any], peer: DistProtocol | None) -> None:
        raise NotImplementedError

    def handle_cast(self, request: Any, peer: DistProtocol | None, sender: Pid | None = None) -> None:
        pass

    def handle_info(self, message: Any, peer: DistProtocol | None) -> None:
        log.debug("%s drops an unexpected message: %r", self.pid, message)

    def reply(self, from_: tuple[Pid, Any], value: Any) -> None:
        self.node.reply(self.pid, from_, value)


class NetKernel(GenServer):
    """Enough of `net_kernel` for `Node.ping/1` and `:net_adm.ping/1` to answer `:pong`."""

    def handle_call(self, request: Any, from_: tuple[Pid, Any], peer: DistProtocol | None) -> None:
        if type(request) is tuple and len(request) == 2 and request[0] == Atom("is_auth"):
            self.reply(from_, Atom("yes"))
        else:
            self.reply(from_, Atom("ignored"))


class _Caller(Process):
    """The temporary process behind one `Node.call`."""

    def __init__(self, node: Node, future: asyncio.Future[Any], ref: Reference) -> None:
        super().__init__(node)
        self.future = future
        self.ref = ref

    def deliver(self, message: Any, sender: Pid | None, peer: DistProtocol | None) -> None:
        if type(message) is tuple and len(message) == 2 and message[0] == self.ref and not self.future.done():
            self.future.set_result(message[1])


def default_cookie() -> str:
    """$RUSTELIXIR_COOKIE, else ~/.erlang.cookie, created (random, mode 0400) if missing, as
    `erl` does."""
    env = os.environ.get("RUSTELIXIR_COOKIE")
    if env:
        return env
    path = os.path.join(os.path.expanduser("~"), ".erlang.cookie")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        cookie = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(cookie)
        return cookie


def _check_options(
    *, name: str, epmd: str, port: int, ticktime: float, max_message_size: int,
    max_pending_handshakes: int, handshake_timeout: float, tls: object,
) -> None:  # fmt: skip
    """The node's options, checked in one place (ValueError says which and why)."""
    split_node_name(name)
    if epmd not in EPMD_MODES:
        raise ValueError(f"epmd must be one of {EPMD_MODES}, not {epmd!r}")
    if not _is_int(port) or not 0 <= port <= 65535:
        raise ValueError(f"port must be a TCP port number (0: any free port), not {port!r}")
    if epmd == "none" and port == 0:
        raise ValueError("without EPMD the node needs a fixed port (peers cannot look it up)")
    for option, value in (("ticktime", ticktime), ("handshake_timeout", handshake_timeout)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
            raise ValueError(f"{option} must be a positive number of seconds, not {value!r}")
    for option, value in (("max_message_size", max_message_size), ("max_pending_handshakes", max_pending_handshakes)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{option} must be a positive integer, not {value!r}")
    if tls is not None and not isinstance(tls, TlsConfig):
        raise ValueError(f"tls must be a TlsConfig(cert=..., key=..., cacert=...) or None, not {tls!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def full_node_name(name: str | None = None, sname: str | None = None) -> str:
    """A long name as given (`py@127.0.0.1`), or a short name completed with this host's
    short host name (`py` -> `py@myhost`)."""
    if name:
        split_node_name(name)
        return name
    if sname:
        if "@" in sname:
            split_node_name(sname)
            return sname
        return f"{sname}@{socket.gethostname().split('.')[0]}"
    raise ValueError("a node name is needed (name or sname)")


class Node:
    """A hidden node. It is the `ConnectionHost` of its connections (`transport`): they ask
    it how to answer a handshake and tell it when a peer is up, sent something, or is gone."""

    def __init__(
        self,
        name: str,
        cookie: str | None = None,
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        epmd: str = "auto",
        epmd_port: int | None = None,
        ticktime: float = 60.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_pending_handshakes: int = DEFAULT_MAX_PENDING_HANDSHAKES,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        tls: TlsConfig | None = None,
    ) -> None:
        """`max_pending_handshakes`: incoming connections that may be in their handshake at
        once; past it a new one is closed at once, unread (connections this node makes are
        not counted). `handshake_timeout`: seconds a connection has to finish its handshake.
        `tls`: every connection, both ways, is TLS as `-proto_dist inet_tls` speaks it, the
        peer's certificate verified against the configuration's CA; plain TCP peers are
        refused. EPMD stays plain."""
        _check_options(
            name=name, epmd=epmd, port=port, ticktime=ticktime, max_message_size=max_message_size,
            max_pending_handshakes=max_pending_handshakes, handshake_timeout=handshake_timeout, tls=tls,
        )  # fmt: skip
        self.name = name
        self.cookie = cookie if cookie is not None else default_cookie()
        self.listen_host = listen_host
        self.port = port
        self.epmd_mode = epmd
        self.epmd_port = epmd_port
        self.ticktime = ticktime
        self.max_message_size = max_message_size
        self.max_pending_handshakes = max_pending_handshakes
        self.handshake_timeout = float(handshake_timeout)
        self.tls = tls
        # Incoming connections in their handshake: the slots max_pending_handshakes bounds.
        self._handshaking: set[DistProtocol] = set()
        # What strangers can make the node say, as often as they connect: rate-limited.
        self._warnings: WarningLimiter | None = None
        self.creation = secrets.randbelow(0xFFFFFFF0) + 4  # replaced by EPMD's when registered
        self.name_atom = Atom(name)
        self.peers: dict[str, DistProtocol] = {}
        self.registered: dict[str, Process] = {}
        self._processes: dict[int, Process] = {}
        self._aliases: dict[Reference, Process] = {}
        self._our_monitors: dict[Reference, tuple[str, Callable[[Any], None]]] = {}  # ref -> (node, on_down)
        self._pending_out: dict[str, _Intent] = {}
        # The Rust server whose calls every connection's link answers (`serve_natives`).
        self.native_server: Any = None
        self._peer_waiters: dict[str, list[asyncio.Future[DistProtocol]]] = {}
        # Told of each peer that comes up (`peer_up(proto)`) and goes (`peer_down(name)`).
        self._peer_watchers: list[Any] = []
        self._pid_ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._registration: Any = None
        self._epmd_server: Any = None
        self._closed = asyncio.Event()
        self._started = False
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- Lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self.loop = asyncio.get_running_loop()
        self._warnings = WarningLimiter(self.loop)
        self._server = await self.loop.create_server(self._incoming, self.listen_host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.epmd_mode != "none":
            from rustelixir import epmd

            alive, _host = split_node_name(self.name)
            self._epmd_server = await epmd.ensure_epmd(
                "127.0.0.1", self.epmd_port, allow_system=self.epmd_mode in ("auto", "system")
            )
            if self._epmd_server is not None and self.epmd_mode == "system":
                self._epmd_server.close()
                await self._epmd_server.wait_closed()
                self._epmd_server = None
                raise NodeClosedError("no EPMD is running and there is no system epmd to start (--epmd system)")
            epmd_port = self._epmd_server.port if self._epmd_server is not None else self.epmd_port
            self._registration = await epmd.register(alive, self.port, epmd_port=epmd_port, hidden=True)
            self.creation = self._registration.creation
        self.register("net_kernel", NetKernel(self))
        self._started = True
        log.info("node %s listening on %s:%d", self.name, self.listen_host, self.port)

    async def close(self) -> None:
        if not self._started or self._closed.is_set():
            return
        self._closed.set()
        if self._server is not None:
            self._server.close()
        for intent in list(self._pending_out.values()):
            intent.cancel()
        for proto in list(self._handshaking):
            proto.abort(NodeClosedError("node closed"))
        for peer in list(self.peers.values()):
            peer.abort(NodeClosedError("node closed"))
        if self._warnings is not None:
            self._warnings.close()
        if self._registration is not None:
            await self._registration.close()
        if self._epmd_server is not None:
            self._epmd_server.close()
            await self._epmd_server.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def serve_forever(self) -> None:
        await self.start()
        await self.wait_closed()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- Processes, names, references ----------------------------------------------------

    def _new_pid(self, process: Process) -> Pid:
        number = next(self._pid_ids)
        pid = Pid(self.name, number & 0x7FFF_FFFF, number >> 31, self.creation)
        self._processes[number] = process
        return pid

    def serve_natives(self, server: Any) -> None:
        """`server` (a `rustelixir._native.NativeServer`) answers the calls to it on every
        connection made from now on, in Rust."""
        self.native_server = server

    def register(self, name: str, process: Process) -> None:
        if name in self.registered:
            raise ValueError(f"the name {name!r} is already registered")
        self.registered[name] = process

    def unregister(self, name: str) -> None:
        self.registered.pop(name, None)

    def exit_process(self, process: Process) -> None:
        self._processes.pop(process.pid.id | (process.pid.serial << 31), None)
        for name, p in list(self.registered.items()):
            if p is process:
                del self.registered[name]
        for ref, p in list(self._aliases.items()):
            if p is process:
                del self._aliases[ref]

    def make_ref(self) -> Reference:
        """A new reference of this node that no other tells anything about: its id words are
        random (18 + 32 + 32 bits, the first word as in BEAM's own references), as a
        peer that could guess them could answer or end calls and monitors it is not part of."""
        return Reference(self.name, self.creation, [secrets.randbits(18), secrets.randbits(32), secrets.randbits(32)])

    def _local_process(self, target: Any) -> Process | None:
        if isinstance(target, Atom):
            return self.registered.get(target.name)
        if isinstance(target, Pid):
            if target.node != self.name_atom or target.creation != self.creation:
                return None
            return self._processes.get(target.id | (target.serial << 31))
        return None

    # --- Connections ---------------------------------------------------------------------

    def _incoming(self) -> asyncio.Protocol:
        """The protocol for a connection just accepted. Counted from here (asyncio makes
        the protocols of a burst of accepts before it calls any connection_made), freed
        by `handshake_ended`, at the latest after handshake_timeout."""
        if len(self._handshaking) >= self.max_pending_handshakes:
            self.warnings.warning(
                log, "connections refused",
                "refused an incoming connection: %d handshakes in progress already (max_pending_handshakes)",
                len(self._handshaking),
            )  # fmt: skip
            return RefusedConnection()
        proto = DistProtocol(self, Role.ACCEPTOR)
        self._handshaking.add(proto)
        return proto

    def handshake_ended(self, proto: DistProtocol) -> None:
        """ConnectionHost: `proto`'s handshake is over (done, failed, timed out or closed)."""
        self._handshaking.discard(proto)

    @property
    def warnings(self) -> WarningLimiter:
        """Where the transport warns of what strangers do (rate-limited)."""
        assert self._warnings is not None, "the node is not started"
        return self._warnings

    @property
    def pending_handshakes(self) -> int:
        """Incoming connections in their handshake now."""
        return len(self._handshaking)

    async def connect(self, peer_name: str, *, port: int | None = None, timeout: float = 7.0) -> DistProtocol:
        """The connection to `peer_name`, made if there is none: its port is looked up in
        the EPMD on its host unless given (EPMD-less peers). If the peer dials us at the
        same moment, one of the two connections is kept (the handshake's tie-break) and
        this returns that one."""
        self._check_open()
        peer = self.peers.get(peer_name)
        if peer is not None:
            return peer
        assert self.loop is not None
        if peer_name in self._pending_out:
            return await self._wait_for_peer(peer_name, timeout)
        deadline = self.loop.time() + timeout
        # The intent to connect is known from now on, so a simultaneous attempt of the
        # peer is recognised whatever stage ours is at.
        intent = _Intent()
        self._pending_out[peer_name] = intent
        failure: BaseException | None = None
        try:
            _alive, host = split_node_name(peer_name)
            if port is None:
                from rustelixir import epmd

                address = await epmd.lookup(_alive, host, epmd_port=self.epmd_port, timeout=timeout)
                if address is None:
                    raise ConnectionLostError(f"{peer_name} is not registered in the EPMD on {host}")
                port = address.port
            if intent.cancelled:
                raise SimultaneousConnect("the peer's simultaneous attempt won")
            _transport, protocol = await asyncio.wait_for(
                self.loop.create_connection(lambda: DistProtocol(self, Role.INITIATOR, peer_name), host, port),
                max(0.0, deadline - self.loop.time()),
            )
            if intent.cancelled:
                protocol.abort(SimultaneousConnect("the peer's simultaneous attempt won"))
                raise SimultaneousConnect("the peer's simultaneous attempt won")
            intent.protocol = protocol
            return await asyncio.wait_for(asyncio.shield(protocol.ready), max(0.0, deadline - self.loop.time()))
        except SimultaneousConnect:
            return await self._wait_for_peer(peer_name, max(0.0, deadline - self.loop.time()))
        except BaseException as e:
            failure = e
            raise
        finally:
            if self._pending_out.get(peer_name) is intent:
                del self._pending_out[peer_name]
            if failure is not None and peer_name not in self.peers:
                for waiter in self._peer_waiters.pop(peer_name, []):
                    if not waiter.done():
                        waiter.set_exception(ConnectionLostError(f"cannot connect to {peer_name}: {failure}"))

    async def _wait_for_peer(self, peer_name: str, timeout: float) -> DistProtocol:
        peer = self.peers.get(peer_name)
        if peer is not None:
            return peer
        assert self.loop is not None
        waiter = self.loop.create_future()
        self._peer_waiters.setdefault(peer_name, []).append(waiter)
        try:
            result: DistProtocol = await asyncio.wait_for(waiter, timeout)
            return result
        finally:
            waiters = self._peer_waiters.get(peer_name, [])
            if waiter in waiters:
                waiters.remove(waiter)

    def handshake_status(self, peer_name: str) -> str:
        """ConnectionHost: what to answer `peer_name`, which asks to connect."""
        if self._closed.is_set():
            return "not_allowed"
        if peer_name in self.peers:
            return "alive"
        intent = self._pending_out.get(peer_name)
        if intent is not None:
            # A simultaneous connect: the node with the greater name keeps its own attempt.
            if self.name > peer_name:
                return "nok"
            intent.cancel()
            return "ok_simultaneous"
        return "ok"

    def answer_alive(self, peer_name: str) -> bool:
        """ConnectionHost. Initiator, told 'alive' (the peer thinks it is still connected to
        us): go on only if we are not connected to it; then its old connection is stale."""
        return peer_name not in self.peers

    def peer_up(self, proto: DistProtocol) -> None:
        """ConnectionHost: `proto` finished its handshake; it replaces any older connection
        to the same node."""
        assert proto.peer_name is not None
        old = self.peers.get(proto.peer_name)
        if old is not None and old is not proto:
            old.abort(ConnectionError("replaced by a new connection from the same node"))
            self._drop_peer(old)
        self.peers[proto.peer_name] = proto
        log.info("connected to %s (%s)", proto.peer_name, proto.role.value, extra={"peer": proto.peer_name})
        for waiter in self._peer_waiters.pop(proto.peer_name, []):
            if not waiter.done():
                waiter.set_result(proto)
        for watcher in list(self._peer_watchers):
            watcher.peer_up(proto)

    def add_peer_watcher(self, watcher: Any) -> None:
        """`watcher.peer_up(proto)` is called for each peer that comes up from now on, and
        `watcher.peer_down(peer_name)` for each that goes."""
        self._peer_watchers.append(watcher)

    def remove_peer_watcher(self, watcher: Any) -> None:
        if watcher in self._peer_watchers:
            self._peer_watchers.remove(watcher)

    def connection_closed(self, proto: DistProtocol) -> None:
        """ConnectionHost: `proto` is gone; if it was the peer's connection, the peer is down."""
        if proto.peer_name is not None and self.peers.get(proto.peer_name) is proto:
            self._drop_peer(proto)
            log.info("disconnected from %s", proto.peer_name, extra={"peer": proto.peer_name})

    def _drop_peer(self, proto: DistProtocol) -> None:
        assert proto.peer_name is not None
        if self.peers.get(proto.peer_name) is proto:
            del self.peers[proto.peer_name]
        for ref, (by, target) in list(proto.monitors.items()):
            target.demonitored(ref, by, proto)
        proto.monitors.clear()
        proto.links.clear()
        for ref, (node_name, on_down) in list(self._our_monitors.items()):
            if node_name == proto.peer_name:
                del self._our_monitors[ref]
                on_down((Atom("nodedown"), Atom(node_name)))
        for watcher in list(self._peer_watchers):
            watcher.peer_down(proto.peer_name)

    def _check_open(self) -> None:
        if not self._started or self._closed.is_set():
            raise NodeClosedError(f"node {self.name} is {'closed' if self._closed.is_set() else 'not started'}")

    # --- In: routing control messages ----------------------------------------------------

    def control_received(self, proto: DistProtocol, events: Sequence[ConnectionEvent]) -> None:
        """ConnectionHost: routes what the peer sent to the handler of each message's type."""
        for event in events:
            handler = _HANDLERS.get(type(event))
            if handler is None:
                continue
            try:
                handler(self, proto, event)
            except Exception:
                # A bug of ours must not lose the rest of the peer's messages.
                log.exception("handling %s from %s failed", type(event).__name__, proto.peer_name, extra={"peer": proto.peer_name})

    def _deliver_to(self, target: Any, message: Any, sender: Pid | None, proto: DistProtocol) -> None:
        process = self._local_process(target)
        if process is not None:
            process.deliver(message, sender, proto)
        else:
            log.debug("message to unknown %r dropped", target)

    def _on_reg_send(self, proto: DistProtocol, m: c.RegSend | c.RegSendTT) -> None:
        self._deliver_to(m.to_name, m.message, m.from_pid, proto)

    def _on_send(self, proto: DistProtocol, m: c.Send | c.SendTT) -> None:
        self._deliver_to(m.to_pid, m.message, None, proto)

    def _on_send_sender(self, proto: DistProtocol, m: c.SendSender | c.SendSenderTT) -> None:
        self._deliver_to(m.to_pid, m.message, m.from_pid, proto)

    def _on_alias_send(self, proto: DistProtocol, m: c.AliasSend | c.AliasSendTT) -> None:
        process = self._aliases.get(m.alias)
        if process is not None:
            process.deliver(m.message, m.from_pid, proto)

    def _on_monitor_p(self, proto: DistProtocol, m: c.MonitorP) -> None:
        target = self._local_process(m.to_proc)
        if target is None:
            proto.send(c.MonitorPExit(from_proc=m.to_proc, to_pid=m.from_pid, ref=m.ref, reason=NOPROC))
            return
        proto.monitors[m.ref] = (m.from_pid, target)
        target.monitored(m.ref, m.from_pid, proto)

    def _on_demonitor_p(self, proto: DistProtocol, m: c.DemonitorP) -> None:
        entry = proto.monitors.pop(m.ref, None)
        target = entry[1] if entry is not None else self._local_process(m.to_proc)
        if target is not None:
            target.demonitored(m.ref, m.from_pid, proto)
        elif self.native_server is not None:
            self.native_server.demonitor(m.ref, proto.peer_name or "")  # a process the native server spawned

    def _on_spawn_request(self, proto: DistProtocol, m: c.SpawnRequest | c.SpawnRequestTT) -> None:
        # The native server makes the process and runs what it asks (`erpc`, `rpc`); a node
        # that serves no natives spawns nothing.
        if self.native_server is not None and proto.peer_name:
            if not self.native_server.spawn(proto.peer_name, m.to_terms()[0], m.args):
                proto.abort(RemoteProtocolError(f"malformed SPAWN_REQUEST from {proto.peer_name}"))
        else:
            proto.send(c.SpawnReply(ref=m.ref, to_pid=m.from_pid, flags=0, result=Atom("notsup")))

    def _on_monitor_p_exit(self, proto: DistProtocol, m: c.MonitorPExit | c.PayloadMonitorPExit) -> None:
        entry = self._our_monitors.pop(m.ref, None)
        if entry is not None:
            entry[1](m.reason)
            return
        process = self._local_process(m.to_pid)
        if process is not None:
            process.monitor_exit(m.ref, m.reason, m.from_proc, proto)

    def _on_too_large(self, proto: DistProtocol, m: TooLarge) -> None:
        answered = proto.refuse(m.body)
        log.warning("discarded a message of %d bytes from %s%s: %s", len(m.body), proto.peer_name,
                    " (its caller answered :overloaded)" if answered else "", m.reason, extra={"peer": proto.peer_name})  # fmt: skip

    def _on_link(self, proto: DistProtocol, m: c.Link) -> None:
        if self._local_process(m.to_pid) is None:
            # Linking to a process that does not exist: it "exits" at once with noproc.
            proto.send(c.PayloadExit(from_pid=m.to_pid, to_pid=m.from_pid, reason=NOPROC)
                       if proto.flags & DFlag.EXIT_PAYLOAD else c.Exit(from_pid=m.to_pid, to_pid=m.from_pid, reason=NOPROC))
            return
        proto.links.add((m.from_pid, m.to_pid))

    def _on_unlink_id(self, proto: DistProtocol, m: c.UnlinkId) -> None:
        proto.links.discard((m.from_pid, m.to_pid))
        proto.send(c.UnlinkIdAck(id=m.id, from_pid=m.to_pid, to_pid=m.from_pid))

    def _on_unlink(self, proto: DistProtocol, m: c.Unlink | c.UnlinkIdAck) -> None:
        proto.links.discard((m.from_pid, m.to_pid))

    def _on_exit(self, proto: DistProtocol, m: Any) -> None:
        proto.links.discard((m.from_pid, m.to_pid))
        process = self._local_process(m.to_pid)
        if process is not None:
            process.exit_signal(m.from_pid, m.reason, proto)
        elif (self.native_server is not None and proto.peer_name and m.reason != Atom("normal")
              and isinstance(m, (c.Exit, c.ExitTT, c.PayloadExit, c.PayloadExitTT))):  # fmt: skip
            # A process the native server spawned linked to its asker, which is gone.
            self.native_server.link_exit(m.from_pid, m.to_pid, proto.peer_name)

    # --- Out: sending and calling --------------------------------------------------------

    def peer_for(self, node_name: str) -> DistProtocol | None:
        return self.peers.get(node_name)

    def reply(self, from_pid: Pid, from_: tuple[Pid, Any], value: Any) -> None:
        """Answers a gen_server call: `{tag, value}` to the caller's alias when the tag is
        `[:alias | ref]` and the peer offered ALIAS, else to the caller's pid."""
        caller, tag = from_
        proto = self.peers.get(caller.node.name)
        if proto is None:
            return  # the caller's node is gone; so is the caller
        message = (tag, value)
        if type(tag) is ImproperList and proto.flags & DFlag.ALIAS and isinstance(tag.tail, Reference):
            proto.send(c.AliasSend(from_pid=from_pid, alias=tag.tail, message=message))
        else:
            proto.send(c.SendSender(from_pid=from_pid, to_pid=caller, message=message)
                       if proto.flags & DFlag.SEND_SENDER else c.Send(to_pid=caller, message=message))

    async def send(self, dest: Any, message: Any, *, sender: Pid | None = None) -> None:
        """Sends `message` to a pid, to `(name, node)`, or to a local registered name."""
        self._check_open()
        if isinstance(dest, tuple) and len(dest) == 2:
            name, node_name = dest
            name = name.name if isinstance(name, Atom) else name
            node_name = node_name.name if isinstance(node_name, Atom) else node_name
            if node_name == self.name:
                self._deliver_local_name(name, message, sender)
                return
            proto = await self.connect(node_name)
            from_pid = sender if sender is not None else self._anonymous_sender()
            proto.send(c.RegSend(from_pid=from_pid, to_name=Atom(name), message=message))
        elif isinstance(dest, Pid):
            if dest.node == self.name_atom:
                process = self._local_process(dest)
                if process is not None:
                    process.deliver(message, sender, None)
                return
            proto = await self.connect(dest.node.name)
            if sender is not None and proto.flags & DFlag.SEND_SENDER:
                proto.send(c.SendSender(from_pid=sender, to_pid=dest, message=message))
            else:
                proto.send(c.Send(to_pid=dest, message=message))
        else:
            raise TypeError(f"cannot send to {dest!r}: expected a Pid or (name, node)")

    def _deliver_local_name(self, name: str, message: Any, sender: Pid | None) -> None:
        process = self.registered.get(name)
        if process is not None:
            process.deliver(message, sender, None)

    def _anonymous_sender(self) -> Pid:
        sender = self.registered.get("net_kernel")
        assert sender is not None
        return sender.pid

    async def call(self, dest: Any, request: Any, timeout: float = 5.0) -> Any:
        """`GenServer.call(dest, request, timeout)` from Python: `dest` is a Pid or
        `(name, node)`. Raises CallError with the exit reason (`noproc`, `timeout`,
        `(nodedown, node)`) as GenServer.call would exit."""
        self._check_open()
        assert self.loop is not None
        if isinstance(dest, tuple) and len(dest) == 2:
            name, node_name = dest
            name = name.name if isinstance(name, Atom) else name
            node_name = node_name.name if isinstance(node_name, Atom) else node_name
            target: Any = Atom(name)
        elif isinstance(dest, Pid):
            node_name = dest.node.name
            target = dest
        else:
            raise TypeError(f"cannot call {dest!r}: expected a Pid or (name, node)")
        try:
            proto = await self.connect(node_name, timeout=timeout)
        except (OSError, ConnectionError, asyncio.TimeoutError, ConnectionLostError, HandshakeError) as e:
            # (A handshake refused, a wrong cookie or a certificate TLS does not accept: the
            # node cannot be reached, as a BEAM caller sees it.)
            raise CallError((Atom("nodedown"), Atom(node_name))) from e
        future: asyncio.Future[Any] = self.loop.create_future()
        ref = self.make_ref()
        caller = _Caller(self, future, ref)

        def on_down(reason: Any) -> None:
            if not future.done():
                future.set_exception(CallError(reason))

        self._our_monitors[ref] = (node_name, on_down)
        try:
            proto.send(c.MonitorP(from_pid=caller.pid, to_proc=target, ref=ref))
            message = (GEN_CALL, (caller.pid, ref), request)
            if isinstance(target, Atom):
                proto.send(c.RegSend(from_pid=caller.pid, to_name=target, message=message))
            else:
                proto.send(c.Send(to_pid=target, message=message))
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise CallError(Atom("timeout")) from None
        finally:
            if self._our_monitors.pop(ref, None) is not None and not proto.closed:
                proto.send(c.DemonitorP(from_pid=caller.pid, to_proc=target, ref=ref))
            self.exit_process(caller)

    def call_threadsafe(self, dest: Any, request: Any, timeout: float = 5.0) -> Any:
        """`call` from a thread that is not the node's event loop thread (blocks)."""
        if self.loop is None:
            raise NodeClosedError("node not started")
        fut: ConcurrentFuture[Any] = asyncio.run_coroutine_threadsafe(self.call(dest, request, timeout), self.loop)
        return fut.result()

    def send_threadsafe(self, dest: Any, message: Any) -> None:
        if self.loop is None:
            raise NodeClosedError("node not started")
        asyncio.run_coroutine_threadsafe(self.send(dest, message), self.loop).result()


_HANDLERS: dict[type, Callable[[Node, DistProtocol, Any], None]] = {
    TooLarge: Node._on_too_large,
    c.RegSend: Node._on_reg_send,
    c.RegSendTT: Node._on_reg_send,
    c.Send: Node._on_send,
    c.SendTT: Node._on_send,
    c.SendSender: Node._on_send_sender,
    c.SendSenderTT: Node._on_send_sender,
    c.AliasSend: Node._on_alias_send,
    c.AliasSendTT: Node._on_alias_send,
    c.MonitorP: Node._on_monitor_p,
    c.SpawnRequest: Node._on_spawn_request,
    c.SpawnRequestTT: Node._on_spawn_request,
    c.DemonitorP: Node._on_demonitor_p,
    c.MonitorPExit: Node._on_monitor_p_exit,
    c.PayloadMonitorPExit: Node._on_monitor_p_exit,
    c.Link: Node._on_link,
    c.UnlinkId: Node._on_unlink_id,
    c.Unlink: Node._on_unlink,
    c.UnlinkIdAck: Node._on_unlink,
    c.Exit: Node._on_exit,
    c.ExitTT: Node._on_exit,
    c.Exit2: Node._on_exit,
    c.Exit2TT: Node._on_exit,
    c.PayloadExit: Node._on_exit,
    c.PayloadExitTT: Node._on_exit,
    c.PayloadExit2: Node._on_exit,
    c.PayloadExit2TT: Node._on_exit,
}
