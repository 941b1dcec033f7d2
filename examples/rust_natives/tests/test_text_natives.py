"""The example's natives, called the way the node calls them (build first:
`maturin develop` in this directory, into a virtualenv with rustelixir)."""

import text_natives
from rustelixir import Atom
from rustelixir._native import call_native, register_native_table


def test_natives() -> None:
    listed = register_native_table(text_natives.__rustelixir_natives__)
    assert ("primes_below", 1, True) in listed
    assert call_native("fib", (10,)) == (Atom("ok"), 55)
    assert call_native("fib", (94,))[1][0] == Atom("badarg")
    assert call_native("word_count", (b"a b A",)) == (Atom("ok"), {b"a": 2, b"b": 1})
    assert call_native("primes_below", (20,)) == (Atom("ok"), [2, 3, 5, 7, 11, 13, 17, 19])
    assert call_native("mean", ([],)) == (Atom("ok"), None)
    ok, index = call_native("index_new", ())
    assert ok == Atom("ok")
    assert call_native("index_add", (index, b"The cat, the hat")) == (Atom("ok"), 4)
    assert call_native("index_count", (index, b"the")) == (Atom("ok"), 2)
    assert call_native("index_count", (b"nope", b"the"))[1][0] == Atom("badarg")
    assert call_native("text_stats", (b"A tiny example",)) == (
        Atom("ok"),
        {Atom("words"): 3, Atom("letters"): 12, Atom("longest"): b"example"},
    )
    assert call_native("fib_later", (10, 1)) == (Atom("ok"), 55)
