"""The production path of a connection after the handshake, driven from a test: a Rust
`DistLink` owns one end of a TCP connection (it cuts frames, joins fragments, counts ticks,
frames what is sent) and a `DistConnection` decodes the frame bodies it leaves to Python,
as `transport.DistProtocol` does (`_hand_over`, `_link_ready`, `send`, `abort`), without
the event loop.

`LinkReader` wraps a socket connected to anything (a node under test); `LinkPair` makes a
loopback connection and keeps its other end as a raw socket, the peer, so that a test
writes the exact bytes the link receives and reads the exact bytes it sends.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import Any, Callable

from rustelixir import Atom, Pid
from rustelixir._native import DistLink, encode
from rustelixir.errors import RemoteProtocolError
from rustelixir.protocol.connection import DEFAULT_FRAGMENT_SIZE, DEFAULT_MAX_MESSAGE_SIZE, DistConnection, encoded
from rustelixir.protocol.control import Control, Send
from rustelixir.protocol.flags import OUR_FLAGS, DFlag

TICK = b"\x00\x00\x00\x00"
# Long enough that a link never ticks, nor drops a quiet peer, within a test.
QUIET_TICKTIME_MS = 600_000

# A message a test's peer sends after its bytes: once Python has it, every frame before it
# has been through the link (frames are handled in order). Small (34 bytes), to pass the
# smallest limits the tests set.
PROBE = Send(to_pid=Pid("p@h", 0, 0, 0), message=Atom("probe"))


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _pass_through(message: Control) -> bytes:
    control, payload = message.to_terms()
    return frame(b"p" + encode(control) + (encode(payload) if message.PAYLOAD else b""))


PROBE_FRAME = _pass_through(PROBE)


class LinkReader:
    """A `DistLink` on (a duplicate of) `sock`, and what Python got from it: decoded
    `events`, `ticks` counted, and `closed`, why the connection ended (the link's reason,
    or the RemoteProtocolError Python raised on a frame, kept in `error`: the connection is
    then closed, as the node does)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        peer_name: str,
        header: bool = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        ticktime_ms: int = QUIET_TICKTIME_MS,
        leftover: bytes = b"",
    ) -> None:
        flags = DFlag(OUR_FLAGS) if header else DFlag(OUR_FLAGS & ~DFlag.FRAGMENTS)
        self.conn = DistConnection(peer_name=peer_name, flags=flags, max_message_size=max_message_size)
        self.events: list[Any] = []
        self.ticks = 0
        self.closed: str | None = None
        self.error: RemoteProtocolError | None = None
        self._wake, notify = os.pipe()
        os.set_blocking(self._wake, False)
        self.link: DistLink | None = DistLink(
            os.dup(sock.fileno()),
            leftover,
            notify,
            peer_name=peer_name,
            alias=True,
            send_sender=True,
            header=header,
            max_message_size=max_message_size,
            fragment_size=fragment_size,
            ticktime_ms=ticktime_ms,
        )

    def send(self, message: Control) -> None:
        assert self.link is not None
        self.link.send_message(*encoded(message))

    def poll(self, timeout: float = 0.0) -> None:
        """Waits up to `timeout` for the link to wake Python, then takes what it left."""
        if self.link is None:
            return
        select.select([self._wake], [], [], timeout)
        try:
            os.read(self._wake, 4096)
        except BlockingIOError:
            pass
        frames, ticks, closed = self.link.take()
        self.ticks += ticks
        try:
            if frames:
                self.events += self.conn.receive_frames(frames)
        except RemoteProtocolError as e:
            self.error = e
            self.closed = f"RemoteProtocolError: {e}"
            self._close_link()
            return
        finally:
            if frames and self.link is not None:
                self.link.handled()
        if closed is not None and self.closed is None:
            self.closed = closed

    def until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        """Polls until `done()` or the connection ends; TimeoutError past `timeout`."""
        deadline = time.monotonic() + timeout
        while not done() and self.closed is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the link did not get there in {timeout} s: {len(self.events)} events, {self.ticks} ticks")
            # Ticks alone do not wake Python: look again every few milliseconds.
            self.poll(min(left, 0.01))

    def taken(self) -> list[Any]:
        """The events got since the last call."""
        events, self.events = self.events, []
        return events

    def _close_link(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def close(self) -> None:
        self._close_link()
        if self._wake >= 0:
            os.close(self._wake)
            self._wake = -1

    def __enter__(self) -> LinkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LinkPair(LinkReader):
    """A `LinkReader` on one end of a loopback TCP connection; `peer` is the other end."""

    def __init__(self, *, peer_name: str = "beam@127.0.0.1", **options: Any) -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.peer = socket.create_connection(listener.getsockname(), timeout=10)
            ours, _ = listener.accept()
        self.peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ours:
            super().__init__(ours, peer_name=peer_name, **options)

    def write(self, data: bytes) -> None:
        """The peer sends `data`, as it is, while Python takes what the link leaves it (the
        link reads no further until it has). A connection the link ended takes no more."""
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.peer], [], 0.01)
            if not writable:
                self.poll()
                continue
            try:
                view = view[self.peer.send(view) :]
            except (BrokenPipeError, ConnectionResetError):
                return

    def receive(self, data: bytes = b"") -> list[Any]:
        """The peer sends `data`, then the probe; returns the events Python got from `data`,
        all of them (the probe came through), or those it got before the connection ended
        (`closed`)."""
        self.write(data + PROBE_FRAME)
        self.until(lambda: PROBE in self.events)
        events = self.taken()
        if PROBE in events:
            assert events[-1] == PROBE, events
            events.pop()
        return events

    def sent(self, size: int, timeout: float = 10.0) -> bytes:
        """The next `size` bytes the link sent the peer."""
        self.peer.settimeout(timeout)
        chunks = []
        while size:
            chunk = self.peer.recv(size)
            if not chunk:
                raise EOFError("the link closed the connection")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def sent_frame(self) -> bytes:
        """The body of the next frame the link sent."""
        (length,) = struct.unpack(">I", self.sent(4))
        return self.sent(length)

    def sent_message(self) -> list[bytes]:
        """The bodies of the frames of the next message the link sent: one, or its fragments
        (the first says how many)."""
        bodies = [self.sent_frame()]
        if bodies[0][:2] == b"\x83E":
            bodies += [self.sent_frame() for _ in range(int.from_bytes(bodies[0][10:18], "big") - 1)]
        return bodies

    def nothing_more_sent(self, wait: float = 0.05) -> bool:
        ready, _, _ = select.select([self.peer], [], [], wait)
        return not ready

    def hung_up(self, timeout: float = 5.0) -> bool:
        """The link closed its end: the peer reads the end of the stream (dropping what
        came before it)."""
        self.peer.settimeout(timeout)
        try:
            while self.peer.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        except (TimeoutError, socket.timeout):
            return False
        return True

    def close(self) -> None:
        super().close()
        self.peer.close()

    def __enter__(self) -> LinkPair:
        return self
