"""Python types for the Erlang terms that have no plain Python equivalent.

| Erlang            | Python                                   |
|-------------------|------------------------------------------|
| integer, float    | int, float                               |
| true/false, nil   | True/False, None                         |
| other atom        | Atom                                     |
| binary            | bytes (a str encodes as a UTF-8 binary)  |
| bitstring         | BitString                                |
| proper list       | list (charlists stay lists of ints)      |
| improper list     | ImproperList                             |
| tuple, map        | tuple, dict                              |
| pid, port, ref    | Pid, Port, Reference                     |
| fun, external fun | Fun (opaque), Export                     |

A map key that cannot be a dict key as it is (an unhashable value, or `1.0`/`true` beside
`1`, which Python treats as one key) arrives wrapped in `MapKey`.
"""

from __future__ import annotations

from rustelixir._native import (
    Atom,
    BitString,
    Export,
    Fun,
    ImproperList,
    MapKey,
    Pid,
    Port,
    Reference,
)

__all__ = [
    "Atom",
    "BitString",
    "Export",
    "Fun",
    "ImproperList",
    "MapKey",
    "Pid",
    "Port",
    "Reference",
]
