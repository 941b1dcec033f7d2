defmodule RustElixir.ResourcesTest do
  use ExUnit.Case, async: false

  import RustElixir.TestHelpers

  alias RustElixir.Error

  @moduletag :integration

  setup do
    %{node: RustElixir.Node.node_name(RustElixir.TestNode)}
  end

  defp live(node, type) do
    {:ok, %{resources: %{by_type: by_type}}} = RustElixir.info(node)
    get_in(by_type, [type, :live]) || 0
  end

  # A process that creates a resource with `create`, reports it and waits to be told to go.
  defp holder(create) do
    test = self()

    pid =
      spawn(fn ->
        {:ok, ref} = create.()
        send(test, {:created, self(), ref})
        receive do: (:exit -> :ok)
      end)

    assert_receive {:created, ^pid, ref}, 2_000
    {pid, ref}
  end

  test "a buffer is freed when the process that created it exits", %{node: node} do
    before = live(node, :buffer)
    {pid, ref} = holder(fn -> RustElixir.call(node, :buffer_new, [64]) end)
    assert live(node, :buffer) == before + 1

    assert {:ok, %{type: :buffer, holders: [^pid], size: 64}} =
             RustElixir.resource_info(node, ref)

    monitor = Process.monitor(pid)
    send(pid, :exit)
    assert_receive {:DOWN, ^monitor, _, _, _}
    assert eventually(fn -> live(node, :buffer) == before end)

    assert {:error, %Error{reason: {:badresource, ^ref}}} =
             RustElixir.call(node, :buffer_size, [ref])
  end

  test "a shared sorted set lives until its last holder exits", %{node: node} do
    before = live(node, :sorted_set)
    {creator, set} = holder(fn -> RustElixir.call(node, :sorted_set_new, []) end)
    {other, _} = holder(fn -> {:ok, :none} end)

    assert :ok = RustElixir.share(node, set, other)
    assert {:ok, 0} = RustElixir.call(node, :sorted_set_add, [set, 42])
    # Passing the reference in a call made this test process a holder too: let go of it.
    assert :ok = RustElixir.release(node, set)

    send(creator, :exit)
    Process.sleep(100)
    assert live(node, :sorted_set) == before + 1
    assert {:ok, %{holders: [^other]}} = RustElixir.resource_info(node, set)

    send(other, :exit)
    assert eventually(fn -> live(node, :sorted_set) == before end)
  end
end
