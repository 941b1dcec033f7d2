"""Python natives served only by the tests (`rustelixir serve --module natives_fixture`, with tests/ on PYTHONPATH)."""

import rustelixir


@rustelixir.native
def boom() -> None:
    raise ValueError("boom")
