"""The External Term Format codec: `encode(value) -> bytes`, `decode(bytes) -> value`.

Both run in Rust. `encode` gives the bytes `term_to_binary(T, [{minor_version, 2}])` gives
(OTP 26 and later's default), so a decoded term re-encodes to the bytes it came from. One
exception by necessity: a dict is written in its own order, while the VM writes a small map
in its internal key order (from OTP 26 on, atom keys by atom-table index, which no outside
encoder can know); `binary_to_term` accepts any order, and a decoded map keeps the VM's.
`decode` takes untrusted input: bad bytes raise `DecodeError` with the offset, nesting is
bounded by `max_depth`, a compressed term may not inflate past `max_uncompressed_size`, and
what decoding may allocate is bounded by `max_memory` (bytes, an upper estimate charged as
the bytes are read, for Python objects and the node's Rust terms alike). Past a limit,
`decode` raises `TermTooLarge`, a `DecodeError`.
"""

from __future__ import annotations

from rustelixir._native import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MEMORY, decode, encode

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_MEMORY", "decode", "encode"]
