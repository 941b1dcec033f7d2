"""The node's `rustelixir` server, as far as Python has a part in it: running Python natives.

The call contract (request shapes, reserved requests, replies and errors, counters, the
natives registry, calls in flight and their cancellation) is the Rust server's
(`native/dist/src/server.rs`), and every connection's link answers callers itself. For a
Python native it hands Python a job (native, argument terms, ticket) through one wake-up;
Python runs it (a quick native on the event loop, an async one as a task) and gives the value
back by ticket: Rust encodes, frames and writes the reply. A slow Python native runs on the
Rust server's worker pool, which takes the GIL for it: it never waits for the event loop.
When the caller gives up, the job's token is set (and an async native's task cancelled);
its reply is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from rustelixir._native import SERVER_NAME, CancelToken, NativeServer, take_released_python_objects
from rustelixir.errors import BadResource, Overloaded
from rustelixir.natives import BadArg, CallContext, _current, native_spec
from rustelixir.node import Node, Process
from rustelixir.terms import Atom, Pid, Reference

__all__ = ["RustelixirServer", "PythonNative", "SERVER_NAME"]

log = logging.getLogger("rustelixir.server")


@dataclass(frozen=True)
class PythonNative:
    name: str
    arity: int
    function: Callable[..., Any]
    slow: bool = False
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # Asked on every call: found out once.
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.function))


class _ServerProcess(Process):
    """The server's pid on the Python side: links, exit signals and messages that reach it
    through Python (a call to the server's pid) go on to the Rust server."""

    def __init__(self, node: Node, server: RustelixirServer) -> None:
        super().__init__(node)
        self.server = server

    def deliver(self, message: Any, sender: Pid | None, peer: Any) -> None:
        if peer is not None and peer.peer_name:
            self.server.native.deliver(peer.peer_name, message, sender)

    def demonitored(self, ref: Reference, by: Pid, peer: Any) -> None:
        # A caller gives up on its call (its DEMONITOR_P came through Python).
        if peer is not None and peer.peer_name:
            self.server.native.demonitor(ref, peer.peer_name)

    def monitor_exit(self, ref: Reference, reason: Any, from_proc: Any, peer: Any) -> None:
        """A resource holder the server monitors is gone, unless the exit is forged (not from
        the holder, or not over its node's connection): then it is ignored, and the
        connection stays up."""
        outcome = self.server.native.monitor_exit(ref, from_proc, peer.peer_name or "")
        if outcome == "forged":
            log.debug("forged MONITOR_P_EXIT from %s ignored: monitor %s is not for %s, or not on that node",
                      peer.peer_name, ref, from_proc)  # fmt: skip
        elif outcome == "unknown":
            log.debug("MONITOR_P_EXIT from %s ignored: %s is no monitor of the resource table", peer.peer_name, ref)


class RustelixirServer:
    """Registers `rustelixir` on `node` and serves the built-in natives and the natives of
    the modules added with `add_module`. Its resource table (`max_resources` live, at most
    `max_holders` holders each) is its own."""

    def __init__(
        self,
        node: Node,
        *,
        workers: int = 32,
        max_in_flight: int = 10_000,
        max_resources: int = 1_000_000,
        max_holders: int = 10_000,
    ) -> None:
        assert node.loop is not None, "start the node first"
        self.node = node
        self.loop = node.loop
        self._process = _ServerProcess(node, self)
        self.pid = self._process.pid  # what `rustelixir` names on this node
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.native = NativeServer(
            node=node.name,
            creation=node.creation,
            pid=self._process.pid,
            notify_fd=wake_w,
            workers=workers,
            max_in_flight=max_in_flight,
            max_resources=max_resources,
            max_holders=max_holders,
        )
        self._natives: list[PythonNative] = []
        self._modules: dict[str, ModuleType] = {}
        # What each module serves, and the files it was loaded from as they were then.
        self._served: dict[str, list[tuple[Atom, int]]] = {}
        self._builds: dict[str, tuple[Any, ...]] = {}
        self._reloading = threading.Lock()
        self._running: dict[int, tuple[CancelToken, asyncio.Task[Any] | None]] = {}
        self.native.set_python_runner(self._run_on_pool)
        self._natives.append(PythonNative("reload", 1, self._reload_request, slow=True))
        self.native.set_reloader(len(self._natives) - 1)
        node.register(SERVER_NAME, self._process)
        node.serve_natives(self.native)
        self.loop.add_reader(self._wake_r, self._jobs_ready)
        self._closer: asyncio.TimerHandle | None = self.loop.call_later(0.2, self._close_released)

    def add_module(self, module: ModuleType) -> int:
        """Serves the natives of `module`: its `@rustelixir.native` functions, and when it is
        a Rust extension built with rustelixir-nif, the table its `__rustelixir_natives__`
        attribute gives the address of. Returns how many. `{:reload, module}` loads its new
        build later (see `reload`)."""
        served = self._serve(module.__name__, module)
        self._modules[module.__name__] = module
        self._served[module.__name__] = served
        self._builds[module.__name__] = build_of(module)
        return len(served)

    def _serve(self, name: str, module: ModuleType) -> list[tuple[Atom, int]]:
        """Serves `module`'s natives as module `name`'s, in place of what it served: them,
        [(name, arity)], sorted."""
        address = getattr(module, "__rustelixir_natives__", None)
        python = []
        for value in vars(module).values():
            spec = native_spec(value)
            if spec is not None:
                native = PythonNative(spec.name, spec.arity, value, slow=spec.slow)
                # An async native runs on the event loop whatever it says.
                python.append((spec.name, spec.arity, len(self._natives), native.slow and not native.is_async))
                self._natives.append(native)
        served = self.native.set_module(name, address if isinstance(address, int) else None, python)
        return sorted((Atom(native), arity) for native, arity, _slow in served)

    def reload(self, name: str) -> list[tuple[Atom, int]]:
        """Loads the new build of served module `name` (a rebuilt crate's extension file, or
        a Python file) and serves its natives in place of the old build's: new calls go to
        the new code; calls in flight finish on the old, which stays loaded (a resource the
        old build made is still dropped by it). On any error the old build serves on.
        Returns the module's natives, [(name, arity)]."""
        with self._reloading:  # one at a time: each loads against what the last left
            return self._reload(name)

    def _reload(self, name: str) -> list[tuple[Atom, int]]:
        module = self._modules.get(name)
        if module is None:
            raise BadArg(1, f"{name} is not a module this node serves")
        if build_of(module) == self._builds[name]:
            return self._served[name]  # the same files: nothing new to load (nor a copy more)
        before = {key: value for key, value in sys.modules.items() if key == name or key.startswith(name + ".")}
        try:
            fresh = load_fresh(module)
            served = self._serve(name, fresh)
        except BaseException:
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            sys.modules.update(before)
            raise
        self._modules[name] = sys.modules[name] = fresh
        self._served[name] = served
        self._builds[name] = build_of(fresh)
        log.info("reloaded module %s: %d natives", name, len(served))
        return self._served[name]

    def _reload_request(self, module: Any) -> list[tuple[Atom, int]]:
        """`{:reload, Module}`, on the worker pool."""
        if not isinstance(module, Atom):
            raise BadArg(1, "expected a module name (an atom)")
        return self.reload(module.name)

    def functions(self) -> list[tuple[str, int]]:
        return [(name, arity) for name, arity in self.native.functions()]

    def close(self) -> None:
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if not self.loop.is_closed():
            self.loop.remove_reader(self._wake_r)
        os.close(self._wake_r)
        self.native.close()
        for _token, task in self._running.values():
            if task is not None:
                task.cancel()

    # --- Jobs ------------------------------------------------------------------------------

    def _jobs_ready(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        for job in self.native.take_jobs():
            if len(job) == 1:
                running = self._running.get(job[0])
                if running is not None and running[1] is not None:
                    running[1].cancel()
                continue
            ticket, index, args, caller, tag, token = job
            native = self._natives[index]
            call = CallContext(token, caller, self.native, tag)
            if native.is_async:
                task = self.loop.create_task(self._run_async(native, args, call))
                self._running[ticket] = (token, task)
                task.add_done_callback(functools.partial(self._done, ticket))
            else:
                self._reply(ticket, self._run(native, args, call))

    def _done(self, ticket: int, future: asyncio.Future[Any]) -> None:
        self._finish(ticket, None if future.cancelled() else future.result())

    def _run_on_pool(self, index: int, args: tuple[Any, ...], caller: Pid | None, tag: bytes | None, token: CancelToken) -> Any:
        """A slow native, on a thread of the Rust server's pool (which holds the GIL here)."""
        return self._run(self._natives[index], args, CallContext(token, caller, self.native, tag))

    def _run(self, native: PythonNative, args: tuple[Any, ...], call: CallContext) -> Any:
        if call.cancelled():
            return None  # its caller went away while it waited for a worker
        reset = _current.set(call)
        try:
            return (True, native.function(*args))
        except Exception as e:
            return _reason_for(native, e)
        finally:
            _current.reset(reset)

    async def _run_async(self, native: PythonNative, args: tuple[Any, ...], call: CallContext) -> Any:
        _current.set(call)
        try:
            return (True, await native.function(*args))
        except Exception as e:  # CancelledError is a BaseException: it goes through
            return _reason_for(native, e)

    def _finish(self, ticket: int, outcome: Any) -> None:
        """An async native's `outcome`: (True, value), (False, reason) or None (cancelled)."""
        self._running.pop(ticket, None)
        self._reply(ticket, outcome)

    def _reply(self, ticket: int, outcome: Any) -> None:
        """`outcome`: (True, value), (False, reason) or None (no reply: cancelled)."""
        self.native.answer(ticket, outcome)

    def _close_released(self) -> None:
        """Calls `close()` on the Python objects the resource table has let go of."""
        for obj in take_released_python_objects():
            close = getattr(obj, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("close() of a released resource failed")
        if not self.loop.is_closed():
            self._closer = self.loop.call_later(0.2, self._close_released)


def _reason_for(native: PythonNative, e: Exception) -> tuple[bool, tuple[Any, ...]]:
    """The contract's reason for what a Python native raised (its shape is written in Rust)."""
    if isinstance(e, BadArg):
        return (False, ("badarg", e.index, e.message))
    if isinstance(e, BadResource):
        return (False, ("badresource", e.reference))
    if isinstance(e, Overloaded):
        return (False, ("overloaded",))
    log.debug("native %s/%d raised:\n%s", native.name, native.arity, traceback.format_exc(),
              extra={"native": f"{native.name}/{native.arity}"})  # fmt: skip
    return (False, ("exception", type(e).__name__, str(e)))


def build_of(module: ModuleType) -> tuple[Any, ...]:
    """What `module`'s files are now (path, inode, size, modification time of each): a
    reload with the same is a no-op."""
    path = getattr(module, "__file__", None)
    if path is None:
        return ()
    directories = list(getattr(module, "__path__", None) or [])
    files = [path] + [os.path.join(d, e) for d in directories for e in sorted(os.listdir(d)) if e.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
    signature: list[tuple[Any, ...]] = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            signature.append((file, None))
            continue
        signature.append((file, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(signature)


def load_fresh(module: ModuleType) -> ModuleType:
    """A new module object from what `module`'s files hold now (its new build), leaving
    `module` as it is. A plain module is run again from its file; a package (maturin's
    layout: an `__init__.py` that imports the extension beside it) gets its extensions
    loaded anew first, then its `__init__.py` run against them. On an error `sys.modules`
    is as it was."""
    name, path = module.__name__, getattr(module, "__file__", None)
    if path is None:
        raise ImportError(f"{name} has no file to load again")
    if path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return _load_extension_copy(name, path)
    package = getattr(module, "__path__", None)
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=list(package) if package else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}")
    fresh = importlib.util.module_from_spec(spec)
    saved = {key: sys.modules.get(key) for key in [name]}
    try:
        for directory in package or []:
            for entry in sorted(os.listdir(directory)):
                if entry.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                    short = entry.split(".", 1)[0]
                    saved.setdefault(f"{name}.{short}", sys.modules.get(f"{name}.{short}"))
                    sub = sys.modules[f"{name}.{short}"] = _load_extension_copy(f"{name}.{short}", os.path.join(directory, entry))
                    setattr(fresh, short, sub)  # what importing it would have bound in the package
        sys.modules[name] = fresh  # relative imports in __init__.py resolve against the new package
        spec.loader.exec_module(fresh)
    except BaseException:
        for key, old in saved.items():
            if old is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = old
        raise
    return fresh


def _load_extension_copy(name: str, path: str) -> ModuleType:
    """The extension at `path` loaded as module `name` from a copy of the file: the dynamic
    loader hands out the library it already loaded for a path it has seen, and the old
    build must stay loaded for its calls in flight and its resources."""
    with tempfile.TemporaryDirectory(prefix="rustelixir-reload-") as tmp:
        copy = os.path.join(tmp, os.path.basename(path))
        shutil.copyfile(path, copy)
        loader = importlib.machinery.ExtensionFileLoader(name, copy)
        spec = importlib.util.spec_from_file_location(name, copy, loader=loader)
        assert spec is not None
        fresh = importlib.util.module_from_spec(spec)
        loader.exec_module(fresh)
        return fresh  # mapped into the process: the copy's file is no longer needed
