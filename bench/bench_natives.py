"""The node benchmark's own Python natives (`rustelixir serve --module bench_natives`, with
bench/ on PYTHONPATH): the same addition as the built-in Rust `add`, quick (on the event
loop) and slow (on the worker pool)."""

import rustelixir


@rustelixir.native
def py_add(a: int, b: int) -> int:
    return a + b


@rustelixir.native(slow=True)
def py_slow_add(a: int, b: int) -> int:
    return a + b
