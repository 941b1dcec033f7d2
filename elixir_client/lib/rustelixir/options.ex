defmodule RustElixir.Options do
  @moduledoc false
  # A small keyword-list validator (NimbleOptions is not a dependency): one schema per
  # caller, every error an ArgumentError naming the option, what was expected and what
  # was given, and unknown keys listed with the known ones.

  @type type ::
          :atom
          | :node_name
          | :string
          | :pos_integer
          | :timeout
          | {:list, :string}
          | {:list, {:tuple, :string, :string}}
          | :logger_level
          | {:keyword, schema()}
          | :any

  @type schema :: [{atom(), keyword()}]

  @spec validate!(keyword(), schema(), String.t()) :: keyword()
  def validate!(opts, schema, context) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError, "#{context}: expected a keyword list of options, got: #{inspect(opts)}"
    end

    known = Keyword.keys(schema)

    case Keyword.keys(opts) -- known do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "#{context}: unknown options #{inspect(Enum.uniq(unknown))}, known options: #{inspect(known)}"
    end

    Enum.reduce(schema, opts, fn {key, spec}, acc ->
      case Keyword.fetch(acc, key) do
        {:ok, value} ->
          check!(context, key, spec[:type], value)
          acc

        :error ->
          cond do
            Keyword.has_key?(spec, :default) ->
              Keyword.put(acc, key, spec[:default])

            spec[:required] ->
              raise ArgumentError, "#{context}: option #{inspect(key)} is required"

            true ->
              acc
          end
      end
    end)
  end

  # A keyword list of options of its own: checked against its schema, errors naming both keys.
  defp check!(context, key, {:keyword, schema}, value) do
    unless Keyword.keyword?(value) and value != [] do
      raise ArgumentError,
            "#{context}: expected option #{inspect(key)} to be #{describe({:keyword, schema})}, got: #{inspect(value)}"
    end

    validate!(value, schema, "#{context} option #{inspect(key)}")
  end

  defp check!(context, key, type, value) do
    unless valid?(type, value) do
      raise ArgumentError,
            "#{context}: expected option #{inspect(key)} to be #{describe(type)}, got: #{inspect(value)}"
    end
  end

  defp valid?(:any, _), do: true
  defp valid?(:atom, value), do: is_atom(value)
  defp valid?(:string, value), do: is_binary(value) and value != ""
  defp valid?(:pos_integer, value), do: is_integer(value) and value > 0
  defp valid?(:timeout, value), do: value == :infinity or (is_integer(value) and value >= 0)

  defp valid?(:logger_level, value),
    do: value in [:debug, :info, :notice, :warning, :error, false]

  defp valid?(:node_name, value) do
    (is_atom(value) or is_binary(value)) and
      match?([name, host] when name != "" and host != "", String.split(to_string(value), "@"))
  end

  defp valid?({:list, type}, value), do: is_list(value) and Enum.all?(value, &valid?(type, &1))
  defp valid?({:tuple, a, b}, {x, y}), do: valid?(a, x) and valid?(b, y)
  defp valid?({:tuple, _, _}, _), do: false

  defp describe(:any), do: "any term"
  defp describe(:atom), do: "an atom"
  defp describe(:string), do: "a non-empty string"
  defp describe(:pos_integer), do: "a positive integer"
  defp describe(:timeout), do: "a non-negative integer or :infinity"
  defp describe(:logger_level), do: "a Logger level or false"
  defp describe(:node_name), do: "a node name like :\"name@host\""
  defp describe({:list, type}), do: "a list of #{describe(type)}"
  defp describe({:tuple, a, b}), do: "{#{describe(a)}, #{describe(b)}}"
  defp describe({:keyword, schema}), do: "a keyword list of #{inspect(Keyword.keys(schema))}"
end
