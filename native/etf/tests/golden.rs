//! Golden bytes for every tag, taken from `term_to_binary(T, [{minor_version, 2}])` of a real
//! OTP 25 VM (legacy tags hand-made and checked with `binary_to_term`): each decodes to the
//! expected term, and the term encodes back to the same bytes (legacy tags: to the modern ones).

use rustelixir_etf::{decode, encode, Atom, BigInt, Export, Pid, Port, Reference, Term};

fn big(negative: bool, magnitude: &[u8]) -> Term {
    BigInt::normalized(negative, magnitude)
}

fn golden(bytes: &[u8], expected: Term) {
    let term = decode(bytes).unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
    assert_eq!(term, expected, "decoding {bytes:?}");
    assert_eq!(encode(&term).unwrap(), bytes, "encoding {expected:?}");
}

fn legacy(bytes: &[u8], expected: Term, modern: &[u8]) {
    let term = decode(bytes).unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
    assert_eq!(term, expected, "decoding {bytes:?}");
    assert_eq!(encode(&term).unwrap(), modern, "re-encoding legacy {bytes:?}");
}

#[test]
fn small_int() {
    golden(&[131,97,42], Term::Int(42));
}

#[test]
fn integer_neg() {
    golden(&[131,98,255,255,255,255], Term::Int(-1));
}

#[test]
fn integer_i32() {
    golden(&[131,98,127,255,255,255], Term::Int(2147483647));
}

#[test]
fn small_big_i64() {
    golden(&[131,110,8,0,255,255,255,255,255,255,255,127], Term::Int(i64::MAX));
}

#[test]
fn small_big_neg() {
    golden(&[131,110,8,1,0,0,0,0,0,0,0,128], Term::Int(i64::MIN));
}

#[test]
fn small_big_128() {
    golden(&[131,110,13,0,0,0,0,0,0,0,0,0,0,0,0,0,16], big(false, &{let mut m = vec![0u8; 13]; m[12] = 16; m}));
}

#[test]
fn large_big() {
    golden(&[131,111,0,0,1,7,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,16], big(false, &{let mut m = vec![0u8; 263]; m[262] = 16; m}));
}

#[test]
fn new_float() {
    golden(&[131,70,63,248,0,0,0,0,0,0], Term::Float(1.5));
}

#[test]
fn new_float_neg_zero() {
    golden(&[131,70,128,0,0,0,0,0,0,0], Term::Float(-0.0));
}

#[test]
fn atom_small_utf8() {
    golden(&[131,119,2,111,107], Term::atom("ok"));
}

#[test]
fn atom_unicode() {
    golden(&[131,119,6,104,195,169,108,108,111], Term::atom("héllo"));
}

#[test]
fn atom_utf8_long() {
    golden(&[131,118,1,44,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147,226,156,147], Term::atom(&"\u{2713}".repeat(100)));
}

#[test]
fn binary() {
    golden(&[131,109,0,0,0,3,1,2,3], Term::Binary(vec![1, 2, 3]));
}

#[test]
fn empty_binary() {
    golden(&[131,109,0,0,0,0], Term::Binary(vec![]));
}

#[test]
fn bitstring() {
    golden(&[131,77,0,0,0,1,3,160], Term::BitString { data: vec![160], tail_bits: 3 });
}

#[test]
fn export() {
    golden(&[131,113,119,5,108,105,115,116,115,119,3,109,97,112,97,2], Term::Export(Export { module: Atom::from("lists"), function: Atom::from("map"), arity: 2 }));
}

#[test]
fn nil() {
    golden(&[131,106], Term::nil());
}

#[test]
fn string() {
    golden(&[131,107,0,3,97,98,99], Term::List(vec![Term::Int(97), Term::Int(98), Term::Int(99)]));
}

#[test]
fn list() {
    golden(&[131,108,0,0,0,2,97,1,98,0,0,3,232,106], Term::List(vec![Term::Int(1), Term::Int(1000)]));
}

#[test]
fn improper() {
    golden(&[131,108,0,0,0,1,97,1,97,2], Term::ImproperList(vec![Term::Int(1)], Box::new(Term::Int(2))));
}

#[test]
fn small_tuple() {
    golden(&[131,104,2,119,1,97,97,1], Term::Tuple(vec![Term::atom("a"), Term::Int(1)]));
}

#[test]
fn empty_tuple() {
    golden(&[131,104,0], Term::Tuple(vec![]));
}

#[test]
fn large_tuple() {
    golden(&[131,105,0,0,1,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0,97,0], Term::Tuple((0..256).map(|_| Term::Int(0)).collect()));
}

#[test]
fn map() {
    golden(&[131,116,0,0,0,1,119,1,97,97,1], Term::Map(vec![(Term::atom("a"), Term::Int(1))]));
}

#[test]
fn empty_map() {
    golden(&[131,116,0,0,0,0], Term::Map(vec![]));
}

#[test]
fn pid() {
    golden(&[131,88,119,3,97,64,98,0,0,0,1,0,0,0,2,0,0,0,3], Term::Pid(Pid { node: Atom::from("a@b"), id: 1, serial: 2, creation: 3 }));
}

#[test]
fn port_v4() {
    golden(&[131,120,119,3,97,64,98,0,0,0,1,0,0,0,0,0,0,0,3], Term::Port(Port::new(Atom::from("a@b"), 1 << 32, 3)));
}

#[test]
fn ref3() {
    golden(&[131,90,0,3,119,3,97,64,98,0,0,0,3,0,0,0,1,0,0,0,2,0,0,0,3], Term::Ref(Reference { node: Atom::from("a@b"), creation: 3, ids: vec![1, 2, 3] }));
}

#[test]
fn new_fun_round_trips_byte_exact() {
    let bytes: &[u8] = &[131,112,0,0,0,72,1,170,249,224,124,194,189,120,1,241,98,2,189,87,70,95,78,0,0,0,0,0,0,0,0,119,6,103,111,108,100,101,110,97,0,98,5,87,207,3,88,119,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0];
    let term = decode(bytes).unwrap();
    let Term::Fun(fun) = &term else { panic!("not a fun") };
    assert_eq!(fun.module, Atom::from("golden"));
    assert_eq!(fun.arity, 1);
    assert!(fun.free_vars.is_empty()); // the compiler folded Y = 7 into the body
    assert_eq!(encode(&term).unwrap(), bytes);
}

#[test]
fn compressed_decodes_to_the_term() {
    let bytes: &[u8] = &[131,80,0,0,1,0,120,156,203,97,96,96,48,74,98,96,96,126,49,34,137,44,0,143,5,66,19];
    assert_eq!(decode(bytes).unwrap(), Term::List((0..50).map(|_| Term::Int(1000)).collect()));
}

#[test]
fn legacy_atoms_are_latin1() {
    legacy(&[131, 100, 0, 2, b'o', b'k'], Term::atom("ok"), &[131, 119, 2, b'o', b'k']);
    legacy(&[131, 115, 1, 0xe9], Term::atom("é"), &[131, 119, 2, 0xc3, 0xa9]);
}

#[test]
fn legacy_float_ext() {
    let mut bytes = vec![131, 99];
    let mut text = b"1.50000000000000000000e+00".to_vec();
    text.resize(31, 0);
    bytes.extend_from_slice(&text);
    legacy(&bytes, Term::Float(1.5), &[131, 70, 63, 248, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn legacy_identifiers_widen_creation() {
    let node = [119, 3, b'a', b'@', b'b'];
    let pid = [&[131, 103][..], &node, &[0, 0, 0, 1, 0, 0, 0, 2, 3]].concat();
    let pid_modern = [&[131, 88][..], &node, &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]].concat();
    legacy(&pid, Term::Pid(Pid { node: Atom::from("a@b"), id: 1, serial: 2, creation: 3 }), &pid_modern);

    let port = [&[131, 102][..], &node, &[0, 0, 0, 9, 3]].concat();
    let port_modern = [&[131, 89][..], &node, &[0, 0, 0, 9, 0, 0, 0, 3]].concat();
    legacy(&port, Term::Port(Port::new(Atom::from("a@b"), 9, 3)), &port_modern);
    // NEW_PORT_EXT (OTP 25 for small ids) is written back as it came.
    golden(&port_modern, Term::Port(Port::new(Atom::from("a@b"), 9, 3)));

    let r = [&[131, 101][..], &node, &[0, 0, 0, 9, 3]].concat();
    let r_modern = [&[131, 90, 0, 1][..], &node, &[0, 0, 0, 3, 0, 0, 0, 9]].concat();
    legacy(&r, Term::Ref(Reference { node: Atom::from("a@b"), creation: 3, ids: vec![9] }), &r_modern);

    let nr = [&[131, 114, 0, 2][..], &node, &[3, 0, 0, 0, 1, 0, 0, 0, 2]].concat();
    let nr_modern = [&[131, 90, 0, 2][..], &node, &[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2]].concat();
    legacy(&nr, Term::Ref(Reference { node: Atom::from("a@b"), creation: 3, ids: vec![1, 2] }), &nr_modern);
}

#[test]
fn newer_reference_with_five_words() {
    let bytes = [&[131, 90, 0, 5, 119, 3, b'a', b'@', b'b', 0, 0, 0, 1][..], &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]].concat();
    golden(&bytes, Term::Ref(Reference { node: Atom::from("a@b"), creation: 1, ids: vec![1, 2, 3, 4, 5] }));
}

#[test]
fn small_big_that_fits_is_canonicalized() {
    // 5 written as an 8-byte SMALL_BIG_EXT: the VM reads it as 5 and writes SMALL_INTEGER_EXT.
    legacy(&[131, 110, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0], Term::Int(5), &[131, 97, 5]);
}
