"""The distribution handshake (version 6, OTP 23+), sans-IO, for both sides.

Every handshake message is a big-endian length and a body whose first byte names it; the
length takes 2 bytes over TCP and 4 inside TLS (`inet_tls_dist` reads the handshake with
`{packet, 4}`):

    initiator (A)                                   acceptor (B)
    'N' flags:64 creation:32 nlen:16 name   ->
                                            <-      's' status
                                            <-      'N' flags:64 challenge:32 creation:32 nlen:16 name
    'r' challenge:32 digest:16 bytes        ->
                                            <-      'a' digest:16 bytes

digest = MD5(cookie ++ decimal string of the other side's challenge). An acceptor also takes
the pre-OTP-23 opening ('n' version:16 flags:32 name), answers it with the new 'N' challenge
when the peer set HANDSHAKE_23, and then expects the complement ('c' flags_high:32
creation:32) before the reply.

`Handshake` never touches a socket: feed it bytes with `receive_data`, send what
`data_to_send` returns, and act on the events. When it completes, the `HandshakeComplete`
event carries the bytes that followed the last handshake message, for the connection.

Every message has a largest size in the state it may come in (a node name is an atom: at
most 255 characters); a length over it is refused as soon as its two bytes are in, before
any of the body is kept, and a peer may not send more than the message it owes us ahead of
our answer. So a handshake holds at most about a kilobyte beyond the chunk being fed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

from rustelixir.errors import AuthenticationError, HandshakeError, LocalProtocolError
from rustelixir.protocol.flags import MANDATORY_25, OUR_FLAGS, DFlag, expand_mandatory

__all__ = [
    "Role",
    "Handshake",
    "NameReceived",
    "StatusReceived",
    "HandshakeComplete",
    "HandshakeEvent",
    "digest",
    "split_node_name",
]

_STATUSES_THAT_CONTINUE = ("ok", "ok_simultaneous")
_STATUSES = ("ok", "ok_simultaneous", "nok", "not_allowed", "alive")


class Role(enum.Enum):
    INITIATOR = "initiator"
    ACCEPTOR = "acceptor"


@dataclass(frozen=True)
class NameReceived:
    """Acceptor: the peer said who it is. Answer with `Handshake.accept(status)`."""

    name: str
    flags: DFlag
    creation: int


@dataclass(frozen=True)
class StatusReceived:
    """Initiator: the acceptor's status. After 'alive', answer with `answer_alive`."""

    status: str


@dataclass(frozen=True)
class HandshakeComplete:
    peer_name: str
    peer_flags: DFlag  # what the peer offered (MANDATORY_25_DIGEST expanded)
    peer_creation: int
    flags: DFlag  # the flags both sides have: what this connection may use
    leftover: bytes  # bytes after the handshake: the start of the connection's frames


HandshakeEvent = NameReceived | StatusReceived | HandshakeComplete


class _State(enum.Enum):
    SEND_NAME = "send_name"  # initiator, before the name is out
    AWAIT_NAME = "await_name"
    AWAIT_DECISION = "await_decision"
    AWAIT_ALIVE_ANSWER = "await_alive_answer"
    AWAIT_STATUS = "await_status"
    AWAIT_ALIVE_DECISION = "await_alive_decision"
    AWAIT_CHALLENGE = "await_challenge"
    AWAIT_COMPLEMENT = "await_complement"
    AWAIT_REPLY = "await_reply"
    AWAIT_ACK = "await_ack"
    DONE = "done"
    CLOSED = "closed"  # refused by a status; the caller closes the socket
    ERROR = "error"


# A node name is an atom: at most 255 characters, each at most 4 bytes of UTF-8.
MAX_NAME_CHARS = 255
MAX_NAME_BYTES = 4 * MAX_NAME_CHARS
_NAME_FIXED = 1 + 8 + 4 + 2  # 'N' flags creation nlen
_CHALLENGE_FIXED = 1 + 8 + 4 + 4 + 2  # 'N' flags challenge creation nlen
_REPLY = 1 + 4 + 16
# The largest body the peer may send in each state. In the two states where we owe the
# peer an answer, it may have sent on (it should not): at most the message that comes next.
_MAX_BODY = {
    _State.AWAIT_NAME: _NAME_FIXED + MAX_NAME_BYTES,
    _State.AWAIT_DECISION: _REPLY,
    _State.AWAIT_ALIVE_ANSWER: len(b"sfalse"),
    _State.AWAIT_STATUS: 1 + max(map(len, _STATUSES)),
    _State.AWAIT_ALIVE_DECISION: _CHALLENGE_FIXED + MAX_NAME_BYTES,
    _State.AWAIT_CHALLENGE: _CHALLENGE_FIXED + MAX_NAME_BYTES,
    _State.AWAIT_COMPLEMENT: 1 + 4 + 4,
    _State.AWAIT_REPLY: _REPLY,
    _State.AWAIT_ACK: 1 + 16,
}


# The length of a handshake message: over TCP, inside TLS.
_LENGTH_FORMATS = {2: ">H", 4: ">I"}


def _expect_length(body: bytes, length: int, what: str) -> None:
    if len(body) != length:
        raise HandshakeError(f"{what} of {len(body)} bytes (expected {length})")


def digest(challenge: int, cookie: str) -> bytes:
    return hashlib.md5(cookie.encode() + str(challenge).encode()).digest()


def split_node_name(name: str) -> tuple[str, str]:
    """`alive@host` -> (alive, host); a name without both parts is a HandshakeError."""
    alive, sep, host = name.partition("@")
    if not sep or not alive or not host or "@" in host:
        raise HandshakeError(f"invalid node name {name!r}: expected name@host")
    return alive, host


class Handshake:
    """One side of one handshake. `peer_name` is required for the initiator (the node it
    dials) and checked against the name in the acceptor's challenge. `challenge` fixes the
    32-bit challenge we send (the initiator's goes in its reply, the acceptor's in its 'N');
    leave it None outside tests, so that it is random. `length_prefix`: the bytes of each
    message's length, 2 (over TCP) or 4 (inside TLS)."""

    def __init__(
        self,
        role: Role,
        *,
        name: str,
        cookie: str,
        creation: int,
        flags: int = OUR_FLAGS,
        peer_name: str | None = None,
        challenge: int | None = None,
        length_prefix: int = 2,
    ) -> None:
        split_node_name(name)
        if length_prefix not in _LENGTH_FORMATS:
            raise LocalProtocolError(f"a handshake message's length takes 2 or 4 bytes, not {length_prefix!r}")
        self._prefix = length_prefix
        self._length_format = _LENGTH_FORMATS[length_prefix]
        if role is Role.INITIATOR and peer_name is None:
            raise LocalProtocolError("an initiating handshake needs the peer's name")
        self.role = role
        self.name = name
        self.peer_name = peer_name
        self._cookie = cookie
        self._creation = creation
        self._flags = DFlag(flags)
        self._peer_flags = DFlag(0)
        self._peer_creation = 0
        self._old_style = False
        if challenge is not None and not 0 <= challenge <= 0xFFFFFFFF:
            raise LocalProtocolError(f"challenge {challenge} does not fit in 32 bits")
        self._our_challenge = secrets.randbits(32) if challenge is None else challenge
        self._buffer = bytearray()
        self._out = bytearray()
        if role is Role.INITIATOR:
            name_bytes = name.encode()
            self._send(struct.pack(">cQIH", b"N", self._flags, creation, len(name_bytes)) + name_bytes)
            self._state = _State.AWAIT_STATUS
        else:
            self._state = _State.AWAIT_NAME

    @property
    def state(self) -> str:
        return self._state.value

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # --- Decisions the caller makes ----------------------------------------------------

    def accept(self, status: str = "ok") -> None:
        """Acceptor, after NameReceived: 'ok' or 'ok_simultaneous' go on with the challenge;
        'nok' (a simultaneous connect we win), 'not_allowed' end it; 'alive' (we think the
        peer is still connected) asks the peer whether to go on."""
        self._expect_state(_State.AWAIT_DECISION, "accept")
        if status not in _STATUSES:
            raise LocalProtocolError(f"unknown handshake status {status!r}")
        self._send(b"s" + status.encode())
        if status in _STATUSES_THAT_CONTINUE:
            self._send_challenge()
        elif status == "alive":
            self._state = _State.AWAIT_ALIVE_ANSWER
        else:
            self._state = _State.CLOSED

    def answer_alive(self, go_on: bool) -> None:
        """Initiator, after StatusReceived('alive'): True replaces the old connection."""
        self._expect_state(_State.AWAIT_ALIVE_DECISION, "answer_alive")
        self._send(b"s" + (b"true" if go_on else b"false"))
        self._state = _State.AWAIT_CHALLENGE if go_on else _State.CLOSED

    # --- Bytes from the peer -------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[HandshakeEvent]:
        if self._state in (_State.ERROR, _State.CLOSED, _State.DONE):
            raise LocalProtocolError(f"handshake is {self._state.value}; it takes no more bytes")
        self._buffer += data
        events: list[HandshakeEvent] = []
        try:
            while self._state not in (_State.DONE, _State.CLOSED, _State.AWAIT_DECISION, _State.AWAIT_ALIVE_DECISION):
                prefix = self._prefix
                if len(self._buffer) < prefix:
                    break
                (length,) = struct.unpack_from(self._length_format, self._buffer)
                if length == 0:
                    raise HandshakeError("empty handshake message")
                if length > _MAX_BODY[self._state]:
                    raise HandshakeError(
                        f"handshake message of {length} bytes in state {self._state.value} "
                        f"(at most {_MAX_BODY[self._state]})"
                    )
                if len(self._buffer) < prefix + length:
                    break
                body = bytes(self._buffer[prefix : prefix + length])
                del self._buffer[: prefix + length]
                event = self._handle(body)
                if event is not None:
                    events.append(event)
            if self._state in _MAX_BODY and len(self._buffer) > self._prefix + _MAX_BODY[self._state]:
                # Only in a state where we owe an answer: the loop takes every whole message.
                raise HandshakeError(
                    f"{len(self._buffer)} bytes sent ahead in state {self._state.value} "
                    f"(at most {self._prefix + _MAX_BODY[self._state]})"
                )
        except HandshakeError:
            self._state = _State.ERROR
            raise
        if self.state == _State.DONE.value:  # (mypy narrows self._state too eagerly)
            leftover = bytes(self._buffer)
            self._buffer.clear()
            assert self.peer_name is not None
            events.append(
                HandshakeComplete(
                    peer_name=self.peer_name,
                    peer_flags=self._peer_flags,
                    peer_creation=self._peer_creation,
                    flags=self._flags & self._peer_flags,
                    leftover=leftover,
                )
            )
        return events

    def _handle(self, body: bytes) -> HandshakeEvent | None:
        kind = body[:1]
        state = self._state
        if state is _State.AWAIT_NAME and kind in (b"N", b"n"):
            return self._recv_name(body)
        if state is _State.AWAIT_ALIVE_ANSWER and kind == b"s":
            answer = body[1:]
            if answer == b"true":
                self._send_challenge()
                return None
            if answer == b"false":
                self._state = _State.CLOSED
                return None
            raise HandshakeError(f"unexpected answer to 'alive': {answer!r}")
        if state is _State.AWAIT_STATUS and kind == b"s":
            return self._recv_status(body[1:])
        if state is _State.AWAIT_CHALLENGE and kind == b"N":
            self._recv_challenge(body)
            return None
        if state is _State.AWAIT_COMPLEMENT and kind == b"c":
            _expect_length(body, 9, "complement message")
            flags_high, creation = struct.unpack_from(">II", body, 1)
            self._old_style = False  # the flags are whole now: check them
            self._check_peer_flags(self._peer_flags | (flags_high << 32), self.peer_name or "?")
            self._peer_creation = creation
            self._state = _State.AWAIT_REPLY
            return None
        if state is _State.AWAIT_REPLY and kind == b"r":
            self._recv_reply(body)
            return None
        if state is _State.AWAIT_ACK and kind == b"a":
            _expect_length(body, 17, "challenge ack")
            if not hmac.compare_digest(body[1:], digest(self._our_challenge, self._cookie)):
                raise AuthenticationError(f"{self.peer_name} answered our challenge wrongly: the cookies differ")
            self._state = _State.DONE
            return None
        raise HandshakeError(f"unexpected handshake message {kind!r} ({len(body)} bytes) in state {state.value}")

    def _recv_name(self, body: bytes) -> NameReceived:
        if body[:1] == b"N":
            if len(body) < 15:
                raise HandshakeError(f"name message of {len(body)} bytes is too short")
            flags, creation, name_len = struct.unpack_from(">QIH", body, 1)
            name_bytes = body[15:]
            if len(name_bytes) != name_len:
                raise HandshakeError(f"name message claims a {name_len}-byte name but holds {len(name_bytes)}")
        else:
            # The pre-OTP-23 opening; accepted only from a peer able to finish the new way.
            if len(body) < 7:
                raise HandshakeError(f"old-style name message of {len(body)} bytes is too short")
            version, flags = struct.unpack_from(">HI", body, 1)
            if version < 5:
                raise HandshakeError(f"distribution version {version} is not supported")
            if not flags & DFlag.HANDSHAKE_23:
                raise HandshakeError("peer does not support handshake version 6 (OTP 23 or later is required)")
            name_bytes = body[7:]
            creation = 0
            self._old_style = True
        try:
            name = name_bytes.decode()
        except UnicodeDecodeError:
            raise HandshakeError(f"node name {name_bytes[:100]!r} is not UTF-8") from None
        if len(name) > MAX_NAME_CHARS:
            raise HandshakeError(f"node name of {len(name)} characters (an atom has at most {MAX_NAME_CHARS})")
        split_node_name(name)
        self._check_peer_flags(flags, name)
        self.peer_name = name
        self._peer_creation = creation
        self._state = _State.AWAIT_DECISION
        return NameReceived(name=name, flags=self._peer_flags, creation=creation)

    def _recv_status(self, status_bytes: bytes) -> StatusReceived:
        status = status_bytes.decode(errors="replace")
        if status in _STATUSES_THAT_CONTINUE:
            self._state = _State.AWAIT_CHALLENGE
        elif status == "alive":
            self._state = _State.AWAIT_ALIVE_DECISION
        elif status in ("nok", "not_allowed"):
            self._state = _State.CLOSED
        else:
            raise HandshakeError(f"unknown handshake status {status!r} from {self.peer_name}")
        return StatusReceived(status)

    def _recv_challenge(self, body: bytes) -> None:
        if len(body) < 19:
            raise HandshakeError(f"challenge message of {len(body)} bytes is too short")
        flags, challenge, creation, name_len = struct.unpack_from(">QIIH", body, 1)
        name = body[19:].decode(errors="replace")
        if len(body) - 19 != name_len:
            raise HandshakeError(f"challenge claims a {name_len}-byte name but holds {len(body) - 19}")
        if name != self.peer_name:
            raise HandshakeError(f"dialled {self.peer_name} but {name} answered")
        self._check_peer_flags(flags, name)
        self._peer_creation = creation
        self._send(b"r" + struct.pack(">I", self._our_challenge) + digest(challenge, self._cookie))
        self._state = _State.AWAIT_ACK

    def _recv_reply(self, body: bytes) -> None:
        if len(body) != 21:
            raise HandshakeError(f"challenge reply of {len(body)} bytes (expected 21)")
        (their_challenge,) = struct.unpack_from(">I", body, 1)
        if not hmac.compare_digest(body[5:], digest(self._our_challenge, self._cookie)):
            raise AuthenticationError(f"connection attempt from {self.peer_name} refused: wrong cookie")
        self._send(b"a" + digest(their_challenge, self._cookie))
        self._state = _State.DONE

    # --- Helpers -------------------------------------------------------------------------

    def _check_peer_flags(self, flags: int, name: str) -> None:
        expanded = expand_mandatory(flags)
        missing = MANDATORY_25 & ~expanded
        if missing and not self._old_style:
            raise HandshakeError(f"{name} lacks mandatory distribution flags: {DFlag(missing)!r}")
        self._peer_flags = expanded

    def _send_challenge(self) -> None:
        name_bytes = self.name.encode()
        self._send(
            struct.pack(">cQIIH", b"N", self._flags, self._our_challenge, self._creation, len(name_bytes))
            + name_bytes
        )
        self._state = _State.AWAIT_COMPLEMENT if self._old_style else _State.AWAIT_REPLY

    def _send(self, body: bytes) -> None:
        self._out += struct.pack(self._length_format, len(body)) + body

    def _expect_state(self, state: _State, what: str) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"{what}() is not allowed in handshake state {self._state.value}")
