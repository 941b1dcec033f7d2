defmodule RustElixir.Natives.Spec do
  @moduledoc """
  Typespecs for natives from the types they are written with: Rust types as a `#[native]`
  function declares them, Python annotations as a `@rustelixir.native` function has them
  (`rustelixir describe MODULE`). What a type becomes follows the node's term mapping:

      iex> RustElixir.Natives.Spec.to_spec(:rust, "Vec<Option<u8>>", :arg) |> Macro.to_string()
      "[non_neg_integer() | nil]"
      iex> RustElixir.Natives.Spec.to_spec(:rust, "Result<f64,String>", :return) |> Macro.to_string()
      "float()"
      iex> RustElixir.Natives.Spec.to_spec(:python, "dict[str, list[int]]", :arg) |> Macro.to_string()
      "%{optional(String.t()) => [integer()]}"

  A type it does not know (a struct with a derive, a type alias) is `term()`.
  """

  @doc """
  The typespec (quoted) of `type` (as written in `language`, `:rust` or `:python`), for an
  argument (`:arg`) or a result (`:return`: a Rust `Result<T, E>` is its `T`, the error
  being the call's). An empty type is `term()`.
  """
  @spec to_spec(:rust | :python, String.t(), :arg | :return) :: Macro.t()
  def to_spec(_language, "", _position), do: quote(do: term())

  def to_spec(language, type, position) do
    case type |> String.replace(~r/\s*([<>\[\](),|&:])\s*/, "\\1") |> String.trim() |> parse() do
      {:ok, parsed, ""} -> spec(language, parsed, position)
      _ -> quote(do: term())
    end
  end

  # --- Parsing: Name, Name<T, ...> / Name[T, ...], (T, ...), [T], &T, A | B ----------------

  defp parse(text) do
    with {:ok, first, rest} <- parse_one(text) do
      union([first], rest)
    end
  end

  defp union(alternatives, "|" <> rest) do
    with {:ok, next, rest} <- parse_one(rest), do: union([next | alternatives], rest)
  end

  defp union([one], rest), do: {:ok, one, rest}
  defp union(alternatives, rest), do: {:ok, {:union, Enum.reverse(alternatives)}, rest}

  defp parse_one("&'" <> rest), do: rest |> skip_name() |> String.trim_leading() |> parse_one()
  defp parse_one("&mut " <> rest), do: parse_one(rest)
  defp parse_one("&" <> rest), do: parse_one(rest)

  defp parse_one("(" <> rest) do
    with {:ok, items, rest} <- parse_list(rest, ")"), do: {:ok, {:tuple, items}, rest}
  end

  defp parse_one("[" <> rest) do
    with {:ok, [item], rest} <- parse_list(rest, "]"), do: {:ok, {:slice, item}, rest}
  end

  defp parse_one(text) do
    case Regex.run(~r/^[A-Za-z_][A-Za-z0-9_]*(?:(?:::|\.)[A-Za-z_][A-Za-z0-9_]*)*/, text) do
      [path] ->
        name = path |> String.split(["::", "."]) |> List.last()
        rest = binary_part(text, byte_size(path), byte_size(text) - byte_size(path))

        case rest do
          "<" <> rest ->
            with {:ok, args, rest} <- parse_list(rest, ">"), do: {:ok, {name, args}, rest}

          "[" <> rest ->
            with {:ok, args, rest} <- parse_list(rest, "]"), do: {:ok, {name, args}, rest}

          _ ->
            {:ok, {name, []}, rest}
        end

      nil ->
        :error
    end
  end

  defp skip_name(text), do: String.replace(text, ~r/^[A-Za-z_][A-Za-z0-9_]*/, "", global: false)

  defp parse_list(text, close) do
    if String.starts_with?(text, close) do
      {:ok, [], binary_part(text, 1, byte_size(text) - 1)}
    else
      parse_items(text, close, [])
    end
  end

  defp parse_items(text, close, acc) do
    with {:ok, item, rest} <- parse(text) do
      case rest do
        "," <> rest ->
          if String.starts_with?(rest, close),
            do: done(rest, [item | acc]),
            else: parse_items(rest, close, [item | acc])

        <<^close::binary-size(1), rest::binary>> ->
          {:ok, Enum.reverse([item | acc]), rest}

        _ ->
          :error
      end
    end
  end

  defp done(rest, acc), do: {:ok, Enum.reverse(acc), binary_part(rest, 1, byte_size(rest) - 1)}

  # --- Mapping -----------------------------------------------------------------------------

  @signed ~w(i8 i16 i32 i64 i128 isize)
  @unsigned ~w(u8 u16 u32 u64 u128 usize)

  defp spec(:rust, {"Result", [ok | _]}, :return), do: spec(:rust, ok, :return)
  defp spec(:rust, {int, []}, _) when int in @signed, do: quote(do: integer())
  defp spec(:rust, {int, []}, _) when int in @unsigned, do: quote(do: non_neg_integer())
  # An integer argument is taken where a float is expected.
  defp spec(:rust, {float, []}, :arg) when float in ~w(f32 f64), do: quote(do: number())
  defp spec(:rust, {float, []}, :return) when float in ~w(f32 f64), do: quote(do: float())
  defp spec(:rust, {"bool", []}, _), do: quote(do: boolean())
  defp spec(:rust, {text, []}, _) when text in ~w(String str), do: quote(do: String.t())
  defp spec(:rust, {"Vec", [{"u8", []}]}, _), do: quote(do: binary())
  defp spec(:rust, {:slice, {"u8", []}}, _), do: quote(do: binary())
  defp spec(:rust, {"Vec", [item]}, p), do: [spec(:rust, item, p)]
  defp spec(:rust, {:slice, item}, p), do: [spec(:rust, item, p)]
  defp spec(:rust, {"Option", [item]}, p), do: quote(do: unquote(spec(:rust, item, p)) | nil)

  defp spec(:rust, {map, [k, v]}, p) when map in ~w(HashMap BTreeMap),
    do: map_spec(:rust, k, v, p)

  defp spec(:rust, {:tuple, []}, _), do: :ok
  defp spec(:rust, {"Atom", []}, _), do: quote(do: atom())
  defp spec(:rust, {"Pid", []}, _), do: quote(do: pid())
  defp spec(:rust, {r, _}, _) when r in ~w(Reference ResourceArc), do: quote(do: reference())
  defp spec(:rust, {"IoData", []}, :arg), do: quote(do: iodata())
  defp spec(:rust, {"IoData", []}, :return), do: quote(do: binary())
  defp spec(:rust, {"ListIterator", []}, _), do: quote(do: list())
  defp spec(:rust, {"MapIterator", []}, _), do: quote(do: map())
  defp spec(:python, {"int", []}, _), do: quote(do: integer())
  defp spec(:python, {"float", []}, _), do: quote(do: number())
  defp spec(:python, {"bool", []}, _), do: quote(do: boolean())
  defp spec(:python, {"str", []}, _), do: quote(do: String.t())
  defp spec(:python, {b, []}, _) when b in ~w(bytes bytearray), do: quote(do: binary())
  defp spec(:python, {"None", []}, _), do: nil

  defp spec(:python, {list, [item]}, p) when list in ~w(list List Sequence),
    do: [spec(:python, item, p)]

  defp spec(:python, {dict, [k, v]}, p) when dict in ~w(dict Dict Mapping),
    do: map_spec(:python, k, v, p)

  defp spec(:python, {"Optional", [item]}, p),
    do: quote(do: unquote(spec(:python, item, p)) | nil)

  defp spec(:python, {"Atom", []}, _), do: quote(do: atom())
  defp spec(:python, {"Pid", []}, _), do: quote(do: pid())
  defp spec(:python, {"Reference", []}, _), do: quote(do: reference())

  defp spec(language, {tuple, items}, p) when tuple in ~w(tuple Tuple),
    do: spec(language, {:tuple, items}, p)

  defp spec(language, {:tuple, items}, p), do: {:{}, [], Enum.map(items, &spec(language, &1, p))}

  defp spec(language, {:union, alternatives}, p) do
    alternatives
    |> Enum.map(&spec(language, &1, p))
    |> Enum.reduce(fn b, a -> quote(do: unquote(a) | unquote(b)) end)
  end

  defp spec(_language, _other, _p), do: quote(do: term())

  defp map_spec(language, k, v, p) do
    quote(do: %{optional(unquote(spec(language, k, p))) => unquote(spec(language, v, p))})
  end
end
