defmodule RustElixir.MixProject do
  use Mix.Project

  def project do
    [
      app: :rustelixir,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: [],
      docs: [main: "RustElixir"]
    ]
  end

  def application do
    [extra_applications: [:logger, :crypto], mod: {RustElixir.Application, []}]
  end
end
