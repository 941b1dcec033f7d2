"""EPMD, the Erlang Port Mapper Daemon protocol, without I/O.

A node registers its name and distribution port with the EPMD of its host (ALIVE2_REQ, on a
connection that stays open for as long as the registration lasts), and looks up other nodes'
ports (PORT_PLEASE2_REQ, NAMES_REQ, one request per connection). Every request travels with a
2-byte big-endian length prefix; responses carry none, and the NAMES response ends when the
EPMD closes the connection. Message layouts are those of the ERTS "Distribution Protocol"
chapter.

This module only turns messages into bytes and bytes into messages:

- each wire message is a frozen dataclass; requests (and, for a server, responses) have
  `to_bytes()`;
- `ResponseParser` reads the one response to a request on a client connection;
- `RequestParser` reads requests as they arrive on a server connection.

Parsers are fed with `receive_data()` and `receive_eof()`, and `next_*()` returns a message
or `NEED_DATA`. Bytes that break the protocol raise `EpmdProtocolError` (the peer broke it);
building a message with values that cannot go on the wire raises `ValueError` (we did).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final, Union

from rustelixir.errors import EpmdProtocolError

__all__ = [
    "ALIVE2_REQ",
    "ALIVE2_RESP",
    "ALIVE2_X_RESP",
    "PORT_PLEASE2_REQ",
    "PORT2_RESP",
    "NAMES_REQ",
    "NODE_TYPE_NORMAL",
    "NODE_TYPE_HIDDEN",
    "PROTOCOL_TCP_IPV4",
    "DIST_VERSION",
    "MAX_NAME_CHARS",
    "MAX_NAME_BYTES",
    "MAX_REQUEST_LENGTH",
    "MAX_NAMES_RESPONSE",
    "NEED_DATA",
    "NeedData",
    "Alive2Req",
    "Alive2Resp",
    "Alive2XResp",
    "PortPlease2Req",
    "Port2Resp",
    "NamesReq",
    "NamesResp",
    "Request",
    "Response",
    "RequestParser",
    "ResponseParser",
]

ALIVE2_REQ: Final = 120
ALIVE2_RESP: Final = 121
ALIVE2_X_RESP: Final = 118
PORT_PLEASE2_REQ: Final = 122
PORT2_RESP: Final = 119
NAMES_REQ: Final = 110

NODE_TYPE_NORMAL: Final = 77  # 'M'
NODE_TYPE_HIDDEN: Final = 72  # 'H'
PROTOCOL_TCP_IPV4: Final = 0
# The distribution protocol version of OTP 23 and later (32-bit creations, ALIVE2_X_RESP).
DIST_VERSION: Final = 6
# An atom holds at most 255 characters, and a node name is an atom.
MAX_NAME_CHARS: Final = 255
MAX_NAME_BYTES: Final = 4 * MAX_NAME_CHARS  # in UTF-8
# Sizes past which a peer's bytes are refused rather than waited for. The largest request
# a node sends is an ALIVE2_REQ: 13 bytes, the name (at most 1,020), and an extra field
# (empty from OTP): 4 KiB leaves room for an extra field and stops a 64 KiB length.
MAX_REQUEST_LENGTH: Final = 4096
# A NAMES response has a line of at most ~1,050 bytes per registered node; 1 MiB is about
# 30,000 nodes of ordinary names.
MAX_NAMES_RESPONSE: Final = 1 << 20
_MAX_PORT2_RESP: Final = 12 + MAX_NAME_BYTES + 2 + 0xFFFF


class NeedData:
    """Returned by a parser that has no complete message yet: feed it more bytes."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


# -- validation of values we put on the wire (ValueError: the caller's mistake) -----------


def _check_uint(what: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise ValueError(f"{what} must be an integer in 0..{(1 << bits) - 1}, not {value!r}")


def _encode_name(name: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a node name must be a non-empty str, not {name!r}")
    if "@" in name:
        raise ValueError(f"EPMD knows the part of a node name before '@' only, not {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a node name has at most {MAX_NAME_CHARS} characters, not {len(name)}")
    return name.encode("utf-8")


def _check_extra(extra: bytes) -> None:
    if not isinstance(extra, bytes) or len(extra) > 0xFFFF:
        raise ValueError("extra must be bytes of at most 65535 bytes")


def _with_length(body: bytes) -> bytes:
    if len(body) > 0xFFFF:
        raise ValueError(f"an EPMD request is at most 65535 bytes, this one is {len(body)}")
    return struct.pack(">H", len(body)) + body


def _check_node_numbers(m: Alive2Req | Port2Resp) -> None:
    """The numbers that ALIVE2_REQ and a successful PORT2_RESP both give about a node."""
    _check_uint("port", m.port, 16)
    _check_uint("node_type", m.node_type, 8)
    _check_uint("protocol", m.protocol, 8)
    _check_uint("highest_version", m.highest_version, 16)
    _check_uint("lowest_version", m.lowest_version, 16)


def _node_bytes(m: Alive2Req | Port2Resp) -> bytes:
    """What ALIVE2_REQ and a successful PORT2_RESP both carry after their first bytes: port,
    node type, protocol, highest and lowest version, name and extra, each length-prefixed."""
    name = _encode_name(m.name)
    return (
        struct.pack(">HBBHHH", m.port, m.node_type, m.protocol, m.highest_version, m.lowest_version, len(name))
        + name
        + struct.pack(">H", len(m.extra))
        + m.extra
    )


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alive2Req:
    """ALIVE2_REQ (120): register `name` with distribution port `port`. The connection that
    carries it must stay open: the EPMD unregisters the name when it closes."""

    port: int
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    name: str
    extra: bytes = b""

    def __post_init__(self) -> None:
        _check_node_numbers(self)
        if self.lowest_version > self.highest_version:
            raise ValueError(
                f"lowest_version {self.lowest_version} is above highest_version {self.highest_version}"
            )
        _encode_name(self.name)
        _check_extra(self.extra)

    @property
    def hidden(self) -> bool:
        return self.node_type == NODE_TYPE_HIDDEN

    def to_bytes(self) -> bytes:
        return _with_length(bytes([ALIVE2_REQ]) + _node_bytes(self))


@dataclass(frozen=True)
class PortPlease2Req:
    """PORT_PLEASE2_REQ (122): where does node `name` listen?"""

    name: str

    def __post_init__(self) -> None:
        _encode_name(self.name)

    def to_bytes(self) -> bytes:
        return _with_length(bytes([PORT_PLEASE2_REQ]) + _encode_name(self.name))


@dataclass(frozen=True)
class NamesReq:
    """NAMES_REQ (110): which nodes are registered?"""

    def to_bytes(self) -> bytes:
        return _with_length(bytes([NAMES_REQ]))


Request = Union[Alive2Req, PortPlease2Req, NamesReq]


# -- responses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alive2Resp:
    """ALIVE2_RESP (121): the answer to ALIVE2_REQ with a 16-bit creation, sent to nodes
    whose highest version is below 6. `result` 0 is success; anything else is a refusal
    (in practice: the name is already registered)."""

    result: int
    creation: int

    _CREATION_BITS = 16

    def __post_init__(self) -> None:
        _check_uint("result", self.result, 8)
        _check_uint("creation", self.creation, self._CREATION_BITS)

    @property
    def ok(self) -> bool:
        return self.result == 0

    def to_bytes(self) -> bytes:
        return struct.pack(">BBH", ALIVE2_RESP, self.result, self.creation)


@dataclass(frozen=True)
class Alive2XResp(Alive2Resp):
    """ALIVE2_X_RESP (118): the answer to ALIVE2_REQ with a 32-bit creation (OTP 23 and
    later, to nodes whose highest version is 6). A kind of `Alive2Resp`, so code that only
    wants the result and the creation need not tell them apart."""

    _CREATION_BITS = 32

    def to_bytes(self) -> bytes:
        return struct.pack(">BBI", ALIVE2_X_RESP, self.result, self.creation)


@dataclass(frozen=True)
class Port2Resp:
    """PORT2_RESP (119): the answer to PORT_PLEASE2_REQ. On success (`result` 0) the other
    fields describe the node; on failure (the name is not registered) only `result` is on
    the wire, and the other fields keep their defaults."""

    result: int
    port: int = 0
    node_type: int = 0
    protocol: int = 0
    highest_version: int = 0
    lowest_version: int = 0
    name: str = ""
    extra: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("result", self.result, 8)
        if self.result != 0:
            unset = (self.port, self.node_type, self.protocol, self.highest_version, self.lowest_version)
            if any(unset) or self.name or self.extra:
                raise ValueError("a failed PORT2_RESP carries the result only; leave the other fields unset")
            return
        _check_node_numbers(self)
        _encode_name(self.name)
        _check_extra(self.extra)

    @property
    def ok(self) -> bool:
        return self.result == 0

    def to_bytes(self) -> bytes:
        if self.result != 0:
            return bytes([PORT2_RESP, self.result])
        return bytes([PORT2_RESP, 0]) + _node_bytes(self)


@dataclass(frozen=True)
class NamesResp:
    """The answer to NAMES_REQ: the EPMD's own port, then one text line per registered node,
    `name NAME at port PORT\\n`, until the EPMD closes the connection."""

    epmd_port: int
    nodes: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        _check_uint("epmd_port", self.epmd_port, 32)
        for name, port in self.nodes:
            _encode_name(name)
            _check_uint("port", port, 16)

    def to_bytes(self) -> bytes:
        lines = "".join(f"name {name} at port {port}\n" for name, port in self.nodes)
        return struct.pack(">I", self.epmd_port) + lines.encode("utf-8")


Response = Union[Alive2Resp, Port2Resp, NamesResp]


# -- parsing --------------------------------------------------------------------------------


class _Incomplete(Exception):
    """The buffer ends before the message does."""


class _Cursor:
    """Reads big-endian fields from a buffer; `_Incomplete` when the buffer runs out."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data
        self.offset = 0

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise _Incomplete
        chunk = bytes(self.data[self.offset : end])
        self.offset = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def remaining(self) -> int:
        return len(self.data) - self.offset


def _decode_name(raw: bytes, who: str, what: str) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EpmdProtocolError(f"{who} sent a {what} whose node name is not UTF-8: {raw[:100]!r}") from exc
    try:
        _encode_name(name)
    except ValueError as exc:
        raise EpmdProtocolError(f"{who} sent a {what} with an invalid node name: {exc}") from exc
    return name


# At most five digits: a longer port is refused by the pattern, before int() sees it.
_NAMES_LINE = re.compile(r"name (.+) at port (\d{1,5})")


class ResponseParser:
    """Reads the response to one request on a client connection.

    Feed the bytes the EPMD sends with `receive_data()`, and `receive_eof()` when it closes
    the connection; `next_response()` returns the response once it is complete, else
    `NEED_DATA`. A NAMES response is complete only at end of file. Bytes after a complete
    response, or an end of file before one, raise `EpmdProtocolError`.
    """

    def __init__(self, request: Request) -> None:
        if not isinstance(request, (Alive2Req, PortPlease2Req, NamesReq)):
            raise TypeError(f"not an EPMD request: {request!r}")
        self.request = request
        self._buffer = bytearray()
        self._eof = False
        self._response: Response | None = None
        self._max_response = {Alive2Req: 6, PortPlease2Req: _MAX_PORT2_RESP, NamesReq: MAX_NAMES_RESPONSE}[type(request)]

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("receive_data() after receive_eof()")
        if self._response is not None and data:
            raise EpmdProtocolError(
                f"EPMD sent {len(data)} more bytes after its complete response {self._response!r}"
            )
        self._buffer += data
        if len(self._buffer) > self._max_response:
            self._parse()  # a whole response followed by more bytes: it says so
            raise EpmdProtocolError(
                f"EPMD sent {len(self._buffer)} bytes in answer to {type(self.request).__name__}, "
                f"more than such a response can hold ({self._max_response})"
            )

    def receive_eof(self) -> None:
        self._eof = True

    def next_response(self) -> Response | NeedData:
        if self._response is not None:
            return self._response
        response = self._parse()
        if isinstance(response, NeedData):
            if self._eof:
                raise EpmdProtocolError(
                    f"EPMD closed the connection before completing its response to {type(self.request).__name__} "
                    f"(got {len(self._buffer)} bytes: {bytes(self._buffer[:64])!r})"
                )
            return NEED_DATA
        self._response = response
        return response

    def _parse(self) -> Response | NeedData:
        cursor = _Cursor(self._buffer)
        try:
            if isinstance(self.request, Alive2Req):
                response: Response = self._parse_alive2(cursor)
            elif isinstance(self.request, PortPlease2Req):
                response = self._parse_port2(cursor)
            else:
                if not self._eof:
                    return NEED_DATA
                response = self._parse_names(cursor)
        except _Incomplete:
            return NEED_DATA
        if cursor.remaining():
            raise EpmdProtocolError(
                f"EPMD sent {cursor.remaining()} bytes after its complete response {response!r}"
            )
        return response

    @staticmethod
    def _parse_alive2(cursor: _Cursor) -> Alive2Resp:
        code = cursor.u8()
        if code == ALIVE2_X_RESP:
            result = cursor.u8()
            return Alive2XResp(result, cursor.u32())
        if code == ALIVE2_RESP:
            result = cursor.u8()
            return Alive2Resp(result, cursor.u16())
        raise EpmdProtocolError(
            f"EPMD answered ALIVE2_REQ with message code {code}, "
            f"not ALIVE2_X_RESP ({ALIVE2_X_RESP}) or ALIVE2_RESP ({ALIVE2_RESP})"
        )

    @staticmethod
    def _parse_port2(cursor: _Cursor) -> Port2Resp:
        code = cursor.u8()
        if code != PORT2_RESP:
            raise EpmdProtocolError(
                f"EPMD answered PORT_PLEASE2_REQ with message code {code}, not PORT2_RESP ({PORT2_RESP})"
            )
        result = cursor.u8()
        if result != 0:
            return Port2Resp(result)
        port, node_type, protocol, highest, lowest, name_len = struct.unpack(">HBBHHH", cursor.take(10))
        if name_len > MAX_NAME_BYTES:
            raise EpmdProtocolError(f"EPMD sent a PORT2_RESP with a {name_len}-byte node name (at most {MAX_NAME_BYTES})")
        raw_name = cursor.take(name_len)
        extra = cursor.take(cursor.u16())
        name = _decode_name(raw_name, "EPMD", "PORT2_RESP")
        return Port2Resp(0, port, node_type, protocol, highest, lowest, name, extra)

    @staticmethod
    def _parse_names(cursor: _Cursor) -> NamesResp:
        epmd_port = cursor.u32()
        raw = cursor.take(cursor.remaining())
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EpmdProtocolError(f"EPMD sent a NAMES response that is not UTF-8 text: {raw[:64]!r}") from exc
        nodes = []
        for line in text.splitlines():
            match = _NAMES_LINE.fullmatch(line)
            if match is None:
                raise EpmdProtocolError(
                    f"EPMD sent a NAMES line that is not 'name NAME at port PORT': {line[:100]!r}"
                )
            port = int(match.group(2))
            if port > 0xFFFF:
                raise EpmdProtocolError(f"EPMD sent a NAMES line with port {port}, above 65535: {line[:100]!r}")
            nodes.append((match.group(1), port))
        return NamesResp(epmd_port, tuple(nodes))


class RequestParser:
    """Reads requests as they arrive on a server connection: a 2-byte length, then the
    request. Feed bytes with `receive_data()`; `next_request()` returns one request per call,
    or `NEED_DATA`. `receive_eof()` raises `EpmdProtocolError` when the client closed the
    connection in the middle of a request."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("receive_data() after receive_eof()")
        self._buffer += data

    def receive_eof(self) -> None:
        self._eof = True
        if self._buffer:
            raise EpmdProtocolError(
                f"client closed the connection in the middle of a request "
                f"({len(self._buffer)} bytes left: {bytes(self._buffer[:64])!r})"
            )

    def next_request(self) -> Request | NeedData:
        if len(self._buffer) < 2:
            return NEED_DATA
        (length,) = struct.unpack(">H", self._buffer[:2])
        if length == 0:
            raise EpmdProtocolError("client sent an empty EPMD request (length 0)")
        if length > MAX_REQUEST_LENGTH:
            raise EpmdProtocolError(
                f"client sent an EPMD request of {length} bytes (at most {MAX_REQUEST_LENGTH}); not waiting for it"
            )
        if len(self._buffer) < 2 + length:
            return NEED_DATA
        body = bytes(self._buffer[2 : 2 + length])
        del self._buffer[: 2 + length]
        return self._parse(body)

    @staticmethod
    def _parse(body: bytes) -> Request:
        code = body[0]
        cursor = _Cursor(body)
        cursor.offset = 1
        try:
            if code == ALIVE2_REQ:
                port, node_type, protocol, highest, lowest, name_len = struct.unpack(">HBBHHH", cursor.take(10))
                raw_name = cursor.take(name_len)
                extra = cursor.take(cursor.u16())
                if cursor.remaining():
                    raise EpmdProtocolError(
                        f"client sent an ALIVE2_REQ with {cursor.remaining()} bytes past its extra field"
                    )
                name = _decode_name(raw_name, "client", "ALIVE2_REQ")
                try:
                    return Alive2Req(port, node_type, protocol, highest, lowest, name, extra)
                except ValueError as exc:
                    raise EpmdProtocolError(f"client sent an invalid ALIVE2_REQ: {exc}") from exc
            if code == PORT_PLEASE2_REQ:
                return PortPlease2Req(_decode_name(body[1:], "client", "PORT_PLEASE2_REQ"))
            if code == NAMES_REQ:
                if len(body) != 1:
                    raise EpmdProtocolError(f"client sent a NAMES_REQ with {len(body) - 1} bytes after the code")
                return NamesReq()
        except _Incomplete:
            raise EpmdProtocolError(
                f"client sent a request (code {code}) whose fields run past its length prefix ({len(body)} bytes)"
            ) from None
        raise EpmdProtocolError(f"client sent an unknown or unsupported EPMD request code {code}")
