"""The `rustelixir` command.

`rustelixir serve --name py@127.0.0.1` runs the node: a hidden Erlang node serving the
built-in natives and those of the `--module`s given, to
`GenServer.call({:rustelixir, :"py@127.0.0.1"}, {:add, 1, 2})`.

`rustelixir demo` runs the codec on a sample term and, when an `erl` is on the PATH, has a
real Erlang VM read the bytes back and re-encode them, and says what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Sequence

import rustelixir
from rustelixir import Atom, ImproperList, Pid, Reference
from rustelixir.node import DEFAULT_MAX_PENDING_HANDSHAKES
from rustelixir.transport import DEFAULT_HANDSHAKE_TIMEOUT


def sample_term() -> Any:
    """A `$gen_call` envelope, what an Elixir `GenServer.call` sends."""
    caller = Pid("app@127.0.0.1", 113, 0, 1)
    alias = Reference("app@127.0.0.1", 1, [178_023, 3_260_022_785, 2_361_204_119])
    return (Atom("$gen_call"), (caller, ImproperList([Atom("alias")], alias)), (Atom("add"), 1, 2**70))


def erl_roundtrip(erl: str, data: bytes) -> bytes:
    """binary_to_term then term_to_binary in a real VM."""
    program = (
        "B = list_to_binary([list_to_integer(H, 16) || H <- string:lexemes(os:getenv(\"ETF\"), \" \")]),"
        "io:format(\"~s\", [lists:join(\" \", [integer_to_list(X, 16) || "
        "X <- binary_to_list(term_to_binary(binary_to_term(B), [{minor_version, 2}]))])]),"
        "halt()."
    )
    hexed = " ".join(f"{b:x}" for b in data)
    out = subprocess.run(
        [erl, "-noshell", "-eval", program],
        env={"ETF": hexed, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return bytes(int(h, 16) for h in out.stdout.split())


def demo(_args: argparse.Namespace) -> int:
    term = sample_term()
    data = rustelixir.encode(term)
    print(f"term:    {term!r}")
    print(f"encoded: {len(data)} bytes: {data.hex(' ')}")
    decoded = rustelixir.decode(data)
    assert decoded == term and rustelixir.encode(decoded) == data
    print("decoded: equal to the term, and re-encodes to the same bytes")
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        rustelixir.decode(data)
    mid = time.perf_counter()
    for _ in range(n):
        rustelixir.encode(term)
    end = time.perf_counter()
    print(f"speed:   decode {n / (mid - start):,.0f}/s, encode {n / (end - mid):,.0f}/s")
    erl = shutil.which("erl")
    if erl is None:
        print("erl:     not installed; skipped the check against a real VM")
        return 0
    theirs = erl_roundtrip(erl, data)
    verdict = "the same bytes" if theirs == data else f"DIFFERENT bytes: {theirs.hex(' ')}"
    print(f"erl:     binary_to_term + term_to_binary in {erl} gave {verdict}")
    return 0 if theirs == data else 1


def _cookie_hint(args: argparse.Namespace) -> str:
    if args.cookie:
        return "<the --cookie value>"
    if os.environ.get("RUSTELIXIR_COOKIE"):
        return '"$RUSTELIXIR_COOKIE"'
    return '"$(cat ~/.erlang.cookie)"'


def _add_tls_options(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group(
        "TLS distribution (as -proto_dist inet_tls): all three, or none for plain TCP"
    )
    tls.add_argument("--tls-cert", metavar="FILE", help="this node's certificate (PEM; its chain, leaf first)")
    tls.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    tls.add_argument("--tls-cacert", metavar="FILE", help="the CA certificates a peer's certificate must lead to (PEM)")


def _tls_config(args: argparse.Namespace, command: str) -> tuple[Any, int]:
    """(the TlsConfig the --tls-* options name, or None; 0) or (None, the exit code after
    saying what is wrong)."""
    from rustelixir.errors import TlsConfigError
    from rustelixir.node import TlsConfig

    files = (args.tls_cert, args.tls_key, args.tls_cacert)
    if not any(files):
        return None, 0
    if not all(files):
        print(f"rustelixir {command}: TLS needs --tls-cert, --tls-key and --tls-cacert together", file=sys.stderr)
        return None, 2
    try:
        return TlsConfig(cert=args.tls_cert, key=args.tls_key, cacert=args.tls_cacert), 0
    except TlsConfigError as e:
        print(f"rustelixir {command}: {e}", file=sys.stderr)
        return None, 2


def serve(args: argparse.Namespace) -> int:
    from rustelixir.node import Node, default_cookie, full_node_name
    from rustelixir.server import RustelixirServer

    level = logging.INFO - 10 * args.verbose + 10 * args.quiet
    from rustelixir.logs import configure

    configure(level, args.log_format)
    try:
        name = full_node_name(args.name, args.sname)
    except Exception as e:
        print(f"rustelixir serve: {e}", file=sys.stderr)
        return 2
    metrics = None
    if args.metrics_port is not None:
        # Up first: /healthz says 503 while the node starts.
        try:
            from rustelixir.metrics import MetricsServer

            metrics = MetricsServer(args.metrics_host, args.metrics_port)
        except ImportError as e:
            print(f"rustelixir serve: --metrics-port needs the prometheus-client package ({e})", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"rustelixir serve: cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {e}", file=sys.stderr)
            return 2

    from rustelixir._native import set_max_buffer_bytes

    set_max_buffer_bytes(args.max_buffer_bytes)
    modules = []
    for module_name in args.module:
        try:
            modules.append((module_name, importlib.import_module(module_name)))
        except Exception as e:
            print(f"rustelixir serve: cannot serve natives of module {module_name!r}: {e}", file=sys.stderr)
            return 2
    cookie = args.cookie or default_cookie()
    epmd_mode = "none" if args.no_epmd else args.epmd
    tls, failed = _tls_config(args, "serve")
    if failed:
        return failed

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            node = Node(
                name,
                cookie,
                listen_host=args.listen_host,
                port=args.port,
                epmd=epmd_mode,
                epmd_port=args.epmd_port,
                ticktime=args.net_ticktime,
                max_message_size=args.max_message_size,
                max_pending_handshakes=args.max_pending_handshakes,
                handshake_timeout=args.handshake_timeout,
                tls=tls,
            )
        except ValueError as e:
            print(f"rustelixir serve: {e}", file=sys.stderr)
            return 2
        try:
            await node.start()
        except Exception as e:
            print(f"rustelixir serve: cannot start node {name}: {e}", file=sys.stderr)
            await node.close()
            return 1
        server = RustelixirServer(
            node,
            workers=args.workers,
            max_in_flight=args.max_in_flight,
            max_resources=args.max_resources,
            max_holders=args.max_holders,
        )
        for module_name, module in modules:
            try:
                server.add_module(module)
            except Exception as e:
                print(f"rustelixir serve: cannot serve natives of module {module_name!r}: {e}", file=sys.stderr)
                server.close()
                await node.close()
                return 2
        if metrics is not None:
            metrics.watch(node, server)
        membership = None
        if args.pg_group:
            from rustelixir.pg import PgMembership

            membership = PgMembership(node, args.pg_scope, args.pg_group, server.pid)
        # Nodes to join at start, without waiting for them to dial us. One that cannot be
        # reached now is logged and left: it can still connect to us later.
        for peer_name in args.connect:
            try:
                await node.connect(peer_name)
            except Exception as e:
                logging.getLogger("rustelixir").warning("cannot connect to %s at start-up: %s", peer_name, e, extra={"peer": peer_name})
        flag = "--sname" if args.sname and not args.name else "--name"
        you = "you@127.0.0.1" if flag == "--name" else "you"
        no_epmd = (
            f' --erl "-start_epmd false -erl_epmd_port {node.port}"'
            " (no EPMD: from another address than the node's, e.g. you@127.0.0.2)"
            if epmd_mode == "none"
            else ""
        )
        tls_hint = (
            ' --erl "-proto_dist inet_tls -ssl_dist_optfile FILE"'
            " (TLS: FILE as the README's TLS distribution section says)"
            if tls is not None
            else ""
        )
        print(
            f"rustelixir: node {name} is up on port {node.port}. Connect with "
            f"`iex {flag} {you} --cookie {_cookie_hint(args)}{no_epmd}{tls_hint}` and call "
            f'`GenServer.call({{:rustelixir, :"{name}"}}, {{:add, 1, 2}})`'
            + (f". Metrics: http://{args.metrics_host}:{metrics.port}/metrics" if metrics is not None else ""),
            flush=True,
        )
        if metrics is not None:
            metrics.state = "serving"
        await stop.wait()
        if metrics is not None:
            metrics.state = "stopping"
        logging.getLogger("rustelixir").info("shutting down")
        if membership is not None:
            membership.leave()
        server.close()
        await node.close()
        return 0

    code = asyncio.run(run())
    # Natives still running on worker threads (their callers are gone with the node) must
    # not hold the exit up: leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rustelixir.scaffold import create_crate

    try:
        root = create_crate(args.name, Path(args.directory), Path(args.nif_path) if args.nif_path else None)
    except (ValueError, FileExistsError) as e:
        print(f"rustelixir new: {e}", file=sys.stderr)
        return 2
    print(f"created {root}: build it with `maturin develop --release` there, then `rustelixir serve --module {args.name}`")
    return 0


def describe(args: argparse.Namespace) -> int:
    from rustelixir.codec import encode
    from rustelixir.describe import describe_module, to_term

    described = []
    for module in args.modules:
        try:
            described.extend(describe_module(module))
        except Exception as e:  # an import error, a table of another ABI: say which module
            print(f"rustelixir describe: cannot describe module {module!r}: {e}", file=sys.stderr)
            return 2
    if args.format == "etf":
        sys.stdout.buffer.write(encode(to_term(described)))
        sys.stdout.buffer.flush()
        return 0
    for d in described:
        signature = ", ".join(f"{name}: {ty}" if ty else name for name, ty in d.args)
        returns = f" -> {d.returns}" if d.returns else ""
        print(f"{d.name}/{d.arity} ({d.language}{', slow' if d.slow else ''}): {d.name}({signature}){returns}")
        for line in d.doc.splitlines():
            print(f"    {line}")
    return 0


def _call_node(args: argparse.Namespace, command: str, *requests: Any) -> tuple[int, list[Any]]:
    """`requests`, one after the other, to the `rustelixir` server of the running node
    `args.node`, from a hidden node of our own (the cookie and TLS as for `serve`; one
    connection for them all): (0, the replies), or (the exit code, []) after saying why
    there are none (the node is down, the cookie or a certificate is refused: all
    `{nodedown, Node}` to a caller, as they are to a BEAM one)."""
    import secrets

    from rustelixir._native import SERVER_NAME
    from rustelixir.errors import CallError
    from rustelixir.node import Node, default_cookie

    tls, failed = _tls_config(args, command)
    if failed:
        return failed, []

    async def run() -> tuple[int, list[Any]]:
        host = args.node.split("@", 1)[1] if "@" in args.node else "127.0.0.1"
        node = Node(f"rustelixir_{command}_{secrets.token_hex(3)}@{host}", args.cookie or default_cookie(), tls=tls)
        await node.start()
        try:
            return 0, [await node.call((SERVER_NAME, args.node), request, timeout=args.timeout) for request in requests]
        except CallError as e:
            from rustelixir.shell import inspect

            why = await _why_unreachable(args.node) if "nodedown" in repr(e.reason) else ""
            print(f"rustelixir {command}: cannot call {args.node}: {inspect(e.reason)}{why}", file=sys.stderr)
            return 1, []
        finally:
            await node.close()

    return asyncio.run(run())


async def _why_unreachable(node_name: str) -> str:
    """What the EPMD on the node's host says, to tell a node that is down from one that
    refused us (both are nodedown to a caller)."""
    from rustelixir import epmd

    alive, _, host = node_name.partition("@")
    try:
        address = await epmd.lookup(alive, host or "127.0.0.1", timeout=3.0)
    except Exception:
        return f": no EPMD answers on {host} (is the node up?)"
    if address is None:
        return f": no node named {alive} is registered on {host} (is it up?)"
    return f": it is up (port {address.port}) but refused the connection: a wrong cookie, or TLS on one side only"


def reload(args: argparse.Namespace) -> int:
    """`{:reload, Module}` to a running node."""
    failed, replies = _call_node(args, "reload", (Atom("reload"), Atom(args.module)))
    if failed:
        return failed
    match replies[0]:
        case (Atom(name="ok"), natives):
            listed = ", ".join(f"{name.name}/{arity}" for name, arity in natives)
            print(f"reloaded {args.module} on {args.node}: {listed}")
            return 0
        case (Atom(name="error"), reason):
            print(f"rustelixir reload: {args.module} on {args.node}: {reason!r}", file=sys.stderr)
            return 1
    print(f"rustelixir reload: unexpected reply {replies[0]!r}", file=sys.stderr)
    return 1


def call(args: argparse.Namespace) -> int:
    """A native called from a shell: `rustelixir call NODE add 1 2`, each argument JSON."""
    from rustelixir.shell import from_json, inspect

    try:
        values = [from_json(a) for a in args.args]
    except ValueError as e:
        print(f"rustelixir call: an argument is not JSON ({e}); strings are quoted: '\"text\"', atoms '\":name\"'",
              file=sys.stderr)  # fmt: skip
        return 2
    request = (Atom(args.fun), *values) if values else Atom(args.fun)
    failed, replies = _call_node(args, "call", request)
    if failed:
        return failed
    reply = replies[0]
    print(inspect(reply))
    return 0 if isinstance(reply, tuple) and reply[:1] == (Atom("ok"),) else 1


def status(args: argparse.Namespace) -> int:
    """The node's `:info` (and its natives), as a table or, with --json, as JSON."""
    import json

    from rustelixir.shell import inspect, to_json

    failed, replies = _call_node(args, "status", Atom("info"), Atom("functions"))
    if failed:
        return failed
    info, functions = replies
    if not (isinstance(info, tuple) and info[:1] == (Atom("ok"),) and isinstance(info[1], dict)):
        print(f"rustelixir status: unexpected reply {inspect(info)}", file=sys.stderr)
        return 1
    facts = {k.name if isinstance(k, Atom) else str(k): v for k, v in info[1].items()}
    natives = [(n.name, a) for n, a in functions[1]] if isinstance(functions, tuple) and functions[:1] == (Atom("ok"),) else []
    if args.json:
        print(json.dumps({**to_json(facts), "functions": [f"{n}/{a}" for n, a in natives]}, indent=2, sort_keys=True))
        return 0
    print(_status_table(facts, natives))
    return 0


def _status_table(facts: dict[str, Any], natives: list[tuple[str, int]]) -> str:
    from rustelixir.shell import inspect

    def text(value: Any) -> str:
        if isinstance(value, Atom):
            return value.name
        return value if isinstance(value, str) else value.decode() if isinstance(value, bytes) else inspect(value)

    lines = [f"node       {text(facts.get('node'))}  (rustelixir {text(facts.get('version'))}, "
             f"up {int(facts.get('uptime_ms', 0)) / 1000:.0f} s)"]  # fmt: skip
    counters = ("calls", "errors", "cancelled", "in_flight", "oversized")
    lines.append("calls      " + "  ".join(f"{k} {facts[k]}" for k in counters if k in facts))
    peers = facts.get("peers") or []
    lines.append(f"peers      {len(peers)}" + (": " + ", ".join(text(p) for p in peers) if peers else ""))
    natives_stats = facts.get("natives")
    per_native: dict[Any, Any] = natives_stats if isinstance(natives_stats, dict) else {}
    lines.append("")
    lines.append(f"{'native':<28}{'calls':>10}{'errors':>10}{'p50 us':>10}{'p99 us':>10}")
    for name, arity in natives:
        stats = per_native.get(Atom(name)) or per_native.get(Atom(f"{name}/{arity}")) or {}
        cells = [stats.get(Atom(k)) for k in ("calls", "errors", "p50_us", "p99_us")]
        cells = ["-" if c is None else c for c in cells]
        lines.append(f"{name + '/' + str(arity):<28}" + "".join(f"{text(c):>10}" for c in cells))
    resources = facts.get("resources") or {}
    by_type = resources.get(Atom("by_type"), {}) if isinstance(resources, dict) else {}
    lines.append("")
    lines.append(f"{'resource type':<28}{'live':>10}{'created':>10}{'freed':>10}")
    for kind, counts in sorted(by_type.items(), key=lambda kv: text(kv[0])):
        lines.append(f"{text(kind):<28}" + "".join(f"{counts.get(Atom(k), 0):>10}" for k in ("live", "created", "freed")))
    if isinstance(resources, dict):
        lines.append(f"{'all':<28}" + "".join(f"{resources.get(Atom(k), 0):>10}" for k in ("live", "created", "freed"))
                     + f"   holders {resources.get(Atom('holders'), 0)}")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rustelixir", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"rustelixir {rustelixir.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="encode and decode a sample term, and check it against a real erl").set_defaults(
        handler=demo
    )
    n = commands.add_parser("new", help="create a crate of Rust natives of your own (built with maturin)")
    n.add_argument("name", help="crate and Python module name (lowercase, digits, _)")
    n.add_argument("--directory", default=".", help="where to create it (default: here)")
    n.add_argument("--nif-path", help="the rustelixir-nif crate (native/nif of a rustelixir checkout)")
    n.set_defaults(handler=new)
    d = commands.add_parser("describe", help="what a module's natives say of themselves (no node needed)")
    d.add_argument("modules", nargs="+", metavar="MODULE", help="a module as --module takes it")
    d.add_argument("--format", choices=["text", "etf"], default="text", help="etf: one term, for mix rustelixir.gen.natives")
    d.set_defaults(handler=describe)
    r = commands.add_parser("reload", help="load a served module's new build into a running node")
    r.add_argument("module", help="the module, as --module named it when the node started")
    r.add_argument("--node", required=True, help="the running node, e.g. py@127.0.0.1")
    r.add_argument("--cookie", help="the cookie (else $RUSTELIXIR_COOKIE, else ~/.erlang.cookie)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the reload (default 60)")
    _add_tls_options(r)
    r.set_defaults(handler=reload)
    st = commands.add_parser("status", help="what a running node says of itself: natives, resources, peers")
    st.add_argument("node", help="the running node, e.g. py@127.0.0.1")
    st.add_argument("--json", action="store_true", help="as JSON, for scripts")
    c = commands.add_parser("call", help="call a native of a running node from a shell")
    c.add_argument("node", help="the running node, e.g. py@127.0.0.1")
    c.add_argument("fun", help="the native's name")
    c.add_argument("args", nargs="*", metavar="ARG",
                   help='an argument as JSON: 1, 2.5, "text" (a binary), ":name" (an atom), [1, 2], {"k": 1}')  # fmt: skip
    for sub in (st, c):
        sub.add_argument("--cookie", help="the cookie (else $RUSTELIXIR_COOKIE, else ~/.erlang.cookie)")
        sub.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
        _add_tls_options(sub)
    st.set_defaults(handler=status)
    c.set_defaults(handler=call)
    p = commands.add_parser("serve", help="run the node: a hidden Erlang node serving natives")
    names = p.add_mutually_exclusive_group(required=True)
    names.add_argument("--name", help="long node name, e.g. py@127.0.0.1")
    names.add_argument("--sname", help="short node name, e.g. py (completed with this host's name)")
    p.add_argument("--cookie", help="the cookie (else $RUSTELIXIR_COOKIE, else ~/.erlang.cookie)")
    p.add_argument("--port", type=int, default=0, help="distribution port (0: any free port)")
    p.add_argument("--listen-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--module", action="append", default=[], help="Python module whose natives to serve (repeatable)")
    p.add_argument(
        "--pg-group", action="append", default=[], metavar="GROUP",
        help="a :pg group the server joins on every node it is connected to (repeatable)",
    )  # fmt: skip
    p.add_argument("--pg-scope", default="pg", metavar="SCOPE", help="the :pg scope of --pg-group (default pg)")
    p.add_argument(
        "--connect", action="append", default=[], metavar="NODE", help="a node to connect to at start-up (repeatable)"
    )
    p.add_argument(
        "--epmd",
        choices=["auto", "system", "internal"],
        default="auto",
        help="auto: use a running EPMD, else start the system's epmd, else run one inside the node",
    )
    p.add_argument("--epmd-port", type=int, default=None, help="EPMD port (default $ERL_EPMD_PORT or 4369)")
    p.add_argument("--no-epmd", action="store_true", help="do not register with EPMD (needs a fixed --port)")
    p.add_argument(
        "--net-ticktime",
        type=float,
        default=60.0,
        help="seconds of silence after which a peer counts as down; ticks go every quarter of it "
        "(use the same value as the BEAM nodes' -kernel net_ticktime)",
    )
    p.add_argument(
        "--max-message-size",
        type=int,
        default=128 << 20,
        help="largest message a peer may send, in bytes (default 128 MiB), on the wire, inflated or once "
        "decoded; a larger one is discarded as it arrives (a call answered {:error, :overloaded})",
    )
    p.add_argument(
        "--max-pending-handshakes",
        type=int,
        default=DEFAULT_MAX_PENDING_HANDSHAKES,
        help=f"incoming connections in their handshake at once (default {DEFAULT_MAX_PENDING_HANDSHAKES}); "
        "past it a new one is closed at once, unread",
    )
    p.add_argument(
        "--handshake-timeout",
        type=float,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        help=f"seconds a connection has to finish its handshake (default {DEFAULT_HANDSHAKE_TIMEOUT:g})",
    )
    p.add_argument("--max-resources", type=int, default=1_000_000, help="live resources before :overloaded")
    p.add_argument("--max-holders", type=int, default=10_000, help="holders of one resource before :overloaded")
    p.add_argument(
        "--max-buffer-bytes", type=int, default=8 << 30, help="bytes held by all buffers before :overloaded (8 GiB)"
    )
    p.add_argument("--workers", type=int, default=32, help="worker threads for slow natives")
    p.add_argument("--max-in-flight", type=int, default=10_000, help="slow calls in flight before :overloaded")
    _add_tls_options(p)
    p.add_argument(
        "--log-format", choices=["text", "json"], default="text",
        help="text (default), or json: one JSON object per line (time, level, logger, message, peer, ...)",
    )  # fmt: skip
    p.add_argument("--metrics-port", type=int, default=None, metavar="P",
                   help="serve Prometheus metrics at http://HOST:P/metrics and health at /healthz (0: any free port)")  # fmt: skip
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port (default 127.0.0.1)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="count", default=0)
    p.set_defaults(handler=serve)
    args = parser.parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
