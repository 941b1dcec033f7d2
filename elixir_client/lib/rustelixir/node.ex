defmodule RustElixir.Node do
  @moduledoc """
  Runs a rustelixir node (`rustelixir serve`) as an OS process owned by this VM.

  Add it to a supervision tree:

      children = [
        {RustElixir.Node, name: MyApp.Rust, modules: ["my_app_natives"]}
      ]

  and call it through its node name:

      node = RustElixir.Node.node_name(MyApp.Rust)
      {:ok, 3} = RustElixir.call(node, :add, [1, 2])

  `start_link/1` returns once the node has said it is up and this VM is connected to it.
  The Python process runs behind an Elixir `Port`: when it exits (a crash, `kill -9`, a
  segfaulting native) this server exits too, and its supervisor starts a new one under
  the same node name (the name is chosen once, in `child_spec/1`). Callers in between get
  `{:error, %RustElixir.Error{reason: {:nodedown, node}}}`. When this server stops, or
  this VM dies, the Python process is stopped as well.

  The node's log lines (its stderr) go to `Logger`, at the level they were logged at,
  with the metadata `rustelixir_node: node`.

  This VM must be distributed (`Node.alive?/0`), as the node is reached over the Erlang
  distribution: start it with `--name`/`--sname` or `:net_kernel.start/1`. The node
  gets this VM's cookie (`Node.get_cookie/0`) through its environment, never its
  command line.

  ## Options

    * `:name` - the name to register this server under (optional)
    * `:node_name` - the node's name, `"name@host"` (default: `rustelixir_<random>` on
      127.0.0.1 with long names, on this host with short names)
    * `:bin` - the `rustelixir` executable (default: `$RUSTELIXIR_BIN`, else
      `rustelixir` on `PATH`)
    * `:cookie` - the cookie (default: `Node.get_cookie/0`)
    * `:modules` - Python modules whose natives to serve (`--module`), default `[]`
    * `:pg_groups` - `:pg` groups the node's server joins on every node it is connected
      to, this VM included (`--pg-group`), default `[]`; call them with
      `RustElixir.call({:pg, scope, group}, ...)` (`RustElixir.Group`)
    * `:pg_scope` - the `:pg` scope of `:pg_groups` (`--pg-scope`, default `:pg`)
    * `:args` - more arguments for `rustelixir serve`, e.g. `["--workers", "8"]`
    * `:env` - more environment variables, `[{"NAME", "value"}]`
    * `:start_timeout` - milliseconds to wait for the node to be up and connected
      (default 20000)
    * `:tls` - TLS distribution, as `-proto_dist inet_tls` speaks it:
      `[cert: "node.pem", key: "node.key", cacert: "ca.pem"]` (PEM files: the node's
      certificate, its key, the CA a peer's certificate must lead to), passed to `serve` as
      `--tls-cert`, `--tls-key` and `--tls-cacert`. The node then speaks TLS only, so this
      VM must run TLS distribution too (`--erl "-proto_dist inet_tls -ssl_dist_optfile
      FILE"`), with certificates the same CA signed.
  """

  use GenServer

  require Logger

  alias RustElixir.Options

  @schema [
    name: [type: :atom],
    node_name: [type: :node_name],
    bin: [type: :string],
    cookie: [type: :atom],
    modules: [type: {:list, :string}, default: []],
    pg_groups: [type: {:list, :atom}, default: []],
    pg_scope: [type: :atom, default: :pg],
    args: [type: {:list, :string}, default: []],
    env: [type: {:list, {:tuple, :string, :string}}, default: []],
    start_timeout: [type: :pos_integer, default: 20_000],
    tls: [
      type:
        {:keyword,
         [
           cert: [type: :string, required: true],
           key: [type: :string, required: true],
           cacert: [type: :string, required: true]
         ]}
    ]
  ]

  # Runs the node with a watcher beside it: when the port closes (this server stopped,
  # or the VM died) the watcher's stdin ends and it sends the node SIGTERM. `exec` keeps
  # the node's pid the port's :os_pid, so a signal to that pid reaches the node itself.
  @wrapper ~S"""
  node_pid=$$
  exec 3<&0
  (cat <&3 >/dev/null; kill -TERM "$node_pid") >/dev/null 2>&1 &
  exec 3<&-
  exec "$@"
  """

  @up_line ~r/^rustelixir: node (\S+) is up on port (\d+)\./
  @log_line ~r/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/s

  @typedoc "A running `RustElixir.Node` server: its pid or registered name."
  @type server :: GenServer.server()

  @typedoc "An option of `start_link/1` (see the module documentation)."
  @type option ::
          {:name, atom()}
          | {:node_name, node() | String.t()}
          | {:bin, String.t()}
          | {:cookie, atom()}
          | {:modules, [String.t()]}
          | {:args, [String.t()]}
          | {:env, [{String.t(), String.t()}]}
          | {:start_timeout, pos_integer()}
          | {:tls, [cert: String.t(), key: String.t(), cacert: String.t()]}

  @doc """
  A child specification. The node name is chosen here, once, so that the node keeps it
  across restarts. Raises `ArgumentError` on invalid options.
  """
  @spec child_spec([option()]) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = opts |> validate!() |> Keyword.put_new_lazy(:node_name, &generate_node_name/0)

    %{
      id: Keyword.get(opts, :name, __MODULE__),
      start: {__MODULE__, :start_link, [opts]},
      type: :worker,
      shutdown: 10_000
    }
  end

  @doc """
  Starts the node and returns when this VM is connected to it.

  Returns `{:error, %RustElixir.Error{reason: :not_distributed}}` when this VM is not
  distributed, `{:error, {:executable_not_found, path}}` when there is no `rustelixir` to
  run, and `{:error, {:start_failed, details}}` when the node exits or is not up in time.
  Raises `ArgumentError` on invalid options.
  """
  @spec start_link([option()]) :: GenServer.on_start()
  def start_link(opts) do
    opts = validate!(opts)
    {server_opts, opts} = Keyword.split(opts, [:name])
    GenServer.start_link(__MODULE__, {Keyword.get(server_opts, :name), opts}, server_opts)
  end

  @doc """
  The node's name, for `RustElixir.call/4` and the other calls.

  With a registered server name this reads a `:persistent_term` (no message to the
  server), so it is cheap enough to call before every call, and keeps answering while
  the server restarts.
  """
  @spec node_name(server()) :: node()
  def node_name(server) when is_atom(server) do
    case :persistent_term.get({__MODULE__, server}, nil) do
      nil -> GenServer.call(server, :node_name)
      node -> node
    end
  end

  def node_name(server), do: GenServer.call(server, :node_name)

  @doc "The OS pid of the node's process."
  @spec os_pid(server()) :: non_neg_integer()
  def os_pid(server), do: GenServer.call(server, :os_pid)

  @doc false
  @spec validate!(keyword()) :: keyword()
  def validate!(opts), do: Options.validate!(opts, @schema, "RustElixir.Node")

  @impl true
  def init({registered_name, opts}) do
    if Node.alive?() do
      Process.flag(:trap_exit, true)
      start_node(registered_name, opts)
    else
      {:stop, %RustElixir.Error{reason: :not_distributed}}
    end
  end

  defp start_node(registered_name, opts) do
    with {:ok, bin} <- find_executable(opts) do
      node_name = opts |> Keyword.get_lazy(:node_name, &generate_node_name/0) |> to_string()
      cookie = Keyword.get_lazy(opts, :cookie, &Node.get_cookie/0)

      port =
        Port.open({:spawn_executable, "/bin/sh"}, [
          :binary,
          :exit_status,
          :stderr_to_stdout,
          :use_stdio,
          :hide,
          {:line, 16_384},
          args: ["-c", @wrapper, "rustelixir", bin | serve_args(node_name, opts)],
          env: env(cookie, opts)
        ])

      {:os_pid, os_pid} = Port.info(port, :os_pid)

      state = %{
        port: port,
        os_pid: os_pid,
        node: String.to_atom(node_name),
        registered_name: registered_name,
        partial: "",
        log_level: :info
      }

      deadline = System.monotonic_time(:millisecond) + opts[:start_timeout]

      with {:ok, state} <- await_up(state, deadline),
           :ok <- await_connected(state.node, deadline) do
        if registered_name, do: :persistent_term.put({__MODULE__, registered_name}, state.node)
        {:ok, state}
      else
        {:error, reason} ->
          stop_process(state)
          {:stop, {:start_failed, reason}}
      end
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  @impl true
  def handle_call(:node_name, _from, state), do: {:reply, state.node, state}
  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}

  @impl true
  def handle_info({port, {:data, data}}, %{port: port} = state),
    do: {:noreply, take_output(state, data)}

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    {:stop, {:rustelixir_exited, state.node, status}, %{state | port: nil}}
  end

  def handle_info({:EXIT, port, reason}, %{port: port} = state) do
    {:stop, {:rustelixir_port_closed, state.node, reason}, %{state | port: nil}}
  end

  def handle_info({:EXIT, _from, reason}, state), do: {:stop, reason, state}
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state), do: stop_process(state)

  # Startup

  defp find_executable(opts) do
    bin = opts[:bin] || System.get_env("RUSTELIXIR_BIN") || "rustelixir"

    found =
      if String.contains?(bin, "/"),
        do: File.regular?(bin) && Path.expand(bin),
        else: System.find_executable(bin)

    if found, do: {:ok, found}, else: {:error, {:executable_not_found, bin}}
  end

  defp serve_args(node_name, opts) do
    name_args =
      if :net_kernel.longnames() == false do
        ["--sname", node_name |> String.split("@") |> hd()]
      else
        ["--name", node_name]
      end

    module_args = Enum.flat_map(opts[:modules], &["--module", &1])

    pg_args =
      if opts[:pg_groups] == [],
        do: [],
        else: [
          "--pg-scope",
          to_string(opts[:pg_scope])
          | Enum.flat_map(opts[:pg_groups], &["--pg-group", to_string(&1)])
        ]

    tls_args =
      case opts[:tls] do
        nil -> []
        tls -> ["--tls-cert", tls[:cert], "--tls-key", tls[:key], "--tls-cacert", tls[:cacert]]
      end

    ["serve" | name_args] ++ module_args ++ pg_args ++ tls_args ++ opts[:args]
  end

  defp env(cookie, opts) do
    for {key, value} <- [
          {"RUSTELIXIR_COOKIE", Atom.to_string(cookie)},
          {"PYTHONUNBUFFERED", "1"} | opts[:env]
        ] do
      {String.to_charlist(key), String.to_charlist(value)}
    end
  end

  defp generate_node_name do
    suffix = :crypto.strong_rand_bytes(4) |> Base.encode16(case: :lower)

    host =
      case :net_kernel.longnames() do
        false -> node() |> Atom.to_string() |> String.split("@") |> List.last()
        _ -> "127.0.0.1"
      end

    "rustelixir_#{suffix}@#{host}"
  end

  defp await_up(%{port: port} = state, deadline) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        line = state.partial <> line
        state = %{state | partial: ""}

        case Regex.run(@up_line, line) do
          [_, name, _port] ->
            log_line(state, line)
            {:ok, %{state | node: String.to_atom(name)}}

          nil ->
            state |> log_line(line) |> await_up(deadline)
        end

      {^port, {:data, {:noeol, part}}} ->
        await_up(%{state | partial: state.partial <> part}, deadline)

      {^port, {:exit_status, status}} ->
        {:error, {:exited, status}}
    after
      max(deadline - System.monotonic_time(:millisecond), 0) -> {:error, :timeout}
    end
  end

  defp await_connected(node, deadline) do
    cond do
      Node.connect(node) == true ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        {:error, {:cannot_connect, node}}

      true ->
        Process.sleep(50)
        await_connected(node, deadline)
    end
  end

  # Output: complete lines become log entries; a line longer than the port's line
  # buffer arrives in parts and is joined first.

  defp take_output(state, {:noeol, part}), do: %{state | partial: state.partial <> part}

  defp take_output(state, {:eol, line}) do
    log_line(%{state | partial: ""}, state.partial <> line)
  end

  defp log_line(state, line) do
    {level, message} =
      case Regex.run(@log_line, line) do
        [_, level, message] -> {python_level(level), message}
        nil -> {unprefixed_level(line, state.log_level), line}
      end

    Logger.bare_log(level, message, rustelixir_node: state.node)
    %{state | log_level: level}
  end

  # A caught Rust panic prints its message (and backtrace) to stderr without a level;
  # other unprefixed lines are continuations (a traceback) and keep the last line's level.
  defp unprefixed_level(line, last_level) do
    if line =~ ~r/^thread '.*' .*panicked at /, do: :warning, else: last_level
  end

  defp python_level("DEBUG"), do: :debug
  defp python_level("INFO"), do: :info
  defp python_level("WARNING"), do: :warning
  defp python_level(_error_or_critical), do: :error

  # Shutdown: SIGTERM, a moment to close cleanly, then SIGKILL.

  defp stop_process(%{port: nil}), do: :ok

  defp stop_process(%{port: port, os_pid: os_pid}) do
    signal(os_pid, "TERM")

    receive do
      {^port, {:exit_status, _}} -> :ok
    after
      5_000 -> signal(os_pid, "KILL")
    end

    try do
      Port.close(port)
    rescue
      ArgumentError -> :ok
    end

    :ok
  end

  defp signal(os_pid, name) do
    System.cmd("kill", ["-#{name}", Integer.to_string(os_pid)], stderr_to_stdout: true)
  end
end
