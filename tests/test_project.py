"""The project's own promises: the README's commands, the installable package, the stubs,
the compose file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent


def test_readme_starts_with_the_run_and_test_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert block[0].startswith("make run") and block[1].startswith("make test")
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_run_starts_the_node() -> None:
    # `make -n` shows the recipe without running it (running it here would rebuild the
    # extension under the test run); the node tests run that same `rustelixir serve`.
    out = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert ".venv/bin/rustelixir serve --name py@127.0.0.1" in out


def test_stubs_match_the_extension() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "rustelixir._native"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_type_checks_strictly() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_is_valid_yaml() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(compose, dict) and "services" in compose


@pytest.mark.beam
def test_demo_checks_the_codec_against_a_real_erl() -> None:
    result = subprocess.run([sys.executable, "-m", "rustelixir", "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gave the same bytes" in result.stdout


@pytest.mark.slow
def test_pip_install_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "native" / "target")}
    env.pop("VIRTUAL_ENV", None)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True, env=env, timeout=900
    )
    assert install.returncode == 0, install.stdout + install.stderr
    for command in ([str(env_dir / "bin" / "rustelixir"), "--version"], [str(python), "-m", "rustelixir", "--version"]):
        out = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith("rustelixir "), out.stdout + out.stderr
    check = subprocess.run(
        [str(python), "-c", "import rustelixir as r; assert r.decode(r.encode((r.Atom('ok'), 1))) == (r.Atom('ok'), 1)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr


def _compose() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(compose, dict)
    return compose


NODE_SERVICES = ["rustelixir_a", "rustelixir_b"]


def test_compose_file_is_read_by_docker_compose_1_29_and_v2() -> None:
    # 1.29 refuses a top-level `name:`; without `version:` both read the Compose Specification.
    assert {key for key in _compose() if not key.startswith("x-")} == {"services"}


def test_compose_has_two_nodes_and_the_elixir_client() -> None:
    services = _compose()["services"]
    assert set(services) == {*NODE_SERVICES, "elixir"}
    for name in NODE_SERVICES:
        node = services[name]
        assert node["build"]["dockerfile"] == "Dockerfile" and (ROOT / node["build"]["dockerfile"]).is_file()
        # Public images unless the environment names the local base and a wheel.
        assert node["build"]["args"] == {
            "BASE": "${RUSTELIXIR_BASE:-python:3.11-slim-bookworm}",
            "WHEEL": "${RUSTELIXIR_WHEEL:-}",
        }
        command = node["command"]
        assert command[:3] == ["serve", "--name", f"rustelixir@{name}"] and node["hostname"] == name
        assert command[command.index("--listen-host") + 1] == "0.0.0.0"
        assert command[command.index("--pg-group") + 1] == "rustelixir"
        # Healthy by the node's own /healthz, on the metrics port its command opens.
        assert command[command.index("--metrics-port") + 1] == "9200"
        assert "http://127.0.0.1:9200/healthz" in " ".join(node["healthcheck"]["test"])
    client = services["elixir"]
    assert client["build"]["dockerfile"] == "compose/elixir.Dockerfile"
    assert client["build"]["args"] == {"ELIXIR_BASE": "${RUSTELIXIR_ELIXIR_BASE:-elixir:1.14}"}
    elixir_dockerfile = (ROOT / "compose" / "elixir.Dockerfile").read_text()
    assert "ARG ELIXIR_BASE=elixir:1.14" in elixir_dockerfile
    assert 'CMD ["elixir", "compose/integration.exs"]' in elixir_dockerfile
    assert client["environment"]["RUSTELIXIR_NODES"] == ",".join(f"rustelixir@{name}" for name in NODE_SERVICES)
    assert client["environment"]["RUSTELIXIR_PG_GROUP"] == "rustelixir"
    assert client["depends_on"] == {name: {"condition": "service_healthy"} for name in NODE_SERVICES}
    assert (ROOT / "compose" / "integration.exs").is_file()


def test_compose_tls_override_keeps_the_nodes_commands() -> None:
    # compose replaces a command: the override must restate the base file's, then add TLS.
    base = _compose()["services"]
    tls = yaml.safe_load((ROOT / "compose" / "tls.yml").read_text())["services"]
    for name in NODE_SERVICES:
        command = tls[name]["command"]
        assert command[: len(base[name]["command"])] == base[name]["command"], name
        added = command[len(base[name]["command"]) :]
        assert added == [
            "--tls-cert", f"/certs/{name}.pem", "--tls-key", f"/certs/{name}.key", "--tls-cacert", "/certs/ca.pem"
        ], name
    assert "-proto_dist inet_tls" in tls["elixir"]["environment"]["ELIXIR_ERL_OPTIONS"]


def test_compose_ports_are_bound_to_localhost_only() -> None:
    published = [port for service in _compose()["services"].values() for port in service.get("ports", [])]
    assert published, "the node's ports are published for host tools"
    for port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), port


def test_compose_cookie_comes_from_the_env_file() -> None:
    for name, service in _compose()["services"].items():
        assert service["env_file"] == ["compose/rustelixir.env"], name
        assert "RUSTELIXIR_COOKIE" not in service.get("environment", {}), name
    env = (ROOT / "compose" / "rustelixir.env").read_text().splitlines()
    assert any(line.startswith("RUSTELIXIR_COOKIE=") and len(line) > len("RUSTELIXIR_COOKIE=") for line in env)


def test_compose_volumes_exist() -> None:
    for service in _compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), volume


def _dockerfile_instructions() -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            instruction, _, rest = pending.strip().partition(" ")
            lines.append((instruction.upper(), rest))
            pending = ""
    return lines


def test_dockerfile_structure() -> None:
    instructions = _dockerfile_instructions()
    # Both stages start from BASE: public python:3.11 by default, the local base by argument.
    assert instructions[0] == ("ARG", "BASE=python:3.11-slim-bookworm")
    images = [rest.split()[0] for instruction, rest in instructions if instruction == "FROM"]
    assert images == ["${BASE}", "${BASE}"]
    assert ("ARG", "WHEEL=") in instructions
    for image in [s.get("image", "") for s in _compose()["services"].values()]:
        assert not image.endswith(":latest") and (":" in image or image == ""), image
    runs = " ".join(rest for instruction, rest in instructions if instruction == "RUN")
    assert "rustup" in runs and "maturin build" in runs and "erlang-base" in runs and "python3-venv" in runs
    assert ("USER", "rustelixir") in instructions
    # The image's health is the node's /healthz, on the port its default command opens.
    health = [rest for instruction, rest in instructions if instruction == "HEALTHCHECK"]
    assert len(health) == 1 and "http://127.0.0.1:9200/healthz" in health[0]
    command = [rest for instruction, rest in instructions if instruction == "CMD"][-1]
    assert '"--metrics-port", "9200"' in command and "[metrics]" in runs
    assert (ROOT / ".dockerignore").is_file()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "native/target" in ignored


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
