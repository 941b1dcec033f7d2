"""`@rustelixir.native`: marks a Python function as a native served by the node.

    @rustelixir.native
    def greet(name): return b"hello " + name

    @rustelixir.native(name="slow_sum", slow=True)
    def total(numbers): return sum(numbers)

A module served with `rustelixir serve --module pkg.mod` contributes every function so
marked; its arity is its number of positional parameters.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["BadArg", "native", "NativeSpec", "native_spec", "CallContext", "current_call", "cancelled"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_MARK = "__rustelixir_native__"


class BadArg(Exception):
    """Raised by a native: argument `index` (1-based) is not acceptable; the caller gets
    `{:error, {:badarg, index, message}}`."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"argument {index}: {message}")
        self.index = index
        self.message = message


class NativeSpec:
    __slots__ = ("name", "arity", "slow")

    def __init__(self, name: str, arity: int, slow: bool) -> None:
        self.name = name
        self.arity = arity
        self.slow = slow


@overload
def native(fn: F, /) -> F: ...
@overload
def native(*, name: str | None = None, slow: bool = False) -> Callable[[F], F]: ...


def native(fn: Any = None, /, *, name: str | None = None, slow: bool = False) -> Any:
    def mark(f: F) -> F:
        params = inspect.signature(f).parameters.values()
        if any(p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params if p.default is p.empty):
            raise TypeError(f"native {f.__name__}: only positional parameters can come from a call")
        arity = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        setattr(f, _MARK, NativeSpec(name or f.__name__, arity, slow))
        return f

    return mark(fn) if fn is not None else mark


def native_spec(obj: Any) -> NativeSpec | None:
    spec = getattr(obj, _MARK, None)
    return spec if isinstance(spec, NativeSpec) else None


class CallContext:
    """The call a Python native is running for.

    - `cancelled()` turns true once its caller has given up (timed out or died); a long
      native should check it and return early (its reply is dropped anyway). An async
      native is also cancelled outright (CancelledError).
    - `make_resource(obj)` puts `obj` in the node's resource table and returns the reference
      to give the caller (who holds it from then on); `obj.close()`, if it has one, is
      called when the last holder lets go.
    - `resource(ref, cls=None)` is the object behind a reference the caller passed (the
      caller holds it from then on); `BadResource` (answered `{:error, {:badresource, ref}}`)
      when it is not live, a badarg when it is not a `cls`.
    - `send(pid, term)` sends a message from the node's server process (also after the
      native returned: keep the context); `emit(item)` streams an item to the caller,
      `{:rustelixir_stream, tag, item}` (`RustElixir.stream/4` consumes them). Both return
      False when the destination's node is not connected (the message is dropped).
    """

    __slots__ = ("_token", "caller", "_server", "_tag")

    def __init__(self, token: Any, caller: Any = None, server: Any = None, tag: bytes | None = None) -> None:
        self._token = token
        self.caller = caller
        self._server = server  # the NativeServer whose resource table the call uses
        self._tag = tag  # the call's reply tag, encoded (None for a cast)

    def _table(self) -> Any:
        if self._server is None:
            raise RuntimeError("no native call is running: resources live in the table of the server running it")
        return self._server

    def cancelled(self) -> bool:
        return bool(self._token is not None and self._token.cancelled)

    def send(self, pid: Any, term: Any) -> bool:
        return bool(self._table().send(pid, term))

    def emit(self, item: Any) -> bool:
        if self.caller is None or self._tag is None:
            raise RuntimeError("the call has no caller to stream to (a cast)")
        return bool(self._table().emit(self.caller, self._tag, item))

    def make_resource(self, obj: object) -> Any:
        return self._table().make_python_resource(obj, self.caller)

    def resource(self, reference: Any, cls: type[T] | None = None, *, index: int = 1) -> Any:
        try:
            obj = self._table().python_resource(reference, self.caller)
        except TypeError as e:
            raise BadArg(index, str(e)) from None
        if cls is not None and not isinstance(obj, cls):
            raise BadArg(index, f"expected a {cls.__name__} resource, got a {type(obj).__name__} resource")
        return obj


_current: contextvars.ContextVar[CallContext] = contextvars.ContextVar("rustelixir_call", default=CallContext(None))


def current_call() -> CallContext:
    """The context of the call the running native serves."""
    return _current.get()


def cancelled() -> bool:
    """True once the caller of the running native has given up."""
    return _current.get().cancelled()
