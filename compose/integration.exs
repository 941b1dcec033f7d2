# End-to-end check of running rustelixir nodes through the Elixir client (elixir_client/lib,
# compiled here: the script needs nothing but Elixir). The compose file's `elixir` service
# runs it against the `rustelixir_a` and `rustelixir_b` containers; CI runs the same script
# against local `rustelixir serve` processes too (tests/test_compose_script.py).
#
#   RUSTELIXIR_NODE=py@127.0.0.1 RUSTELIXIR_COOKIE=secret elixir compose/integration.exs
#
# Environment: RUSTELIXIR_NODES (the nodes to call, comma-separated), else RUSTELIXIR_NODE
# (one node, default rustelixir@rustelixir), RUSTELIXIR_COOKIE (required),
# RUSTELIXIR_CLIENT_NAME (this VM's node name, default integration@127.0.0.1; a host
# without dots, as in compose, means short names), RUSTELIXIR_WAIT_MS (how long to wait for
# each node, default 60000), RUSTELIXIR_PG_GROUP (when set: the group every node must have
# joined in the scope RUSTELIXIR_PG_SCOPE, default pg; checked and called through with the
# client's {:pg, scope, group} target, resources included). A VM
# started with -proto_dist inet_tls (ELIXIR_ERL_OPTIONS) also checks that each connection
# to a node is a TLS one.
#
# Prints a line per check, `PASS <check> @ <node>` or `FAIL <check> @ <node>: <reason>`
# (checks across nodes name them all, joined by `,`), then a summary line per node and one
# for the whole run. Exits 0 when every check passed, 1 otherwise.

# The client is compiled first: the checks below use its structs.
client_lib = Path.expand("../elixir_client/lib", __DIR__)

case Path.wildcard(Path.join(client_lib, "rustelixir.ex")) ++ Path.wildcard(Path.join(client_lib, "rustelixir/**/*.ex")) do
  [] ->
    IO.puts(:stderr, "integration: no Elixir client under #{client_lib}")
    System.halt(1)

  files ->
    {:ok, _modules, _warnings} = Kernel.ParallelCompiler.compile(files)
end

defmodule Integration do
  def main do
    nodes =
      System.get_env("RUSTELIXIR_NODES", System.get_env("RUSTELIXIR_NODE", "rustelixir@rustelixir"))
      |> String.split(",", trim: true)
      |> Enum.map(&String.to_atom(String.trim(&1)))

    start_distribution()
    # The scope exists before the nodes connect: they join it when they see this node.
    pg = pg_group()

    if pg do
      {:ok, _} = :pg.start_link(elem(pg, 0))
      # What the client's application runs: the count of calls in flight to each member,
      # by which a call through the group picks the least busy one.
      {:ok, _} = RustElixir.Group.start_link([])
    end

    wait_ms = String.to_integer(System.get_env("RUSTELIXIR_WAIT_MS", "60000"))
    Enum.each(nodes, &wait_for(&1, wait_ms))

    results =
      Enum.map(nodes, fn node -> {[node], run_checks(node, node_checks(node))} end) ++
        if(length(nodes) > 1, do: [{nodes, run_checks(nodes, cross_checks(nodes))}], else: []) ++
        if(pg, do: [{nodes, run_checks(nodes, group_checks(nodes, pg))}], else: [])

    for {names, {passed, total}} <- results do
      IO.puts("integration: #{passed} of #{total} checks passed #{where(names)}")
    end

    {passed, total} =
      Enum.reduce(results, {0, 0}, fn {_, {p, t}}, {all_p, all_t} -> {all_p + p, all_t + t} end)

    IO.puts("integration: #{passed} of #{total} checks passed in all")
    System.halt(if passed == total, do: 0, else: 1)
  end

  defp where([node]), do: "against #{node}"
  defp where(nodes), do: "across #{Enum.join(nodes, ", ")}"

  # Runs the checks in order, printing a line for each; {passed, total}.
  defp run_checks(nodes, checks) do
    label = nodes |> List.wrap() |> Enum.join(",")

    passed =
      Enum.count(checks, fn {name, check} ->
        case run(check) do
          nil ->
            IO.puts("PASS #{name} @ #{label}")
            true

          reason ->
            IO.puts("FAIL #{name} @ #{label}: #{reason}")
            false
        end
      end)

    {passed, length(checks)}
  end

  defp node_checks(node) do
    [
      {"add", fn -> {:ok, 3} = RustElixir.call(node, :add, [1, 2]) end},
      {"add of big integers",
       fn ->
         big = 2 ** 100
         {:ok, sum} = RustElixir.call(node, :add, [big, 1])
         true = sum == big + 1
       end},
      {"echo of nested terms",
       fn ->
         term = %{"name" => "José", list: [1, 2.5, nil, :atom], pid: self(), ref: make_ref(), tuple: {1, {}}}
         {:ok, ^term} = RustElixir.call(node, :echo, [term])
       end},
      {"functions",
       fn ->
         {:ok, functions} = RustElixir.functions(node)
         true = {:add, 2} in functions and {:buffer_new, 1} in functions
       end},
      {"info", fn -> {:ok, %{node: ^node, version: _, calls: _, resources: %{live: _}}} = RustElixir.info(node) end},
      {"undef", fn -> {:error, %RustElixir.Error{reason: {:undef, :nope, 0}}} = RustElixir.call(node, :nope, []) end},
      {"badarg", fn -> {:error, %RustElixir.Error{reason: {:badarg, 2, _}}} = RustElixir.call(node, :add, [1, "2"]) end},
      {"call! raises",
       fn ->
         try do
           RustElixir.call!(node, :add, [1, "2"])
           raise "call! did not raise"
         rescue
           e in RustElixir.Error -> "bad argument 2" <> _ = Exception.message(e)
         end
       end},
      {"cast", fn -> :ok = RustElixir.cast(node, :add, [1, 2]) end},
      {"timeout", fn -> {:error, %RustElixir.Error{reason: {:timeout, 50}}} = RustElixir.call(node, :sleep, [500], timeout: 50) end},
      {"buffer resource", fn -> buffer(node) end},
      {"resource freed when its holder exits", fn -> freed_with_holder(node) end},
      {"use RustElixir.Natives", fn -> natives(node) end}
    ] ++ tls_checks(node)
  end

  # When this VM runs TLS distribution (-proto_dist inet_tls, as ELIXIR_ERL_OPTIONS sets it
  # in compose), the connection to the node is a TLS one.
  defp tls_checks(node) do
    case :init.get_argument(:proto_dist) do
      {:ok, [[~c"inet_tls"]]} ->
        [
          {"connected over TLS",
           fn ->
             {:ok, info} = :net_kernel.node_info(node)
             # {:net_address, address, host, protocol, family}
             :tls = info |> Keyword.fetch!(:address) |> elem(3)
           end}
        ]

      _ ->
        []
    end
  end

  # With several nodes: each serves on its own, and a resource belongs to the node that made it.
  defp cross_checks(nodes) do
    [
      {"every node answers at once",
       fn ->
         results =
           nodes
           |> Enum.with_index()
           |> Enum.map(fn {node, i} -> Task.async(fn -> RustElixir.call(node, :add, [i, 1]) end) end)
           |> Task.await_many(5_000)

         true = results == Enum.map(0..(length(nodes) - 1), &{:ok, &1 + 1})
       end},
      {"a resource is used on its own node only",
       fn ->
         [owner, other | _] = nodes
         {:ok, set} = RustElixir.call(owner, :sorted_set_new, [])
         {:ok, 0} = RustElixir.call(owner, :sorted_set_add, [set, :x])
         {:error, %RustElixir.Error{reason: {:badresource, ^set}}} = RustElixir.call(other, :sorted_set_size, [set])
         {:ok, 1} = RustElixir.call(owner, :sorted_set_size, [set])
         :ok = RustElixir.release(owner, set)
       end}
    ]
  end

  defp pg_group do
    case System.get_env("RUSTELIXIR_PG_GROUP") do
      nil -> nil
      group -> {String.to_atom(System.get_env("RUSTELIXIR_PG_SCOPE", "pg")), String.to_atom(group)}
    end
  end

  # :pg (issue 13): every node's server is a member of the group, and calls through the
  # group (RustElixir.call({:pg, scope, group}, ...)) reach them, resources included.
  defp group_checks(nodes, {scope, group}) do
    members = fn -> :pg.get_members(scope, group) end
    target = {:pg, scope, group}

    [
      {"pg group lists every node",
       fn -> true = eventually(fn -> Enum.sort(Enum.map(members.(), &node/1)) == Enum.sort(nodes) end, 100, 100) end},
      {"pg members answer calls",
       fn ->
         [_ | _] = pids = members.()
         true = Enum.all?(pids, &(GenServer.call(&1, {:add, 1, 2}) == {:ok, 3}))
       end},
      {"calls through the group",
       fn ->
         {:ok, 3} = RustElixir.call(target, :add, [1, 2])
         3 = RustElixir.call!(target, :add, [1, 2])
         :ok = RustElixir.cast(target, :add, [1, 2])
         {:error, %RustElixir.Error{reason: {:badarg, 2, _}}} = RustElixir.call(target, :add, [1, "2"])
       end},
      {"calls through the group reach every node",
       fn ->
         # One at a time, every member has none in flight: each call picks one at random,
         # so 40 calls all to one of two nodes would be a 1 in 2^39 chance.
         answered =
           for _ <- 1..40, into: MapSet.new() do
             {:ok, %{node: node}} = RustElixir.call(target, :info, [])
             node
           end

         true = MapSet.equal?(answered, MapSet.new(nodes))
       end},
      {"a resource through the group stays on its node",
       fn ->
         {:ok, set} = RustElixir.call(target, :sorted_set_new, [])
         # Each call holding the reference goes to the node that made it (any other would
         # answer badresource), whichever member is least busy.
         for i <- 1..20, do: {:ok, _} = RustElixir.call(target, :sorted_set_add, [set, i])
         {:ok, 20} = RustElixir.call(target, :sorted_set_size, [set])
         {:ok, %{type: _, holders: [_ | _]}} = RustElixir.resource_info(node(set), set)
         :ok = RustElixir.release(node(set), set)
         {:error, %RustElixir.Error{reason: {:badresource, ^set}}} = RustElixir.call(target, :sorted_set_size, [set])
       end},
      {"an empty group has no members",
       fn -> {:error, %RustElixir.Error{reason: :no_members}} = RustElixir.call({:pg, scope, :no_such_group}, :add, [1, 2]) end}
    ]
  end

  defp run(check) do
    check.()
    nil
  rescue
    e -> Exception.format(:error, e, __STACKTRACE__)
  end

  defp start_distribution do
    cookie = System.get_env("RUSTELIXIR_COOKIE") || fail("set RUSTELIXIR_COOKIE")
    me = String.to_atom(System.get_env("RUSTELIXIR_CLIENT_NAME", "integration@127.0.0.1"))
    # A VM started without --name does not start EPMD for itself.
    System.cmd("epmd", ["-daemon"])

    # Long names need a host with dots (or an IP); a compose service name has none, and
    # a VM with long names refuses to talk to such a node: use short names then.
    mode = if node_host(me) =~ ~r/[.:]/, do: :longnames, else: :shortnames

    case :net_kernel.start([me, mode]) do
      {:ok, _} -> :ok
      {:error, reason} -> fail("cannot start distribution as #{me}: #{inspect(reason)}")
    end

    Node.set_cookie(String.to_atom(cookie))
  end

  defp node_host(name), do: name |> Atom.to_string() |> String.split("@") |> List.last()

  defp wait_for(node, wait_ms) do
    deadline = System.monotonic_time(:millisecond) + wait_ms

    Stream.repeatedly(fn -> Node.connect(node) end)
    |> Enum.find(fn connected ->
      connected == true or System.monotonic_time(:millisecond) > deadline or Process.sleep(200)
    end)
    |> case do
      true -> :ok
      _ -> fail("cannot connect to #{node} (is it up, and is the cookie the same?)")
    end
  end

  defp buffer(node) do
    {:ok, buf} = RustElixir.call(node, :buffer_new, [4])
    {:ok, :ok} = RustElixir.call(node, :buffer_write, [buf, 1, <<1, 2>>])
    {:ok, <<0, 1, 2, 0>>} = RustElixir.call(node, :buffer_to_binary, [buf])
    :ok = RustElixir.release(node, buf)
    {:error, %RustElixir.Error{reason: {:badresource, ^buf}}} = RustElixir.call(node, :buffer_size, [buf])
  end

  defp freed_with_holder(node) do
    live = fn ->
      {:ok, %{resources: %{live: live}}} = RustElixir.info(node)
      live
    end

    before = live.()
    parent = self()

    {pid, monitor} =
      spawn_monitor(fn ->
        {:ok, set} = RustElixir.call(node, :sorted_set_new, [])
        send(parent, {:created, set})
        receive do: (:exit -> :ok)
      end)

    receive do
      {:created, _set} -> :ok
    after
      5_000 -> raise "no resource created"
    end

    true = live.() == before + 1
    send(pid, :exit)

    receive do
      {:DOWN, ^monitor, _, _, _} -> :ok
    end

    true = eventually(fn -> live.() == before end, 100, 20)
  end

  # Whether `condition` holds within `tries` attempts, `sleep_ms` apart.
  defp eventually(condition, tries, sleep_ms) do
    Enum.any?(1..tries, fn _ ->
      condition.() or
        (
          Process.sleep(sleep_ms)
          false
        )
    end)
  end

  defp natives(node) do
    # The module reads its node at each call: defined once, it serves every node in turn.
    Application.put_env(:integration, :node, node)

    unless Code.ensure_loaded?(Integration.Natives) do
      Code.eval_string("""
      defmodule Integration.Natives do
        use RustElixir.Natives,
          node: {Application, :fetch_env!, [:integration, :node]},
          functions: [add: [:a, :b], echo: [:term]]
      end
      """)
    end

    {:ok, 42} = apply(Integration.Natives, :add, [40, 2])
    [:x] = apply(Integration.Natives, :echo!, [[:x]])
  end

  defp fail(message) do
    IO.puts(:stderr, "integration: #{message}")
    System.halt(1)
  end
end

Integration.main()
