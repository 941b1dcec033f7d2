defmodule RustElixir.GroupTest do
  # Calls through a :pg group of two real rustelixir nodes (started with :pg_groups), which
  # join this VM's scope themselves.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import RustElixir.TestHelpers

  alias RustElixir.Error

  @moduletag :integration

  @scope :rustelixir_group_test

  setup_all do
    {:ok, scope} = :pg.start(@scope)
    on_exit(fn -> Process.exit(scope, :kill) end)
    :ok
  end

  # The RustElixir.Node server of a new member of `groups`.
  defp start_member(id, groups, restart \\ :permanent) do
    spec =
      {RustElixir.Node, pg_groups: groups, pg_scope: @scope, modules: ["rustelixir_test_natives"]}

    start_supervised!(Supervisor.child_spec(spec, id: id, restart: restart))
  end

  defp members(group), do: :pg.get_members(@scope, group) |> Enum.map(&node/1) |> Enum.sort()

  defp calls(node) do
    {:ok, %{calls: calls}} = RustElixir.info(node)
    calls
  end

  setup do
    a = RustElixir.Node.node_name(start_member(:member_a, [:natives, :only_a]))
    b = RustElixir.Node.node_name(start_member(:member_b, [:natives]))
    assert eventually(fn -> members(:natives) == Enum.sort([a, b]) end, 250)
    %{a: a, b: b, group: {:pg, @scope, :natives}}
  end

  test "calls go to the members, and every member takes some", %{a: a, b: b, group: group} do
    before = {calls(a), calls(b)}
    for i <- 1..40, do: assert(RustElixir.call(group, :add, [i, 1]) == {:ok, i + 1})
    assert RustElixir.call!(group, :add, [2, 2]) == 4
    # Each info call above and below is one call too.
    {a_calls, b_calls} = {calls(a) - elem(before, 0) - 1, calls(b) - elem(before, 1) - 1}
    assert a_calls + b_calls == 41
    assert a_calls > 0 and b_calls > 0
  end

  test "concurrent calls go to the member with the fewest in flight", %{a: a, b: b, group: group} do
    before = {calls(a), calls(b)}

    # Started 20 ms apart, all in flight together: each pick sees the ones before it.
    1..8
    |> Enum.map(fn _ ->
      task = Task.async(fn -> RustElixir.call(group, :sleep, [500]) end)
      Process.sleep(20)
      task
    end)
    |> Enum.each(fn task -> assert Task.await(task) == {:ok, :ok} end)

    assert {calls(a) - elem(before, 0) - 1, calls(b) - elem(before, 1) - 1} == {4, 4}
  end

  test "a call with a resource goes to the node that owns it", %{a: a, b: b, group: group} do
    {:ok, buffer} = RustElixir.call(b, :buffer_new, [8])
    assert node(buffer) == b

    for i <- 1..20 do
      assert RustElixir.call(group, :buffer_write, [buffer, 0, <<i>>]) == {:ok, :ok}
      assert RustElixir.call(group, :buffer_read, [buffer, 0, 1]) == {:ok, <<i>>}
    end

    # Nested in the arguments too; a reference of no member's node does not steer.
    assert {:ok, _} = RustElixir.call(group, :echo, [%{buffer: [{buffer}], other: make_ref()}])
    assert {:ok, %{holders: _}} = RustElixir.call(group, :resource_info, [buffer])
    _ = a
  end

  test "a group without members is :no_members", %{a: a} do
    assert RustElixir.call({:pg, @scope, :nobody}, :add, [1, 2]) ==
             {:error, %Error{reason: :no_members}}

    assert RustElixir.call({:pg, :no_such_scope, :natives}, :add, [1, 2]) ==
             {:error, %Error{reason: :no_members}}

    assert_raise Error, ~r/no member/, fn ->
      RustElixir.call!({:pg, @scope, :nobody}, :add, [1, 2])
    end

    assert RustElixir.cast({:pg, @scope, :nobody}, :add, [1, 2]) == :ok
    # A group of one member is that member.
    assert {:ok, 5} = RustElixir.call({:pg, @scope, :only_a}, :add, [2, 3])
    assert members(:only_a) == [a]
  end

  test "a cast through the group runs on a member", %{group: group} do
    assert RustElixir.cast(group, :test_send, [self(), :cast_arrived]) == :ok
    assert_receive :cast_arrived, 5_000
  end

  test "a member that goes down mid-call is nodedown, not retried elsewhere" do
    server = start_member(:doomed, [:doomed], :temporary)
    doomed = RustElixir.Node.node_name(server)
    os_pid = RustElixir.Node.os_pid(server)
    assert eventually(fn -> members(:doomed) == [doomed] end, 250)

    call =
      Task.async(fn ->
        RustElixir.call({:pg, @scope, :doomed}, :sleep, [5_000], timeout: 10_000)
      end)

    Process.sleep(200)

    # The server's exit is logged as the crash it is; keep it out of the test output.
    capture_log(fn ->
      {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])

      assert Task.await(call, 5_000) ==
               {:error, %Error{reason: {:nodedown, doomed}, node: doomed}}
    end)

    assert eventually(fn -> members(:doomed) == [] end, 250)
  end
end
