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
