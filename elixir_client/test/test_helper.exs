# The suite runs against a real rustelixir node: this VM becomes a distributed node (the
# node is reached over the Erlang distribution), then RustElixir.Node starts
# `$RUSTELIXIR_BIN serve` under a supervisor of its own, registered as RustElixir.TestNode.
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
