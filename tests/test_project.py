"""The project's own promises: the README's commands, the installable package, the stubs,
the compose file."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

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
