defmodule RustElixir.RestartTest do
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias RustElixir.Error

  @moduletag :integration
  @moduletag :slow

  defp wait_for_restart(old_os_pid, tries \\ 200) do
    case current_os_pid() do
      pid when is_integer(pid) and pid != old_os_pid ->
        pid

      _ when tries > 0 ->
        Process.sleep(50)
        wait_for_restart(old_os_pid, tries - 1)
    end
  end

  defp current_os_pid do
    RustElixir.Node.os_pid(RustElixir.TestNode)
  catch
    :exit, _ -> nil
  end

  test "the node is restarted after kill -9, and callers see nodedown meanwhile" do
    server = Process.whereis(RustElixir.TestNode)
    node = RustElixir.Node.node_name(RustElixir.TestNode)
    os_pid = RustElixir.Node.os_pid(RustElixir.TestNode)
    assert {:ok, 3} = RustElixir.call(node, :add, [1, 2])

    in_flight = Task.async(fn -> RustElixir.call(node, :sleep, [5_000], timeout: 10_000) end)
    Process.sleep(100)

    # The server's exit is logged as the crash it is; keep it out of the test output.
    capture_log(fn ->
      {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
      assert {:error, %Error{reason: {:nodedown, ^node}}} = Task.await(in_flight, 2_000)
      send(self(), {:new_os_pid, wait_for_restart(os_pid)})
    end)

    assert_received {:new_os_pid, new_os_pid}
    assert new_os_pid != os_pid
    assert Process.whereis(RustElixir.TestNode) != server
    # The supervisor started it under the same node name, so callers' names stay good.
    assert RustElixir.Node.node_name(RustElixir.TestNode) == node
    assert {:ok, 3} = RustElixir.call(node, :add, [1, 2])
  end
end

defmodule RustElixir.NodeLifecycleTest do
  use ExUnit.Case, async: false

  @moduletag :integration

  defp os_process_alive?(os_pid),
    do: match?({_, 0}, System.cmd("kill", ["-0", "#{os_pid}"], stderr_to_stdout: true))

  test "stopping the server stops the node's OS process" do
    server = start_supervised!({RustElixir.Node, []}, id: :stopped)
    os_pid = RustElixir.Node.os_pid(server)
    assert os_process_alive?(os_pid)
    :ok = stop_supervised(:stopped)
    refute os_process_alive?(os_pid)
  end

  test "the node's OS process goes when this VM dies without stopping it" do
    script = """
    :net_kernel.start([:"halting@127.0.0.1", :longnames])
    {:ok, server} = RustElixir.Node.start_link([])
    IO.puts("os_pid=\#{RustElixir.Node.os_pid(server)}")
    System.halt(0)
    """

    {out, 0} =
      System.cmd("elixir", ["-pa", Mix.Project.compile_path(), "-e", script],
        stderr_to_stdout: true
      )

    [_, os_pid] = Regex.run(~r/os_pid=(\d+)/, out)
    # SIGTERM from the watcher, then the node's clean shutdown.
    assert Enum.any?(1..100, fn _ -> Process.sleep(50) || not os_process_alive?(os_pid) end)
  end
end
