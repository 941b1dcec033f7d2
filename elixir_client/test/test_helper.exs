# The suite runs against a real rustelixir node: this VM becomes a distributed node (the
# node is reached over the Erlang distribution), then RustElixir.Node starts
# `$RUSTELIXIR_BIN serve` under a supervisor of its own, registered as RustElixir.TestNode.

# Compiled before this VM becomes a distributed node (the compiler's processes would be
# reached under the old node name after).
defmodule RustElixir.TestHelpers do
  @moduledoc false

  @doc "Whether `fun` turns true within `tries` looks, 20 ms apart."
  def eventually(fun, tries \\ 50) do
    cond do
      fun.() -> true
      tries == 0 -> false
      true -> Process.sleep(20) && eventually(fun, tries - 1)
    end
  end
end

Logger.configure(level: :warning)
{_, 0} = System.cmd("epmd", ["-daemon"])
{:ok, _} = :net_kernel.start([:"test@127.0.0.1", :longnames])

unless System.get_env("RUSTELIXIR_BIN") do
  raise "set RUSTELIXIR_BIN to the rustelixir executable (make test-elixir does)"
end

support = Path.expand("support", __DIR__)

{:ok, _} =
  Supervisor.start_link(
    [
      {RustElixir.Node,
       name: RustElixir.TestNode,
       modules: ["client_test_natives", "rustelixir_test_natives"],
       args: ["--max-in-flight", "64"],
       env: [{"PYTHONPATH", support}]}
    ],
    strategy: :one_for_one,
    name: RustElixir.TestSupervisor
  )

ExUnit.start()
