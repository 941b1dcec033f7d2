"""rustelixir: native code for Elixir and Erlang, served from a separate OS process that
joins the cluster as a hidden node."""

from __future__ import annotations

from rustelixir.errors import CodecError, DecodeError, EncodeError, RustelixirError, TermTooLarge
from rustelixir.codec import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MEMORY, decode, encode
from rustelixir.natives import BadArg, cancelled, current_call, native
from rustelixir.terms import (
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

__version__ = "0.1.0"

__all__ = [
    "Atom",
    "BitString",
    "CodecError",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MEMORY",
    "DecodeError",
    "EncodeError",
    "Export",
    "Fun",
    "ImproperList",
    "MapKey",
    "Pid",
    "Port",
    "Reference",
    "RustelixirError",
    "TermTooLarge",
    "__version__",
    "decode",
    "encode",
    "native",
    "BadArg",
    "cancelled",
    "current_call",
]
