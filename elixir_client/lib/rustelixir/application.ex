defmodule RustElixir.Application do
  @moduledoc false
  # What the client keeps for this VM: the count of calls in flight to each member of a
  # group (`RustElixir.Group`). Without it (the library's files loaded as scripts) calls
  # through a group pick members at random.
  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([RustElixir.Group], strategy: :one_for_one, name: RustElixir.Supervisor)
  end
end
