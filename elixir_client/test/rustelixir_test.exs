defmodule RustElixirTest do
  use ExUnit.Case, async: true
  doctest RustElixir
  doctest RustElixir.Natives.Spec

  alias RustElixir.Error

  test "requests follow the call contract for every arity" do
    assert RustElixir.request(:echo, [%{a: [1, 2]}]) == {:echo, %{a: [1, 2]}}
    assert RustElixir.request(:f, Enum.to_list(1..5)) == {:f, 1, 2, 3, 4, 5}
  end

  test "a non-atom function name is refused" do
    assert_raise FunctionClauseError, fn -> RustElixir.request("add", [1]) end
  end

  test "a bad timeout is an ArgumentError naming it" do
    assert_raise ArgumentError, ~r/:timeout/, fn ->
      RustElixir.call(:a@b, :add, [1, 2], timeout: -1)
    end
  end

  test "errors read well for every reason" do
    ref = make_ref()

    for {reason, text} <- [
          {{:undef, :nope, 2}, "no native nope/2"},
          {{:badarg, 2, "expected an integer"}, "bad argument 2: expected an integer"},
          {{:panic, "oh no"}, "the native panicked: oh no"},
          {{:exception, "ValueError", "boom"}, "the native raised ValueError: boom"},
          {{:badresource, ref}, "#{inspect(ref)} is not a live resource"},
          {:overloaded, "overloaded"},
          {{:badrequest, "what"}, "bad request: what"},
          {{:nodedown, :py@h}, "down"},
          {{:noproc, :py@h}, "no rustelixir process"},
          {{:timeout, 100}, "no reply within 100 ms"},
          {:not_distributed, "not distributed"},
          {{:exit, :whatever}, ":whatever"}
        ] do
      message = Exception.message(%Error{reason: reason, node: :py@h})
      assert message =~ text
      assert message =~ "(rustelixir node :py@h)"
    end
  end

  describe "RustElixir.Node options" do
    test "unknown options are listed with the known ones" do
      error = assert_raise ArgumentError, fn -> RustElixir.Node.child_spec(nmae: :x) end
      assert error.message =~ "unknown options [:nmae]"
      assert error.message =~ ":node_name"
    end

    test "each option is checked against its type" do
      for {opts, text} <- [
            {[node_name: "nohost"], ~s(expected option :node_name to be a node name)},
            {[modules: "one"], "expected option :modules to be a list of a non-empty string"},
            {[env: [{"A", 1}]],
             "expected option :env to be a list of {a non-empty string, a non-empty string}"},
            {[start_timeout: 0], "expected option :start_timeout to be a positive integer"},
            {[bin: :rustelixir], "expected option :bin to be a non-empty string"},
            {[tls: "node.pem"],
             "expected option :tls to be a keyword list of [:cert, :key, :cacert]"},
            {[tls: [cert: "node.pem", key: "node.key"]],
             "RustElixir.Node option :tls: option :cacert is required"},
            {[tls: [cert: "node.pem", key: "node.key", cacert: "ca.pem", ca: "x"]],
             "RustElixir.Node option :tls: unknown options [:ca]"},
            {[tls: [cert: "node.pem", key: :key, cacert: "ca.pem"]],
             "RustElixir.Node option :tls: expected option :key to be a non-empty string"}
          ] do
        error = assert_raise ArgumentError, fn -> RustElixir.Node.child_spec(opts) end
        assert error.message =~ text
      end
    end

    test "the child spec fixes the node name once, for every restart" do
      %{id: MyNode, start: {RustElixir.Node, :start_link, [opts]}} =
        RustElixir.Node.child_spec(name: MyNode)

      assert opts[:node_name] =~ ~r/^rustelixir_[0-9a-f]{8}@127\.0\.0\.1$/
    end

    test "a missing executable is a clear start error" do
      Process.flag(:trap_exit, true)

      assert {:error, {:executable_not_found, "/nonexistent/rustelixir"}} =
               RustElixir.Node.start_link(bin: "/nonexistent/rustelixir")
    end
  end

  @tag :integration
  test "a VM that is not distributed gets :not_distributed, from calls and from the node" do
    script = """
    {:error, %RustElixir.Error{reason: :not_distributed}} = RustElixir.call(:"py@127.0.0.1", :add, [1, 2])
    Process.flag(:trap_exit, true)
    {:error, %RustElixir.Error{reason: :not_distributed} = e} = RustElixir.Node.start_link([])
    IO.puts(Exception.message(e))
    """

    {out, status} =
      System.cmd("elixir", ["-pa", Mix.Project.compile_path(), "-e", script],
        stderr_to_stdout: true
      )

    assert status == 0, out
    assert out =~ "this VM is not distributed: start it with --name/--sname"
  end

  describe "use RustElixir.Natives" do
    test "reserved names are refused at compile time" do
      assert_raise ArgumentError, ~r/:info is a reserved request name/, fn ->
        Code.compile_string("""
        defmodule ReservedNatives do
          use RustElixir.Natives, node: :"py@127.0.0.1", functions: [info: 0]
        end
        """)
      end
    end
  end
end
