"""`rustelixir status NODE` and `rustelixir call NODE FUN ARG...` against a running node, and
what they say when the node is down or the cookie is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rustelixir import Atom, ImproperList, Pid, Reference
from rustelixir.shell import from_json, inspect, to_json

from beamnodes import TEST_NATIVES, ServedNode, served, unique_name

COOKIE = "rustelixir-cli-ops-cookie"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    with served(tmp_path_factory.mktemp("cli-ops"), cookie=COOKIE, extra=["--module", TEST_NATIVES]) as node:
        yield node


def cli(*args: str, cookie: str = COOKIE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rustelixir", *args, "--cookie", cookie],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.beam
def test_call_from_a_shell(node: ServedNode) -> None:
    done = cli("call", node.name, "add", "40", "2")
    assert (done.returncode, done.stdout) == (0, "{:ok, 42}\n")
    done = cli("call", node.name, "echo", '{"list": [1, 2.5, ":atom", "text", null, true]}')
    assert done.stdout == '{:ok, %{"list" => [1, 2.5, :atom, "text", nil, true]}}\n'
    done = cli("call", node.name, "add", "1", '"two"')
    assert done.returncode == 1 and done.stdout == '{:error, {:badarg, 2, "expected an integer, got a binary"}}\n'
    done = cli("call", node.name, "buffer_new", "4")
    assert done.returncode == 0 and done.stdout.startswith(f"{{:ok, #Reference<{node.name}.")
    done = cli("call", node.name, "add", "1", "two")  # not JSON
    assert done.returncode == 2 and "not JSON" in done.stderr


@pytest.mark.beam
def test_status_as_a_table_and_as_json(node: ServedNode) -> None:
    assert cli("call", node.name, "sorted_set_new").returncode == 0
    done = cli("status", node.name)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"node       {node.name}  (rustelixir ")
    assert any(line.split()[:1] == ["add/2"] for line in lines)
    assert any(line.split()[:1] == ["test_checked_add/2"] for line in lines)
    sorted_set = next(line.split() for line in lines if line.startswith("sorted_set "))
    assert sorted_set[2] == "1"  # created
    done = cli("status", node.name, "--json")
    facts = json.loads(done.stdout)
    assert facts["node"] == node.name and "add/2" in facts["functions"]
    assert facts["resources"]["by_type"]["sorted_set"]["created"] == 1
    assert facts["calls"] >= 1 and isinstance(facts["peers"], list)


@pytest.mark.beam
def test_a_wrong_cookie_and_a_node_that_is_down_are_said_apart(node: ServedNode) -> None:
    done = cli("status", node.name, cookie="not-the-cookie")
    assert done.returncode == 1 and "nodedown" in done.stderr and "refused the connection" in done.stderr
    nobody = unique_name("nobody")
    done = cli("call", nobody, "add", "1", "2")
    assert done.returncode == 1 and f"no node named {nobody.split('@')[0]} is registered" in done.stderr


def test_arguments_from_json_and_terms_as_elixir_writes_them(tmp_path: Path) -> None:
    assert from_json('[":ok", "::x", "s", {"k": null}]') == [Atom("ok"), b":x", b"s", {b"k": None}]
    term = (Atom("ok"), Atom("with space"), Pid("a@b", 1, 2, 3), Reference("a@b", 1, [4, 5, 6]), ImproperList([1], 2),
            b"\xff", "é".encode(), {1: [True, False, None]}, -(2**70), 1.5)  # fmt: skip
    assert inspect(term) == (
        '{:ok, :"with space", #PID<a@b.1.2>, #Reference<a@b.4.5.6>, [1 | 2], <<255>>, "é", %{1 => [true, false, nil]}, '
        "-1180591620717411303424, 1.5}"
    )
    assert to_json({Atom("k"): (b"\xff", b"ok", Atom("a"))}) == {"k": [[255], "ok", "a"]}
