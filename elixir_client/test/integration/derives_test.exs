defmodule RustElixir.TestPoint do
  defstruct [:x, :y]
end

defmodule RustElixir.TestError do
  defexception [:message]
end

defmodule RustElixir.DerivesTest do
  # Rust types with derived conversions (rustelixir_test_natives: NifStruct, NifTaggedEnum,
  # NifUnitEnum, NifRecord, NifMap, NifTuple, NifUntaggedEnum, NifException), called with
  # Elixir values, against the real node the test helper started.
  use ExUnit.Case, async: false

  alias RustElixir.{Error, TestError, TestPoint}

  @moduletag :integration

  setup do
    %{node: RustElixir.Node.node_name(RustElixir.TestNode)}
  end

  test "an Elixir struct in, an Elixir struct out", %{node: node} do
    assert RustElixir.call(node, :test_point_flip, [%TestPoint{x: 1, y: 2}]) ==
             {:ok, %TestPoint{x: 2, y: 1}}
  end

  test "every other form, both ways", %{node: node} do
    for shape <- [:empty, {:circle, 1.5}, {:circle, 2}, {:labeled, %{label: "tri", sides: 3}}],
        color <- [:red, :dark_blue],
        num <- [7, "seven"] do
      # maxSize: a field renamed; {:circle, 2}: an integer taken for a float.
      args = [shape, color, {:user, "jo", 30}, %{name: "n", maxSize: 9}, {1, "one"}, num]
      expected_shape = with {:circle, r} <- shape, do: {:circle, r / 1}

      assert RustElixir.call(node, :test_derived_echo, args) ==
               {:ok, List.to_tuple([expected_shape | tl(args)])}
    end
  end

  test "a wrong shape is a badarg that names the field", %{node: node} do
    assert {:error,
            %Error{
              reason:
                {:badarg, 1, "RustElixir.TestPoint field y: expected an integer, got an atom"}
            }} = RustElixir.call(node, :test_point_flip, [%TestPoint{x: 1, y: :two}])

    assert {:error,
            %Error{reason: {:badarg, 1, "expected a %RustElixir.TestPoint{}, got a %URI{}"}}} =
             RustElixir.call(node, :test_point_flip, [%URI{}])

    good = [:empty, :red, {:user, "jo", 30}, %{name: "n", maxSize: 9}, {1, "one"}, 7]

    for {index, bad, message} <- [
          {1, {:circle, :big}, "TestShape::Circle field 0: expected a number, got an atom"},
          {2, :purple, "expected a TestColor, got the atom purple"},
          {3, {:user, "jo", 300},
           "TestUser field age: integer 300 out of range for u8 (0..=255)"},
          {4, %{name: "n"}, "TestSettings is missing field maxSize"},
          {5, {1, 2}, "TestPair field 1: expected a binary, got an integer"},
          {6, :seven, "expected a TestNum (one of Int, Text), got an atom"}
        ] do
      args = List.replace_at(good, index - 1, bad)

      assert {:error, %Error{reason: {:badarg, ^index, ^message}}} =
               RustElixir.call(node, :test_derived_echo, args)
    end
  end

  test "an exception struct as the error", %{node: node} do
    assert {:error, %Error{reason: %TestError{message: "boom"}}} =
             RustElixir.call(node, :test_raise, ["boom"])
  end
end
