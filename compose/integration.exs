# End-to-end check of a running rustelixir node through the Elixir client (elixir_client/lib,
# compiled here: the script needs nothing but Elixir). The compose file's `elixir` service
# runs it against the `rustelixir` container; CI runs the same script against a local
# `rustelixir serve` (tests/test_compose_script.py).
#
#   RUSTELIXIR_NODE=py@127.0.0.1 RUSTELIXIR_COOKIE=secret elixir compose/integration.exs
#
# Environment: RUSTELIXIR_NODE (the node to call, default rustelixir@rustelixir),
# RUSTELIXIR_COOKIE (required), RUSTELIXIR_CLIENT_NAME (this VM's node name, default
# integration@127.0.0.1; a host without dots, as in compose, means short names),
# RUSTELIXIR_WAIT_MS (how long to wait for the node, default 60000).
# Exits 0 when every check passed, 1 otherwise.

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
    node = String.to_atom(System.get_env("RUSTELIXIR_NODE", "rustelixir@rustelixir"))
    start_distribution()
    wait_for(node, String.to_integer(System.get_env("RUSTELIXIR_WAIT_MS", "60000")))

    checks = [
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
    ]

    failures =
      for {name, check} <- checks, reason = run(check), reason != nil do
        IO.puts("FAIL #{name}: #{reason}")
        name
      end

    IO.puts("integration: #{length(checks) - length(failures)} of #{length(checks)} checks passed against #{node}")
    System.halt(if failures == [], do: 0, else: 1)
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

    true = Enum.any?(1..100, fn _ -> live.() == before or Process.sleep(20) end)
  end

  defp natives(node) do
    Application.put_env(:integration, :node, node)

    Code.eval_string("""
    defmodule Integration.Natives do
      use RustElixir.Natives,
        node: {Application, :fetch_env!, [:integration, :node]},
        functions: [add: [:a, :b], echo: [:term]]
    end
    """)

    {:ok, 42} = apply(Integration.Natives, :add, [40, 2])
    [:x] = apply(Integration.Natives, :echo!, [[:x]])
  end

  defp fail(message) do
    IO.puts(:stderr, "integration: #{message}")
    System.halt(1)
  end
end

Integration.main()
