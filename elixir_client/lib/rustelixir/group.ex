defmodule RustElixir.Group do
  @moduledoc """
  Calls through a `:pg` group of rustelixir nodes (`rustelixir serve --pg-group GROUP`, and
  `--pg-scope SCOPE` for a scope other than `:pg`): the target `{:pg, scope, group}` of
  `RustElixir.call/4`, `call!/4` and `cast/3`.

  Which member takes a call:

    * when the arguments hold a resource reference of a member's node (anywhere in lists,
      tuples and maps), that member: a resource lives on the node that made it;
    * else the member with the fewest calls in flight from this VM (counted while
      `RustElixir`'s application runs), ties broken at random;
    * no member (or no such scope running here): `{:error, %RustElixir.Error{reason:
      :no_members}}`.

  A member that goes down mid-call is `{:nodedown, node}`: the call is not retried on
  another, since a native may not be idempotent.
  """

  use GenServer

  @table __MODULE__

  @typedoc "A group of rustelixir nodes' servers in a `:pg` scope."
  @type t :: {:pg, atom(), term()}

  @doc false
  def start_link(_opts), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @impl true
  def init([]) do
    # Calls in flight by member pid, counted by the callers themselves.
    :ets.new(@table, [:named_table, :public, :set, write_concurrency: true])
    {:ok, nil}
  end

  @doc """
  The member of `group` in `scope` a call with `args` goes to: `{:ok, pid}`, or
  `{:error, :no_members}`.
  """
  @spec pick(atom(), term(), [term()]) :: {:ok, pid()} | {:error, :no_members}
  def pick(scope, group, args) do
    case members(scope, group) do
      [] ->
        {:error, :no_members}

      members ->
        owners = args |> references([]) |> Enum.map(&node/1)

        case Enum.find(members, &(node(&1) in owners)) do
          nil -> {:ok, least_busy(members)}
          owner -> {:ok, owner}
        end
    end
  end

  @doc """
  Runs `fun` (a call to `member`) counted as in flight to `member`.
  """
  @spec counting(pid(), (() -> result)) :: result when result: term()
  def counting(member, fun) do
    if :ets.whereis(@table) == :undefined do
      fun.()
    else
      :ets.update_counter(@table, member, 1, {member, 0})

      try do
        fun.()
      after
        :ets.update_counter(@table, member, -1, {member, 1})
      end
    end
  end

  defp members(scope, group) do
    :pg.get_members(scope, group)
  rescue
    # The scope is not running in this VM.
    ArgumentError -> []
  end

  defp least_busy([only]), do: only

  defp least_busy(members) do
    if :ets.whereis(@table) == :undefined do
      Enum.random(members)
    else
      counts = for m <- members, do: {in_flight(m), m}
      fewest = counts |> Enum.map(&elem(&1, 0)) |> Enum.min()
      for({^fewest, m} <- counts, do: m) |> Enum.random()
    end
  end

  defp in_flight(member) do
    case :ets.lookup(@table, member) do
      [{_, n}] -> n
      [] -> 0
    end
  end

  # Every reference in a term.
  defp references(ref, acc) when is_reference(ref), do: [ref | acc]
  defp references([head | tail], acc), do: references(tail, references(head, acc))
  defp references(tuple, acc) when is_tuple(tuple), do: references(Tuple.to_list(tuple), acc)

  defp references(map, acc) when is_map(map), do: references(Map.to_list(map), acc)

  defp references(_other, acc), do: acc
end
