defmodule Mix.Tasks.Rustelixir.Gen.Natives do
  @shortdoc "Generates a `use RustElixir.Natives` module from a running node's natives, or from built modules"

  @moduledoc """
  Writes a module with one function per native (see `RustElixir.Natives`), from a running
  rustelixir node's list (`:functions`), or, with no node running, from the modules of
  natives themselves (`rustelixir describe`): a built crate's `#[native]` functions carry
  their argument names, types and doc comments, a Python module's natives their signatures
  and docstrings, and the generated functions get `@spec`s from those types and `@doc`s
  from those docs.

      mix rustelixir.gen.natives --node py@127.0.0.1 --module MyApp.Natives
      mix rustelixir.gen.natives --from-module my_natives --module MyApp.Natives \\
        --node-expr "{RustElixir.Node, :node_name, [MyApp.Rust]}"

  ## Options

    * `--node` - the node to ask (required without `--from-module`; else the `:node` the
      module calls, unless `--node-expr` gives it)
    * `--from-module` - a module of natives, as `rustelixir serve --module` takes it
      (repeatable): described by `rustelixir describe` (the `--bin` executable, else
      `$RUSTELIXIR_BIN`, else `rustelixir` on `PATH`; it imports the module, so
      `PYTHONPATH` must find it as it would for `serve`)
    * `--module` (required) - the module to generate
    * `--output` - the file to write (default: `lib/` + the module's path, e.g.
      `lib/my_app/natives.ex`)
    * `--node-expr` - the `:node` option written into the module, as Elixir source (default:
      the `--node` name), e.g. `"{RustElixir.Node, :node_name, [MyApp.Rust]}"`
    * `--cookie` - the cookie (default: this VM's, i.e. `~/.erlang.cookie`)
    * `--name` - this VM's node name when it is not distributed yet (default:
      `rustelixir_gen_<random>@127.0.0.1`)
    * `--force` - overwrite the file if it exists
  """

  use Mix.Task

  @switches [
    node: :string,
    module: :string,
    output: :string,
    node_expr: :string,
    cookie: :string,
    name: :string,
    force: :boolean,
    from_module: :keep,
    bin: :string
  ]

  @impl Mix.Task
  def run(argv) do
    {opts, _args} = OptionParser.parse!(argv, strict: @switches)
    from_modules = Keyword.get_values(opts, :from_module)

    module =
      Module.concat([
        opts[:module] || Mix.raise("--module is required, e.g. --module MyApp.Natives")
      ])

    output = opts[:output] || Path.join("lib", Macro.underscore(module) <> ".ex")

    {node_expr, functions, origin} =
      case {from_modules, opts[:node]} do
        {[], nil} ->
          Mix.raise("--node or --from-module is required, e.g. --node py@127.0.0.1")

        {[], node} ->
          node = String.to_atom(node)
          {opts[:node_expr] || inspect(node), from_node(node, opts), "natives of #{node}"}

        {modules, node} ->
          node_expr =
            opts[:node_expr] || (node && inspect(String.to_atom(node))) ||
              Mix.raise("--node or --node-expr is required: the node the module calls")

          {node_expr, from_modules(modules, opts), "natives of #{Enum.join(modules, ", ")}"}
      end

    source = source(module, node_expr, functions)

    if Mix.Generator.create_file(output, source, force: Keyword.get(opts, :force, false)) do
      Mix.shell().info("#{inspect(module)}: #{length(functions)} #{origin}")
    end
  end

  defp from_node(node, opts) do
    start_distribution(opts)
    if cookie = opts[:cookie], do: Node.set_cookie(node, String.to_atom(cookie))

    case RustElixir.functions(node) do
      {:ok, functions} ->
        functions

      {:error, error} ->
        Mix.raise("cannot list the natives of #{node}: #{Exception.message(error)}")
    end
  end

  # [{name, arity}] for natives that say nothing of themselves, [{name, {args, returns,
  # doc}}] (types as typespecs) for the others.
  defp from_modules(modules, opts) do
    bin =
      opts[:bin] || System.get_env("RUSTELIXIR_BIN") || System.find_executable("rustelixir") ||
        Mix.raise("cannot find the rustelixir executable: pass --bin or set RUSTELIXIR_BIN")

    case System.cmd(bin, ["describe" | modules] ++ ["--format", "etf"], stderr_to_stdout: false) do
      {etf, 0} ->
        # Our own executable's output: the natives' names are atoms to be.
        etf |> :erlang.binary_to_term() |> Enum.map(&function_of/1)

      {_, status} ->
        Mix.raise("#{bin} describe #{Enum.join(modules, " ")} failed (exit status #{status})")
    end
  end

  defp function_of(%{
         name: name,
         arity: arity,
         language: language,
         args: args,
         returns: returns,
         doc: doc
       }) do
    described? = Enum.any?(args, fn {_, type} -> type != "" end) or returns != "" or doc != ""

    if described? do
      args =
        for {arg, type} <- args, do: {arg, RustElixir.Natives.Spec.to_spec(language, type, :arg)}

      {name, {args, RustElixir.Natives.Spec.to_spec(language, returns, :return), doc}}
    else
      {name, arity}
    end
  end

  @doc false
  @spec source(module(), String.t(), [
          {atom(), non_neg_integer() | {list(), Macro.t(), String.t()}}
        ]) ::
          String.t()
  def source(module, node_expr, functions) do
    entries = Enum.map_join(functions, ",\n", &entry/1)

    Code.format_string!("""
    defmodule #{inspect(module)} do
      @moduledoc \"\"\"
      The natives of a rustelixir node (generated by `mix rustelixir.gen.natives`).
      \"\"\"

      use RustElixir.Natives,
        node: #{node_expr},
        functions: [
    #{entries}
        ]
    end
    """)
    |> IO.iodata_to_binary()
    |> Kernel.<>("\n")
  end

  defp entry({name, arity}) when is_integer(arity), do: "      #{name}: #{arity}"

  defp entry({name, {args, returns, doc}}) do
    args = Enum.map_join(args, ", ", fn {arg, spec} -> "#{arg}: #{Macro.to_string(spec)}" end)
    doc = if doc == "", do: "", else: ", doc: #{inspect(doc)}"
    "      #{name}: [args: [#{args}], returns: #{Macro.to_string(returns)}#{doc}]"
  end

  defp start_distribution(opts) do
    unless Node.alive?() do
      System.cmd("epmd", ["-daemon"])
      suffix = :crypto.strong_rand_bytes(3) |> Base.encode16(case: :lower)
      name = String.to_atom(opts[:name] || "rustelixir_gen_#{suffix}@127.0.0.1")

      case :net_kernel.start([name, :longnames]) do
        {:ok, _} -> :ok
        {:error, reason} -> Mix.raise("cannot make this VM the node #{name}: #{inspect(reason)}")
      end
    end
  end
end
