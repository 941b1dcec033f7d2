"""The exception hierarchy of rustelixir. Every error the package raises derives from
`RustelixirError`; the Rust extension raises these same classes."""

from __future__ import annotations

__all__ = [
    "RustelixirError",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "EpmdError",
    "EpmdProtocolError",
]


class RustelixirError(Exception):
    """Base class of every rustelixir error."""


class CodecError(RustelixirError, ValueError):
    """A term could not be converted between the External Term Format and Python."""


class DecodeError(CodecError):
    """The bytes are not a valid encoded term. `offset` is where in the input the problem
    was found (inside a compressed term: the offset in the decompressed data)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.reason = message
        self.offset = offset

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, int]]:
        return (type(self), (self.reason, self.offset))


class EncodeError(CodecError):
    """A Python value has no Erlang term (an unsupported type, an atom over 255 characters,
    a float that is not finite, a value nested too deep or containing itself)."""


class EpmdError(RustelixirError):
    """Talking to an EPMD (Erlang Port Mapper Daemon) failed: it could not be reached, it
    refused a registration (the name is in use), or it broke the protocol."""


class EpmdProtocolError(EpmdError):
    """The peer sent bytes that are not valid EPMD protocol: an EPMD answering us sent a
    malformed response, or a client of our EPMD server sent a malformed request. The message
    names the peer's role and what was wrong."""
