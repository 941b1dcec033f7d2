"""What a module's natives say of themselves, without a node: `rustelixir describe MODULE`.

A Rust native declared with `#[native]` records its argument names and Rust types, its
result type and its doc comment in its crate's table; a Python native has its signature,
annotations and docstring. `mix rustelixir.gen.natives --from-module MODULE` turns these
into Elixir functions with `@spec`s and `@doc`s (the type mapping is the Elixir side's).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rustelixir._native import describe_native_table
from rustelixir.natives import native_spec
from rustelixir.terms import Atom

__all__ = ["NativeDescription", "describe_module", "to_term"]


@dataclass(frozen=True)
class NativeDescription:
    name: str
    arity: int
    slow: bool
    language: str  # "rust" or "python": what the types are written in
    args: tuple[tuple[str, str], ...]  # (name, type as written; "" when not said)
    returns: str  # "" when not said
    doc: str


def describe_module(module: ModuleType | str) -> list[NativeDescription]:
    """The natives `rustelixir serve --module` would serve from `module`, described."""
    if isinstance(module, str):
        module = importlib.import_module(module)
    found: list[NativeDescription] = []
    address = getattr(module, "__rustelixir_natives__", None)
    if isinstance(address, int):
        for name, arity, slow, described in describe_native_table(address):
            if described is None:
                args: tuple[tuple[str, str], ...] = tuple((f"arg{i + 1}", "") for i in range(arity))
                found.append(NativeDescription(name, arity, slow, "rust", args, "", ""))
            else:
                doc, returns, described_args = described
                found.append(NativeDescription(name, arity, slow, "rust", tuple(described_args), returns, doc))
    for value in vars(module).values():
        spec = native_spec(value)
        if spec is not None:
            found.append(_python(spec.name, spec.arity, spec.slow, value))
    return sorted(found, key=lambda d: (d.name, d.arity))


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _python(name: str, arity: int, slow: bool, function: Any) -> NativeDescription:
    signature = inspect.signature(function)
    args = tuple((p.name, _annotation(p.annotation)) for p in signature.parameters.values())
    return NativeDescription(
        name, arity, slow, "python", args, _annotation(signature.return_annotation), inspect.getdoc(function) or ""
    )


def to_term(descriptions: list[NativeDescription]) -> list[dict[Atom, Any]]:
    """As terms (for `describe --format etf`): maps with atom keys, strings as binaries."""
    return [
        {
            Atom("name"): Atom(d.name),
            Atom("arity"): d.arity,
            Atom("slow"): d.slow,
            Atom("language"): Atom(d.language),
            Atom("args"): [(Atom(arg), ty.encode()) for arg, ty in d.args],
            Atom("returns"): d.returns.encode(),
            Atom("doc"): d.doc.encode(),
        }
        for d in descriptions
    ]
