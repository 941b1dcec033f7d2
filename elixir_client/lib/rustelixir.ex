defmodule RustElixir do
  @moduledoc """
  Calls native functions (Rust or Python) served by a rustelixir node: a separate OS
  process that joins the cluster as a hidden node and registers the name `rustelixir`.

  A native crash or a long computation there cannot take down or stall this VM.
  """

  @server :rustelixir

  @typedoc "The name of a node running `rustelixir serve`."
  @type rustelixir_node :: node()

  @doc """
  The `GenServer.call/3` destination of the natives on `node`.

      iex> RustElixir.server(:"py@127.0.0.1")
      {:rustelixir, :"py@127.0.0.1"}
  """
  @spec server(rustelixir_node()) :: {atom(), node()}
  def server(node) when is_atom(node), do: {@server, node}

  @doc """
  The request `GenServer.call/3` sends for native `fun` with `args` (the call contract:
  `{fun, arg1, ..., argN}`, or `fun` alone for a native of arity 0).

      iex> RustElixir.request(:add, [1, 2])
      {:add, 1, 2}
      iex> RustElixir.request(:now, [])
      :now
  """
  @spec request(atom(), [term()]) :: atom() | tuple()
  def request(fun, []) when is_atom(fun), do: fun
  def request(fun, args) when is_atom(fun) and is_list(args), do: List.to_tuple([fun | args])
end
