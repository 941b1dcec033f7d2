defmodule RustElixirTest do
  use ExUnit.Case, async: true
  doctest RustElixir

  test "requests follow the call contract for every arity" do
    assert RustElixir.request(:echo, [%{a: [1, 2]}]) == {:echo, %{a: [1, 2]}}
    assert RustElixir.request(:f, Enum.to_list(1..5)) == {:f, 1, 2, 3, 4, 5}
  end

  test "a non-atom function name is refused" do
    assert_raise FunctionClauseError, fn -> RustElixir.request("add", [1]) end
  end
end
