defmodule RustElixir.Error do
  @moduledoc """
  Why a call to a rustelixir node failed.

  `reason` is one of the node's error reasons (see the call contract) or a reason this
  client adds when the call could not be made at all:

    * `{:undef, fun, arity}` - the node has no native `fun/arity`
    * `{:badarg, index, message}` - argument `index` (1-based) could not be converted
    * `{:panic, message}` - the Rust native panicked (the node serves on)
    * `{:exception, type, message}` - the Python native raised `type`
    * `{:badresource, ref}` - `ref` is not a live resource of the node
    * `:overloaded` - a limit of the node was hit
    * `{:badrequest, message}` - the node did not understand the request
    * `{:nodedown, node}` - the node is not reachable, or went down during the call
    * `{:noproc, node}` - the node is up but serves no `rustelixir` process
    * `{:timeout, milliseconds}` - no reply in time
    * `:no_members` - a call to a `:pg` group (`RustElixir.Group`) that has no member
    * `:not_distributed` - this VM is not a distributed node (`Node.alive?/0` is false)
    * `{:exit, reason}` - the call exited for another reason

  It is an exception, so `raise` works on it and `Exception.message/1` gives a readable
  description.
  """

  @typedoc "A failed call's reason."
  @type reason ::
          {:undef, atom(), non_neg_integer()}
          | {:badarg, pos_integer(), binary()}
          | {:panic, binary()}
          | {:exception, binary(), binary()}
          | {:badresource, reference()}
          | :overloaded
          | {:badrequest, binary()}
          | {:nodedown, node()}
          | {:noproc, node()}
          | {:timeout, timeout()}
          | :no_members
          | :not_distributed
          | {:exit, term()}
          | term()

  @type t :: %__MODULE__{reason: reason(), node: node() | nil}

  defexception [:reason, :node]

  @impl true
  def message(%__MODULE__{reason: reason, node: node}) do
    describe(reason) <> where(node)
  end

  defp where(nil), do: ""
  defp where(node), do: " (rustelixir node #{inspect(node)})"

  defp describe({:undef, fun, arity}), do: "no native #{fun}/#{arity}"
  defp describe({:badarg, index, msg}), do: "bad argument #{index}: #{msg}"
  defp describe({:panic, msg}), do: "the native panicked: #{msg}"
  defp describe({:exception, type, msg}), do: "the native raised #{type}: #{msg}"
  defp describe({:badresource, ref}), do: "#{inspect(ref)} is not a live resource"
  defp describe(:overloaded), do: "the node is overloaded (a configured limit was hit)"
  defp describe({:badrequest, msg}), do: "bad request: #{msg}"
  defp describe({:nodedown, _node}), do: "the node is down or unreachable"
  defp describe({:noproc, _node}), do: "the node serves no rustelixir process"
  defp describe({:timeout, ms}), do: "no reply within #{ms} ms"

  defp describe(:no_members), do: "the group has no member (no node joined it)"

  defp describe(:not_distributed),
    do: "this VM is not distributed: start it with --name/--sname, or call :net_kernel.start/1"

  defp describe({:exit, reason}), do: "the call exited: #{inspect(reason)}"
  defp describe(other), do: "call failed: #{inspect(other)}"
end
