defmodule RustElixir.Natives do
  @moduledoc """
  Defines one function per native of a rustelixir node.

      defmodule MyApp.Natives do
        use RustElixir.Natives,
          node: {RustElixir.Node, :node_name, [MyApp.Rust]},
          functions: [add: 2, echo: 1, sorted_set_new: 0]
      end

      {:ok, 3} = MyApp.Natives.add(1, 2)
      3 = MyApp.Natives.add!(1, 2)

  Each native `fun/n` becomes `fun/n`, returning what `RustElixir.call/4` returns, and
  `fun!/n`, returning the value or raising `RustElixir.Error`. Both have a `@doc` and a
  `@spec`. `mix rustelixir.gen.natives` writes such a module from a running node's list.

  ## Options

    * `:node` (required) - the node to call: a node name (atom), or a way to find it
      when each call is made: `{module, function, args}` or a zero-arity function, e.g.
      the supervised node's name as above
    * `:functions` (required) - `[name: arity]`, `[name: [arg_name, ...]]` to name the
      arguments in the docs and specs, or `[name: [args: [arg_name: type, ...], returns:
      type, doc: "..."]]` for typed specs and a doc of its own (what `mix
      rustelixir.gen.natives --from-module` writes from the natives' own declarations)
    * `:timeout` - the calls' timeout in milliseconds (default 5000)
  """

  @reserved [:functions, :info, :release, :share, :resource_info, :reload]

  @doc false
  defmacro __using__(opts) do
    node = Keyword.fetch!(opts, :node)
    functions = opts |> Keyword.fetch!(:functions) |> Macro.expand(__CALLER__)
    timeout = Keyword.get(opts, :timeout, 5_000)

    unless Keyword.keyword?(functions) do
      raise ArgumentError,
            "use RustElixir.Natives: expected :functions to be a keyword list, got: #{Macro.to_string(functions)}"
    end

    definitions =
      Enum.map(functions, fn {fun, description} ->
        define(fun, describe(fun, description), timeout)
      end)

    quote do
      @doc false
      @spec __rustelixir_node__() :: node()
      def __rustelixir_node__, do: RustElixir.Natives.resolve_node(unquote(node))

      unquote_splicing(definitions)
    end
  end

  # {[{arg_name, type}], result type, doc or nil}
  defp describe(fun, _) when fun in @reserved do
    raise ArgumentError,
          "use RustElixir.Natives: #{inspect(fun)} is a reserved request name, not a native"
  end

  defp describe(fun, arity) when is_integer(arity) and arity >= 0,
    do: describe(fun, for(i <- 1..arity//1, do: :"arg#{i}"))

  defp describe(fun, description) when is_list(description) and description != [] do
    if Keyword.keyword?(description),
      do: typed(fun, description),
      else: describe_names(fun, description)
  end

  defp describe(fun, names) when is_list(names), do: describe_names(fun, names)

  defp describe(fun, other) do
    raise ArgumentError,
          "use RustElixir.Natives: expected an arity, argument names or a description for #{fun}, got: #{inspect(other)}"
  end

  defp typed(fun, description) do
    args = Keyword.get(description, :args, [])

    unless Keyword.keyword?(args) do
      raise ArgumentError,
            "use RustElixir.Natives: expected :args of #{fun} to be [name: type, ...], got: #{Macro.to_string(args)}"
    end

    unique_names!(fun, Keyword.keys(args))
    {args, Keyword.get(description, :returns, quote(do: term())), Keyword.get(description, :doc)}
  end

  defp describe_names(fun, names) do
    {Enum.map(unique_names!(fun, names), &{&1, quote(do: term())}), quote(do: term()), nil}
  end

  defp unique_names!(fun, names) do
    if Enum.all?(names, &is_atom/1) and length(Enum.uniq(names)) == length(names),
      do: names,
      else:
        raise(
          ArgumentError,
          "use RustElixir.Natives: bad argument names for #{fun}: #{inspect(names)}"
        )
  end

  defp define(fun, {args, returns, own_doc}, timeout) do
    arity = length(args)
    vars = Enum.map(args, fn {name, _type} -> Macro.var(name, __MODULE__) end)

    types =
      Enum.map(args, fn {name, type} ->
        quote(do: unquote(Macro.var(name, nil)) :: unquote(type))
      end)

    bang = :"#{fun}!"
    own_doc = if own_doc in [nil, ""], do: "", else: String.trim_trailing(own_doc) <> "\n\n"

    doc = """
    #{own_doc}Calls native `#{fun}/#{arity}` on the rustelixir node: `{:ok, value}` or
    `{:error, %RustElixir.Error{}}` (see `RustElixir.call/4`).
    """

    bang_doc = """
    #{own_doc}Calls native `#{fun}/#{arity}` on the rustelixir node and returns its value; raises
    `RustElixir.Error` on failure.
    """

    quote do
      @doc unquote(doc)
      @spec unquote(fun)(unquote_splicing(types)) ::
              {:ok, unquote(returns)} | {:error, RustElixir.Error.t()}
      def unquote(fun)(unquote_splicing(vars)) do
        RustElixir.call(__rustelixir_node__(), unquote(fun), unquote(vars),
          timeout: unquote(timeout)
        )
      end

      @doc unquote(bang_doc)
      @spec unquote(bang)(unquote_splicing(types)) :: unquote(returns)
      def unquote(bang)(unquote_splicing(vars)) do
        RustElixir.call!(__rustelixir_node__(), unquote(fun), unquote(vars),
          timeout: unquote(timeout)
        )
      end
    end
  end

  @doc false
  @spec resolve_node(node() | {module(), atom(), [term()]} | (() -> node())) :: node()
  def resolve_node(node) when is_atom(node), do: node

  def resolve_node({module, fun, args}) when is_atom(module) and is_atom(fun) and is_list(args),
    do: apply(module, fun, args)

  def resolve_node(fun) when is_function(fun, 0), do: fun.()

  def resolve_node(other) do
    raise ArgumentError,
          "RustElixir.Natives: expected :node to be a node name, an {m, f, args} or a zero-arity function, got: #{inspect(other)}"
  end
end
