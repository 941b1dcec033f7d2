"""Terms for a shell: `rustelixir call`'s arguments from JSON, and any term printed as Elixir
writes it (`inspect`) or as JSON (`status --json`)."""

from __future__ import annotations

import json
import math
from typing import Any

from rustelixir.terms import Atom, Export, ImproperList, MapKey, Pid, Port, Reference

__all__ = ["from_json", "inspect", "to_json"]


def from_json(text: str) -> Any:
    """A call argument written as JSON: numbers, lists, objects (maps with binary keys),
    true/false/null as `true`/`false`/`nil`; a string is a binary, except `":name"`, the
    atom `:name` (as Elixir writes it; `"::x"` is the binary `":x"`). Raises ValueError."""
    return _atoms(json.loads(text))


def _atoms(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("::"):
            return value[1:].encode()
        if value.startswith(":") and len(value) > 1:
            return Atom(value[1:])
        return value.encode()
    if isinstance(value, list):
        return [_atoms(v) for v in value]
    if isinstance(value, dict):
        return {k.encode(): _atoms(v) for k, v in value.items()}
    return value


def inspect(term: Any) -> str:
    """`term` as Elixir's `inspect` writes it (pids, references and funs as it shows them)."""
    if term is True or term is False:
        return "true" if term else "false"
    if term is None:
        return "nil"
    if isinstance(term, Atom):
        name = term.name
        return f":{name}" if name.replace("_", "a").isalnum() and not name[0].isdigit() else f':"{name}"'
    if isinstance(term, (int, float)):
        return repr(term) if not isinstance(term, float) or math.isfinite(term) else str(term)
    if isinstance(term, (bytes, bytearray)):
        try:
            text = bytes(term).decode()
            if text.isprintable():
                return json.dumps(text, ensure_ascii=False)
        except UnicodeDecodeError:
            pass
        return "<<" + ", ".join(str(b) for b in term) + ">>"
    if isinstance(term, str):
        return json.dumps(term, ensure_ascii=False)
    if isinstance(term, tuple):
        return "{" + ", ".join(inspect(t) for t in term) + "}"
    if isinstance(term, list):
        return "[" + ", ".join(inspect(t) for t in term) + "]"
    if isinstance(term, ImproperList):
        return "[" + ", ".join(inspect(t) for t in term.items) + " | " + inspect(term.tail) + "]"
    if isinstance(term, dict):
        return "%{" + ", ".join(f"{inspect(k)} => {inspect(v)}" for k, v in term.items()) + "}"
    if isinstance(term, MapKey):
        return inspect(term.value)
    if isinstance(term, Pid):
        return f"#PID<{term.node.name}.{term.id}.{term.serial}>"
    if isinstance(term, Reference):
        return f"#Reference<{term.node.name}.{'.'.join(str(i) for i in term.ids)}>"
    if isinstance(term, Port):
        return f"#Port<{term.node.name}.{term.id}>"
    if isinstance(term, Export):
        return f"&{inspect(term.module)}.{term.function.name}/{term.arity}"
    return repr(term)  # funs, bitstrings: as the terms write themselves


def to_json(term: Any) -> Any:
    """`term` as plain JSON values: atoms and binaries as strings (binaries that are not
    UTF-8 as lists of bytes), tuples as lists, map keys as strings, the rest as `inspect`."""
    if term is None or isinstance(term, (bool, int, float, str)):
        return term
    if isinstance(term, Atom):
        return term.name
    if isinstance(term, (bytes, bytearray)):
        try:
            return bytes(term).decode()
        except UnicodeDecodeError:
            return list(term)
    if isinstance(term, (tuple, list)):
        return [to_json(t) for t in term]
    if isinstance(term, dict):
        return {_key(k): to_json(v) for k, v in term.items()}
    return inspect(term)


def _key(key: Any) -> str:
    value = to_json(key)
    return value if isinstance(value, str) else json.dumps(value)
