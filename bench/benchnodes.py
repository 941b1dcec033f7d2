"""What the node benchmarks share: the real nodes they measure, made with the tests' helpers
(tests/beamnodes.py)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from beamnodes import DistClient, ServedNode, unique_name  # noqa: E402

COOKIE = "rustelixir-bench"

__all__ = ["COOKIE", "ROOT", "DistClient", "ServedNode", "bench_nodes", "unique_name"]


@contextmanager
def bench_nodes(
    erl_module: str, client_prefix: str, served_extra: list[str], env: dict[str, str] | None = None
) -> Iterator[tuple[ServedNode, DistClient, Path]]:
    """`rustelixir serve -q` with `served_extra` (and `env`), and a client `erl` node that
    has bench/beam/`erl_module`.erl compiled on its code path; both are stopped at the end.
    Yields them and the directory of the compiled module, for further BEAM nodes."""
    tmp = Path(tempfile.mkdtemp(prefix="rustelixir-bench-"))
    build = tmp / "beam"
    build.mkdir()
    subprocess.run(["erlc", "-o", str(build), str(ROOT / "bench" / "beam" / f"{erl_module}.erl")], check=True)
    served = ServedNode(tmp / "logs", cookie=COOKIE, extra=["-q", *served_extra], env=env)
    try:
        client = DistClient("erl", build, cookie=COOKIE, name=unique_name(client_prefix))
        try:
            yield served, client, build
        finally:
            client.close()
    finally:
        served.stop()
