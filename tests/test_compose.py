"""docker-compose, for real (issue 13, item 5): Docker set up on this machine
(compose/docker-setup.sh: Debian's docker.io and docker-compose, dockerd, a base image made
with mmdebstrap once), the images built from that base with the wheel built here, and the
compose file's two rustelixir nodes and Elixir service run with Debian's docker-compose.
The Elixir service's line for every check is looked for, not only its exit status; on a
failure the containers' logs are printed. The containers are always removed.

Slow the first time on a machine (packages, the base image, apt inside the images: a few
minutes); later runs find the packages, the daemon, the base and the image layers cached.
It skips only where Docker cannot run at all (neither root nor passwordless sudo), and
under CI (CI=true) it fails there instead, so a green CI run has really run it.

RUSTELIXIR_COMPOSE names the compose tool (default `docker-compose`, Debian's 1.29; e.g.
`docker compose` for v2).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rustelixir import epmd
from rustelixir.errors import EpmdError

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parent.parent
SETUP = ROOT / "compose" / "docker-setup.sh"
WHEELS = ROOT / "compose" / "wheels"
BASE_IMAGE = os.environ.get("RUSTELIXIR_BASE_IMAGE", "rustelixir-base:bookworm")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

NODES = ["rustelixir@rustelixir_a", "rustelixir@rustelixir_b"]
# Every check compose/integration.exs runs against each node, and across the two: a check
# dropped from the script (or never reached) fails this test as a failing one does.
NODE_CHECKS = [
    "add",
    "add of big integers",
    "echo of nested terms",
    "functions",
    "info",
    "undef",
    "badarg",
    "call! raises",
    "cast",
    "timeout",
    "buffer resource",
    "resource freed when its holder exits",
    "use RustElixir.Natives",
]
CROSS_CHECKS = [
    "every node answers at once",
    "a resource is used on its own node only",
    # Through the nodes' :pg group (--pg-group rustelixir; the client's {:pg, :pg, :rustelixir}).
    "pg group lists every node",
    "pg members answer calls",
    "calls through the group",
    "calls through the group reach every node",
    "a resource through the group stays on its node",
    "an empty group has no members",
]

# Bounds on each step, so that a hung daemon or mirror fails the test instead of CI.
SETUP_TIMEOUT = 900  # packages, dockerd, the base image: cold, a few minutes
BUILD_TIMEOUT = 900  # the images: apt inside them when cold
UP_TIMEOUT = 300
DOWN_TIMEOUT = 120


def _privilege() -> list[str]:
    """The prefix that runs a command as root: none as root, `sudo -n` with passwordless
    sudo. Skips (fails under CI) when there is neither: Docker cannot run here."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    reason = "Docker needs root or passwordless sudo here (to install it and start dockerd); neither is available"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run(command: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(f"`{shlex.join(command)}` still running after {timeout} s\n{out}\n{err}") from None


@dataclass
class Compose:
    """docker-compose for one project, with the environment the compose file reads."""

    sudo: list[str]
    project: str
    env: dict[str, str]
    # The compose file, and override files on top of it (compose/tls.yml).
    files: list[Path] = field(default_factory=lambda: [ROOT / "docker-compose.yml"])
    tool: list[str] = field(default_factory=lambda: shlex.split(os.environ.get("RUSTELIXIR_COMPOSE", "docker-compose")))

    def command(self, *args: str) -> list[str]:
        # sudo drops the environment: hand the compose variables over through env(1).
        via_env = ["env", *(f"{k}={v}" for k, v in self.env.items())] if self.sudo else []
        files = [arg for file in self.files for arg in ("-f", str(file))]
        return [*self.sudo, *via_env, *self.tool, "--ansi", "never", "-p", self.project, *files, *args]

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return _run(self.command(*args), timeout, env={**os.environ, **self.env})

    def logs(self, *services: str) -> str:
        result = self.run("logs", "--no-color", *services, timeout=60)
        return result.stdout + result.stderr


def _build_wheel() -> None:
    """The wheels the node's image installs: rustelixir's, built here (no Rust image is at hand) into the
    build context, with the virtualenv's Python and the Makefile's target directory, so
    that the release build `make build` made is reused rather than redone."""
    shutil.rmtree(WHEELS, ignore_errors=True)
    maturin = Path(sys.executable).parent / "maturin"
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
        "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(ROOT / "native" / "target")),
    }
    command = [str(maturin), "build", "--release", "-q", "-i", sys.executable, "--out", str(WHEELS)]
    result = _run(command, timeout=900, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(WHEELS.glob("rustelixir-*.whl")), result.stdout + result.stderr
    # The metrics extra's wheel beside it (the image installs with no index: /healthz needs it).
    result = _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                   "--dest", str(WHEELS), "prometheus-client>=0.20,<1"], timeout=300)  # fmt: skip
    assert result.returncode == 0 and list(WHEELS.glob("prometheus_client-*.whl")), result.stdout + result.stderr


def _epmd_names(port: int) -> dict[str, int]:
    return asyncio.run(epmd.names("127.0.0.1", port, timeout=2.0))


def _wait_published(epmd_port: int, dist_port: int, deadline: float) -> None:
    """The node's EPMD, published on 127.0.0.1, lists it at its distribution port, and that
    port, published too, takes a connection."""
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = _epmd_names(epmd_port)
            if last == {"rustelixir": dist_port}:
                with socket.create_connection(("127.0.0.1", dist_port), timeout=2):
                    return
        except (EpmdError, OSError) as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"EPMD on 127.0.0.1:{epmd_port}: {last!r}, wanted rustelixir at port {dist_port}")


@pytest.fixture
def compose(request: pytest.FixtureRequest) -> Iterator[Compose]:
    sudo = _privilege()
    setup = _run([*sudo, str(SETUP)], SETUP_TIMEOUT)
    assert setup.returncode == 0, f"compose/docker-setup.sh failed:\n{setup.stdout}{setup.stderr}"
    _build_wheel()
    a_dist, b_dist, a_epmd, b_epmd = _free_ports(4)
    env = {
        # The images from the local base, with the wheel built above.
        "RUSTELIXIR_BASE": BASE_IMAGE,
        "RUSTELIXIR_WHEEL": "compose/wheels",
        "RUSTELIXIR_ELIXIR_BASE": BASE_IMAGE,
        # Ports on 127.0.0.1 that nothing else on this machine holds.
        "RUSTELIXIR_A_PORT": str(a_dist),
        "RUSTELIXIR_B_PORT": str(b_dist),
        "RUSTELIXIR_A_EPMD_PORT": str(a_epmd),
        "RUSTELIXIR_B_EPMD_PORT": str(b_epmd),
    }
    project = f"rustelixirtest{os.getpid()}{request.node.name.split('_')[-1]}"
    runner = Compose(sudo, project, env)
    try:
        yield runner
    finally:
        down = runner.run("down", "-v", "--remove-orphans", timeout=DOWN_TIMEOUT)
        if down.returncode != 0:
            print(f"docker-compose down failed:\n{down.stdout}{down.stderr}")


def _build_and_start_nodes(compose: Compose) -> None:
    build = compose.run("build", timeout=BUILD_TIMEOUT)
    assert build.returncode == 0, f"docker-compose build failed:\n{build.stdout[-5000:]}{build.stderr[-5000:]}"
    # The nodes first, to reach them from here through their ports on 127.0.0.1.
    started = compose.run("up", "-d", "rustelixir_a", "rustelixir_b", timeout=UP_TIMEOUT)
    assert started.returncode == 0, started.stdout + started.stderr
    deadline = time.monotonic() + 60
    _wait_published(int(compose.env["RUSTELIXIR_A_EPMD_PORT"]), int(compose.env["RUSTELIXIR_A_PORT"]), deadline)
    _wait_published(int(compose.env["RUSTELIXIR_B_EPMD_PORT"]), int(compose.env["RUSTELIXIR_B_PORT"]), deadline)


def _run_integration(compose: Compose, node_checks: list[str]) -> None:
    """The whole file, as the README runs it: the Elixir service waits for the nodes'
    healthchecks, and its exit status is the run's. Then every check's line is looked for."""
    up = compose.run("up", "--abort-on-container-exit", "--exit-code-from", "elixir", timeout=UP_TIMEOUT)
    output = compose.logs("elixir")
    assert up.returncode == 0, f"the elixir service exited {up.returncode}:\n{output}"

    lines = [line.split("|", 1)[-1].strip() for line in output.splitlines()]
    assert not [line for line in lines if line.startswith("FAIL")], output
    expected = [f"PASS {check} @ {node}" for node in NODES for check in node_checks]
    expected += [f"PASS {check} @ {','.join(NODES)}" for check in CROSS_CHECKS]
    missing = [line for line in expected if line not in lines]
    assert not missing, f"checks not passed: {missing}\n{output}"
    total = len(expected)
    assert f"integration: {total} of {total} checks passed in all" in lines, output


def test_compose_runs_the_integration_checks_on_two_nodes(compose: Compose) -> None:
    try:
        _build_and_start_nodes(compose)
        _run_integration(compose, NODE_CHECKS)
    except BaseException:
        print("docker-compose logs (all services):")
        print(compose.logs())
        raise


def test_compose_over_tls(compose: Compose, tmp_path: Path) -> None:
    """compose/tls.yml: every connection between the services is TLS distribution, with
    certificates made for this run (compose/make-certs.sh); a VM without TLS is refused."""
    certs = _run([str(ROOT / "compose" / "make-certs.sh")], timeout=60)
    assert certs.returncode == 0, certs.stdout + certs.stderr
    compose.files.append(ROOT / "compose" / "tls.yml")
    try:
        _build_and_start_nodes(compose)
        # The Elixir VM without TLS first: it cannot connect.
        plain = compose.run(
            "run", "--rm", "--no-deps", "-e", "ELIXIR_ERL_OPTIONS=", "-e", "RUSTELIXIR_WAIT_MS=3000", "elixir",
            timeout=UP_TIMEOUT,
        )
        assert plain.returncode == 1 and "cannot connect to rustelixir@rustelixir_a" in plain.stdout + plain.stderr, (
            plain.stdout + plain.stderr
        )
        _run_integration(compose, [*NODE_CHECKS, "connected over TLS"])
    except BaseException:
        print("docker-compose logs (all services):")
        print(compose.logs())
        raise
