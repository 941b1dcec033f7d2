"""Python natives served only to the Elixir client's tests (`--module client_test_natives`)."""

import rustelixir


@rustelixir.native
def boom(message: bytes) -> None:
    raise ValueError(message.decode())


@rustelixir.native
def log_warning(message: bytes) -> bool:
    import logging

    logging.getLogger("client_test_natives").warning("%s", message.decode())
    return True


@rustelixir.native
def py_count(n: int) -> int:
    """Streams 1..n to its caller (`RustElixir.stream/4`), then answers n."""
    sent = [rustelixir.current_call().emit(i) for i in range(1, n + 1)]
    return len(sent)
