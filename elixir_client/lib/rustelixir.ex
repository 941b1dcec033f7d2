defmodule RustElixir do
  @moduledoc """
  Calls native functions (Rust or Python) served by a rustelixir node: a separate OS
  process that joins the cluster as a hidden node and registers the name `rustelixir`.
  A native crash or a long computation there cannot take down or stall this VM.

  Every function here calls `{:rustelixir, node}` directly with `GenServer.call/3` from
  the caller's own process: there is no proxy process in between, so calls from many
  processes run concurrently, and resources a native returns are held by the caller (see
  "Resources" below).

      node = :"py@127.0.0.1"
      {:ok, 3} = RustElixir.call(node, :add, [1, 2])
      {:error, %RustElixir.Error{reason: {:badarg, 2, _message}}} = RustElixir.call(node, :add, [1, "two"])
      %{a: [1, 2]} = RustElixir.call!(node, :echo, [%{a: [1, 2]}])

  Failures are `{:error, %RustElixir.Error{}}`, never exits: a node that is down answers
  `{:nodedown, node}`, a call that takes too long `{:timeout, ms}` (see `RustElixir.Error`
  for every reason).

  To run the node as part of your supervision tree, see `RustElixir.Node`; to get one
  function per native, see `RustElixir.Natives`.

  ## Groups of nodes

  `call/4`, `call!/4` and `cast/3` also take `{:pg, scope, group}`: the nodes started with
  `rustelixir serve --pg-group group` (and `--pg-scope scope`) that joined `scope` in this
  VM. A call goes to the node that owns a resource in its arguments, else to the member
  with the fewest calls in flight from this VM; with no member it is
  `{:error, %RustElixir.Error{reason: :no_members}}` (see `RustElixir.Group`).

      {:ok, 3} = RustElixir.call({:pg, :pg, :natives}, :add, [1, 2])

  ## Resources

  A native may return a resource (a native object such as a buffer or a sorted set) as a
  plain reference. The process that made the call holds it, as does any process that
  passes the reference in a call, or that it is shared with (`share/4`). When the last
  holder exits, or calls `release/3`, the node frees the object.
  """

  alias RustElixir.Error

  @server :rustelixir
  @default_timeout 5_000
  # The first element of a native's stream items, {:rustelixir_stream, tag, item}: the
  # node's `rustelixir_nif::reply::STREAM_TAG`.
  @stream_tag :rustelixir_stream

  @typedoc "The name of a node running `rustelixir serve`, e.g. `:\"py@127.0.0.1\"`."
  @type rustelixir_node :: node()

  @typedoc "Where a call goes: a node, or a `:pg` group of nodes (`RustElixir.Group`)."
  @type target :: rustelixir_node() | RustElixir.Group.t()

  @typedoc "`:timeout` - milliseconds to wait for the reply (default 5000), or `:infinity`."
  @type option :: {:timeout, timeout()}

  @typedoc "A call's result."
  @type result(value) :: {:ok, value} | {:error, Error.t()}

  @doc """
  The `GenServer.call/3` destination of the natives on `node`.

      iex> RustElixir.server(:"py@127.0.0.1")
      {:rustelixir, :"py@127.0.0.1"}
  """
  @spec server(rustelixir_node()) :: {atom(), node()}
  def server(node) when is_atom(node), do: {@server, node}

  @doc """
  The request sent for native `fun` with `args` (the call contract: `{fun, arg1, ...,
  argN}`, or `fun` alone for a native of arity 0).

      iex> RustElixir.request(:add, [1, 2])
      {:add, 1, 2}
      iex> RustElixir.request(:now, [])
      :now
  """
  @spec request(atom(), [term()]) :: atom() | tuple()
  def request(fun, []) when is_atom(fun), do: fun
  def request(fun, args) when is_atom(fun) and is_list(args), do: List.to_tuple([fun | args])

  @doc """
  Calls native `fun` with `args` on `node`.

  Returns `{:ok, value}`, or `{:error, %RustElixir.Error{}}` when the native failed, the
  node refused the call, or the call could not be made (node down, timeout).

  ## Options

    * `:timeout` - milliseconds to wait for the reply (default 5000) or `:infinity`. When
      it passes, the node is told the caller gave up and cancels the native if it can.
  """
  @spec call(target(), atom(), [term()], [option()]) :: result(term())
  def call(target, fun, args, opts \\ [])

  def call(node, fun, args, opts) when is_atom(node) and is_atom(fun) and is_list(args) do
    do_call(node, request(fun, args), timeout(opts))
  end

  def call({:pg, scope, group}, fun, args, opts) when is_atom(fun) and is_list(args) do
    timeout = timeout(opts)

    case RustElixir.Group.pick(scope, group, args) do
      {:ok, member} ->
        RustElixir.Group.counting(member, fn -> do_call(member, request(fun, args), timeout) end)

      {:error, :no_members} ->
        {:error, %Error{reason: :no_members}}
    end
  end

  @doc """
  Like `call/4`, but returns the value and raises `RustElixir.Error` on failure.
  """
  @spec call!(target(), atom(), [term()], [option()]) :: term()
  def call!(node, fun, args, opts \\ []) do
    case call(node, fun, args, opts) do
      {:ok, value} -> value
      {:error, error} -> raise error
    end
  end

  @doc """
  Calls native `fun` with `args` on `node` as a stream of the items it emits while it runs
  (`rustelixir_nif::emit` in Rust, `current_call().emit` in Python): progress, partial
  results, rows. Lazy: the call is made when the stream is run, and the stream ends when
  the native returns.

      node |> RustElixir.stream(:count_to, [3]) |> Enum.to_list()
      #=> [1, 2, 3]

  A stream stopped early (`Enum.take/2`, an exception) tells the node the caller gave up,
  so a slow native is cancelled, and items still on their way are dropped by this VM, not
  left in the caller's mailbox. A failure raises `RustElixir.Error`: the native's
  `{:error, reason}`, or the call's (`{:nodedown, node}`, `{:timeout, ms}`).

  ## Options

    * `:timeout` - milliseconds to wait for each item and for the reply (default 5000),
      or `:infinity`.
    * `:result` - when true, the native's value ends the stream as `{:result, value}`
      (default false: it is dropped).
  """
  @spec stream(rustelixir_node(), atom(), [term()], [option() | {:result, boolean()}]) ::
          Enumerable.t()
  def stream(node, fun, args, opts \\ []) when is_atom(node) and is_atom(fun) and is_list(args) do
    timeout = timeout(opts)
    result? = Keyword.get(opts, :result, false)
    request = request(fun, args)

    Stream.resource(
      fn -> start_stream(node, request) end,
      fn
        :done -> {:halt, :done}
        mref -> next_item(mref, node, timeout, result?)
      end,
      fn
        :done -> :ok
        mref -> Process.demonitor(mref, [:flush])
      end
    )
  end

  # As gen_server:call does it: a monitor that is also the alias the reply comes to, so
  # that once it is gone nothing more of this call reaches the caller.
  defp start_stream(node, request) do
    mref = :erlang.monitor(:process, server(node), [{:alias, :demonitor}])
    send(server(node), {:"$gen_call", {self(), [:alias | mref]}, request})
    mref
  end

  defp next_item(mref, node, timeout, result?) do
    tag = [:alias | mref]

    receive do
      {@stream_tag, ^tag, item} ->
        {[item], mref}

      {^tag, reply} ->
        Process.demonitor(mref, [:flush])

        case reply do
          {:ok, value} when result? -> {[{:result, value}], :done}
          {:ok, _value} -> {:halt, :done}
          {:error, reason} -> raise %Error{reason: reason, node: node}
          other -> raise %Error{reason: {:badreply, other}, node: node}
        end

      {:DOWN, ^mref, _, _, reason} ->
        raise %Error{reason: exit_reason(reason, node, timeout), node: node}
    after
      timeout ->
        Process.demonitor(mref, [:flush])
        raise %Error{reason: {:timeout, timeout}, node: node}
    end
  end

  @doc """
  Runs native `fun` with `args` on `node` without waiting for it, nor for any reply.

  Always returns `:ok` (as `GenServer.cast/2`), whether or not the node is up or the
  native exists (or, for a group, whether it has a member).
  """
  @spec cast(target(), atom(), [term()]) :: :ok
  def cast(node, fun, args) when is_atom(node) and is_atom(fun) and is_list(args) do
    GenServer.cast(server(node), request(fun, args))
  end

  def cast({:pg, scope, group}, fun, args) when is_atom(fun) and is_list(args) do
    case RustElixir.Group.pick(scope, group, args) do
      {:ok, member} -> GenServer.cast(member, request(fun, args))
      {:error, :no_members} -> :ok
    end
  end

  @doc """
  Drops the caller's hold on resource `ref`; the node frees it when no holder is left.

  Returns `:ok`, or `{:error, %RustElixir.Error{reason: {:badresource, ref}}}` when `ref`
  is not a live resource of the node.
  """
  @spec release(rustelixir_node(), reference(), [option()]) :: :ok | {:error, Error.t()}
  def release(node, ref, opts \\ []) when is_atom(node) and is_reference(ref) do
    node |> do_call({:release, ref}, timeout(opts)) |> ok_to_ok()
  end

  @doc """
  Makes `pid` a holder of resource `ref` too: the resource lives on until `pid` exits or
  releases it, even after the caller has.
  """
  @spec share(rustelixir_node(), reference(), pid(), [option()]) :: :ok | {:error, Error.t()}
  def share(node, ref, pid, opts \\ [])
      when is_atom(node) and is_reference(ref) and is_pid(pid) do
    node |> do_call({:share, ref, pid}, timeout(opts)) |> ok_to_ok()
  end

  @doc """
  Loads the new build of `module` (a module the node serves, as `rustelixir serve --module`
  named it) into the running node: `{:ok, [{name, arity}, ...]}`, the module's natives now.
  New calls go to the new code; calls in flight finish on the old, which stays loaded while
  resources it made live. A build that fails to load is `{:error, %RustElixir.Error{reason:
  {:exception, type, message}}}` and the old build serves on.
  """
  @spec reload(rustelixir_node(), atom(), [option()]) :: result([{atom(), non_neg_integer()}])
  def reload(node, module, opts \\ []) when is_atom(node) and is_atom(module),
    do: do_call(node, {:reload, module}, timeout(opts))

  @doc """
  The natives `node` serves: `{:ok, [{name, arity}, ...]}`, sorted.
  """
  @spec functions(rustelixir_node(), [option()]) :: result([{atom(), non_neg_integer()}])
  def functions(node, opts \\ []) when is_atom(node), do: do_call(node, :functions, timeout(opts))

  @doc """
  What `node` says about itself: `{:ok, map}` with at least `:version`, `:node`, `:calls`,
  `:errors` and `:resources` (`%{live: n, created: n, freed: n, by_type: %{...}}`).
  """
  @spec info(rustelixir_node(), [option()]) :: result(map())
  def info(node, opts \\ []) when is_atom(node), do: do_call(node, :info, timeout(opts))

  @doc """
  What `node` knows about resource `ref`: `{:ok, map}` with its type, holders and size.
  """
  @spec resource_info(rustelixir_node(), reference(), [option()]) :: result(map())
  def resource_info(node, ref, opts \\ []) when is_atom(node) and is_reference(ref) do
    do_call(node, {:resource_info, ref}, timeout(opts))
  end

  # A call to the server on `node`, or to a group member's server by its pid.
  defp do_call(node_or_member, request, timeout) do
    {dest, node} =
      if is_pid(node_or_member),
        do: {node_or_member, node(node_or_member)},
        else: {{@server, node_or_member}, node_or_member}

    try do
      case GenServer.call(dest, request, timeout) do
        {:ok, _value} = ok -> ok
        {:error, reason} -> {:error, %Error{reason: reason, node: node}}
        other -> {:error, %Error{reason: {:badreply, other}, node: node}}
      end
    catch
      :exit, {reason, {GenServer, :call, _}} ->
        {:error, %Error{reason: exit_reason(reason, node, timeout), node: node}}
    end
  end

  defp exit_reason(:timeout, _node, timeout), do: {:timeout, timeout}
  defp exit_reason(:noproc, node, _timeout), do: {:noproc, node}

  defp exit_reason({:nodedown, node}, node, _timeout) do
    if Node.alive?(), do: {:nodedown, node}, else: :not_distributed
  end

  defp exit_reason(:noconnection, node, _timeout), do: {:nodedown, node}
  defp exit_reason(other, _node, _timeout), do: {:exit, other}

  defp ok_to_ok({:ok, _}), do: :ok
  defp ok_to_ok(error), do: error

  defp timeout(opts) do
    case Keyword.get(opts, :timeout, @default_timeout) do
      :infinity ->
        :infinity

      ms when is_integer(ms) and ms >= 0 ->
        ms

      other ->
        raise ArgumentError,
              "expected :timeout to be a non-negative integer or :infinity, got: #{inspect(other)}"
    end
  end
end
