defmodule RustElixir.CallsTest do
  # Against the real node the test helper started (RustElixir.TestNode).
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias RustElixir.Error

  @moduletag :integration

  setup do
    %{node: RustElixir.Node.node_name(RustElixir.TestNode)}
  end

  test "add, of small and big integers", %{node: node} do
    assert RustElixir.call(node, :add, [1, 2]) == {:ok, 3}
    assert RustElixir.call(node, :add, [2 ** 100, 1]) == {:ok, 2 ** 100 + 1}
    assert RustElixir.call!(node, :add, [-5, 3]) == -2
  end

  test "echo gives every kind of term back unchanged", %{node: node} do
    terms = [
      nil,
      true,
      :an_atom,
      1.5,
      -(2 ** 70),
      "José",
      <<1, 2, 3::size(5)>>,
      ~c"charlist",
      [1, [2, [3]] | :improper],
      {:a, {}, {1, 2, 3}},
      %{"k" => [1, 2], {1, 2} => %{}, 1 => 1.0},
      self(),
      make_ref(),
      &String.upcase/1,
      fn x -> x end,
      Enum.to_list(1..1000),
      :binary.copy(<<7>>, 100_000)
    ]

    for term <- terms do
      assert RustElixir.call(node, :echo, [term]) == {:ok, term}
    end
  end

  test "functions lists the natives, sorted", %{node: node} do
    assert {:ok, functions} = RustElixir.functions(node)
    assert {:add, 2} in functions and {:echo, 1} in functions and {:boom, 1} in functions
    assert functions == Enum.sort(functions)
  end

  test "info describes the node", %{node: node} do
    assert {:ok, %{version: version, node: ^node, calls: calls, errors: _, resources: resources}} =
             RustElixir.info(node)

    assert is_binary(version) and is_integer(calls)
    assert %{live: _, created: _, freed: _, by_type: _} = resources
  end

  describe "each error reason" do
    test "undef", %{node: node} do
      assert {:error, %Error{reason: {:undef, :nope, 1}, node: ^node}} =
               RustElixir.call(node, :nope, [1])

      assert {:error, %Error{reason: {:undef, :add, 1}}} = RustElixir.call(node, :add, [1])
    end

    test "badarg", %{node: node} do
      assert {:error, %Error{reason: {:badarg, 2, message}}} =
               RustElixir.call(node, :add, [1, "two"])

      assert is_binary(message)
    end

    test "panic, and the node serves on", %{node: node} do
      log =
        capture_log(fn ->
          assert {:error, %Error{reason: {:panic, "oh no"}}} =
                   RustElixir.call(node, :test_panic, ["oh no"])

          Process.sleep(100)
        end)

      assert log =~ "[warning]" and log =~ "panicked"
      assert {:ok, 3} = RustElixir.call(node, :add, [1, 2])
    end

    test "exception from a Python native", %{node: node} do
      assert {:error, %Error{reason: {:exception, "ValueError", "boom"}}} =
               RustElixir.call(node, :boom, ["boom"])
    end

    test "badresource", %{node: node} do
      ref = make_ref()
      assert {:error, %Error{reason: {:badresource, ^ref}}} = RustElixir.release(node, ref)

      assert {:error, %Error{reason: {:badresource, ^ref}}} =
               RustElixir.call(node, :buffer_size, [ref])
    end

    test "reload: a served module's code loaded again, and a module not served", %{node: node} do
      assert {:ok, natives} = RustElixir.reload(node, :client_test_natives)
      assert {:py_count, 1} in natives and {:boom, 1} in natives
      assert RustElixir.call(node, :py_count, [2]) == {:ok, 2}

      assert {:error, %Error{reason: {:badarg, 1, "nope is not a module this node serves"}}} =
               RustElixir.reload(node, :nope)
    end

    test "badrequest", %{node: node} do
      assert {:error, %Error{reason: {:badrequest, message}}} =
               RustElixir.call(node, :functions, [1])

      assert message =~ "reserved"
    end

    test "timeout, and the node goes on", %{node: node} do
      assert {:error, %Error{reason: {:timeout, 50}}} =
               RustElixir.call(node, :sleep, [1_000], timeout: 50)

      assert {:ok, 3} = RustElixir.call(node, :add, [1, 2])
    end

    test "nodedown, when no node has that name" do
      assert {:error, %Error{reason: {:nodedown, :"nobody@127.0.0.1"}}} =
               RustElixir.call(:"nobody@127.0.0.1", :add, [1, 2])
    end

    test "noproc, when the node serves no rustelixir process" do
      me = node()
      assert {:error, %Error{reason: {:noproc, ^me}}} = RustElixir.call(me, :add, [1, 2])
    end

    test "overloaded, past the node's limit of calls in flight" do
      limited =
        start_supervised!({RustElixir.Node, args: ["--workers", "1", "--max-in-flight", "1"]},
          id: :limited
        )

      node = RustElixir.Node.node_name(limited)

      results =
        1..6
        |> Enum.map(fn _ -> Task.async(fn -> RustElixir.call(node, :sleep, [300]) end) end)
        |> Enum.map(&Task.await/1)

      assert Enum.any?(results, &match?({:error, %Error{reason: :overloaded}}, &1))
      assert Enum.any?(results, &match?({:ok, _}, &1))
    end
  end

  test "call! raises RustElixir.Error with a readable message", %{node: node} do
    error = assert_raise Error, fn -> RustElixir.call!(node, :add, [1, "two"]) end
    assert {:badarg, 2, _} = error.reason
    assert Exception.message(error) =~ "bad argument 2"

    assert_raise Error, ~r/no native nope\/0/, fn -> RustElixir.call!(node, :nope, []) end
  end

  test "cast runs the native without a reply", %{node: node} do
    {:ok, %{calls: before}} = RustElixir.info(node)
    assert RustElixir.cast(node, :add, [1, 2]) == :ok
    assert RustElixir.cast(node, :nope, []) == :ok
    refute_receive _, 100
    {:ok, %{calls: later}} = RustElixir.info(node)
    assert later > before
  end

  test "the node's log lines reach Logger at their level", %{node: node} do
    log =
      capture_log(fn ->
        assert {:ok, true} = RustElixir.call(node, :log_warning, ["hello from python"])
        Process.sleep(200)
      end)

    assert log =~ "[warning]"
    assert log =~ "client_test_natives: hello from python"
  end
end
