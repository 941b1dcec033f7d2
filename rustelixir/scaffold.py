"""`rustelixir new NAME`: a crate of Rust natives of your own, built with maturin as a
Python extension and served with `rustelixir serve --module NAME`.

The crate depends on `rustelixir-nif` (native/nif in the rustelixir repository) by path:
found next to this package in a source checkout, else given with `--nif-path`.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["create_crate", "default_nif_path"]

CARGO_TOML = """\
[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
name = "{name}"
crate-type = ["cdylib"]
test = false
doctest = false

[dependencies]
rustelixir-nif = {{ path = "{nif_path}" }}
pyo3 = "0.28"

[profile.release]
# Panics must unwind: rustelixir catches them and answers {{:error, {{:panic, message}}}}.
panic = "unwind"

# Its own workspace, wherever it is created.
[workspace]
"""

PYPROJECT_TOML = """\
[build-system]
requires = ["maturin>=1.5,<2"]
build-backend = "maturin"

[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"

[tool.maturin]
module-name = "{name}"
"""

LIB_RS = """\
//! Natives served by rustelixir: `rustelixir serve --name py@127.0.0.1 --module {name}`,
//! then from iex: `GenServer.call({{:rustelixir, :"py@127.0.0.1"}}, {{:hello, "world"}})`.

use std::sync::atomic::{{AtomicI64, Ordering}};

use rustelixir_nif::{{natives, NifMap, Resource, ResourceArc}};

/// `{{:hello, name}}` -> `{{:ok, "hello, " <> name}}`
fn hello(name: String) -> String {{
    format!("hello, {{name}}")
}}

/// `{{:greet, %{{name: "Jo", excited: true}}}}` -> `{{:ok, "Hello, Jo!"}}`: the map is decoded
/// into a Rust struct by a derive (also: NifStruct for Elixir structs, NifTuple, NifRecord,
/// NifUnitEnum, NifTaggedEnum, NifUntaggedEnum, NifException).
#[derive(NifMap)]
struct Greeting {{
    name: String,
    excited: bool,
}}

fn greet(greeting: Greeting) -> String {{
    format!("Hello, {{}}{{}}", greeting.name, if greeting.excited {{ "!" }} else {{ "." }})
}}

/// A counter that lives in the node between calls (a resource): the caller gets a
/// reference, passes it back in later calls, and it is dropped when no process holds it.
struct Counter(AtomicI64);

impl Resource for Counter {{
    const TYPE_NAME: &'static str = "counter";
}}

/// `{{:counter_new, start}}` -> `{{:ok, counter}}`
fn counter_new(start: i64) -> ResourceArc<Counter> {{
    ResourceArc::new(Counter(AtomicI64::new(start)))
}}

/// `{{:counter_add, counter, n}}` -> `{{:ok, new value}}`
fn counter_add(counter: ResourceArc<Counter>, n: i64) -> i64 {{
    counter.0.fetch_add(n, Ordering::Relaxed) + n
}}

/// `{{:count_to, n}}` -> `{{:ok, n}}`, streaming 1..n to the caller first (progress:
/// `RustElixir.stream(node, :count_to, [n])` in Elixir).
fn count_to(n: u64) -> u64 {{
    for i in 1..=n {{
        let _ = rustelixir_nif::emit(&i);
    }}
    n
}}

// One line registers every native: `quick` ones run inline on the connection's thread,
// `slow` ones on the worker pool (check `rustelixir_nif::cancelled()` in long loops).
natives!(NATIVES = [quick hello, quick greet, quick counter_new, quick counter_add, slow count_to]);

// The Python module `rustelixir serve --module {name}` imports to find the natives.
rustelixir_nif::python_module!({name}, NATIVES);
"""

TEST_PY = """\
\"\"\"Calls the crate's natives the way the node does (build first: `maturin develop`).\"\"\"

import {name}
from rustelixir import Atom
from rustelixir._native import call_native, register_native_table


def test_natives() -> None:
    assert ("hello", 1, False) in register_native_table({name}.__rustelixir_natives__)
    assert call_native("hello", (b"world",)) == (Atom("ok"), b"hello, world")
    assert call_native("hello", (42,)) == (
        Atom("error"),
        (Atom("badarg"), 1, b"expected a binary, got an integer"),
    )
    ok, counter = call_native("counter_new", (10,))
    assert ok == Atom("ok")
    assert call_native("counter_add", (counter, 5)) == (Atom("ok"), 15)
    assert call_native("count_to", (3,)) == (Atom("ok"), 3)
    assert call_native("greet", ({{Atom("name"): b"Jo", Atom("excited"): True}},)) == (Atom("ok"), b"Hello, Jo!")
"""

README_MD = """\
# {name}

Rust natives for rustelixir.

```sh
pip install maturin && maturin develop --release     # build into the active virtualenv
rustelixir serve --name py@127.0.0.1 --module {name}
```

```elixir
iex> GenServer.call({{:rustelixir, :"py@127.0.0.1"}}, {{:hello, "world"}})
{{:ok, "hello, world"}}
```

Add a native: write a typed function (arguments and results convert through
`rustelixir_nif::Decoder` / `Encoder`; return `T` or `Result<T, E>`) and name it in the
`natives!` line. `Greeting` shows a derive (a map decoded into a struct), `Counter` a
resource (native data the caller holds by reference), `count_to` a native streaming
progress to its caller. `python -m pytest tests` checks the
crate from Python.
"""


def default_nif_path() -> Path | None:
    """native/nif of the rustelixir checkout this package runs from, if it does."""
    candidate = Path(__file__).resolve().parent.parent / "native" / "nif"
    return candidate if (candidate / "Cargo.toml").exists() else None


def create_crate(name: str, directory: Path, nif_path: Path | None = None) -> Path:
    """Writes the crate `name` into `directory/name`; returns its path."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"{name!r}: a crate name here is lowercase letters, digits and _, starting with a letter")
    nif = nif_path or default_nif_path()
    if nif is None or not (nif / "Cargo.toml").exists():
        raise ValueError("cannot find the rustelixir-nif crate: pass --nif-path (native/nif of a rustelixir checkout)")
    root = directory / name
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    files = {
        "Cargo.toml": CARGO_TOML,
        "pyproject.toml": PYPROJECT_TOML,
        "src/lib.rs": LIB_RS,
        "tests/test_natives.py": TEST_PY,
        "README.md": README_MD,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, nif_path=nif.resolve().as_posix()))
    return root
