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
    """The call a Python native is running for: `cancelled()` turns true once its caller
    has given up (timed out or died); a long native should check it and return early (its
    reply is dropped anyway). An async native is also cancelled (CancelledError)."""

    __slots__ = ("_token",)

    def __init__(self, token: Any) -> None:
        self._token = token

    def cancelled(self) -> bool:
        return bool(self._token is not None and self._token.cancelled)


_current: contextvars.ContextVar[CallContext] = contextvars.ContextVar("rustelixir_call", default=CallContext(None))


def current_call() -> CallContext:
    """The context of the call the running native serves."""
    return _current.get()


def cancelled() -> bool:
    """True once the caller of the running native has given up."""
    return _current.get().cancelled()
