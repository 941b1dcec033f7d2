defmodule Mix.Tasks.Rustelixir.Gen.NativesTest do
  use ExUnit.Case, async: false

  @moduletag :integration
  @moduletag :tmp_dir

  test "writes a module with the node's natives that compiles and calls them", %{tmp_dir: dir} do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)
    output = Path.join(dir, "generated.ex")

    Mix.Tasks.Rustelixir.Gen.Natives.run([
      "--node",
      Atom.to_string(RustElixir.Node.node_name(RustElixir.TestNode)),
      "--module",
      "RustElixir.GeneratedNatives",
      "--node-expr",
      "{RustElixir.Node, :node_name, [RustElixir.TestNode]}",
      "--output",
      output
    ])

    source = File.read!(output)
    assert source =~ "node: {RustElixir.Node, :node_name, [RustElixir.TestNode]}"
    assert source =~ "add: 2,"
    assert_received {:mix_shell, :info, [_created]}
    assert_received {:mix_shell, :info, ["RustElixir.GeneratedNatives: " <> _]}

    [{module, _}] = Code.compile_file(output)
    assert module.add(1, 2) == {:ok, 3}
    assert module.sorted_set_size!(module.sorted_set_new!()) == 0
  end

  test "a node that cannot be reached is a Mix error" do
    assert_raise Mix.Error, ~r/cannot list the natives of nobody@127.0.0.1/, fn ->
      Mix.Tasks.Rustelixir.Gen.Natives.run(["--node", "nobody@127.0.0.1", "--module", "X"])
    end
  end
end
