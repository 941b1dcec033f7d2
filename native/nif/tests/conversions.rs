//! Conversions at least as permissive as Rustler's: integers where floats are expected,
//! u128, iodata, one-at-a-time list and map iteration, and what an improper list is called.

use rustelixir_nif::etf::{self, BigInt, Term};
use rustelixir_nif::{ArgError, Decoder, Encoder, IoData, ListIterator, MapIterator};

fn bin(s: &str) -> Term {
    Term::Binary(s.as_bytes().to_vec())
}

fn badarg<T: std::fmt::Debug>(r: Result<T, ArgError>) -> String {
    match r {
        Err(ArgError::BadArg(message)) => message,
        other => panic!("not a badarg: {other:?}"),
    }
}

fn roundtrip<T: Encoder + Decoder>(v: &T) -> T {
    let mut out = Vec::new();
    v.encode(&mut out);
    let (term, _) = etf::decode::decode_at_with(&out, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()).unwrap();
    T::decode(&term).unwrap()
}

#[test]
fn a_float_argument_takes_an_integer() {
    assert_eq!(f64::decode(&Term::Int(3)).unwrap() + f64::decode(&Term::Int(-1)).unwrap(), 2.0);
    let two_to_70 = Term::BigInt(BigInt { negative: true, magnitude: [vec![0; 8], vec![64]].concat().into() });
    assert_eq!(f64::decode(&two_to_70).unwrap(), -(2f64.powi(70)));
    assert_eq!(badarg(f64::decode(&Term::atom("x"))), "expected a number, got an atom");
}

#[test]
fn u128_spans_its_whole_range() {
    for v in [0u128, 255, u64::MAX as u128 + 1, i128::MAX as u128, i128::MAX as u128 + 1, u128::MAX] {
        assert_eq!(roundtrip(&v), v);
    }
    let too_big = Term::BigInt(BigInt { negative: false, magnitude: [vec![0; 16], vec![1]].concat().into() });
    assert_eq!(badarg(u128::decode(&too_big)), "integer out of range for u128 (0..=2^128-1)");
    assert_eq!(badarg(u128::decode(&Term::Int(-1))), "integer out of range for u128 (0..=2^128-1)");
    assert_eq!(roundtrip(&i128::MIN), i128::MIN);
}

#[test]
fn an_improper_list_is_named_as_such() {
    let improper = Term::ImproperList(vec![Term::Int(1)].into_boxed_slice(), Box::new(Term::Int(2)));
    assert_eq!(badarg(Vec::<i64>::decode(&improper)), "expected a list, got an improper list");
    assert_eq!(badarg(ListIterator::decode(&improper)), "expected a list, got an improper list");
}

#[test]
fn iodata_is_flattened_as_iodata_to_binary_does() {
    // [1, [2, "ab"], "c" | "d"]
    let nested = Term::List(vec![Term::Int(1), Term::List(vec![Term::Int(2), bin("ab")]), Term::ImproperList(vec![bin("c")].into_boxed_slice(), Box::new(bin("d")))]);
    assert_eq!(IoData::decode(&nested).unwrap(), IoData(b"\x01\x02abcd".to_vec()));
    assert_eq!(IoData::decode(&bin("plain")).unwrap(), IoData(b"plain".to_vec()));
    assert_eq!(IoData::decode(&Term::List(vec![])).unwrap(), IoData(vec![]));
    assert_eq!(badarg(IoData::decode(&Term::List(vec![Term::Int(256)]))), "iolist byte 256 out of range (0..=255)");
    assert_eq!(badarg(IoData::decode(&Term::List(vec![Term::atom("a")]))), "expected a byte, a binary or an iolist in an iolist, got an atom");
    let bad_tail = Term::ImproperList(vec![bin("a")].into_boxed_slice(), Box::new(Term::Int(1)));
    assert_eq!(badarg(IoData::decode(&bad_tail)), "expected a binary as an iolist's tail, got an integer");
    assert_eq!(badarg(IoData::decode(&Term::Int(1))), "expected iodata (a binary or an iolist), got an integer");
    // Deep nesting takes no stack: [[[...["x"]...]]]
    let mut deep = bin("x");
    for _ in 0..100_000 {
        deep = Term::List(vec![deep]);
    }
    assert_eq!(IoData::decode(&deep).unwrap(), IoData(b"x".to_vec()));
}

#[test]
fn lists_and_maps_one_item_at_a_time() {
    let list = Term::List(vec![Term::Int(1), bin("two"), Term::Int(3)]);
    let mut items = ListIterator::decode(&list).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.next_as::<i64>().unwrap().unwrap(), 1);
    assert_eq!(items.next_as::<String>().unwrap().unwrap(), "two");
    assert_eq!(items.next(), Some(Term::Int(3)));
    assert!(items.next_as::<i64>().is_none() && items.is_empty());
    let map = Term::Map(vec![(Term::atom("a"), Term::Int(1)), (Term::atom("b"), bin("x"))]);
    let mut pairs = MapIterator::decode(&map).unwrap();
    assert_eq!(pairs.next_as::<rustelixir_nif::Atom, i64>().unwrap().unwrap(), (rustelixir_nif::Atom::new("a"), 1));
    assert_eq!(badarg(pairs.next_as::<rustelixir_nif::Atom, i64>().unwrap()), "expected an integer, got a binary");
    assert_eq!(badarg(MapIterator::decode(&list)), "expected a map, got a list");
}
