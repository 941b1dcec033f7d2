"""The `rustelixir` command.

`rustelixir demo` runs the codec on a sample term and, when an `erl` is on the PATH, has a
real Erlang VM read the bytes back and re-encode them, and says what it did. (The node
itself, `rustelixir serve`, comes with the hidden-node work.)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from typing import Any, Sequence

import rustelixir
from rustelixir import Atom, ImproperList, Pid, Reference


def sample_term() -> Any:
    """A `$gen_call` envelope, what an Elixir `GenServer.call` sends."""
    caller = Pid("app@127.0.0.1", 113, 0, 1)
    alias = Reference("app@127.0.0.1", 1, [178_023, 3_260_022_785, 2_361_204_119])
    return (Atom("$gen_call"), (caller, ImproperList([Atom("alias")], alias)), (Atom("add"), 1, 2**70))


def erl_roundtrip(erl: str, data: bytes) -> bytes:
    """binary_to_term then term_to_binary in a real VM."""
    program = (
        "B = list_to_binary([list_to_integer(H, 16) || H <- string:lexemes(os:getenv(\"ETF\"), \" \")]),"
        "io:format(\"~s\", [lists:join(\" \", [integer_to_list(X, 16) || "
        "X <- binary_to_list(term_to_binary(binary_to_term(B), [{minor_version, 2}]))])]),"
        "halt()."
    )
    hexed = " ".join(f"{b:x}" for b in data)
    out = subprocess.run(
        [erl, "-noshell", "-eval", program],
        env={"ETF": hexed, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return bytes(int(h, 16) for h in out.stdout.split())


def demo(_args: argparse.Namespace) -> int:
    term = sample_term()
    data = rustelixir.encode(term)
    print(f"term:    {term!r}")
    print(f"encoded: {len(data)} bytes: {data.hex(' ')}")
    decoded = rustelixir.decode(data)
    assert decoded == term and rustelixir.encode(decoded) == data
    print("decoded: equal to the term, and re-encodes to the same bytes")
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        rustelixir.decode(data)
    mid = time.perf_counter()
    for _ in range(n):
        rustelixir.encode(term)
    end = time.perf_counter()
    print(f"speed:   decode {n / (mid - start):,.0f}/s, encode {n / (end - mid):,.0f}/s")
    erl = shutil.which("erl")
    if erl is None:
        print("erl:     not installed; skipped the check against a real VM")
        return 0
    theirs = erl_roundtrip(erl, data)
    verdict = "the same bytes" if theirs == data else f"DIFFERENT bytes: {theirs.hex(' ')}"
    print(f"erl:     binary_to_term + term_to_binary in {erl} gave {verdict}")
    return 0 if theirs == data else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rustelixir", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"rustelixir {rustelixir.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="encode and decode a sample term, and check it against a real erl").set_defaults(
        handler=demo
    )
    args = parser.parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
