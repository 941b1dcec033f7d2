"""Certificates for TLS distribution, made with the `openssl` command when a test (or a
benchmark) runs: a CA, node certificates it signs, and the `-ssl_dist_optfile` a BEAM node
started with `-proto_dist inet_tls` reads.

A node certificate names 127.0.0.1 and localhost twice over: as DNS names, since OTP's
client checks the host part of the node name it dials as a DNS name (even "127.0.0.1"), and
127.0.0.1 as an IP address too, since rustelixir's client checks an IP host as an address.
It may serve both roles (serverAuth and clientAuth), as a distribution node dials and is
dialled."""

from __future__ import annotations

import sys
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Authority", "NodeCerts", "ssl_dist_optfile"]

SUBJECT_ALT_NAMES = "DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _new_key(path: Path, kind: str) -> None:
    if kind == "ec":
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    elif kind == "rsa":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    else:
        raise ValueError(f"key kind {kind!r}: ec or rsa")


@dataclass(frozen=True)
class NodeCerts:
    """A node's certificate and key, and the CA certificates it trusts (PEM files)."""

    cert: Path
    key: Path
    cacert: Path

    def serve_args(self) -> list[str]:
        """`rustelixir serve`'s options for them."""
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key), "--tls-cacert", str(self.cacert)]


class Authority:
    """A CA in `directory` (made there now): `issue` signs node certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self.key = directory / f"{name}-ca.key"
        self.cert = directory / f"{name}-ca.pem"
        _new_key(self.key, "ec")
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key), "-out", str(self.cert), "-days", "2",
            "-subj", f"/CN={name} test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, *, kind: str = "ec", trusts: Authority | None = None) -> NodeCerts:
        """A certificate for node `name` (key `kind`: ec or rsa), signed by this CA; the node
        trusts `trusts` (default: this CA)."""
        key = self.directory / f"{name}.key"
        csr = self.directory / f"{name}.csr"
        cert = self.directory / f"{name}.pem"
        extensions = self.directory / f"{name}.ext"
        _new_key(key, kind)
        _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={SUBJECT_ALT_NAMES}\n"
        )
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions),
        )  # fmt: skip
        return NodeCerts(cert=cert, key=key, cacert=(trusts or self).cert)


def _erlang_string(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def ssl_dist_optfile(path: Path, certs: NodeCerts, *, versions: list[str] | None = None, client_cert: bool = True) -> Path:
    """The `-ssl_dist_optfile` of a BEAM node with `certs`: it verifies its peers both ways
    (`verify_peer`, and `fail_if_no_peer_cert` for nodes that dial it). `versions`: the TLS
    versions it speaks (default: OTP's); `client_cert=False`: it shows no certificate when
    it dials."""
    own = [f"{{certfile, {_erlang_string(certs.cert)}}}", f"{{keyfile, {_erlang_string(certs.key)}}}"]
    common = [f"{{cacertfile, {_erlang_string(certs.cacert)}}}", "{verify, verify_peer}"]
    if versions is not None:
        common.append("{versions, [" + ", ".join(f"'{v}'" for v in versions) + "]}")
    server = [*own, *common, "{fail_if_no_peer_cert, true}"]
    client = [*(own if client_cert else []), *common]
    path.write_text(f"[{{server, [{', '.join(server)}]}},\n {{client, [{', '.join(client)}]}}].\n")
    return path


def main(argv: list[str]) -> int:
    """`python tests/tlscerts.py DIR`: in DIR, a CA (`ours-ca.pem`), certificates it signs
    for a rustelixir node (`node.pem`, `node.key`) and for a BEAM node (`vm.pem`, `vm.key`),
    and the BEAM node's `ssl_dist.conf` (for tests outside pytest: the Elixir client's)."""
    if len(argv) != 1:
        print("usage: python tests/tlscerts.py DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    ours = Authority(directory, "ours")
    ours.issue("node")
    ssl_dist_optfile(directory / "ssl_dist.conf", ours.issue("vm"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
