"""Python natives served only by the tests (`rustelixir serve --module natives_fixture`, with tests/ on PYTHONPATH)."""

import rustelixir


@rustelixir.native
def boom() -> None:
    raise ValueError("boom")


@rustelixir.native
def spin(milliseconds: int) -> bytes:
    """Busy-waits in Python on the event loop thread (a quick native that is not quick):
    the node's ticks and Rust fast path must not notice."""
    import time

    end = time.monotonic() + milliseconds / 1000
    n = 0
    while time.monotonic() < end:
        n += 1
    return b"spun"


@rustelixir.native
def greet(name: bytes) -> bytes:
    return b"hello " + name


@rustelixir.native(name="slow_sum", slow=True)
def total(numbers: list[int]) -> int:
    return sum(numbers)


@rustelixir.native
def checked(index: int) -> int:
    if index < 0:
        raise rustelixir.BadArg(1, "expected a non-negative index")
    return index


@rustelixir.native
async def later(milliseconds: int, value: object) -> object:
    import asyncio

    await asyncio.sleep(milliseconds / 1000)
    return value


@rustelixir.native
async def async_boom() -> None:
    raise KeyError("nope")


CANCELLED_SEEN = 0


@rustelixir.native(slow=True)
def wait_cancel(milliseconds: int) -> bytes:
    """Works for `milliseconds` on the worker pool, stopping when its caller gives up."""
    import time

    global CANCELLED_SEEN
    end = time.monotonic() + milliseconds / 1000
    while time.monotonic() < end:
        if rustelixir.cancelled():
            CANCELLED_SEEN += 1
            return b"cancelled"
        time.sleep(0.005)
    return b"finished"


@rustelixir.native
async def async_wait_cancel(milliseconds: int) -> bytes:
    import asyncio

    global CANCELLED_SEEN
    try:
        await asyncio.sleep(milliseconds / 1000)
    except asyncio.CancelledError:
        CANCELLED_SEEN += 1
        raise
    return b"finished"


@rustelixir.native
def cancel_seen() -> int:
    return CANCELLED_SEEN


class Counter:
    """A Python object living in the resource table."""

    closed = 0

    def __init__(self) -> None:
        self.n = 0

    def close(self) -> None:
        Counter.closed += 1


@rustelixir.native
def counter_new() -> object:
    return rustelixir.current_call().make_resource(Counter())


@rustelixir.native
def counter_incr(ref: object) -> int:
    counter = rustelixir.current_call().resource(ref, Counter)
    counter.n += 1
    return int(counter.n)


@rustelixir.native
def counters_closed() -> int:
    return Counter.closed


@rustelixir.native
def no_term() -> object:
    """Returns what no term can stand for."""
    return object()


@rustelixir.native(slow=True)
def slow_no_term() -> object:
    return object()


@rustelixir.native
def py_emit(n: int) -> int:
    """Streams 1..n to its caller, then answers n."""
    call = rustelixir.current_call()
    for i in range(1, n + 1):
        call.emit(i)
    return n


@rustelixir.native(slow=True)
def py_emit_slow(n: int) -> int:
    call = rustelixir.current_call()
    for i in range(1, n + 1):
        call.emit(i)
    return n


@rustelixir.native
def py_send(to: object, message: object) -> bool:
    return rustelixir.current_call().send(to, message)


@rustelixir.native
async def py_send_later(milliseconds: int, message: object) -> rustelixir.Atom:
    """Answers at once; a task sends `message` to the caller `milliseconds` later."""
    import asyncio

    call = rustelixir.current_call()

    async def later() -> None:
        await asyncio.sleep(milliseconds / 1000)
        call.send(call.caller, message)

    task = asyncio.get_running_loop().create_task(later())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return rustelixir.Atom("started")


_tasks: set[object] = set()
