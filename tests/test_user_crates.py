"""Rust natives in crates of their own: `rustelixir new` scaffolds one, the example in
examples/rust_natives is another; each is built with maturin, its own test runs, and a
real Elixir node calls its natives through `rustelixir serve --module`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamnodes import ServedNode, unique_name
from conftest import IN_CI

pytestmark = [pytest.mark.beam, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "rustelixir-crates-cookie"
# Shared by the builds here (and kept between runs) so pyo3 is compiled once.
TARGET_DIR = ROOT / "native" / "target" / "user-crates"


def build(crate: Path, site: Path) -> None:
    """Builds the crate's wheel with maturin and installs it into `site`."""
    maturin = Path(sys.executable).parent / "maturin"
    dist = site.parent / f"dist-{crate.name}"
    subprocess.run(
        [str(maturin), "build", "-q", "-i", sys.executable, "-o", str(dist)],
        cwd=crate,
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(TARGET_DIR)},
        timeout=900,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheels[0])],
        check=True,
        timeout=300,
    )


def run_crate_tests(crate: Path, site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=crate,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def elixir_calls(node: ServedNode, script: str) -> list[str]:
    elixir = shutil.which("elixir")
    if elixir is None:
        if IN_CI:
            pytest.fail("elixir not found (the README's test command installs it)")
        pytest.skip("elixir not found")
    result = subprocess.run(
        [elixir, "--name", unique_name("ex"), "--cookie", COOKIE, "-e",
         f'node = String.to_atom(System.fetch_env!("RUSTELIXIR_NODE"))\n{script}'],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RUSTELIXIR_NODE": node.name},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


@pytest.fixture()
def served_crate(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServedNode, Path]]:
    crate, module = request.param
    if crate == "scaffold":
        created = subprocess.run(
            [sys.executable, "-m", "rustelixir", "new", module, "--directory", str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "created" in created.stdout
        crate_dir = tmp_path / module
    else:
        crate_dir = tmp_path / "crate"
        shutil.copytree(ROOT / crate, crate_dir)
        cargo = crate_dir / "Cargo.toml"
        cargo.write_text(cargo.read_text().replace("../../native/nif", str(ROOT / "native" / "nif")))
    site = tmp_path / "site"
    build(crate_dir, site)
    run_crate_tests(crate_dir, site)
    node = ServedNode(tmp_path / "logs", cookie=COOKIE, extra=["--module", module],
                      env={"PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests")])})  # fmt: skip
    try:
        yield node, crate_dir
    finally:
        node.stop()


@pytest.mark.parametrize("served_crate", [("scaffold", "hello_natives")], indirect=True)
def test_scaffolded_crate_is_served_to_elixir(served_crate: tuple[ServedNode, Path]) -> None:
    node, _ = served_crate
    assert elixir_calls(
        node,
        """
        IO.inspect(GenServer.call({:rustelixir, node}, {:hello, "world"}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:hello, 42}))
        {:ok, functions} = GenServer.call({:rustelixir, node}, :functions)
        IO.inspect(Keyword.get(functions, :hello))
        """,
    ) == ['{:ok, "hello, world"}', '{:error, {:badarg, 1, "expected a binary, got an integer"}}', "1"]


@pytest.mark.parametrize("served_crate", [("examples/rust_natives", "text_natives")], indirect=True)
def test_example_crate_is_served_to_elixir(served_crate: tuple[ServedNode, Path]) -> None:
    node, _ = served_crate
    assert elixir_calls(
        node,
        """
        IO.inspect(GenServer.call({:rustelixir, node}, {:word_count, "the cat and the hat"}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:fib, 90}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:fib, 100}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:primes_below, 30}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:mean, [1.0, 2.0]}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:mean, []}))
        """,
    ) == [
        '{:ok, %{"and" => 1, "cat" => 1, "hat" => 1, "the" => 2}}',
        "{:ok, 2880067194370816120}",
        '{:error, {:badarg, 1, "fib(100) does not fit in 64 bits (n <= 93)"}}',
        "{:ok, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]}",
        "{:ok, 1.5}",
        "{:ok, nil}",
    ]
