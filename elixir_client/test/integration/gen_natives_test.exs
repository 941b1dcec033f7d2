defmodule Mix.Tasks.Rustelixir.Gen.NativesTest do
  use ExUnit.Case, async: false

  @moduletag :integration
  @moduletag :tmp_dir

  # Runs the task (its shell messages to this process) with `args`, the test node's
  # supervised name as the module's :node, into `dir`/`file`: that file's path.
  defp generate(dir, file, args) do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)
    output = Path.join(dir, file)
    node_expr = "{RustElixir.Node, :node_name, [RustElixir.TestNode]}"
    Mix.Tasks.Rustelixir.Gen.Natives.run(args ++ ["--node-expr", node_expr, "--output", output])
    output
  end

  test "writes a module with the node's natives that compiles and calls them", %{tmp_dir: dir} do
    node = Atom.to_string(RustElixir.Node.node_name(RustElixir.TestNode))

    output =
      generate(dir, "generated.ex", ["--node", node, "--module", "RustElixir.GeneratedNatives"])

    source = File.read!(output)
    assert source =~ "node: {RustElixir.Node, :node_name, [RustElixir.TestNode]}"
    assert source =~ "add: 2,"
    assert_received {:mix_shell, :info, [_created]}
    assert_received {:mix_shell, :info, ["RustElixir.GeneratedNatives: " <> _]}

    [{module, _}] = Code.compile_file(output)
    assert module.add(1, 2) == {:ok, 3}
    assert module.sorted_set_size!(module.sorted_set_new!()) == 0
  end

  test "from the modules themselves, with no node: typed specs and the natives' own docs", %{
    tmp_dir: dir
  } do
    # The Python module is found as `serve` finds it (the test helper's node has it on its path).
    pythonpath = System.get_env("PYTHONPATH")
    System.put_env("PYTHONPATH", Path.expand("../support", __DIR__))

    on_exit(fn ->
      if pythonpath,
        do: System.put_env("PYTHONPATH", pythonpath),
        else: System.delete_env("PYTHONPATH")
    end)

    modules = ["--from-module", "rustelixir_test_natives", "--from-module", "client_test_natives"]
    output = generate(dir, "described.ex", modules ++ ["--module", "RustElixir.DescribedNatives"])

    source = File.read!(output)
    assert source =~ "test_checked_add: [\n"
    assert source =~ "args: [first: integer(), second: integer()],"
    assert source =~ "test_emit: 1,"
    assert_received {:mix_shell, :info, [_created]}

    [{module, binary}] = Code.compile_file(output)
    beam = Path.join(dir, "#{module}.beam")
    File.write!(beam, binary)

    specs =
      for {{name, arity}, [spec]} <- elem(Code.Typespec.fetch_specs(binary), 1), into: %{} do
        {{name, arity},
         spec
         |> then(&Code.Typespec.spec_to_quoted(name, &1))
         |> Macro.to_string()
         |> String.replace(~r/\s+/, " ")}
      end

    assert specs[{:test_checked_add, 2}] ==
             "test_checked_add(first :: integer(), second :: integer()) :: {:ok, integer()} | {:error, RustElixir.Error.t()}"

    assert specs[{:test_checked_add!, 2}] ==
             "test_checked_add!(first :: integer(), second :: integer()) :: integer()"

    # A Rust type with a derive is term(); a Python native's annotations are typed too.
    assert specs[{:test_point_flip!, 1}] == "test_point_flip!(p :: term()) :: term()"
    assert specs[{:py_count!, 1}] == "py_count!(n :: integer()) :: integer()"

    assert specs[{:test_emit, 1}] ==
             "test_emit(arg1 :: term()) :: {:ok, term()} | {:error, RustElixir.Error.t()}"

    {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(beam)
    doc = for {{:function, :test_checked_add, 2}, _, _, %{"en" => text}, _} <- docs, do: text
    assert [text] = doc
    assert text =~ "Adds two integers, checked.\n\nAn overflow is a badarg."

    # And the functions call the node.
    assert module.test_checked_add(1, 2) == {:ok, 3}

    assert {:error, %RustElixir.Error{reason: {:badarg, 2, "the sum overflows"}}} =
             module.test_checked_add(2 ** 63 - 1, 1)
  end

  test "a module that cannot be described is a Mix error", %{tmp_dir: dir} do
    assert_raise Mix.Error, ~r/describe no_such_module failed/, fn ->
      Mix.Tasks.Rustelixir.Gen.Natives.run([
        "--from-module",
        "no_such_module",
        "--module",
        "X",
        "--node",
        "n@h",
        "--output",
        Path.join(dir, "x.ex")
      ])
    end
  end

  test "a node that cannot be reached is a Mix error" do
    assert_raise Mix.Error, ~r/cannot list the natives of nobody@127.0.0.1/, fn ->
      Mix.Tasks.Rustelixir.Gen.Natives.run(["--node", "nobody@127.0.0.1", "--module", "X"])
    end
  end
end
