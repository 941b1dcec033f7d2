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

from rustelixir._native import DistFastPath, decode_dist, encode
from rustelixir.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from rustelixir.protocol.control import Control, from_terms
from rustelixir.protocol.flags import DFlag

__all__ = ["Tick", "DistConnection", "ConnectionEvent", "DEFAULT_MAX_MESSAGE_SIZE"]

PASS_THROUGH = 112
VERSION = 131
DIST_HEADER = 68
DIST_FRAG_HEADER = 69
DIST_FRAG_CONT = 70
TICK_FRAME = b"\x00\x00\x00\x00"

DEFAULT_MAX_MESSAGE_SIZE = 1 << 30  # a frame or reassembled message larger than this is refused
DEFAULT_FRAGMENT_SIZE = 1 << 20
MAX_OPEN_SEQUENCES = 1024


@dataclass(frozen=True)
class Tick:
    """The peer's keep-alive (an empty frame)."""


ConnectionEvent = Control | Tick
_TICK = Tick()


class _State(enum.Enum):
    OPEN = "open"
    ERROR = "error"


class _Sequence:
    __slots__ = ("next_id", "parts", "size")

    def __init__(self, next_id: int, first: bytes) -> None:
        self.next_id = next_id
        self.parts = [first]
        self.size = len(first)


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
        self._sequences: dict[int, _Sequence] = {}
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
            out, bodies, ticks = self._fast.feed(data)
            if out is not None:
                self._out.append(out)
            events.extend(_TICK for _ in range(ticks))
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
    def fast_path_stats(self) -> tuple[int, int]:
        """(calls answered on the fast path, of which errors)."""
        calls, errors = self._fast.stats
        return calls, errors

    def _frame(self, body: bytes) -> Control | None:
        first = body[0]
        if first == PASS_THROUGH:
            return from_terms(*decode_dist(body))
        if first != VERSION or len(body) < 3:
            raise RemoteProtocolError(f"frame from {self.peer_name} starts with {body[:2]!r}: not a distribution message")
        kind = body[1]
        if kind == DIST_HEADER:
            return from_terms(*decode_dist(body))
        if kind == DIST_FRAG_HEADER:
            if len(body) < 19:
                raise RemoteProtocolError("truncated fragment header")
            sequence, fragment = struct.unpack_from(">QQ", body, 2)
            if body[18] != 0:
                raise RemoteProtocolError(f"fragment header with {body[18]} atom-cache references (none negotiated)")
            if fragment == 0:
                raise RemoteProtocolError("fragment id 0")
            content = body[19:]
            if fragment == 1:
                return self._whole(content)
            if sequence in self._sequences:
                raise RemoteProtocolError(f"fragment sequence {sequence} started twice")
            if len(self._sequences) >= MAX_OPEN_SEQUENCES:
                raise RemoteProtocolError(f"more than {MAX_OPEN_SEQUENCES} fragmented messages at once")
            self._sequences[sequence] = _Sequence(fragment - 1, content)
            return None
        if kind == DIST_FRAG_CONT:
            if len(body) < 18:
                raise RemoteProtocolError("truncated fragment continuation")
            sequence, fragment = struct.unpack_from(">QQ", body, 2)
            seq = self._sequences.get(sequence)
            if seq is None:
                raise RemoteProtocolError(f"fragment {fragment} of unknown sequence {sequence}")
            if fragment != seq.next_id:
                raise RemoteProtocolError(f"fragment {fragment} of sequence {sequence}, expected {seq.next_id}")
            content = body[18:]
            seq.size += len(content)
            if seq.size > self.max_message_size:
                raise RemoteProtocolError(
                    f"fragmented message over the limit of {self.max_message_size} bytes"
                )
            seq.parts.append(content)
            if fragment > 1:
                seq.next_id = fragment - 1
                return None
            del self._sequences[sequence]
            return self._whole(b"".join(seq.parts))
        raise RemoteProtocolError(f"frame from {self.peer_name} has unknown header kind {kind}")

    def _whole(self, content: bytes) -> Control:
        return from_terms(*decode_dist(b"\x83D\x00" + content))

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
        return len(self._sequences)


def frame_terms(*terms: Any) -> bytes:
    """A whole pass-through frame for a control term and optional payload (for tests)."""
    body = bytes((PASS_THROUGH,)) + b"".join(encode(t) for t in terms)
    return struct.pack(">I", len(body)) + body
