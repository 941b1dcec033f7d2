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
import functools
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from rustelixir._native import builtin_natives, call_builtin
from rustelixir.natives import native_spec
from rustelixir.node import GenServer, Node
from rustelixir.terms import Atom, Pid
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


class BadArg(Exception):
    """Raised by a native: argument `index` (1-based) could not be converted."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"argument {index}: {message}")
        self.index = index
        self.message = message


@dataclass(frozen=True)
class Native:
    name: str
    arity: int
    function: Callable[..., Any]
    slow: bool = False
    builtin: bool = False  # a Rust built-in: the function returns the whole reply


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
    """Adds every `@rustelixir.native` function of `module`; returns how many."""
    count = 0
    for value in vars(module).values():
        spec = native_spec(value)
        if spec is not None:
            registry.add(Native(spec.name, spec.arity, value, slow=spec.slow))
            count += 1
    return count


def builtin_registry(*, test_natives: bool = False) -> Registry:
    """The built-in natives, written in Rust: add/2, echo/1, sleep/1 (slow); with
    `test_natives`, also those that exist for the node's own tests (test_panic/1)."""
    registry = Registry()
    for name, arity, quick in builtin_natives(test_natives=test_natives):
        registry.add(Native(name, arity, functools.partial(_builtin, name), slow=not quick, builtin=True))
    return registry


def _builtin(name: str, *args: Any) -> Any:
    return call_builtin(name, args)


# --- The server ----------------------------------------------------------------------------


def _error(reason: Any) -> tuple[Atom, Any]:
    return (ERROR, reason)


class RustelixirServer(GenServer):
    """Registered as `rustelixir`; answers every request shape of the call contract. Calls
    to quick built-in natives never reach it: the Rust fast path of each connection answers
    them (`fast_path = True`); it sees the rest."""

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
        self.started = time.time()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rustelixir-native")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle_call(self, request: Any, from_: tuple[Pid, Any], peer: DistProtocol | None) -> None:
        self._handle(request, from_)

    def handle_cast(self, request: Any, peer: DistProtocol | None) -> None:
        self._handle(request, None)

    def _handle(self, request: Any, from_: tuple[Pid, Any] | None) -> None:
        if isinstance(request, Atom):
            name, args = request.name, ()
        elif type(request) is tuple and request and isinstance(request[0], Atom):
            name, args = request[0].name, request[1:]
        else:
            self._answer(from_, _error((Atom("badrequest"), b"expected an atom or a tuple starting with an atom")))
            return
        if name in RESERVED:
            self._answer(from_, self._reserved(name, args))
            return
        native = self.registry.get(name, len(args))
        if native is None:
            self._answer(from_, _error((Atom("undef"), Atom(name), len(args))))
            return
        if not native.slow:
            self._answer(from_, self._run(native, args))
            return
        if self.in_flight >= self.max_in_flight:
            self._answer(from_, _error(Atom("overloaded")))
            return
        self.in_flight += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._run, native, args)

        def done(f: asyncio.Future[Any]) -> None:
            self.in_flight -= 1
            if not f.cancelled():
                self._answer(from_, f.result())

        future.add_done_callback(done)

    def _run(self, native: Native, args: tuple[Any, ...]) -> Any:
        if native.builtin:
            return native.function(*args)
        try:
            return (OK, native.function(*args))
        except BadArg as e:
            return _error((Atom("badarg"), e.index, e.message.encode()))
        except Exception as e:
            log.debug("native %s/%d raised:\n%s", native.name, native.arity, traceback.format_exc())
            return _error((Atom("exception"), type(e).__name__.encode(), str(e).encode()))

    def _answer(self, from_: tuple[Pid, Any] | None, reply: Any) -> None:
        self.calls += 1
        if reply[0] is ERROR:
            self.errors += 1
        if from_ is not None:
            self.reply(from_, reply)

    def _reserved(self, name: str, args: tuple[Any, ...]) -> Any:
        if name == "functions" and not args:
            return (OK, self.registry.listing())
        if name == "info" and not args:
            return (OK, self.info())
        if name == "release" and len(args) == 1:
            return _error((Atom("badresource"), args[0]))
        if name == "share" and len(args) == 2:
            return _error((Atom("badresource"), args[0]))
        if name == "resource_info" and len(args) == 1:
            return _error((Atom("badresource"), args[0]))
        return _error((Atom("badrequest"), f"{name}/{len(args)} is reserved and takes other arguments".encode()))

    def info(self) -> dict[Atom, Any]:
        fast_calls, fast_errors = self.node.fast_path_stats()
        return {
            Atom("version"): VERSION.encode(),
            Atom("node"): self.node.name_atom,
            Atom("pid"): self.pid,
            Atom("calls"): self.calls + fast_calls,
            Atom("errors"): self.errors + fast_errors,
            Atom("in_flight"): self.in_flight,
            Atom("peers"): [Atom(p) for p in sorted(self.node.peers)],
            Atom("uptime_ms"): int((time.time() - self.started) * 1000),
            Atom("resources"): {
                Atom("live"): 0,
                Atom("created"): 0,
                Atom("freed"): 0,
                Atom("by_type"): {},
            },
        }
