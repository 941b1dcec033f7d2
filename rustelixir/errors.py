"""The exception hierarchy of rustelixir. Every error the package raises derives from
`RustelixirError`; the Rust extension raises these same classes."""

from __future__ import annotations

__all__ = [
    "RustelixirError",
    "CodecError",
    "DecodeError",
    "TermTooLarge",
    "EncodeError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "HandshakeError",
    "AuthenticationError",
    "TlsError",
    "TlsConfigError",
    "NodeClosedError",
    "ConnectionLostError",
    "CallError",
    "BadResource",
    "Overloaded",
    "EpmdError",
    "EpmdProtocolError",
]


class RustelixirError(Exception):
    """Base class of every rustelixir error."""


class CodecError(RustelixirError, ValueError):
    """A term could not be converted between the External Term Format and Python."""


class DecodeError(CodecError):
    """The bytes could not be decoded: they are not a valid encoded term, or (the subclass
    `TermTooLarge`) decoding them would pass a limit. `offset` is where in the input the
    problem was found (inside a compressed term: the offset of its tag; the message names
    the offset in the decompressed data)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.reason = message
        self.offset = offset

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, int]]:
        return (type(self), (self.reason, self.offset))


class TermTooLarge(DecodeError):
    """The bytes were refused for passing a limit the caller set (`max_depth`,
    `max_uncompressed_size`, `max_memory`), not for being malformed: they may well be a valid
    term, one too large (or too deep) to decode here. `offset` is that of the value that
    passed the limit."""


class EncodeError(CodecError):
    """A Python value has no Erlang term (an unsupported type, an atom over 255 characters,
    a float that is not finite, a value nested too deep or containing itself)."""


class ProtocolError(RustelixirError):
    """The distribution protocol was broken. The subclass says by whom."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow (a malformed frame, an unknown
    control message, a bad handshake message). The connection to it is closed."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow, or used a connection in a
    state that does not allow it (closed, handshake not finished)."""


class HandshakeError(RemoteProtocolError):
    """The distribution handshake failed; nothing from that peer was dispatched."""


class AuthenticationError(HandshakeError):
    """The peer's digest did not match our cookie (or ours did not match theirs)."""


class TlsError(HandshakeError):
    """TLS with the peer failed before the distribution handshake could begin, or broke after
    it: the peer does not speak TLS, its certificate does not lead to our CA (or has expired,
    or does not name the host we dialled), or it sent a record that is not valid TLS. Nothing
    from that peer is dispatched; the connection is closed."""


class TlsConfigError(RustelixirError, ValueError):
    """The node's TLS files could not be used: missing, not PEM, a key that does not match
    the certificate. The message names the file."""


class NodeClosedError(RustelixirError):
    """The node is closed (or not started); it cannot send, call or connect."""


class ConnectionLostError(RustelixirError):
    """The connection to a peer node went down (`{:nodedown, node}` for a BEAM caller)."""


class CallError(RustelixirError):
    """A call from Python to a BEAM process exited: `reason` is the exit reason as a term
    (`noproc`, `timeout`, `(nodedown, node)`, ...), as `GenServer.call` would exit with."""

    def __init__(self, reason: object) -> None:
        super().__init__(f"call exited: {reason!r}")
        self.reason = reason


class EpmdError(RustelixirError):
    """Talking to an EPMD (Erlang Port Mapper Daemon) failed: it could not be reached, it
    refused a registration (the name is in use), or it broke the protocol."""


class EpmdProtocolError(EpmdError):
    """The peer sent bytes that are not valid EPMD protocol: an EPMD answering us sent a
    malformed response, or a client of our EPMD server sent a malformed request. The message
    names the peer's role and what was wrong."""


class BadResource(RustelixirError):
    """The reference is not a live resource of this node (never made, or freed); a native
    raising it answers `{:error, {:badresource, ref}}`."""

    def __init__(self, reference: object) -> None:
        super().__init__(f"not a live resource: {reference!r}")
        self.reference = reference


class Overloaded(RustelixirError):
    """A configured limit was hit (live resources, holders); a native raising it answers
    `{:error, :overloaded}`."""
