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
