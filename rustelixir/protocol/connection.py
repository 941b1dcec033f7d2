"""A distribution connection after the handshake, sans-IO: what Python reads of it.

After the handshake a Rust link owns the socket (`rustelixir._native.DistLink`): it cuts
frames, joins fragments, answers ticks and the calls to the node's server, and frames what
is sent (`rustelixir_dist::frame`, the one framer). What it leaves to Python are whole frame
bodies: either pass-through (112, then the control term and the optional payload, each with
its version byte) or behind a distribution header with no atom-cache references (131 68 0,
the terms without version bytes). `DistConnection` decodes them into control messages;
`encoded` turns a control message into the two terms the link frames.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rustelixir._native import decode_message, encode
from rustelixir.errors import DecodeError, LocalProtocolError, RemoteProtocolError, TermTooLarge
from rustelixir.protocol.control import Control, from_terms
from rustelixir.protocol.flags import DFlag

__all__ = ["TooLarge", "DistConnection", "ConnectionEvent", "DEFAULT_MAX_MESSAGE_SIZE", "encoded"]

PASS_THROUGH = 112
VERSION = 131
DIST_HEADER = 68

# A message larger than this, on the wire, inflated or once decoded, is discarded (its
# caller answered overloaded); unfinished fragmented messages together may not hold more.
DEFAULT_MAX_MESSAGE_SIZE = 128 << 20
# What OTP cuts its own large messages into (ERTS_DIST_FRAGMENT_SIZE): a BEAM decodes a
# fragmented message as its fragments stream in, so a reply arrives sooner in these than in
# one large frame.
DEFAULT_FRAGMENT_SIZE = 64 << 10


@dataclass(frozen=True)
class TooLarge:
    """A message that would pass the size limit once decoded (or inflated): not decoded.
    `body` is its frame body, so that a call's caller can still be answered; the connection
    goes on."""

    body: bytes
    reason: str


ConnectionEvent = Control | TooLarge


class _State(enum.Enum):
    OPEN = "open"
    ERROR = "error"


class DistConnection:
    def __init__(
        self,
        *,
        peer_name: str,
        flags: DFlag,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
    ) -> None:
        self.peer_name = peer_name
        self.flags = flags
        self.max_message_size = max_message_size
        self.fragment_size = fragment_size
        self._state = _State.OPEN

    def receive_frames(self, bodies: list[bytes]) -> list[ConnectionEvent]:
        """Decodes frame bodies already cut (by the Rust link that owns the socket). A
        malformed one raises RemoteProtocolError; the connection is then in ERROR and must
        be closed by the caller."""
        if self._state is _State.ERROR:
            raise LocalProtocolError(f"connection to {self.peer_name} is in ERROR; close it")
        events: list[ConnectionEvent] = []
        try:
            for body in bodies:
                events.append(self._frame(body))
        except (RemoteProtocolError, DecodeError) as e:
            self._state = _State.ERROR
            if isinstance(e, RemoteProtocolError):
                raise
            raise RemoteProtocolError(f"malformed distribution message from {self.peer_name}: {e}") from e
        return events

    def _frame(self, body: bytes) -> Control | TooLarge:
        # Fragments never get here: the Rust side puts them back together first.
        first = body[0] if body else None
        if first == PASS_THROUGH or (first == VERSION and len(body) >= 3 and body[1] == DIST_HEADER):
            try:
                terms = decode_message(body, self.max_message_size)
            except TermTooLarge as e:
                return TooLarge(body, str(e))
            return from_terms(*terms)
        raise RemoteProtocolError(f"frame from {self.peer_name} starts with {body[:2]!r}: not a distribution message")


def encoded(message: Control) -> tuple[bytes, bytes | None]:
    """A control message as the link frames it: the control term and the payload (None when
    the message has none), each encoded without its version byte."""
    control, payload = message.to_terms()
    return encode(control)[1:], (encode(payload)[1:] if message.PAYLOAD else None)
