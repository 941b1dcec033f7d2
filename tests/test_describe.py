"""`rustelixir describe MODULE`: what natives say of themselves with no node running, the
input of `mix rustelixir.gen.natives --from-module` (issue 12, item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from beamnodes import TEST_NATIVES
from rustelixir import Atom
from rustelixir.codec import decode
from rustelixir.describe import describe_module

TESTS = Path(__file__).resolve().parent


def describe(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "rustelixir", "describe", *args], capture_output=True, env=env, timeout=60)


def test_a_rust_native_declared_with_the_attribute_tells_its_signature_and_docs() -> None:
    by_name = {d.name: d for d in describe_module(TEST_NATIVES)}
    checked = by_name["test_checked_add"]
    assert (checked.arity, checked.slow, checked.language) == (2, False, "rust")
    assert checked.args == (("first", "i64"), ("second", "i64"))
    assert checked.returns == "Result<i64,rustelixir_nif::BadArg>"
    assert checked.doc == "Adds two integers, checked.\n\nAn overflow is a badarg."
    # One listed the old way says only its arity.
    assert by_name["test_emit"].args == (("arg1", ""),) and by_name["test_emit"].doc == ""
    assert by_name["test_emit_slow"].slow


def test_the_etf_output_is_one_term_with_python_natives_described_too() -> None:
    result = describe(TEST_NATIVES, "natives_fixture", "--format", "etf")
    assert result.returncode == 0, result.stderr
    described = {d[Atom("name")]: d for d in decode(result.stdout)}
    assert described[Atom("test_checked_add")][Atom("args")] == [(Atom("first"), b"i64"), (Atom("second"), b"i64")]
    greet = described[Atom("greet")]
    assert greet[Atom("language")] == Atom("python")
    assert greet[Atom("args")] == [(Atom("name"), b"bytes")] and greet[Atom("returns")] == b"bytes"
    assert described[Atom("slow_sum")][Atom("slow")] is True


def test_text_output_and_a_module_that_is_not_there() -> None:
    result = describe(TEST_NATIVES)
    assert result.returncode == 0
    assert "test_checked_add/2 (rust): test_checked_add(first: i64, second: i64) -> Result<i64,rustelixir_nif::BadArg>" in result.stdout.decode()
    missing = describe("no_such_natives")
    assert missing.returncode == 2
    assert b"cannot describe module 'no_such_natives'" in missing.stderr
