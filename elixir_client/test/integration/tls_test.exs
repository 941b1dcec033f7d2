defmodule RustElixir.Integration.TlsTest do
  # A VM speaking TLS distribution (`-proto_dist inet_tls`) starts its node with `tls:` and
  # calls it: the node speaks TLS only, so the calls prove the option reached `serve`.
  # The certificates are made for the run by tests/tlscerts.py (the pytest suite's own).
  use ExUnit.Case, async: true

  @moduletag :integration
  @moduletag timeout: 180_000

  test "a TLS VM starts a node with tls: and calls add, echo of 1 MiB and a resource over TLS" do
    dir = Path.join(System.tmp_dir!(), "rustelixir-tls-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    certs = Path.expand("../../../tests/tlscerts.py", __DIR__)
    {out, 0} = System.cmd(System.find_executable("python3"), [certs, dir], stderr_to_stdout: true)
    assert out == ""

    script = """
    tls = [cert: "#{dir}/node.pem", key: "#{dir}/node.key", cacert: "#{dir}/ours-ca.pem"]
    {:ok, _} = RustElixir.Node.start_link(name: TlsNode, tls: tls)
    node = RustElixir.Node.node_name(TlsNode)
    {:ok, info} = :net_kernel.node_info(node)
    {:net_address, _, _, protocol, _} = info[:address]
    IO.puts("protocol: \#{protocol}")
    {:ok, 3} = RustElixir.call(node, :add, [1, 2])
    binary = :binary.copy(<<7>>, 1_048_576)
    {:ok, ^binary} = RustElixir.call(node, :echo, [binary])
    {:ok, set} = RustElixir.call(node, :sorted_set_new, [])
    {:ok, 3} = RustElixir.call(node, :sorted_set_add_many, [set, [3, 1, 2]])
    {:ok, [1, 2, 3]} = RustElixir.call(node, :sorted_set_to_list, [set])
    :ok = RustElixir.release(node, set)
    {:error, %RustElixir.Error{reason: {:badresource, ^set}}} = RustElixir.call(node, :sorted_set_size, [set])
    IO.puts("calls: ok")
    """

    {out, status} =
      System.cmd(
        "elixir",
        [
          "--name",
          "tlsvm#{System.unique_integer([:positive])}@127.0.0.1",
          "--cookie",
          "rustelixir-tls-test",
          "--erl",
          "-proto_dist inet_tls -ssl_dist_optfile #{dir}/ssl_dist.conf",
          "-pa",
          Mix.Project.compile_path(),
          "-e",
          script
        ],
        stderr_to_stdout: true
      )

    assert status == 0, out
    assert out =~ "protocol: tls"
    assert out =~ "calls: ok"
  end
end
