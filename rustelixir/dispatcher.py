"""The `rustelixir` GenServer: the request shapes and replies of the call contract
(shared/DESIGN.md section 1), and the natives it dispatches to.

    {fun, arg1, ..., argN}  ->  native fun/N          fun | {fun}  ->  native fun/0
    :functions  ->  {:ok, [{name, arity}, ...]}       :info  ->  {:ok, %{...}}
    {:release, ref}, {:share, ref, pid}  ->  resources

Replies are `{:ok, value}` or `{:error, reason}`. Quick natives run inline on the event
loop; slow ones on a bounded worker pool, so neither ticks nor other callers wait on them.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from rustelixir._native import (
    CancelToken,
    call_native,
    register_builtin_natives,
    register_native_table,
    release_resource,
    resource_counts,
    resource_forged_exits,
    resource_holder_count,
    resource_info,
    resource_monitor_down,
    resources_node_down,
    set_node_identity,
    share_resource,
    take_released_python_objects,
    take_resource_monitor,
)
from rustelixir.errors import BadResource, Overloaded
from rustelixir.natives import BadArg, CallContext, _current, native_spec
from rustelixir.node import GenServer, Node
from rustelixir.protocol.control import MonitorP
from rustelixir.terms import Atom, ImproperList, Pid, Reference
from rustelixir.transport import DistProtocol

__all__ = [
    "Native",
    "Registry",
    "RustelixirServer",
    "BadArg",
    "RESERVED",
    "builtin_registry",
    "load_module_natives",
]

log = logging.getLogger("rustelixir.dispatcher")

OK = Atom("ok")
ERROR = Atom("error")
RESERVED = frozenset({"functions", "info", "release", "share", "resource_info"})
VERSION = "0.1.0"


@dataclass(frozen=True)
class Native:
    name: str
    arity: int
    function: Callable[..., Any]
    slow: bool = False
    builtin: bool = False  # a Rust native: run through the registry, returns the whole reply

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)


@dataclass
class Registry:
    natives: dict[tuple[str, int], Native] = field(default_factory=dict)

    def add(self, native: Native) -> None:
        if native.name in RESERVED:
            raise ValueError(f"{native.name!r} is reserved by the call contract; pick another name")
        key = (native.name, native.arity)
        if key in self.natives:
            raise ValueError(f"native {native.name}/{native.arity} is defined twice")
        self.natives[key] = native

    def get(self, name: str, arity: int) -> Native | None:
        return self.natives.get((name, arity))

    def listing(self) -> list[tuple[Atom, int]]:
        return [(Atom(name), arity) for name, arity in sorted(self.natives)]


# --- Built-in natives ----------------------------------------------------------------------


def load_module_natives(registry: Registry, module: ModuleType) -> int:
    """Adds the natives of `module`: its `@rustelixir.native` functions, and when it is a
    Rust extension built with rustelixir-nif, the table its `__rustelixir_natives__`
    attribute gives the address of. Returns how many."""
    count = 0
    address = getattr(module, "__rustelixir_natives__", None)
    if isinstance(address, int):
        for name, arity, slow in register_native_table(address):
            registry.add(Native(name, arity, _rust_native, slow=slow, builtin=True))
            count += 1
    for value in vars(module).values():
        spec = native_spec(value)
        if spec is not None:
            registry.add(Native(spec.name, spec.arity, value, slow=spec.slow))
            count += 1
    return count


def builtin_registry(*, test_natives: bool = False) -> Registry:
    """The built-in natives, written in Rust: add/2, echo/1, sleep/1 (slow), the SortedSet
    and Buffer natives; with `test_natives`, also those that exist for the node's own tests."""
    registry = Registry()
    for name, arity, slow in register_builtin_natives(test_natives=test_natives):
        registry.add(Native(name, arity, _rust_native, slow=slow, builtin=True))
    return registry


def _rust_native(*args: Any) -> Any:
    raise RuntimeError("Rust natives run through call_native")  # never called: see _run


# --- The server ----------------------------------------------------------------------------


def _error(reason: Any) -> tuple[Atom, Any]:
    return (ERROR, reason)


class _Call:
    """One call to a slow or asynchronous native while it runs: what cancels it."""

    __slots__ = ("from_", "native", "token", "task", "monitor", "peer", "cancelled", "caller", "node")

    def __init__(self, from_: tuple[Pid, Any] | None, native: Native, monitor: Reference | None,
                 peer: DistProtocol | None, caller: Pid | None = None) -> None:  # fmt: skip
        self.from_ = from_
        self.caller = caller
        self.native = native
        self.token = CancelToken()
        self.task: asyncio.Task[Any] | None = None
        self.monitor = monitor
        self.peer = peer
        self.cancelled = False
        # The node whose disconnection cancels it: the caller's, or when the caller's node is
        # not connected (no reply could reach it), that of the connection the call came on.
        self.node: str | None = None

    def cancel(self) -> None:
        self.cancelled = True
        self.token.cancel()
        if self.task is not None:
            self.task.cancel()


class RustelixirServer(GenServer):
    """Registered as `rustelixir`; answers every request shape of the call contract. Calls
    to quick Rust natives never reach it: the Rust fast path of each connection answers
    them (`fast_path = True`); it sees the rest. Slow natives run on a bounded worker pool,
    async Python natives as tasks; when the caller gives up (its DEMONITOR_P: a timeout,
    or it died) the call's cancellation token is set and its reply dropped."""

    fast_path = True

    def __init__(
        self,
        node: Node,
        registry: Registry,
        *,
        workers: int = 32,
        max_in_flight: int = 10_000,
        test_natives: bool = False,
    ) -> None:
        super().__init__(node)
        self.registry = registry
        self.test_natives = test_natives
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.calls = 0
        self.errors = 0
        self.cancelled = 0
        self.started = time.time()
        self._running: dict[Reference, _Call] = {}
        # Every call running or queued, by the node whose disconnection abandons it
        # (`_Call.node`): its callers are gone then, and so must be their calls, or they
        # hold a worker and an in-flight slot for as long as the native runs (a day of
        # `sleep`), and past max_in_flight every caller is answered :overloaded.
        self._calls_by_node: dict[str, set[_Call]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rustelixir-native")
        set_node_identity(node.name, node.creation)
        node.peer_down_hooks.append(self._peer_down)
        self._closer: asyncio.TimerHandle | None = None
        if node.loop is not None:
            self._closer = node.loop.call_later(0.2, self._close_released)

    def _close_released(self) -> None:
        """Calls `close()` on the Python objects the resource table has let go of."""
        for obj in take_released_python_objects():
            close = getattr(obj, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("close() of a released resource failed")
        if self.node.loop is not None and not self.node.loop.is_closed():
            self._closer = self.node.loop.call_later(0.2, self._close_released)

    def close(self) -> None:
        if self._closer is not None:
            self._closer.cancel()
        for call in list(self._running.values()):
            call.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle_call(self, request: Any, from_: tuple[Pid, Any], peer: DistProtocol | None) -> None:
        self._handle(request, from_, peer)

    def handle_cast(self, request: Any, peer: DistProtocol | None, sender: Pid | None = None) -> None:
        # A cast has no reply, but its sender (REG_SEND carries it) holds what it makes.
        self._handle(request, None, peer, sender)

    def monitor_exit(self, ref: Reference, reason: Any, from_proc: Any, peer: DistProtocol) -> None:
        """A MONITOR_P_EXIT to the server: a resource holder it monitors is gone, unless the
        exit is forged (not from the holder, or not over its node's connection): then it is
        ignored, and the connection stays up."""
        outcome = resource_monitor_down(ref, from_proc, peer.peer_name or "")
        if outcome == "forged":
            log.debug("forged MONITOR_P_EXIT from %s ignored: monitor %s is not for %s, or not on that node",
                      peer.peer_name, ref, from_proc)  # fmt: skip
        elif outcome == "unknown":
            log.debug("MONITOR_P_EXIT from %s ignored: %s is no monitor of the resource table", peer.peer_name, ref)

    def demonitored(self, ref: Reference, by: Pid, peer: DistProtocol) -> None:
        call = self._running.get(ref)
        if call is not None:
            self._give_up(call, f"caller {by} gave up")

    def _peer_down(self, peer: DistProtocol) -> None:
        """A node disconnected: its processes hold no resources any more, and the calls they
        made are abandoned, as if each caller had given up (their workers are freed)."""
        node_name = peer.peer_name or ""
        resources_node_down(node_name)
        for call in self._calls_by_node.pop(node_name, ()):
            self._give_up(call, f"{node_name} disconnected")

    def _give_up(self, call: _Call, why: str) -> None:
        if call.cancelled:
            return
        log.debug("%s: %s/%d cancelled", why, call.native.name, call.native.arity)
        self.cancelled += 1
        call.cancel()

    def _handle(
        self, request: Any, from_: tuple[Pid, Any] | None, peer: DistProtocol | None, sender: Pid | None = None
    ) -> None:
        caller = from_[0] if from_ is not None else sender
        if isinstance(request, Atom):
            name, args = request.name, ()
        elif type(request) is tuple and request and isinstance(request[0], Atom):
            name, args = request[0].name, request[1:]
        else:
            self._answer(from_, _error((Atom("badrequest"), b"expected an atom or a tuple starting with an atom")))
            return
        if name in RESERVED:
            self._answer(from_, self._reserved(name, args, caller))
            return
        native = self.registry.get(name, len(args))
        if native is None:
            self._answer(from_, _error((Atom("undef"), Atom(name), len(args))))
            return
        if not native.slow and not native.is_async:
            reply = self._run(native, args, None, caller)
            if caller is not None:
                self._monitor_holder(caller)
            self._answer(from_, reply)
            return
        if self.in_flight >= self.max_in_flight:
            self._answer(from_, _error(Atom("overloaded")))
            return
        call = _Call(from_, native, _monitor_of(from_), peer, caller)
        self.in_flight += 1
        if from_ is not None:
            # Casts go on when their sender's node goes: nobody waits for them, and what
            # they do may be their point.
            if from_[0].node.name in self.node.peers:
                call.node = from_[0].node.name
            elif peer is not None:
                call.node = peer.peer_name
        if call.node is not None:
            self._calls_by_node.setdefault(call.node, set()).add(call)
        if call.monitor is not None:
            self._running[call.monitor] = call
            if peer is not None:
                peer.watch(call.monitor)
        loop = asyncio.get_running_loop()
        if native.is_async:
            call.task = loop.create_task(self._run_async(native, args, call))
            call.task.add_done_callback(lambda t: self._finish(call, None if t.cancelled() else t.result()))
        else:
            context = contextvars.copy_context()
            future = loop.run_in_executor(self._pool, context.run, self._run, native, args, call)
            future.add_done_callback(lambda f: self._finish(call, None if f.cancelled() else f.result()))

    def _finish(self, call: _Call, reply: Any) -> None:
        self.in_flight -= 1
        if call.node is not None:
            calls = self._calls_by_node.get(call.node)
            if calls is not None:
                calls.discard(call)
                if not calls:
                    del self._calls_by_node[call.node]
        if call.monitor is not None:
            self._running.pop(call.monitor, None)
            if call.peer is not None:
                call.peer.unwatch(call.monitor)
        if call.caller is not None:
            self._monitor_holder(call.caller)
        if call.cancelled or reply is None:
            return  # the caller is gone; so is the reply
        self._answer(call.from_, reply)

    def _monitor_holder(self, pid: Pid) -> bool:
        """Sends the MONITOR_P for `pid` if it just became a resource holder; False when its
        node cannot be reached (then it holds nothing)."""
        monitor = take_resource_monitor(pid)
        if monitor is None:
            return True
        peer = self.node.peer_for(pid.node.name)
        if peer is None:
            resources_node_down(pid.node.name)
            return False
        peer.send(MonitorP(from_pid=self.pid, to_proc=pid, ref=monitor))
        return True

    def _run(self, native: Native, args: tuple[Any, ...], call: _Call | None, caller: Pid | None = None) -> Any:
        token = call.token if call is not None else None
        if call is not None:
            if call.cancelled:
                return None  # its caller went away while it waited for a worker
            caller = call.caller
        if native.builtin:
            return call_native(native.name, args, token, caller)
        reset = _current.set(CallContext(token, caller))
        try:
            return (OK, native.function(*args))
        except Exception as e:
            return _reply_for(native, e)
        finally:
            _current.reset(reset)

    async def _run_async(self, native: Native, args: tuple[Any, ...], call: _Call) -> Any:
        _current.set(CallContext(call.token, call.caller))
        try:
            return (OK, await native.function(*args))
        except Exception as e:  # CancelledError is a BaseException: it goes through
            return _reply_for(native, e)

    def _answer(self, from_: tuple[Pid, Any] | None, reply: Any) -> None:
        self.calls += 1
        if reply[0] is ERROR:
            self.errors += 1
        if from_ is not None:
            self.reply(from_, reply)

    def _reserved(self, name: str, args: tuple[Any, ...], caller: Pid | None = None) -> Any:
        if name == "functions" and not args:
            return (OK, self.registry.listing())
        if name == "info" and not args:
            return (OK, self.info())
        if name == "release" and len(args) == 1:
            ref = args[0]
            if isinstance(ref, Reference) and caller is not None and release_resource(ref, caller):
                return (OK, OK)
            return _error((Atom("badresource"), ref))
        if name == "share" and len(args) == 2:
            ref, pid = args
            if not isinstance(ref, Reference):
                return _error((Atom("badresource"), ref))
            if not isinstance(pid, Pid):
                return _error((Atom("badarg"), 2, b"expected a pid"))
            if pid.node.name != self.node.name and pid.node.name not in self.node.peers:
                return _error((Atom("badarg"), 2, f"{pid.node.name} is not connected to this node".encode()))
            outcome = share_resource(ref, pid)
            if outcome == "badresource":
                return _error((Atom("badresource"), ref))
            if outcome == "overloaded":
                return _error(Atom("overloaded"))
            self._monitor_holder(pid)
            return (OK, OK)
        if name == "resource_info" and len(args) == 1:
            ref = args[0]
            found = resource_info(ref) if isinstance(ref, Reference) else None
            if found is None:
                return _error((Atom("badresource"), ref))
            kind, holders, size = found
            return (OK, {Atom("type"): Atom(kind), Atom("holders"): holders, Atom("size"): size})
        return _error((Atom("badrequest"), f"{name}/{len(args)} is reserved and takes other arguments".encode()))

    def info(self) -> dict[Atom, Any]:
        fast_calls, fast_errors, oversized = self.node.fast_path_stats()
        by_type = {
            Atom(kind): {Atom("live"): live, Atom("created"): created, Atom("freed"): freed}
            for kind, live, created, freed in resource_counts()
        }
        return {
            Atom("version"): VERSION.encode(),
            Atom("node"): self.node.name_atom,
            Atom("pid"): self.pid,
            Atom("calls"): self.calls + fast_calls,
            Atom("errors"): self.errors + fast_errors,
            Atom("cancelled"): self.cancelled,
            Atom("oversized"): oversized,
            Atom("in_flight"): self.in_flight,
            Atom("peers"): [Atom(p) for p in sorted(self.node.peers)],
            Atom("uptime_ms"): int((time.time() - self.started) * 1000),
            Atom("resources"): {
                Atom("live"): sum(v[Atom("live")] for v in by_type.values()),
                Atom("created"): sum(v[Atom("created")] for v in by_type.values()),
                Atom("freed"): sum(v[Atom("freed")] for v in by_type.values()),
                Atom("by_type"): by_type,
                Atom("holders"): resource_holder_count(),
                Atom("forged_exits"): resource_forged_exits(),
            },
        }


def _reply_for(native: Native, e: Exception) -> Any:
    """The error reply for what a Python native raised."""
    if isinstance(e, BadArg):
        return _error((Atom("badarg"), e.index, e.message.encode()))
    if isinstance(e, BadResource):
        return _error((Atom("badresource"), e.reference))
    if isinstance(e, Overloaded):
        return _error(Atom("overloaded"))
    log.debug("native %s/%d raised:\n%s", native.name, native.arity, traceback.format_exc())
    return _error((Atom("exception"), type(e).__name__.encode(), str(e).encode()))


def _monitor_of(from_: tuple[Pid, Any] | None) -> Reference | None:
    """The caller's monitor reference: in OTP 24+ the tag is `[alias | Mref]`, the alias
    being the monitor's reference."""
    if from_ is None:
        return None
    tag = from_[1]
    if isinstance(tag, ImproperList) and isinstance(tag.tail, Reference):
        return tag.tail
    return None
