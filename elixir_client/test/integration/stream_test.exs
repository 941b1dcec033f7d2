defmodule RustElixir.StreamTest do
  # Natives that emit items while they run, consumed with RustElixir.stream/4, against the
  # real node the test helper started (serving rustelixir_test_natives and
  # client_test_natives).
  use ExUnit.Case, async: false

  import RustElixir.TestHelpers

  alias RustElixir.Error

  @moduletag :integration

  setup do
    %{node: RustElixir.Node.node_name(RustElixir.TestNode)}
  end

  defp cancelled_seen(node), do: RustElixir.call!(node, :test_cancel_seen, [])

  test "a Rust native's items, in order, and then its value when asked", %{node: node} do
    assert node |> RustElixir.stream(:test_emit, [5]) |> Enum.to_list() == [1, 2, 3, 4, 5]

    assert node |> RustElixir.stream(:test_emit, [2], result: true) |> Enum.to_list() == [
             1,
             2,
             {:result, 2}
           ]

    assert node |> RustElixir.stream(:test_emit, [0]) |> Enum.to_list() == []
    refute_received _
  end

  test "a Python native's items", %{node: node} do
    assert node |> RustElixir.stream(:py_count, [3], result: true) |> Enum.to_list() == [
             1,
             2,
             3,
             {:result, 3}
           ]
  end

  test "each run of a stream is a call of its own, and items of concurrent calls never mix", %{
    node: node
  } do
    stream = RustElixir.stream(node, :test_emit, [50])

    results =
      1..8
      |> Enum.map(fn _ -> Task.async(fn -> Enum.sum(stream) end) end)
      |> Enum.map(&Task.await/1)

    assert results == List.duplicate(Enum.sum(1..50), 8)
    assert Enum.to_list(stream) == Enum.to_list(1..50)
  end

  test "stopping early cancels a slow native, and nothing is left in the mailbox", %{node: node} do
    seen = cancelled_seen(node)
    assert node |> RustElixir.stream(:test_emit_slow, [1000, 5]) |> Enum.take(3) == [1, 2, 3]
    assert eventually(fn -> cancelled_seen(node) > seen end)
    Process.sleep(50)
    refute_received _
  end

  test "a failing native raises its error", %{node: node} do
    error =
      assert_raise Error, fn -> node |> RustElixir.stream(:test_emit, [-1]) |> Enum.to_list() end

    assert {:badarg, 1, _message} = error.reason
  end

  test "no item in time raises a timeout", %{node: node} do
    error =
      assert_raise Error, fn ->
        node |> RustElixir.stream(:test_emit_slow, [10, 500], timeout: 100) |> Enum.to_list()
      end

    assert error.reason == {:timeout, 100}
  end

  test "a node that is not there raises nodedown" do
    error =
      assert_raise Error, fn ->
        :"nobody@127.0.0.1" |> RustElixir.stream(:test_emit, [1]) |> Enum.to_list()
      end

    assert error.reason == {:nodedown, :"nobody@127.0.0.1"}
  end
end
