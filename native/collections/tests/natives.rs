//! Every collection native through its C ABI entry point: replies and errors.

mod common;

use common::*;
use rustelixir_collections::COLLECTIONS;
use rustelixir_nif::etf::{Atom, Reference, Term};

fn reference(t: &Term) -> Reference {
    match t {
        Term::Ref(r) => Reference::clone(r),
        other => panic!("expected a reference, got {other:?}"),
    }
}

fn badresource(r: &Term) -> Term {
    error(tuple(vec![Term::atom("badresource"), r.clone()]))
}

#[test]
fn table_lists_every_native_with_arity_and_kind() {
    let listed: Vec<(String, u32, bool)> = COLLECTIONS
        .entries()
        .iter()
        .map(|e| (e.name().to_string(), e.arity, e.is_slow()))
        .collect();
    let expected: Vec<(String, u32, bool)> = [
        ("sorted_set_new", 0, false),
        ("sorted_set_add", 2, false),
        ("sorted_set_add_many", 2, true),
        ("sorted_set_remove", 2, false),
        ("sorted_set_index_of", 2, false),
        ("sorted_set_at", 2, false),
        ("sorted_set_slice", 3, false),
        ("sorted_set_size", 1, false),
        ("sorted_set_to_list", 1, true),
        ("buffer_new", 1, false),
        ("buffer_write", 3, false),
        ("buffer_read", 3, false),
        ("buffer_size", 1, false),
        ("buffer_to_binary", 1, true),
    ]
    .iter()
    .map(|(n, a, s)| (n.to_string(), *a, *s))
    .collect();
    assert_eq!(listed, expected);
    assert!(unsafe {
        rustelixir_nif::NativeTable::from_address(&COLLECTIONS as *const _ as usize)
    }
    .is_ok());
}

// --- SortedSet -----------------------------------------------------------------------------

#[test]
fn new_gives_a_reference_of_this_node() {
    setup();
    let set = new_set();
    let r = reference(&set);
    assert_eq!(r.node, Atom::from("test@127.0.0.1"));
    assert_eq!(common::table().type_of(&r), Some("sorted_set"));
    assert_ne!(new_set(), set);
}

#[test]
fn add_answers_where_the_member_now_is() {
    setup();
    let set = new_set();
    assert_eq!(call("sorted_set_add", &[set.clone(), int(5)]), ok(int(0)));
    assert_eq!(call("sorted_set_add", &[set.clone(), int(1)]), ok(int(0)));
    assert_eq!(call("sorted_set_add", &[set.clone(), int(3)]), ok(int(1)));
    assert_eq!(call("sorted_set_add", &[set.clone(), int(9)]), ok(int(3)));
    // Present (also as an equal float): no-op, its index.
    assert_eq!(call("sorted_set_add", &[set.clone(), int(5)]), ok(int(2)));
    assert_eq!(
        call("sorted_set_add", &[set.clone(), Term::Float(5.0)]),
        ok(int(2))
    );
    assert_eq!(call("sorted_set_size", &[set.clone()]), ok(int(4)));
    // The member first added is kept.
    assert_eq!(
        call("sorted_set_to_list", &[set]),
        ok(list(vec![int(1), int(3), int(5), int(9)]))
    );
}

#[test]
fn members_follow_erlang_term_order() {
    setup();
    let set = new_set();
    let members = vec![
        bin("b"),
        list(vec![int(1)]),
        Term::nil(),
        tuple(vec![int(1), int(2)]),
        tuple(vec![int(9)]),
        Term::atom("zeta"),
        Term::atom("alpha"),
        Term::Float(2.5),
        int(-3),
        int(2),
        bin("a"),
        list(vec![int(0), int(5)]),
    ];
    for m in &members {
        assert!(matches!(
            call("sorted_set_add", &[set.clone(), m.clone()]),
            Term::Tuple(_)
        ));
    }
    let expected = list(vec![
        int(-3),
        int(2),
        Term::Float(2.5),
        Term::atom("alpha"),
        Term::atom("zeta"),
        tuple(vec![int(9)]),
        tuple(vec![int(1), int(2)]),
        Term::nil(),
        list(vec![int(0), int(5)]),
        list(vec![int(1)]),
        bin("a"),
        bin("b"),
    ]);
    assert_eq!(call("sorted_set_to_list", &[set.clone()]), ok(expected));
    assert_eq!(
        call("sorted_set_index_of", &[set.clone(), Term::atom("zeta")]),
        ok(int(4))
    );
    assert_eq!(
        call("sorted_set_index_of", &[set.clone(), Term::Float(2.0)]),
        ok(int(1))
    );
    assert_eq!(
        call("sorted_set_index_of", &[set, Term::atom("beta")]),
        ok(Term::atom("nil"))
    );
}

#[test]
fn remove_says_whether_the_member_was_there() {
    setup();
    let set = new_set();
    for v in [1, 2, 3] {
        call("sorted_set_add", &[set.clone(), int(v)]);
    }
    assert_eq!(
        call("sorted_set_remove", &[set.clone(), int(2)]),
        ok(Term::atom("true"))
    );
    assert_eq!(
        call("sorted_set_remove", &[set.clone(), int(2)]),
        ok(Term::atom("false"))
    );
    assert_eq!(
        call("sorted_set_remove", &[set.clone(), Term::Float(1.0)]),
        ok(Term::atom("true"))
    );
    assert_eq!(
        call("sorted_set_remove", &[set.clone(), Term::atom("x")]),
        ok(Term::atom("false"))
    );
    assert_eq!(
        call("sorted_set_to_list", &[set.clone()]),
        ok(list(vec![int(3)]))
    );
    assert_eq!(
        call("sorted_set_remove", &[set.clone(), int(3)]),
        ok(Term::atom("true"))
    );
    assert_eq!(call("sorted_set_size", &[set.clone()]), ok(int(0)));
    assert_eq!(call("sorted_set_to_list", &[set.clone()]), ok(Term::nil()));
    assert_eq!(
        call("sorted_set_remove", &[set, int(3)]),
        ok(Term::atom("false"))
    );
}

#[test]
fn at_and_its_range() {
    setup();
    let set = new_set();
    for v in ["c", "a", "b"] {
        call("sorted_set_add", &[set.clone(), bin(v)]);
    }
    assert_eq!(call("sorted_set_at", &[set.clone(), int(0)]), ok(bin("a")));
    assert_eq!(call("sorted_set_at", &[set.clone(), int(2)]), ok(bin("c")));
    assert_eq!(
        call("sorted_set_at", &[set.clone(), int(3)]),
        badarg(2, "index 3 out of range for a set of 3")
    );
    assert_eq!(
        call("sorted_set_at", &[set.clone(), int(-1)]),
        badarg(2, "index -1 out of range for a set of 3")
    );
    assert_eq!(
        call("sorted_set_at", &[set.clone(), Term::atom("first")]),
        badarg(2, "expected an integer, got an atom")
    );
    let empty = new_set();
    assert_eq!(
        call("sorted_set_at", &[empty, int(0)]),
        badarg(2, "index 0 out of range for a set of 0")
    );
}

#[test]
fn slice_is_clipped_and_refuses_negatives() {
    setup();
    let set = new_set();
    let n = 2000;
    let batch: Vec<Term> = (0..n).rev().map(int).collect();
    assert_eq!(
        call("sorted_set_add_many", &[set.clone(), list(batch)]),
        ok(int(n))
    );
    let range = |a: i64, b: i64| list((a..b).map(int).collect());
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(0), int(3)]),
        ok(range(0, 3))
    );
    // Across bucket boundaries.
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(250), int(600)]),
        ok(range(250, 850))
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(1998), int(10)]),
        ok(range(1998, 2000))
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(2000), int(10)]),
        ok(Term::nil())
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(5000), int(10)]),
        ok(Term::nil())
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(10), int(0)]),
        ok(Term::nil())
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(0), int(i64::MAX)]),
        ok(range(0, 2000))
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(-1), int(3)]),
        badarg(2, "start must not be negative, got -1")
    );
    assert_eq!(
        call("sorted_set_slice", &[set.clone(), int(0), int(-3)]),
        badarg(3, "count must not be negative, got -3")
    );
    assert_eq!(
        call("sorted_set_slice", &[set, int(0), bin("3")]),
        badarg(3, "expected an integer, got a binary")
    );
}

#[test]
fn add_many_answers_the_size_and_keeps_the_first_of_equal_members() {
    setup();
    let set = new_set();
    // Small batch (added one by one), with an int/float pair and a repeat.
    let small = list(vec![
        int(3),
        Term::Float(1.0),
        int(1),
        int(3),
        Term::atom("a"),
    ]);
    assert_eq!(
        call("sorted_set_add_many", &[set.clone(), small]),
        ok(int(3))
    );
    assert_eq!(
        call("sorted_set_at", &[set.clone(), int(0)]),
        ok(Term::Float(1.0))
    );
    // Large batch (sorted and merged): members already present stay as they were, and of
    // equal members in the batch the first wins.
    let mut big: Vec<Term> = (0..500).map(|i| int(i * 2)).collect();
    big.push(Term::Float(7.0));
    big.push(int(7));
    big.push(int(1));
    assert_eq!(
        call("sorted_set_add_many", &[set.clone(), list(big)]),
        ok(int(504))
    );
    assert_eq!(
        call("sorted_set_index_of", &[set.clone(), int(1)]),
        ok(int(1))
    );
    assert_eq!(
        call("sorted_set_at", &[set.clone(), int(1)]),
        ok(Term::Float(1.0))
    );
    assert_eq!(
        call("sorted_set_at", &[set.clone(), int(6)]),
        ok(Term::Float(7.0))
    );
    assert_eq!(
        call("sorted_set_at", &[set.clone(), int(503)]),
        ok(Term::atom("a"))
    );
    assert_eq!(
        call("sorted_set_add_many", &[set.clone(), Term::nil()]),
        ok(int(504))
    );
    assert_eq!(
        call("sorted_set_add_many", &[set.clone(), Term::atom("x")]),
        badarg(2, "expected a list, got an atom")
    );
    assert_eq!(
        call(
            "sorted_set_add_many",
            &[set, Term::improper_list(vec![int(1)], int(2))]
        ),
        badarg(2, "expected a proper list, got an improper list")
    );
}

#[test]
fn wrong_unknown_and_released_resources() {
    setup();
    let buf = new_buffer(8);
    let set = new_set();
    assert_eq!(
        call("sorted_set_add", &[buf.clone(), int(1)]),
        badarg(1, "expected a sorted_set resource, got a buffer resource")
    );
    assert_eq!(
        call("buffer_size", &[set.clone()]),
        badarg(1, "expected a buffer resource, got a sorted_set resource")
    );
    assert_eq!(
        call("sorted_set_size", &[int(1)]),
        badarg(1, "expected a sorted_set resource, got an integer")
    );
    // A reference this node never made, and one of another node.
    let made_by = |node: &str| {
        Term::from(Reference {
            node: Atom::from(node),
            creation: 1,
            ids: vec![1, 2, 3],
        })
    };
    let unknown = made_by("test@127.0.0.1");
    assert_eq!(
        call("sorted_set_size", &[unknown.clone()]),
        badresource(&unknown)
    );
    let foreign = made_by("other@host");
    assert_eq!(
        call("buffer_size", &[foreign.clone()]),
        badresource(&foreign)
    );
    // Released: gone.
    assert!(common::table().free(&reference(&set)));
    assert_eq!(
        call("sorted_set_add", &[set.clone(), int(1)]),
        badresource(&set)
    );
    assert!(common::table().free(&reference(&buf)));
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(0), int(1)]),
        badresource(&buf)
    );
}

// --- Buffer --------------------------------------------------------------------------------

#[test]
fn buffer_starts_zeroed_and_reads_what_was_written() {
    setup();
    let buf = new_buffer(16);
    assert_eq!(call("buffer_size", &[buf.clone()]), ok(int(16)));
    assert_eq!(
        call("buffer_to_binary", &[buf.clone()]),
        ok(Term::Binary(vec![0; 16]))
    );
    assert_eq!(
        call("buffer_write", &[buf.clone(), int(2), bin("abc")]),
        ok(Term::atom("ok"))
    );
    assert_eq!(
        call("buffer_write", &[buf.clone(), int(13), bin("xyz")]),
        ok(Term::atom("ok"))
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(2), int(3)]),
        ok(bin("abc"))
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(1), int(5)]),
        ok(Term::Binary(b"\0abc\0".to_vec()))
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(16), int(0)]),
        ok(Term::Binary(vec![]))
    );
    assert_eq!(
        call(
            "buffer_write",
            &[buf.clone(), int(16), Term::Binary(vec![])]
        ),
        ok(Term::atom("ok"))
    );
    // A list of bytes is accepted as data too.
    assert_eq!(
        call(
            "buffer_write",
            &[buf.clone(), int(0), list(vec![int(65), int(66)])]
        ),
        ok(Term::atom("ok"))
    );
    let mut expected = vec![0u8; 16];
    expected[0..2].copy_from_slice(b"AB");
    expected[2..5].copy_from_slice(b"abc");
    expected[13..16].copy_from_slice(b"xyz");
    assert_eq!(
        call("buffer_to_binary", &[buf.clone()]),
        ok(Term::Binary(expected))
    );
    assert_eq!(call("buffer_size", &[buf]), ok(int(16)));
    let empty = new_buffer(0);
    assert_eq!(call("buffer_size", &[empty.clone()]), ok(int(0)));
    assert_eq!(
        call("buffer_to_binary", &[empty.clone()]),
        ok(Term::Binary(vec![]))
    );
    assert_eq!(
        call("buffer_read", &[empty, int(0), int(1)]),
        badarg(
            3,
            "reading 1 bytes at offset 0 runs past the end of a buffer of 0 bytes"
        )
    );
}

#[test]
fn buffer_ranges_are_checked() {
    setup();
    let buf = new_buffer(16);
    assert_eq!(
        call("buffer_write", &[buf.clone(), int(-1), bin("a")]),
        badarg(2, "offset must not be negative, got -1")
    );
    assert_eq!(
        call("buffer_write", &[buf.clone(), int(17), bin("a")]),
        badarg(2, "offset 17 out of range for a buffer of 16 bytes")
    );
    assert_eq!(
        call("buffer_write", &[buf.clone(), int(14), bin("abcd")]),
        badarg(
            3,
            "writing 4 bytes at offset 14 runs past the end of a buffer of 16 bytes"
        )
    );
    assert_eq!(
        call("buffer_write", &[buf.clone(), int(0), Term::atom("a")]),
        badarg(3, "expected a binary, got an atom")
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(0), int(-2)]),
        badarg(3, "length must not be negative, got -2")
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(12), int(5)]),
        badarg(
            3,
            "reading 5 bytes at offset 12 runs past the end of a buffer of 16 bytes"
        )
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(i64::MAX), int(i64::MAX)]),
        badarg(
            2,
            &format!("offset {} out of range for a buffer of 16 bytes", i64::MAX)
        )
    );
    assert_eq!(
        call("buffer_read", &[buf.clone(), int(1), int(i64::MAX)]),
        badarg(
            3,
            &format!(
                "reading {} bytes at offset 1 runs past the end of a buffer of 16 bytes",
                i64::MAX
            )
        )
    );
    let huge = Term::BigInt(rustelixir_nif::etf::BigInt {
        negative: false,
        magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 1].into(),
    });
    assert!(
        matches!(call("buffer_read", &[buf.clone(), huge, int(1)]), Term::Tuple(ref t) if t[0] == Term::atom("error"))
    );
    // Nothing was written by the refused calls.
    assert_eq!(
        call("buffer_to_binary", &[buf]),
        ok(Term::Binary(vec![0; 16]))
    );
}

#[test]
fn buffer_new_refuses_negative_and_absurd_sizes() {
    setup();
    assert_eq!(
        call("buffer_new", &[int(-1)]),
        badarg(1, "size must not be negative, got -1")
    );
    assert_eq!(
        call("buffer_new", &[int((1 << 30) + 1)]),
        badarg(
            1,
            "size 1073741825 is over the maximum buffer size of 1073741824 bytes"
        )
    );
    assert_eq!(
        call("buffer_new", &[int(i64::MAX)]),
        badarg(
            1,
            &format!(
                "size {} is over the maximum buffer size of 1073741824 bytes",
                i64::MAX
            )
        )
    );
    assert_eq!(
        call("buffer_new", &[bin("10")]),
        badarg(1, "expected an integer, got a binary")
    );
}
