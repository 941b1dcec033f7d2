"""A module of natives that takes a while to import: the node's start-up, long enough for a
test to see /healthz say so."""

import time

import rustelixir

time.sleep(2.0)


@rustelixir.native
def ready() -> bool:
    return True
