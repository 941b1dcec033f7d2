"""Rust natives in crates of their own: `rustelixir new` scaffolds one, the example in
examples/rust_natives is another; each is built with maturin, its own test runs, and a
real Elixir node calls its natives through `rustelixir serve --module`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from beamnodes import TEST_NATIVES, ServedNode, unique_name
from conftest import IN_CI

pytestmark = [pytest.mark.beam, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "rustelixir-crates-cookie"
# Shared by the builds here (and kept between runs) so pyo3 is compiled once.
TARGET_DIR = ROOT / "native" / "target" / "user-crates"


def build(crate: Path, site: Path) -> None:
    """Builds the crate's wheel with maturin and installs it into `site`."""
    maturin = Path(sys.executable).parent / "maturin"
    dist = site.parent / f"dist-{crate.name}"
    subprocess.run(
        [str(maturin), "build", "-q", "-i", sys.executable, "-o", str(dist)],
        cwd=crate,
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(TARGET_DIR)},
        timeout=900,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", str(site), str(wheels[0])],
        check=True,
        timeout=300,
    )


def run_crate_tests(crate: Path, site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=crate,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def elixir_calls(node: ServedNode, script: str) -> list[str]:
    elixir = shutil.which("elixir")
    if elixir is None:
        if IN_CI:
            pytest.fail("elixir not found (the README's test command installs it)")
        pytest.skip("elixir not found")
    result = subprocess.run(
        [elixir, "--name", unique_name("ex"), "--cookie", COOKIE, "-e",
         f'node = String.to_atom(System.fetch_env!("RUSTELIXIR_NODE"))\n{script}'],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RUSTELIXIR_NODE": node.name},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """Builds a crate once for the module (`rustelixir new MODULE` for "scaffold", else a
    copy of the repository's `crate`), runs its own tests, and installs it into a site
    directory shared by the module's crates: `built(crate, module)` is that directory."""
    site = tmp_path_factory.mktemp("site") / "site"
    done: set[str] = set()

    def get(crate: str, module: str) -> Path:
        if module in done:
            return site
        tmp = tmp_path_factory.mktemp(module)
        if crate == "scaffold":
            created = subprocess.run(
                [sys.executable, "-m", "rustelixir", "new", module, "--directory", str(tmp)],
                capture_output=True,
                text=True,
                check=True,
            )
            assert "created" in created.stdout
            crate_dir = tmp / module
        else:
            crate_dir = tmp / "crate"
            shutil.copytree(ROOT / crate, crate_dir)
            cargo = crate_dir / "Cargo.toml"
            cargo.write_text(cargo.read_text().replace("../../native/nif", str(ROOT / "native" / "nif")))
        build(crate_dir, site)
        run_crate_tests(crate_dir, site)
        done.add(module)
        return site

    return get


@contextmanager
def serving(site: Path, logs: Path, *modules: str, extra: tuple[str, ...] = ()) -> Iterator[ServedNode]:
    args = [arg for module in modules for arg in ("--module", module)]
    node = ServedNode(logs, cookie=COOKIE, extra=[*args, *extra],
                      env={"PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests")])})  # fmt: skip
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture()
def served_crate(request: pytest.FixtureRequest, built: Callable[[str, str], Path], tmp_path: Path) -> Iterator[ServedNode]:
    crate, module = request.param
    with serving(built(crate, module), tmp_path / "logs", module) as node:
        yield node


@pytest.mark.parametrize("served_crate", [("scaffold", "hello_natives")], indirect=True)
def test_scaffolded_crate_is_served_to_elixir(served_crate: ServedNode) -> None:
    node = served_crate
    assert elixir_calls(
        node,
        """
        IO.inspect(GenServer.call({:rustelixir, node}, {:hello, "world"}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:hello, 42}))
        {:ok, functions} = GenServer.call({:rustelixir, node}, :functions)
        IO.inspect(Keyword.get(functions, :hello))
        {:ok, counter} = GenServer.call({:rustelixir, node}, {:counter_new, 40})
        IO.inspect(GenServer.call({:rustelixir, node}, {:counter_add, counter, 2}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:greet, %{name: "Jo", excited: false}}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:resource_info, counter}) |> elem(1) |> Map.get(:type))
        tag = make_ref()
        send({:rustelixir, node}, {:"$gen_call", {self(), tag}, {:count_to, 3}})
        IO.inspect(for _ <- 1..4, do: receive(do: ({:rustelixir_stream, ^tag, i} -> i; {^tag, reply} -> reply)))
        """,
    ) == [
        '{:ok, "hello, world"}',
        '{:error, {:badarg, 1, "expected a binary, got an integer"}}',
        "1",
        "{:ok, 42}",
        '{:ok, "Hello, Jo."}',
        ":counter",
        "[1, 2, 3, {:ok, 3}]",
    ]


@pytest.mark.parametrize("served_crate", [("examples/rust_natives", "text_natives")], indirect=True)
def test_example_crate_is_served_to_elixir(served_crate: ServedNode) -> None:
    node = served_crate
    assert elixir_calls(
        node,
        """
        IO.inspect(GenServer.call({:rustelixir, node}, {:word_count, "the cat and the hat"}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:fib, 90}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:fib, 100}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:primes_below, 30}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:mean, [1.0, 2.0]}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:mean, []}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:text_stats, "A tiny example"}))
        IO.inspect(GenServer.call({:rustelixir, node}, {:fib_later, 10, 50}))
        # A subscriber is told of every text added, until it exits (the index monitors it).
        {:ok, index} = GenServer.call({:rustelixir, node}, {:index_new})
        me = self()
        sub = spawn(fn -> receive do: (m -> send(me, {:got, m})); receive do: (:stop -> :ok) end)
        {:ok, true} = GenServer.call({:rustelixir, node}, {:index_subscribe, index, sub})
        {:ok, true} = GenServer.call({:rustelixir, node}, {:index_subscribe, index, self()})
        {:ok, 2} = GenServer.call({:rustelixir, node}, {:index_add, index, "two words"})
        IO.inspect(receive do: ({:got, {:indexed, ^index, n}} -> n))
        IO.inspect(receive do: ({:indexed, ^index, n} -> n))
        send(sub, :stop)
        Process.sleep(300)
        IO.inspect(GenServer.call({:rustelixir, node}, {:index_subscribers, index}))
        """,
    ) == [
        '{:ok, %{"and" => 1, "cat" => 1, "hat" => 1, "the" => 2}}',
        "{:ok, 2880067194370816120}",
        '{:error, {:badarg, 1, "fib(100) does not fit in 64 bits (n <= 93)"}}',
        "{:ok, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]}",
        "{:ok, 1.5}",
        "{:ok, nil}",
        '{:ok, %{letters: 12, longest: "example", words: 3}}',
        "{:ok, 55}",
        "2",
        "2",
        "{:ok, 1}",
    ]


def test_two_crates_resources_live_in_one_node_each_dropped_by_its_own_code(
    built: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """The example crate's WordIndex and the test crate's Probe (each crate built as its own
    extension, with its own copy of rustelixir-nif) in one node's table: counted by type,
    held by the process that made them, each dropped by its own crate's code when that
    process exits; the table's limit answers :overloaded to a crate's native."""
    site = built("examples/rust_natives", "text_natives")
    with serving(site, tmp_path / "logs", "text_natives", TEST_NATIVES, extra=("--max-resources", "20")) as node:
        assert elixir_calls(
            node,
            """
            call = fn req -> GenServer.call({:rustelixir, node}, req) end
            parent = self()
            holder = spawn(fn ->
              {:ok, probe} = call.({:test_probe_new})
              {:ok, index} = call.({:index_new})
              {:ok, 2} = call.({:index_add, index, "a b"})
              send(parent, {:made, probe, index})
              receive do: (:stop -> :ok)
            end)
            {probe, index} = receive do: ({:made, p, i} -> {p, i})
            live = fn -> {:ok, info} = call.(:info); t = info.resources.by_type; {t[:probe][:live], t[:word_index][:live]} end
            IO.inspect(live.())
            {:ok, %{type: type}} = call.({:resource_info, index})
            IO.inspect(type)
            {:ok, probes} = call.({:test_probes_dropped})
            {:ok, indexes} = call.({:indexes_dropped})
            send(holder, :stop)
            Process.sleep(500)
            {:ok, probes_after} = call.({:test_probes_dropped})
            {:ok, indexes_after} = call.({:indexes_dropped})
            IO.inspect({probes_after - probes, indexes_after - indexes, live.()})
            IO.inspect(call.({:index_count, index, "a"}) == {:error, {:badresource, index}})
            IO.inspect(call.({:test_probe_use, probe}) == {:error, {:badresource, probe}})
            made = for _ <- 1..25, do: call.({:index_new})
            IO.inspect({Enum.count(made, &match?({:ok, _}, &1)), Enum.count(made, &(&1 == {:error, :overloaded}))})
            """,
        ) == ["{1, 1}", ":word_index", "{1, 1, {0, 0}}", "true", "true", "{20, 5}"]


# A slow native that says which build answered (added to a scaffolded crate).
NAP = """
const BUILD: &str = "one";

/// Sleeps `ms`, then says which build it is.
fn nap(ms: u64) -> &'static str {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    BUILD
}
"""


def test_a_rebuilt_crate_is_reloaded_into_the_running_node(tmp_path: Path) -> None:
    """`rustelixir reload` after a rebuild: new calls go to the new build, a call in flight
    finishes on the old, a resource of the old build stays live (and is told apart), and a
    build that fails to load leaves the new-old build serving."""
    created = subprocess.run([sys.executable, "-m", "rustelixir", "new", "reload_natives", "--directory", str(tmp_path)],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert "created" in created.stdout
    crate = tmp_path / "reload_natives"
    lib = crate / "src" / "lib.rs"
    lib.write_text(lib.read_text().replace("natives!(NATIVES = [", "natives!(NATIVES = [slow nap, ") + NAP)
    site = tmp_path / "site"
    build(crate, site)
    from beamnodes import calling
    from conftest import runtime_or_skip
    from rustelixir import Atom

    with serving(site, tmp_path / "logs", "reload_natives") as node, calling(runtime_or_skip("otp25"), tmp_path / "erl", node, ping=True) as erl:
        call = lambda request: erl.eval(f"gen_server:call({{rustelixir, Node}}, {request}, 60000).")  # noqa: E731
        assert call('{hello, <<"x">>}') == (Atom("ok"), b"hello, x")
        _, counter = call("{counter_new, 1}")
        erl.set("Counter", counter)
        lib.write_text(lib.read_text().replace('"one"', '"two"').replace('format!("hello, {name}")', 'format!("hi, {name}")'))
        build(crate, site)
        # A call in flight on the old build while it is reloaded (the reload is done first).
        erl.eval("Self = self(), spawn(fun() -> Self ! {nap, gen_server:call({rustelixir, Node}, {nap, 3000}, 60000)} end), timer:sleep(200).")
        env = {**os.environ, "RUSTELIXIR_COOKIE": COOKIE}
        reloaded = subprocess.run([sys.executable, "-m", "rustelixir", "reload", "reload_natives", "--node", node.name],
                                  capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert reloaded.returncode == 0, reloaded.stderr
        assert "reloaded reload_natives" in reloaded.stdout and "nap/1" in reloaded.stdout
        assert erl.eval("receive {nap, _} -> done after 0 -> in_flight end.") == Atom("in_flight")
        assert call('{hello, <<"x">>}') == (Atom("ok"), b"hi, x")
        assert call("{nap, 0}") == (Atom("ok"), b"two")
        assert erl.eval("receive {nap, R} -> R after 30000 -> timeout end.") == (Atom("ok"), b"one")
        # The old build's counter is live, and the new build's natives say whose it is.
        assert call("{resource_info, Counter}")[0] == Atom("ok")
        refused = call("{counter_add, Counter, 1}")
        assert refused[0] == Atom("error") and b"made by another build" in refused[1][2]
        # A build that cannot load: the error, and the last good build serves on.
        extension = next((site / "reload_natives").glob("reload_natives*.so"))
        extension.write_bytes(b"not a library")
        broken = call("{reload, reload_natives}")
        assert broken[0] == Atom("error") and broken[1][0] == Atom("exception"), broken
        assert call('{hello, <<"x">>}') == (Atom("ok"), b"hi, x")
        assert call("{reload, no_such_module}") == (Atom("error"), (Atom("badarg"), 1, b"no_such_module is not a module this node serves"))
