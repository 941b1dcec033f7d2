"""The node against hostile and broken peers: frames no BEAM would send, counts and lengths
that lie, messages over the size limit, term bombs, callers whose node vanishes. What must
hold: the node never dies, a bad frame costs at most its own connection, a bystander
node's calls keep succeeding, memory stays within the configured limits."""

from __future__ import annotations

import signal
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rustelixir import Atom
from rustelixir.protocol.control import AliasSend
from beamnodes import DistClient, ServedNode, client_fixture, node_fixture, raw_peer, served, unique_name
from conftest import runtime_or_skip
from links import LinkReader

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-hostile-cookie"
LIMIT = 8 << 20  # the node's --max-message-size in this file


node = node_fixture("hostile-logs", cookie=COOKIE, extra=["--max-message-size", str(LIMIT), "--workers", "8"])
bystander = client_fixture("bystander")


def alive_and_serving(node: ServedNode, bystander: DistClient) -> None:
    assert node.proc.poll() is None, node.log()
    assert bystander.eval("gen_server:call({rustelixir, Node}, {add, 20, 22}).") == (Atom("ok"), 42)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- Frames made of fields that can lie ----------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A count or length in a frame: `width` bytes, big-endian, normally `value`."""

    name: str
    width: int
    value: int


Segment = bytes | Field


def atom(name: str, label: str) -> list[Segment]:
    text = name.encode()
    return [b"\x76", Field(f"{label} atom length", 2, len(text)), text]


def pid(node_name: str, label: str) -> list[Segment]:
    return [b"\x58", *atom(node_name, f"{label} pid node"), struct.pack(">III", 90, 0, 7)]


def reference(node_name: str, label: str) -> list[Segment]:
    return [b"\x5a", Field(f"{label} reference length", 2, 3), *atom(node_name, f"{label} reference node"),
            struct.pack(">IIII", 7, 1, 2, 3)]  # fmt: skip


def tuple_(label: str, *items: list[Segment]) -> list[Segment]:
    return [b"\x69", Field(f"{label} arity", 4, len(items)), *[s for item in items for s in item]]


def reg_send(peer: str, target: str) -> list[Segment]:
    """The control message of a REG_SEND from a process of `peer` to `target`, behind a header."""
    return [b"\x83\x44\x00", *tuple_("control", [b"\x61\x06"], pid(peer, "sender"), atom("", "cookie"), atom(target, "target"))]


def call_payload(peer: str, request: list[Segment]) -> list[Segment]:
    """`{'$gen_call', {Pid, [alias | Ref]}, Request}` from a process of `peer`."""
    tag = [b"\x6c", Field("tag list length", 4, 1), *atom("alias", "alias"), *reference(peer, "tag")]
    return tuple_("payload", atom("$gen_call", "gen_call"), tuple_("from", pid(peer, "caller"), tag), request)


def gen_call(peer: str, target: str, request: list[Segment]) -> list[Segment]:
    return [*reg_send(peer, target), *call_payload(peer, request)]


def argument(peer: str) -> list[Segment]:
    """A term with a length or count of every kind."""
    fun_env = [b"\x61\x05"]
    fun = [b"\x70", Field("fun size", 4, 0), b"\x01", bytes(16), struct.pack(">I", 0), Field("fun free vars", 4, 1),
           *atom("m", "fun module"), b"\x61\x00", b"\x61\x00", *pid(peer, "fun"), *fun_env]  # fmt: skip
    return tuple_(
        "argument",
        [b"\x6d", Field("binary length", 4, 3), b"abc"],
        [b"\x6c", Field("list length", 4, 2), b"\x61\x01\x61\x02\x6a"],
        [b"\x74", Field("map count", 4, 1), b"\x61\x01\x61\x02"],
        [b"\x6f", Field("big length", 4, 9), b"\x00" + bytes(8) + b"\x01"],
        [b"\x6e", Field("small big length", 1, 9), b"\x00" + bytes(8) + b"\x01"],
        [b"\x6b", Field("string length", 2, 3), b"xyz"],
        [b"\x4d", Field("bitstring length", 4, 1), b"\x03\xe0"],
        [b"\x68", Field("small tuple arity", 1, 2), b"\x61\x01\x61\x02"],
        [b"\x77", Field("small atom length", 1, 2), b"ok"],
        fun,
    )


def assemble(segments: list[Segment], lie: tuple[str, int] | None = None) -> bytes:
    out = bytearray()
    fun_size_at = None
    for seg in segments:
        if isinstance(seg, Field):
            value = lie[1] if lie is not None and lie[0] == seg.name else seg.value
            if seg.name == "fun size" and (lie is None or lie[0] != seg.name):
                fun_size_at = len(out)
            out += (value & ((1 << (8 * seg.width)) - 1)).to_bytes(seg.width, "big")
        else:
            out += seg
    if fun_size_at is not None:
        # A fun's size counts from its size field to the end of the fun: the end of the
        # argument tuple here, which is the end of the frame.
        out[fun_size_at : fun_size_at + 4] = (len(out) - fun_size_at).to_bytes(4, "big")
    return bytes(out)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def absurd(width: int, value: int) -> list[int]:
    top = (1 << (8 * width)) - 1
    return sorted({0, top, top >> 1, (top >> 1) + 1, value + 1, min(top, value * 1000 + 7)})


Frame = Callable[[str], bytes]  # the frame, as sent by a process of the named node


def call_of(target: str, native: str, lie: tuple[str, int] | None = None) -> Frame:
    return lambda peer: frame(assemble(gen_call(peer, target, tuple_("request", atom(native, "native"), argument(peer))), lie))


def lying_frames() -> list[tuple[str, Frame]]:
    """Every count and length of a call, each set to absurd values, for the fast path
    (`echo`, a quick native) and for Python (`sleep`, a slow one, and `net_kernel`)."""
    cases = []
    for target, native in [("rustelixir", "echo"), ("rustelixir", "sleep"), ("net_kernel", "echo")]:
        segments = gen_call("x@y", target, tuple_("request", atom(native, "native"), argument("x@y")))
        for field in {s for s in segments if isinstance(s, Field)}:
            for value in absurd(field.width, field.value):
                cases.append((f"{target}/{native}: {field.name} = {value:#x}", call_of(target, native, (field.name, value))))
    return cases


class RawPeer:
    """A raw connection to the node, made again (as a node of another name, so the node
    need not have noticed the last one close) whenever the node closes it. What the test
    sends goes straight to the socket; what the node sends is read as the node itself reads
    a peer, by a Rust link (`LinkReader`)."""

    def __init__(self, node: ServedNode) -> None:
        self.node = node
        self.sock: socket.socket | None = None
        self.reader: LinkReader | None = None
        self.name = ""
        self.connections = 0

    def send(self, make: Frame) -> None:
        for _ in range(2):
            if self.sock is None:
                self.name = unique_name("raw")
                self.sock = raw_peer(self.node.dist_port, self.node.name, COOKIE, my_name=self.name)
                # The link never writes here (no calls to serve; it would tick after minutes).
                self.reader = LinkReader(self.sock, peer_name=self.node.name, header=False)
                self.connections += 1
            try:
                self.sock.sendall(make(self.name))
                return
            except OSError:
                self.close()
        raise AssertionError("the node refused a fresh connection")

    def call(self, *frames: Frame, wait: float = 5.0) -> object:
        """Sends `frames`, then waits for a reply (to the last call among them)."""
        for make in frames:
            self.send(make)
        return self.reply(wait)

    def reply(self, wait: float = 5.0) -> object:
        """The message of the next ALIAS_SEND the node sends this peer."""
        reader = self.reader
        assert reader is not None
        reader.until(lambda: any(isinstance(e, AliasSend) for e in reader.events), wait)
        assert reader.error is None, reader.error
        events = reader.taken()
        replies = [i for i, e in enumerate(events) if isinstance(e, AliasSend)]
        assert replies, f"the node closed the connection: {reader.closed}"
        reader.events = events[replies[0] + 1 :]
        return events[replies[0]].message

    def closed_by_node(self, wait: float = 0.05) -> bool:
        reader = self.reader
        assert reader is not None
        reader.poll()
        try:
            reader.until(lambda: False, wait)
        except TimeoutError:
            return False
        assert reader.error is None, reader.error
        self.close()
        return True

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def test_the_frame_that_aborted_the_node(node: ServedNode, bystander: DistClient) -> None:
    # {'$gen_call', From, <<105, 255,255,255,255, ...{add, 1}...>>}: a request tuple claiming
    # 4 billion elements sized an allocation on the fast path, and Rust aborted the node.
    request = [b"\x69\xff\xff\xff\xff", *atom("add", "native"), b"\x61\x01"]
    peer = RawPeer(node)
    peer.send(lambda name: frame(assemble(gen_call(name, "rustelixir", request))))
    peer.closed_by_node(0.5)
    alive_and_serving(node, bystander)
    peer.close()


def test_every_count_and_length_lying_costs_at_most_its_connection(node: ServedNode, bystander: DistClient) -> None:
    peer = RawPeer(node)
    cases = lying_frames()
    assert len(cases) > 150
    peer.send(call_of("rustelixir", "echo"))
    tag, (ok, _value) = peer.reply()  # type: ignore[misc]
    assert ok == Atom("ok"), "the frame the lies are made from is served"
    for name, make in cases:
        peer.send(make)
        # Long enough for the node to close the connection on a lie it refuses, so that
        # the next lie goes on a fresh one and is read (nearly all close it: 492 of 495).
        peer.closed_by_node(0.05)
        assert node.proc.poll() is None, f"{name}:\n{node.log()}"
    alive_and_serving(node, bystander)
    peer.close()
    # Most lies are malformed terms and cost the raw peer its connection; none cost more.
    assert peer.connections > 10


# --- Messages over the limit -----------------------------------------------------------------


def test_an_oversized_call_is_answered_overloaded_and_its_node_stays_connected(node: ServedNode, bystander: DistClient) -> None:
    bystander.eval("pong = net_adm:ping(Node), ok.")
    # A second process on the same node calls all along; it must never see a nodedown.
    bystander.eval(
        "Parent = self(), Caller = spawn(fun Loop() -> receive stop -> Parent ! {calls, get(n)} after 0 ->"
        " {ok, 3} = gen_server:call({rustelixir, Node}, {add, 1, 2}), put(n, case get(n) of undefined -> 1; K -> K + 1 end),"
        " Loop() end end), erlang:monitor_node(Node, true), put(caller, Caller), ok."
    )
    reply = bystander.eval(f"gen_server:call({{rustelixir, Node}}, {{echo, binary:copy(<<1>>, {LIMIT + 1024})}}, 20000).")
    assert reply == (Atom("error"), Atom("overloaded"))
    assert bystander.eval("gen_server:call({rustelixir, Node}, {echo, binary:copy(<<1>>, 1000000)}).")[0] == Atom("ok")
    calls = bystander.eval("get(caller) ! stop, receive {calls, N} -> N after 5000 -> none end.")
    assert isinstance(calls, int) and calls > 0
    assert bystander.eval("receive {nodedown, _} -> nodedown after 0 -> none end.") == Atom("none")
    info = bystander.eval("{ok, I} = gen_server:call({rustelixir, Node}, info), I.")
    assert info[Atom("oversized")] >= 1


def test_an_oversized_send_to_a_python_process_is_dropped_and_the_connection_kept(node: ServedNode, bystander: DistClient) -> None:
    bystander.eval("pong = net_adm:ping(Node), erlang:monitor_node(Node, true), ok.")
    bystander.eval(f"{{net_kernel, Node}} ! binary:copy(<<2>>, {2 * LIMIT}), ok.")
    alive_and_serving(node, bystander)
    assert bystander.eval("receive {nodedown, _} -> nodedown after 200 -> none end.") == Atom("none")


# --- Callers whose node goes away ------------------------------------------------------------


def test_slow_calls_of_a_vanished_node_are_cancelled_and_free_their_workers(
    node: ServedNode, bystander: DistClient, tmp_path: Path
) -> None:
    runtime = runtime_or_skip("otp25")
    doomed = DistClient(runtime.erl, tmp_path / "doomed", cookie=COOKIE, erlc=runtime.erlc)
    doomed.set("Node", node.atom)
    before = bystander.eval("{ok, I} = gen_server:call({rustelixir, Node}, info), I.")
    # More calls than the node has workers (8): some wait for one.
    doomed.eval("[spawn(fun() -> gen_server:call({rustelixir, Node}, {sleep, 600000}, infinity) end) || _ <- lists:seq(1, 12)], ok.")
    deadline = time.monotonic() + 10
    while bystander.eval("{ok, #{in_flight := F}} = gen_server:call({rustelixir, Node}, info), F.") < 12:
        assert time.monotonic() < deadline, "the slow calls did not start"
        time.sleep(0.05)
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    killed = time.monotonic()
    while True:
        info = bystander.eval("{ok, I} = gen_server:call({rustelixir, Node}, info), I.")
        if info[Atom("in_flight")] == 0:
            break
        assert time.monotonic() - killed < 1.0, f"in_flight still {info[Atom('in_flight')]}"
        time.sleep(0.02)
    assert info[Atom("cancelled")] - before[Atom("cancelled")] == 12
    started = time.monotonic()
    assert bystander.eval("gen_server:call({rustelixir, Node}, {sleep, 10}, 5000).") == (Atom("ok"), Atom("ok"))
    assert time.monotonic() - started < 1.0


# --- Term bombs ------------------------------------------------------------------------------

# What the node may grow by, beyond the message limit, while it refuses a bomb: the frame's
# own bytes held while it arrives (the link's read buffer, the frame, the copy handed to
# Python), and the interpreter's and allocator's slack. Fixed: it does not grow with what the
# bomb claims or would expand to (512 MiB here). Measured peaks: 0-30 MiB.
MARGIN = 48 << 20


def peak_growth_while(node: ServedNode, action: Callable[[], object]) -> tuple[int, object]:
    """How far above its resident size the node's peak resident size went during `action`,
    and what `action` returned."""
    pid = node.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before = rss_kib(pid)
    result = action()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return (int(line.split()[1]) - before) * 1024, result
    raise AssertionError("no VmHWM")


def echo_of(term: bytes) -> Frame:
    return lambda peer: frame(assemble(gen_call(peer, "rustelixir", tuple_("request", atom("echo", "native"), [term]))))


def compressed_call(start: bytes, chunk: bytes, repeat: int, end: bytes = b"", claim: int | None = None) -> Frame:
    """A call whose whole payload is a compressed term (the only place one may stand in a
    message): `{'$gen_call', From, {echo, X}}` where X's bytes are `start`, `chunk` `repeat`
    times, then `end`, compressed as they are made (the bomb is never held whole here
    either); `claim` is the size the term says it inflates to, when it lies."""

    def make(peer: str) -> bytes:
        z = zlib.compressobj(9)
        head = assemble(call_payload(peer, tuple_("request", atom("echo", "native"), [b""]))) + start
        parts = [z.compress(head)] + [z.compress(chunk) for _ in range(repeat)] + [z.compress(end), z.flush()]
        size = len(head) + len(chunk) * repeat + len(end) if claim is None else claim
        return frame(assemble(reg_send(peer, "rustelixir")) + b"\x50" + size.to_bytes(4, "big") + b"".join(parts))

    return make


def small_call() -> Frame:
    return call_of("rustelixir", "echo")


def test_compressed_bombs_are_refused_within_the_limit(node: ServedNode, bystander: DistClient) -> None:
    peer = RawPeer(node)
    zeros = bytes(1 << 20)
    # 512 MiB of zeros in a binary, half a megabyte on the wire; honest about its size:
    # refused from its claim alone, nothing inflated. The connection goes on.
    honest = compressed_call(b"\x6d" + (512 << 20).to_bytes(4, "big"), zeros, 512)
    growth, reply = peak_growth_while(node, lambda: peer.call(honest, small_call()))
    assert reply[1][0] == Atom("ok")  # type: ignore[index]
    assert growth < LIMIT + MARGIN, growth
    # Within the limit inflated (7 MiB of []), past it once decoded: refused while decoding.
    nils = compressed_call(b"\x6c" + (7 << 20).to_bytes(4, "big"), b"\x6a" * (1 << 20), 7, b"\x6a")
    growth, reply = peak_growth_while(node, lambda: peer.call(nils, small_call()))
    assert reply[1][0] == Atom("ok")  # type: ignore[index]
    assert growth < LIMIT + MARGIN, growth
    # Lying (it claims half the limit and inflates to 512 MiB): inflated no further than its
    # claim, then refused as malformed; that closes its connection.
    lying = compressed_call(b"\x6d" + (512 << 20).to_bytes(4, "big"), zeros, 512, claim=LIMIT // 2)
    growth, closed = peak_growth_while(node, lambda: peer.send(lying) or peer.closed_by_node(5.0))
    assert closed
    assert growth < LIMIT + MARGIN, growth
    alive_and_serving(node, bystander)
    info = bystander.eval("{ok, I} = gen_server:call({rustelixir, Node}, info), I.")
    assert info[Atom("oversized")] >= 2


@pytest.mark.parametrize("element", [b"\x6a", b"\x74\x00\x00\x00\x00", b"\x68\x00"], ids=["[]", "%{}", "{}"])
def test_an_uncompressed_bomb_is_refused_within_the_limit(node: ServedNode, bystander: DistClient, element: bytes) -> None:
    # A message just under the limit on the wire whose elements cost 1 to 5 bytes each there
    # and 8 to 72 bytes each decoded: refused as it is decoded, not after.
    count = (LIMIT - 4096) // len(element)
    bomb = b"\x6c" + count.to_bytes(4, "big") + element * count + b"\x6a"
    peer = RawPeer(node)
    growth, reply = peak_growth_while(node, lambda: peer.call(echo_of(bomb), wait=20.0))
    assert reply[1] == (Atom("error"), Atom("overloaded"))  # type: ignore[index]
    assert growth < LIMIT + MARGIN, growth
    alive_and_serving(node, bystander)
    peer.close()


def test_a_bomb_from_a_real_node_is_answered_overloaded(node: ServedNode, bystander: DistClient) -> None:
    # The same from a BEAM: a list of 4 million [] (4 MiB on the wire, in fragments).
    call = "gen_server:call({rustelixir, Node}, {echo, lists:duplicate(4000000, [])}, 20000)."
    growth, reply = peak_growth_while(node, lambda: bystander.eval(call))
    assert reply == (Atom("error"), Atom("overloaded"))
    assert growth < LIMIT + MARGIN, growth
    alive_and_serving(node, bystander)


def test_a_reply_held_for_the_next_write_survives_the_idle_buffer_release(node: ServedNode) -> None:
    """Two calls in one write, a small one then a 1 MiB echo: the echo's reply joins the
    first's in the reader's output buffer, which grows past its resting size. Past a second
    without a burst the reader lets that buffer go; a reply it holds for its next write
    then must go out all the same (it was dropped once)."""
    peer = RawPeer(node)
    big = b"\x6d" + (1 << 20).to_bytes(4, "big") + bytes(1 << 20)
    both = lambda name: small_call()(name) + echo_of(big)(name)  # noqa: E731
    assert peer.call(both)[1][0] == Atom("ok")  # type: ignore[index]
    assert peer.reply(10.0)[1][0] == Atom("ok")  # type: ignore[index]
    for _ in range(3):
        time.sleep(1.3)
        assert peer.call(small_call(), wait=5.0)[1][0] == Atom("ok")  # type: ignore[index]
    peer.close()
