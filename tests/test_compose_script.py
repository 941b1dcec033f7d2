"""The compose file's integration scenario, run in CI with local processes (no Docker engine
here): `rustelixir serve` as the `rustelixir` service, and `elixir compose/integration.exs`,
the very script the `elixir` service runs, pointed at it through the same environment
variables."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamnodes import ServedNode, elixir_or_skip, unique_name

pytestmark = pytest.mark.beam

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "compose" / "integration.exs"
COOKIE = "rustelixir-compose-script-cookie"




@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServedNode]:
    served = ServedNode(tmp_path, cookie=COOKIE)
    try:
        yield served
    finally:
        served.stop()


def run_script(node_name: str, cookie: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RUSTELIXIR_NODE": node_name,
        "RUSTELIXIR_COOKIE": cookie,
        "RUSTELIXIR_CLIENT_NAME": unique_name("integration"),
        **extra,
    }
    return subprocess.run(
        [elixir_or_skip(), str(SCRIPT)], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )


def test_integration_script_passes_against_a_local_node(node: ServedNode) -> None:
    result = run_script(node.name, COOKIE)
    assert result.returncode == 0, result.stdout + result.stderr + node.log()
    assert f"13 of 13 checks passed against {node.name}" in result.stdout
    assert "FAIL" not in result.stdout


def test_integration_script_with_compose_style_names(tmp_path: Path) -> None:
    """As in compose: the node is `--name name@host` with a dotless host (a service name)
    listening on all interfaces, so the script must use short names to reach it."""
    host = socket.gethostname().split(".")[0]
    try:
        socket.gethostbyname(host)
    except OSError:
        pytest.skip(f"this machine's hostname {host!r} does not resolve")
    name = unique_name("compose").split("@")[0]
    served = ServedNode(tmp_path, cookie=COOKIE, name=f"{name}@{host}", extra=["--listen-host", "0.0.0.0"])
    try:
        result = run_script(served.name, COOKIE, RUSTELIXIR_CLIENT_NAME=f"{unique_name('integration').split('@')[0]}@{host}")
        assert result.returncode == 0, result.stdout + result.stderr + served.log()
        assert f"13 of 13 checks passed against {served.name}" in result.stdout
    finally:
        served.stop()


def test_integration_script_fails_when_it_cannot_reach_the_node(node: ServedNode) -> None:
    result = run_script(node.name, "not-the-cookie", RUSTELIXIR_WAIT_MS="500")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
