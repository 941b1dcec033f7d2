"""A distribution connection after the handshake, sans-IO: framing, ticks, fragments, and
control messages in and out.

Every frame is a 4-byte big-endian length and a body; an empty body is a tick. A body is
either pass-through (112, then the control term and the optional payload, each with its
version byte) or starts with a distribution header: 131 68 (a whole message), 131 69 (the
first fragment of a message: sequence id, fragment id, then the header's atom-cache part)
or 131 70 (a later fragment: sequence id, fragment id). Fragments of one sequence arrive
with fragment ids counting down to 1; sequences may interleave.

We never offer DIST_HDR_ATOM_CACHE, so a header never references the atom cache. To a peer
that offered FRAGMENTS (every OTP 22+ node) we send a header with no references (the terms
after it without version bytes; pass-through frames are refused by such a peer), and
messages larger than `fragment_size` as fragments; to others, pass-through frames.
"""

from __future__ import annotations

import enum
import itertools
import struct
from dataclasses import dataclass
from typing import Any

from rustelixir._native import DistFastPath, decode_message, encode
from rustelixir.errors import DecodeError, LocalProtocolError, RemoteProtocolError, TermTooLarge
from rustelixir.protocol.control import Control, from_terms
from rustelixir.protocol.flags import DFlag

__all__ = ["Tick", "TooLarge", "DistConnection", "ConnectionEvent", "DEFAULT_MAX_MESSAGE_SIZE"]

PASS_THROUGH = 112
VERSION = 131
DIST_HEADER = 68
DIST_FRAG_HEADER = 69
DIST_FRAG_CONT = 70
TICK_FRAME = b"\x00\x00\x00\x00"

# A message larger than this, on the wire, inflated or once decoded, is discarded (its
# caller answered overloaded); unfinished fragmented messages together may not hold more.
DEFAULT_MAX_MESSAGE_SIZE = 128 << 20
DEFAULT_FRAGMENT_SIZE = 1 << 20
MAX_OPEN_SEQUENCES = 1024  # the same bound as native/src/dist.rs, where fragments are joined


@dataclass(frozen=True)
class Tick:
    """The peer's keep-alive (an empty frame)."""


@dataclass(frozen=True)
class TooLarge:
    """A message that would pass the size limit once decoded (or inflated): not decoded.
    `body` is its frame body, so that a call's caller can still be answered; the connection
    goes on."""

    body: bytes
    reason: str


ConnectionEvent = Control | Tick | TooLarge
_TICK = Tick()


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
        leftover: bytes = b"",
        server_name: str | None = None,
        server_pid: Any = None,
    ) -> None:
        """`server_name` and `server_pid` name the local gen_server whose calls to quick
        built-in natives are answered straight from the bytes, in Rust (the fast path)."""
        self.peer_name = peer_name
        self.flags = flags
        self.max_message_size = max_message_size
        self.fragment_size = fragment_size
        self._state = _State.OPEN
        self._fast = DistFastPath(
            peer_name=peer_name,
            server_name=server_name,
            server_pid=encode(server_pid)[1:] if server_pid is not None else b"",
            alias=bool(flags & DFlag.ALIAS),
            send_sender=bool(flags & DFlag.SEND_SENDER),
            header=bool(flags & DFlag.FRAGMENTS),
            max_message_size=max_message_size,
            fragment_size=fragment_size,
        )
        self._leftover = leftover
        self._out: list[bytes | memoryview] = []
        self._next_sequence = itertools.count(1)

    # --- In ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[ConnectionEvent]:
        """Cuts `data` (appended to what is buffered) into frames and decodes them. A
        malformed frame raises RemoteProtocolError; the connection is then in ERROR and must
        be closed by the caller."""
        if self._state is _State.ERROR:
            raise LocalProtocolError(f"connection to {self.peer_name} is in ERROR; close it")
        if self._leftover:
            data = self._leftover + data
            self._leftover = b""
        events: list[ConnectionEvent] = []
        try:
            # Rust cuts the frames and answers the fast-path calls; the rest come back here.
            out, bodies, _ = self._fast.feed(data)
            if out is not None:
                self._out.append(out)
            for body in bodies:
                event = self._frame(body) if body else _TICK
                if event is not None:
                    events.append(event)
        except (RemoteProtocolError, DecodeError) as e:
            self._state = _State.ERROR
            if isinstance(e, RemoteProtocolError):
                raise
            raise RemoteProtocolError(f"malformed distribution message from {self.peer_name}: {e}") from e
        return events

    def receive_frames(self, bodies: list[bytes]) -> list[ConnectionEvent]:
        """Decodes frame bodies already cut (by the Rust link that owns the socket)."""
        if self._state is _State.ERROR:
            raise LocalProtocolError(f"connection to {self.peer_name} is in ERROR; close it")
        events: list[ConnectionEvent] = []
        try:
            for body in bodies:
                event = self._frame(body)
                if event is not None:
                    events.append(event)
        except (RemoteProtocolError, DecodeError) as e:
            self._state = _State.ERROR
            if isinstance(e, RemoteProtocolError):
                raise
            raise RemoteProtocolError(f"malformed distribution message from {self.peer_name}: {e}") from e
        return events

    @property
    def fast_path_stats(self) -> tuple[int, int, int]:
        """(calls answered on the fast path, of which errors, messages discarded for their size)."""
        calls, errors, oversized = self._fast.stats
        return calls, errors, oversized

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

    # --- Out -----------------------------------------------------------------------------

    def send(self, message: Control) -> None:
        control, payload = message.to_terms()
        parts = [bytes((PASS_THROUGH,)), encode(control)]
        if message.PAYLOAD:
            parts.append(encode(payload))
        self.send_encoded(parts)

    def send_encoded(self, parts: list[bytes]) -> None:
        """Queues one message given as its pass-through parts: b'p', then the control term
        and the optional payload, each with its version byte."""
        if not self.flags & DFlag.FRAGMENTS:
            # A peer without FRAGMENTS takes pass-through frames.
            size = sum(map(len, parts))
            if size > 0xFFFFFFFF:
                raise LocalProtocolError(f"message of {size} bytes is too large for one frame")
            self._out.append(struct.pack(">I", size))
            self._out.extend(parts)
            return
        # A peer with FRAGMENTS expects a distribution header (with no atom-cache
        # references), the terms then without their version bytes.
        terms = [memoryview(p)[1:] for p in parts[1:]]
        size = sum(map(len, terms))
        if size <= self.fragment_size:
            self._out.append(struct.pack(">I", 3 + size) + b"\x83D\x00")
            self._out.extend(terms)
            return
        content = memoryview(b"".join(terms))
        count = -(-len(content) // self.fragment_size)
        sequence = next(self._next_sequence)
        for index in range(count):
            chunk = content[index * self.fragment_size : (index + 1) * self.fragment_size]
            fragment = count - index
            if index == 0:
                header = struct.pack(">BBQQB", VERSION, DIST_FRAG_HEADER, sequence, fragment, 0)
            else:
                header = struct.pack(">BBQQ", VERSION, DIST_FRAG_CONT, sequence, fragment)
            self._out.append(struct.pack(">I", len(header) + len(chunk)) + header)
            self._out.append(chunk)

    def send_tick(self) -> None:
        self._out.append(TICK_FRAME)

    def data_to_send(self) -> list[bytes | memoryview]:
        """The buffers to write, in order (for `transport.writelines`)."""
        out = self._out
        self._out = []
        return out

    @property
    def open_sequences(self) -> int:
        """Fragmented messages begun and not yet complete."""
        return self._fast.open_sequences


def frame_terms(*terms: Any) -> bytes:
    """A whole pass-through frame for a control term and optional payload (for tests)."""
    body = bytes((PASS_THROUGH,)) + b"".join(encode(t) for t in terms)
    return struct.pack(">I", len(body)) + body
