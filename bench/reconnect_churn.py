"""Reconnect churn: does a node's memory, descriptor or thread count grow with peers that
connect, send a few (partly mutated) frames and are dropped?

    python bench/reconnect_churn.py                          # 2,000 cycles, one peer at a time
    python bench/reconnect_churn.py --cycles 12000 --parallel 8 --every 3000
    python bench/reconnect_churn.py --in-process             # + tracemalloc, live objects, malloc

Each cycle is one peer: a real handshake from Python (`raw_peer`; a new node name each
cycle, as a fuzzer's peers have, unless `--reuse-names`), then frame by frame, each given
2 ms to be answered: three valid frames picked from a set of seeds (calls answered in Rust
and in Python, calls that make resources, a 5-minute `sleep` its caller does not wait for,
monitors, a link), `--mutated` mutated ones (bytes flipped, inserted, deleted, cut), and a
frame the node surely refuses, which makes it close the connection. Every `--every` cycles
it prints the node's VmRSS, open descriptors, threads (from /proc) and calls in flight
(`:info`, asked on a connection of its own). Bounded by `--cycles` and `--seconds`; it talks
only to 127.0.0.1.

By default the node is `rustelixir serve` in a subprocess (`--node-arg`, `--env` pass it
flags and environment, e.g. `--env MALLOC_ARENA_MAX=2`). With `--in-process` the node runs
in this process (on an event loop in a second thread), and the report adds glibc's bytes in
use and free-but-kept (mallinfo2), the growth of Python allocations (tracemalloc) and of live
Python objects by type: growth there is a Python leak; "in use" growing is a native leak;
only "free but kept" growing is the allocator keeping freed memory.

What it found (2 cores, 8 peers at once, 12,000 cycles): calls of peers that had gone were
never cancelled, so each 5-minute `sleep` kept an in-flight slot, a worker and its state:
in flight 0 -> 4,010, RSS 25.7 -> 68.5 MiB, threads 1 -> 33 (and past --max-in-flight every
slow call would have answered :overloaded). With them cancelled when the caller's node
disconnects: in flight back to 0, RSS 25.5 -> 43.6 MiB, most of it in the first 3,000
cycles (glibc's per-thread arenas: 32.6 MiB with MALLOC_ARENA_MAX=2), then about 200-400
bytes a cycle: the atom cache (about 150 bytes for each new peer name, bounded at 100,000
atoms) and fragmentation.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import random
import select
import socket
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from beamnodes import ServedNode, pass_through_frame, raw_peer, unique_name  # noqa: E402

from rustelixir import Atom, ImproperList, Pid, Reference  # noqa: E402
from rustelixir._native import decode_dist  # noqa: E402

COOKIE = "rustelixir-churn"


@dataclass(frozen=True)
class Sample:
    cycle: int
    rss_kib: int
    fds: int
    threads: int


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def malloc_in_use_and_free() -> tuple[int, int]:
    """glibc's bytes in use and bytes free but kept (all arenas), for this process."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd, info.fordblks


def sample(pid: int, cycle: int) -> Sample:
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Sample(cycle, rss, len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")))


def seed_frames(me: str, cycle: int) -> list[bytes]:
    """Valid frame bodies a peer might send: calls answered in Rust and in Python, calls
    that make resources, monitors, links, sends."""
    caller = Pid(me, 1, 0, 7)
    ref = Reference(me, 7, [cycle & 0x3FFFF, 1, 2])
    call = (Atom("$gen_call"), (caller, ImproperList([Atom("alias")], ref)))  # an OTP 24+ tag
    reg_send = (6, caller, Atom(""), Atom("rustelixir"))
    requests = [
        (Atom("add"), cycle, 1),
        Atom("functions"),
        Atom("info"),
        (Atom("echo"), b"x" * 300),
        (Atom("sorted_set_new"),),
        (Atom("buffer_new"),),
        (Atom("sleep"), 1),
        (Atom("sleep"), 300_000),  # a slow call its caller does not wait for
        (Atom("release"), Reference("py@127.0.0.1", 1, [1, 2, 3])),
    ]
    bodies = [pass_through_frame(reg_send, call + (r,))[4:] for r in requests]
    bodies += [
        pass_through_frame((19, caller, Atom("rustelixir"), Reference(me, 7, [3, 4, 5])))[4:],  # MONITOR_P
        pass_through_frame((20, caller, Atom("rustelixir"), Reference(me, 7, [3, 4, 5])))[4:],  # DEMONITOR_P
        pass_through_frame((1, caller, Pid("py@127.0.0.1", 99, 0, 1)))[4:],  # LINK
        pass_through_frame((6, caller, Atom(""), Atom("net_kernel")), (Atom("$gen_call"), (caller, ref), (Atom("is_auth"), Atom(me))))[4:],
    ]
    return bodies


def mutate(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b)) if b else 0
        op = rng.randrange(5)
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            b[i:i] = rng.randbytes(rng.randint(1, 4))
        elif op == 3 and len(b) > 1:
            del b[i : i + rng.randint(1, 4)]
        else:
            del b[rng.randint(1, max(1, len(b))) :]
    return bytes(b)


SURE_MALFORMED = b"\x83D\x00\x61\x07"  # a control message that is the integer 7


def frames_for(me: str, cycle: int, rng: random.Random, mutated: int) -> list[bytes]:
    """What one churn peer sends, frame by frame: a few valid frames, `mutated` mutated ones
    (one may close the connection; one may still be valid), then a frame the node surely
    refuses, which closes it."""
    seeds = seed_frames(me, cycle)
    bodies = [rng.choice(seeds) for _ in range(3)]
    bodies += [mutate(rng, rng.choice(seeds)) for _ in range(mutated)]
    bodies.append(SURE_MALFORMED)
    return [struct.pack(">I", len(b)) + b for b in bodies]


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Reads what the node answers for up to `seconds`; True once it has closed the connection."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            return False
        try:
            if not sock.recv(1 << 16):
                return True
        except ConnectionResetError:
            return True


def one_cycle(port: int, node_name: str, cycle: int, rng: random.Random, mutated: int = 2, me: str | None = None) -> None:
    """One peer (named `me`, else a new name): a real handshake, then its frames one at a
    time (each given a moment to be answered, as a fuzzer waits for an answer), until the
    node closes the connection."""
    me = me or unique_name("churn")
    sock = raw_peer(port, node_name, COOKIE, me)
    try:
        for frame in frames_for(me, cycle, rng, mutated):
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                return
            last = frame.endswith(SURE_MALFORMED)
            if _closed_within(sock, 5.0 if last else 0.002):
                return
    finally:
        sock.close()


def node_info(port: int, node_name: str) -> dict[str, Any]:
    """The node's `:info` map (atom keys as strings), asked over a connection of its own."""
    me = unique_name("info")
    sock = raw_peer(port, node_name, COOKIE, me)
    try:
        caller = Pid(me, 1, 0, 7)
        tag = Reference(me, 7, [1, 2, 3])
        sock.sendall(pass_through_frame((6, caller, Atom(""), Atom("rustelixir")), (Atom("$gen_call"), (caller, tag), Atom("info"))))
        sock.settimeout(10)
        buffer = b""
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the node closed the connection before answering :info")
            buffer += chunk
            while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">I", buffer[:4])[0]:
                (length,) = struct.unpack(">I", buffer[:4])
                body, buffer = buffer[4 : 4 + length], buffer[4 + length :]
                if body:
                    terms = decode_dist(body)
                    if len(terms) == 2 and isinstance(terms[1], tuple) and terms[1][0] == tag:
                        return {k.name: v for k, v in terms[1][1][1].items()}
    finally:
        sock.close()


class InProcessNode:
    """The node (and the rustelixir server) on an event loop in a second thread."""

    def __init__(self) -> None:
        from rustelixir.node import Node
        from rustelixir.server import RustelixirServer

        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.name = unique_name("inproc")

        async def main() -> None:
            self.node = Node(self.name, COOKIE)
            await self.node.start()
            self.server = RustelixirServer(self.node)
            import rustelixir_test_natives

            self.server.add_module(rustelixir_test_natives)
            self.stop = asyncio.Event()
            self.ready.set()
            await self.stop.wait()
            self.server.close()
            await self.node.close()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the in-process node did not start")
        self.port = self.node.port

    def on_loop(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


def live_objects() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long whatever the cycle")
    parser.add_argument("--mutated", type=int, default=2, help="mutated frames per cycle")
    parser.add_argument("--parallel", type=int, default=1, help="peers churning at once")
    parser.add_argument("--reuse-names", action="store_true", help="one peer name per parallel peer, not a new one per cycle")
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--node-arg", action="append", default=[], help="extra `serve` flag (repeatable)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the node (repeatable)")
    args = parser.parse_args()

    served: ServedNode | None = None
    inproc: InProcessNode | None = None
    if args.in_process:
        import logging

        logging.basicConfig(level=logging.ERROR)  # every dropped peer is a warning otherwise
        tracemalloc.start(25)
        inproc = InProcessNode()
        pid, port, node_name = os.getpid(), inproc.port, inproc.name
    else:
        env = dict(item.split("=", 1) for item in args.env)
        served = ServedNode(Path(tempfile.mkdtemp(prefix="churn-")), cookie=COOKIE, extra=["--module", "rustelixir_test_natives", *args.node_arg], env=env)
        pid, node_name = served.proc.pid, served.name
        port = served.dist_port

    def settle(cycle: int) -> Sample:
        # Closed connections are let go of asynchronously: wait (briefly) for the counts.
        time.sleep(0.3)
        return sample(pid, cycle)

    def in_flight() -> int:
        return int(node_info(port, node_name)["in_flight"])

    print(f"{'cycle':>7} {'VmRSS MiB':>10} {'fds':>5} {'threads':>8} {'in flight':>10} {'cycles/s':>9}", flush=True)
    base = settle(0)
    print(f"{0:>7} {base.rss_kib / 1024:>10.1f} {base.fds:>5} {base.threads:>8} {in_flight():>10}", flush=True)
    samples = [base]
    objects0 = live_objects() if inproc else None
    snap0 = tracemalloc.take_snapshot() if inproc else None
    started = last = time.monotonic()
    done = 0
    next_report = args.every
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        nonlocal done
        wrng = random.Random(args.seed * 1000 + index)
        while not failures:
            with lock:
                if done >= args.cycles or time.monotonic() - started >= args.seconds:
                    return
                cycle = done
                done += 1
            try:
                one_cycle(port, node_name, cycle, wrng, args.mutated, f"churn{index}@127.0.0.1" if args.reuse_names else None)
            except BaseException as e:  # a cycle that fails stops the run: report it
                failures.append(e)

    try:
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.parallel)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(0.05)
            if done >= next_report or not any(t.is_alive() for t in threads):
                now = time.monotonic()
                rate = (done - samples[-1].cycle) / (now - last)
                s = settle(done)
                samples.append(s)
                malloc = ""
                if inproc is not None:
                    used, free = malloc_in_use_and_free()
                    malloc = f"  malloc: {used / 2**20:.1f} MiB in use, {free / 2**20:.1f} MiB free but kept"
                print(f"{done:>7} {s.rss_kib / 1024:>10.1f} {s.fds:>5} {s.threads:>8} {in_flight():>10} {rate:>9.0f}{malloc}", flush=True)
                next_report = (done // args.every + 1) * args.every
                last = time.monotonic()
        if failures:
            if served is not None:
                print("the node's log ends with:\n" + "\n".join(served.log().splitlines()[-15:]), file=sys.stderr)
            raise failures[0]
        cycle = done
        if inproc is not None and snap0 is not None and objects0 is not None:
            peers = inproc.on_loop(lambda: len(inproc.node.peers))
            table = inproc.server.native
            print(f"\nin-process node: {peers} peers left connected; resources (type, live, created, freed): "
                  f"{table.resource_counts()}; holders: {table.resource_holder_count()}")
            grown = live_objects() - objects0
            print("Python allocations grown most (tracemalloc):")
            for stat in tracemalloc.take_snapshot().compare_to(snap0, "lineno")[:12]:
                print(f"  {stat}")
            print("live objects grown most (by type):", ", ".join(f"{k} +{v}" for k, v in grown.most_common(12)) or "none")
    finally:
        if served is not None:
            served.stop()
        if inproc is not None:
            inproc.close()
    first = samples[min(1, len(samples) - 1)]
    last_s = samples[-1]
    print(
        f"\n{cycle} cycles: RSS {base.rss_kib / 1024:.1f} -> {last_s.rss_kib / 1024:.1f} MiB "
        f"({(last_s.rss_kib - first.rss_kib) / 1024:+.1f} MiB after cycle {first.cycle}); "
        f"fds {base.fds} -> {last_s.fds}; threads {base.threads} -> {last_s.threads}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
