defmodule RustElixir.NativesTest do
  use ExUnit.Case, async: false

  alias RustElixir.Error

  @moduletag :integration

  defmodule Builtins do
    use RustElixir.Natives,
      node: {RustElixir.Node, :node_name, [RustElixir.TestNode]},
      functions: [add: [:a, :b], echo: 1, buffer_new: [:size], nope: 0]
  end

  defmodule ByFunction do
    use RustElixir.Natives,
      node: fn -> RustElixir.Node.node_name(RustElixir.TestNode) end,
      functions: [add: 2],
      timeout: 1_000
  end

  test "generated functions call the natives" do
    assert Builtins.add(1, 2) == {:ok, 3}
    assert Builtins.add!(2 ** 64, 1) == 2 ** 64 + 1
    assert Builtins.echo(%{a: 1}) == {:ok, %{a: 1}}
    assert {:ok, ref} = Builtins.buffer_new(8)
    assert is_reference(ref)
    assert ByFunction.add(2, 3) == {:ok, 5}
  end

  test "generated functions return and raise RustElixir.Error" do
    assert {:error, %Error{reason: {:undef, :nope, 0}}} = Builtins.nope()
    assert {:error, %Error{reason: {:badarg, 1, _}}} = Builtins.add("one", 2)
    assert_raise Error, fn -> Builtins.add!("one", 2) end
  end

  test "a node given by name is used as is" do
    node = RustElixir.Node.node_name(RustElixir.TestNode)

    [{module, _}] =
      Code.compile_string("""
      defmodule RustElixir.NativesTest.Literal do
        use RustElixir.Natives, node: #{inspect(node)}, functions: [add: 2]
      end
      """)

    assert module.add(20, 22) == {:ok, 42}
  end

  test "generated functions have docs and specs" do
    [{_module, beam}] =
      Code.compile_string("""
      defmodule RustElixir.NativesTest.Documented do
        use RustElixir.Natives, node: :"py@127.0.0.1", functions: [add: [:a, :b]]
      end
      """)

    {:ok, {_, [{~c"Docs", chunk}]}} = :beam_lib.chunks(beam, [~c"Docs"])
    {:docs_v1, _, _, _, _, _, docs} = :erlang.binary_to_term(chunk)
    assert {_, _, _, %{"en" => doc}, _} = List.keyfind(docs, {:function, :add, 2}, 0)
    assert doc =~ "native `add/2`"
    assert {_, _, _, %{"en" => _}, _} = List.keyfind(docs, {:function, :add!, 2}, 0)

    assert {:ok, specs} = Code.Typespec.fetch_specs(beam)
    assert Enum.any?(specs, &match?({{:add, 2}, _}, &1))
    assert Enum.any?(specs, &match?({{:add!, 2}, _}, &1))
  end
end
