"""rustelixir: native code for Elixir and Erlang, served from a separate OS process that
joins the cluster as a hidden node."""

from __future__ import annotations

from rustelixir.errors import CodecError, DecodeError, EncodeError, RustelixirError, TermTooLarge
from rustelixir.codec import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MEMORY, decode, encode
from rustelixir.natives import BadArg, cancelled, current_call, native
from rustelixir import terms
from rustelixir.terms import *  # noqa: F403  (the term types: Atom, Pid, ...; terms.__all__ names them)

__version__ = "0.1.0"

__all__ = [
    "CodecError",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MEMORY",
    "DecodeError",
    "EncodeError",
    "RustelixirError",
    "TermTooLarge",
    "__version__",
    "decode",
    "encode",
    "native",
    "BadArg",
    "cancelled",
    "current_call",
    *terms.__all__,
]
