"""The node as Elixir developers meet it: `elixir` and `iex` nodes (Elixir 1.14 on OTP 25)
calling `GenServer.call({:rustelixir, node}, ...)`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from beamnodes import ServedNode, elixir_or_skip, node_fixture, unique_name

pytestmark = pytest.mark.beam

COOKIE = "rustelixir-elixir-cookie"




node = node_fixture("elixir-node", cookie=COOKIE)


def run_elixir(script: str, node: ServedNode, timeout: float = 120) -> str:
    elixir = elixir_or_skip()
    result = subprocess.run(
        [elixir, "--name", unique_name("ex"), "--cookie", COOKIE, "-e", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RUSTELIXIR_NODE": node.name},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_elixir_calls_add_and_functions(node: ServedNode) -> None:
    out = run_elixir(
        """
        node = String.to_atom(System.fetch_env!("RUSTELIXIR_NODE"))
        IO.inspect(GenServer.call({:rustelixir, node}, {:add, 1, 2}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:add, 2 ** 100, 1}))
        IO.inspect(GenServer.call({:rustelixir, node}, :functions), width: :infinity, limit: :infinity)
        IO.inspect(GenServer.call({:rustelixir, node}, {:echo, %{name: "José", tags: [:a, nil], pid: self()}}) ==
                     {:ok, %{name: "José", tags: [:a, nil], pid: self()}})
        """,
        node,
    )
    lines = out.splitlines()
    assert lines[0] == "{:ok, 3}"
    assert lines[1] == f"{{:ok, {2**100 + 1}}}"
    assert lines[2].startswith("{:ok, [add: 2, buffer_new: 1,") and "echo: 1" in lines[2] and "sleep: 1" in lines[2]
    assert "sorted_set_add: 2" in lines[2] and "test_" not in lines[2]
    assert lines[3] == "true"


def test_1000_calls_from_100_concurrent_elixir_processes(node: ServedNode) -> None:
    out = run_elixir(
        """
        node = String.to_atom(System.fetch_env!("RUSTELIXIR_NODE"))
        results =
          1..100
          |> Enum.map(fn i ->
            Task.async(fn ->
              Enum.map(1..10, fn j -> GenServer.call({:rustelixir, node}, {:add, i * 1000, j}) == {:ok, i * 1000 + j} end)
            end)
          end)
          |> Enum.flat_map(&Task.await(&1, 60_000))
        IO.puts("#{Enum.count(results, & &1)}/#{length(results)}")
        """,
        node,
    )
    assert out == "1000/1000"


def test_elixir_sees_errors_and_noproc(node: ServedNode) -> None:
    out = run_elixir(
        """
        node = String.to_atom(System.fetch_env!("RUSTELIXIR_NODE"))
        IO.inspect(GenServer.call({:rustelixir, node}, {:add, 1, "two"}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:nope}))
        {time, reason} =
          :timer.tc(fn ->
            try do
              GenServer.call({:nobody, node}, :hi)
            catch
              :exit, reason -> reason
            end
          end)
        IO.inspect({elem(reason, 0), time < 100_000})
        """,
        node,
    )
    assert out.splitlines() == [
        '{:error, {:badarg, 2, "expected an integer, got a binary"}}',
        "{:error, {:undef, :nope, 0}}",
        "{:noproc, true}",
    ]


def test_iex_session(node: ServedNode, tmp_path: Path) -> None:
    elixir_or_skip()
    iex = shutil.which("iex")
    assert iex is not None
    session = subprocess.run(
        [iex, "--name", unique_name("iex"), "--cookie", COOKIE],
        input=f'GenServer.call({{:rustelixir, :"{node.name}"}}, {{:add, 20, 22}})\nNode.ping(:"{node.name}")\n',
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TERM": "dumb"},
    )
    assert "{:ok, 42}" in session.stdout
    assert ":pong" in session.stdout
