//! Golden bytes for every tag of the External Term Format.
//!
//! The files in `tests/golden/` were written by a real OTP 25 VM (`golden/golden_gen.erl`
//! says how): `<name>.bin` is `term_to_binary(T, [{minor_version, 2}])`. Each one must decode
//! to the expected `Term`, and that `Term` (both as built here and as decoded) must encode to
//! exactly those bytes.
//!
//! Legacy and non-canonical encodings (ATOM_EXT, FLOAT_EXT, PID_EXT, PORT_EXT, REFERENCE_EXT,
//! NEW_REFERENCE_EXT, over-long bigs, ...) cannot be had from `term_to_binary`, so they are
//! written out by hand below; `golden_gen.erl` fed the same bytes to `binary_to_term` (the VM
//! accepts every one of them) and wrote what `term_to_binary` makes of the result to
//! `golden/legacy_<name>.bin`: the canonical modern bytes the codec must re-encode them to.

use rustelixir_etf::{decode, encode, Atom, BigInt, Export, Fun, Pid, Port, Reference, Term};

macro_rules! vm {
    ($name:expr) => {
        &include_bytes!(concat!("golden/", $name, ".bin"))[..]
    };
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn int(v: i64) -> Term {
    Term::Int(v)
}

fn big(negative: bool, magnitude_le: &[u8]) -> Term {
    let t = BigInt::normalized(negative, magnitude_le);
    assert!(matches!(t, Term::BigInt(_)), "{magnitude_le:?} fits an i64");
    t
}

/// The magnitude of 2^bit, little-endian.
fn pow2(bit: usize) -> Vec<u8> {
    let mut m = vec![0u8; bit / 8 + 1];
    m[bit / 8] = 1 << (bit % 8);
    m
}

fn atom(name: &str) -> Term {
    Term::atom(name)
}

fn ints(v: impl IntoIterator<Item = i64>) -> Vec<Term> {
    v.into_iter().map(Term::Int).collect()
}

fn proper(items: Vec<Term>) -> Term {
    Term::List(items)
}

fn tuple(items: Vec<Term>) -> Term {
    Term::Tuple(items)
}

fn improper_list(items: Vec<Term>, tail: Term) -> Term {
    Term::improper_list(items, tail)
}

fn map(pairs: Vec<(Term, Term)>) -> Term {
    Term::Map(pairs)
}

fn binary(data: &[u8]) -> Term {
    Term::Binary(data.to_vec())
}

fn node(name: &str) -> Atom {
    Atom::from(name)
}

/// Decoded terms compare with `==` (exact equality: `1 =/= 1.0`, `0.0 =/= -0.0`); maps
/// compare regardless of pair order, so the order is checked separately where it matters.
fn golden(bytes: &[u8], expected: Term) -> Term {
    assert_eq!(bytes[0], 131);
    let decoded = decode(bytes).unwrap_or_else(|e| panic!("decoding {bytes:?}: {e}"));
    assert_eq!(decoded, expected, "decoding {bytes:?}");
    assert_eq!(encode(&expected).unwrap(), bytes, "encoding the expected {expected:?}");
    assert_eq!(encode(&decoded).unwrap(), bytes, "re-encoding the decoded {decoded:?}");
    decoded
}

/// A hand-made legacy/non-canonical input: decodes to `expected`, which encodes to `modern`
/// (what the VM's `term_to_binary(binary_to_term(input))` gives).
fn legacy(input: &[u8], expected: Term, modern: &[u8]) -> Term {
    assert_ne!(input, modern, "not a legacy encoding");
    let decoded = decode(input).unwrap_or_else(|e| panic!("decoding legacy {input:?}: {e}"));
    assert_eq!(decoded, expected, "decoding legacy {input:?}");
    assert_eq!(encode(&decoded).unwrap(), modern, "re-encoding legacy {input:?}");
    // ... and the modern bytes are golden in their own right.
    assert_eq!(decode(modern).unwrap(), expected);
    decoded
}

/// Tests each `name => term`: `golden/<name>.bin` decodes to the term and back.
macro_rules! golden_tests {
    ($($name:ident => $term:expr;)*) => {
        $(
            #[test]
            fn $name() {
                golden(vm!(stringify!($name)), $term);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// Integers: SMALL_INTEGER_EXT (97), INTEGER_EXT (98), SMALL_BIG_EXT (110), LARGE_BIG_EXT (111)
// ---------------------------------------------------------------------------------------

golden_tests! {
    small0 => int(0);
    small255 => int(255);
    int256 => int(256);
    intm1 => int(-1);
    i32max => int(i32::MAX as i64);
    i32min => int(i32::MIN as i64);
    i32max1 => int(i32::MAX as i64 + 1);
    i32min1 => int(i32::MIN as i64 - 1);
    i64max => int(i64::MAX);
    i64min => int(i64::MIN);
    i64max1 => big(false, &pow2(63));
    i64min1 => big(true, &[1, 0, 0, 0, 0, 0, 0, 128]);
    u64max => big(false, &[0xff; 8]);
    big2_100 => big(false, &pow2(100));
    negbig2_100 => big(true, &pow2(100));
    // 2^2040 - 1: the largest SMALL_BIG_EXT (255 magnitude bytes).
    big255b => big(false, &[0xff; 255]);
    // 2^2040: the smallest LARGE_BIG_EXT (256 bytes), and a negative one of 263 bytes.
    big256b => big(false, &pow2(2040));
    neglarge => big(true, &pow2(2100));
}

#[test]
fn integer_tags_are_the_smallest_that_fit() {
    let tag = |b: &[u8]| b[1];
    assert_eq!(tag(vm!("small255")), 97);
    assert_eq!(tag(vm!("int256")), 98);
    assert_eq!(tag(vm!("i32min")), 98);
    assert_eq!(tag(vm!("i32max1")), 110);
    assert_eq!(tag(vm!("big255b")), 110);
    assert_eq!(tag(vm!("big256b")), 111);
    assert!(vm!("neglarge").len() > 255 + 7);
    assert_eq!(&vm!("neglarge")[1..7], &[111, 0, 0, 1, 7, 1], "263 magnitude bytes, negative");
}

// ---------------------------------------------------------------------------------------
// Floats: NEW_FLOAT_EXT (70)
// ---------------------------------------------------------------------------------------

golden_tests! {
    f15 => Term::Float(1.5);
    fm0 => Term::Float(-0.0);
    f0 => Term::Float(0.0);
    fpi => Term::Float(std::f64::consts::PI);
    fmax => Term::Float(f64::MAX);
    fmin => Term::Float(f64::from_bits(1)); // 5e-324, the smallest subnormal
    fneg => Term::Float(-2.5e-10);
}

#[test]
fn zero_and_negative_zero_are_different_terms() {
    assert_ne!(decode(vm!("f0")).unwrap(), decode(vm!("fm0")).unwrap());
    assert_ne!(decode(vm!("f0")).unwrap(), decode(vm!("small0")).unwrap());
}

// ---------------------------------------------------------------------------------------
// Atoms: SMALL_ATOM_UTF8_EXT (119), ATOM_UTF8_EXT (118)
// ---------------------------------------------------------------------------------------

golden_tests! {
    atom_ok => atom("ok");
    atom_empty => atom("");
    atom_uni => atom("héllo");
    atom_true => atom("true");
    // 100 characters, 300 bytes: ATOM_UTF8_EXT.
    atom_long => atom(&"\u{2713}".repeat(100));
    // 255 bytes: still SMALL_ATOM_UTF8_EXT.
    atom255 => atom(&"a".repeat(255));
    // The longest atom there is: 255 characters, 510 bytes.
    atom_255uni => atom(&"é".repeat(255));
}

#[test]
fn atom_tags() {
    assert_eq!(&vm!("atom255")[1..3], &[119, 255]);
    assert_eq!(&vm!("atom_long")[1..4], &[118, 1, 44]);
    assert_eq!(&vm!("atom_255uni")[1..4], &[118, 1, 254]);
}

// ---------------------------------------------------------------------------------------
// BINARY_EXT (109), BIT_BINARY_EXT (77)
// ---------------------------------------------------------------------------------------

golden_tests! {
    bin => binary(&[1, 2, 3]);
    bin_empty => binary(&[]);
    // <<5:3>>
    bits3 => Term::bitstring(vec![0b1010_0000], 3);
    // <<255, 1:1>>
    bits9 => Term::bitstring(vec![255, 0b1000_0000], 1);
    // <<16#7f:7>>
    bits7 => Term::bitstring(vec![0b1111_1110], 7);
}

#[test]
fn bitstring_unused_bits_are_zeroed_when_encoding() {
    // The same <<5:3>> held with garbage in the low bits encodes like the VM's.
    let dirty = Term::bitstring(vec![0b1011_1111], 3);
    assert_eq!(encode(&dirty).unwrap(), vm!("bits3"));
}

// ---------------------------------------------------------------------------------------
// SMALL_TUPLE_EXT (104), LARGE_TUPLE_EXT (105)
// ---------------------------------------------------------------------------------------

golden_tests! {
    tuple0 => tuple(vec![]);
    tuple2 => tuple(vec![atom("a"), int(1)]);
    tuple255 => tuple(ints(1..=255));
    tuple256 => tuple(ints(vec![0; 256]));
}

#[test]
fn tuple_tags() {
    assert_eq!(&vm!("tuple255")[1..3], &[104, 255]);
    assert_eq!(&vm!("tuple256")[1..6], &[105, 0, 0, 1, 0]);
}

// ---------------------------------------------------------------------------------------
// NIL_EXT (106), STRING_EXT (107), LIST_EXT (108)
// ---------------------------------------------------------------------------------------

golden_tests! {
    nil => Term::nil();
    string => proper(ints([97, 98, 99]));
    string_bytes => proper(ints([0, 255, 128]));
    list => proper(ints([1, 1000]));
    list_nested => proper(vec![proper(ints([1])), atom("a")]);
    list_neg => proper(ints([1, -1]));
    list_256 => proper(ints([1, 256]));
    improper => improper_list(ints([1]), int(2));
    improper2 => improper_list(vec![atom("a"), atom("b")], atom("c"));
    improper_bin => improper_list(ints([1]), binary(b"x"));
    // 65535 bytes: the longest STRING_EXT; one more and it is a LIST_EXT.
    string_long => proper(ints(vec![7; 65535]));
    list_long => proper(ints(vec![7; 65536]));
}

#[test]
fn list_tags() {
    assert_eq!(&vm!("string_long")[1..4], &[107, 255, 255]);
    assert_eq!(&vm!("list_long")[1..6], &[108, 0, 1, 0, 0]);
    assert_eq!(*vm!("list_long").last().unwrap(), 106);
    assert_eq!(vm!("improper")[1], 108);
    assert_ne!(*vm!("improper").last().unwrap(), 106);
}

// ---------------------------------------------------------------------------------------
// MAP_EXT (116)
// ---------------------------------------------------------------------------------------

fn map_num_pairs() -> Vec<(Term, Term)> {
    // In the VM's order: integers (bignums included) first, then floats.
    vec![
        (int(-1), atom("e")),
        (int(1), atom("a")),
        (int(2), atom("c")),
        (big(false, &pow2(70)), atom("g")),
        (Term::Float(0.5), atom("d")),
        (Term::Float(1.0), atom("b")),
        (Term::Float(3.0), atom("f")),
    ]
}

fn map_mixed_pairs() -> Vec<(Term, Term)> {
    // number < atom < tuple < map < [] < list < binary
    vec![
        (int(1), int(4)),
        (Term::Float(2.0), int(8)),
        (atom("x"), int(7)),
        (tuple(vec![]), int(3)),
        (map(vec![]), int(6)),
        (Term::nil(), int(2)),
        (proper(vec![atom("a")]), int(5)),
        (binary(b"b"), int(1)),
    ]
}

fn map_atoms_pairs() -> Vec<(Term, Term)> {
    vec![(atom("a"), int(2)), (atom("b"), int(1)), (atom("c"), int(3))]
}

golden_tests! {
    map0 => map(vec![]);
    map1 => map(vec![(atom("a"), int(1))]);
    map_num => map(map_num_pairs());
    map_mixed => map(map_mixed_pairs());
    map_atoms => map(map_atoms_pairs());
}

fn keys_of(t: &Term) -> Vec<Term> {
    let Term::Map(pairs) = t else { panic!("not a map: {t:?}") };
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

#[test]
fn small_maps_come_from_the_vm_in_the_order_of_term_ord() {
    // OTP 25 writes maps of up to 32 keys sorted in map-key order, which is `Term`'s `Ord`
    // (all integers before all floats). Decoding keeps that order ...
    for (bytes, pairs) in [
        (vm!("map_num"), map_num_pairs()),
        (vm!("map_mixed"), map_mixed_pairs()),
        (vm!("map_atoms"), map_atoms_pairs()),
    ] {
        let decoded = decode(bytes).unwrap();
        let keys = keys_of(&decoded);
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "the VM's key order is Term's Ord");
        assert_eq!(keys, pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
        // ... and any order of the same pairs, sorted by key, encodes to the VM's bytes.
        let mut scrambled = pairs.clone();
        scrambled.reverse();
        scrambled.rotate_left(2);
        scrambled.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(encode(&map(scrambled)).unwrap(), bytes);
    }
}

#[test]
fn map_equality_ignores_pair_order_but_encoding_keeps_it() {
    let mut reversed = map_atoms_pairs();
    reversed.reverse();
    let reversed = map(reversed);
    assert_eq!(reversed, map(map_atoms_pairs()));
    // The encoder writes pairs in the order held (documented in encode.rs: the VM's order of
    // atoms is not knowable from outside from OTP 26 on), so only a sorted map gives the
    // VM's bytes; `binary_to_term` accepts any order.
    assert_eq!(
        encode(&reversed).unwrap(),
        [&[131, 116, 0, 0, 0, 3][..], &[119, 1, b'c', 97, 3, 119, 1, b'b', 97, 1, 119, 1, b'a', 97, 2]].concat()
    );
}

#[test]
fn map_of_33_keys_is_in_hash_order_and_round_trips() {
    // Over 32 keys the VM writes a hash map in its hash order: decoding keeps that order
    // and re-encoding gives the same bytes.
    let expected = map((1..=33).map(|i| (int(i), int(i))).collect());
    let decoded = golden(vm!("map33"), decode(vm!("map33")).unwrap());
    assert_eq!(decoded, expected);
    let keys = keys_of(&decoded);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_ne!(keys, sorted, "hash order, not key order");
}

// ---------------------------------------------------------------------------------------
// NEW_PID_EXT (88), NEW_PORT_EXT (89), V4_PORT_EXT (120), NEWER_REFERENCE_EXT (90)
// ---------------------------------------------------------------------------------------

golden_tests! {
    pid => Term::from(Pid { node: node("nonode@nohost"), id: 77, serial: 5, creation: 0 });
    // OTP 25 writes NEW_PORT_EXT for a port id that fits; the decoded Port remembers that.
    port => Term::from(Port { node: node("nonode@nohost"), id: 5, creation: 0, new_port_ext: true });
    reference => Term::from(Reference { node: node("nonode@nohost"), creation: 0, ids: vec![3, 2, 1] });
}

#[test]
fn decoded_ports_remember_their_tag() {
    let decoded = decode(vm!("port")).unwrap();
    let Term::Port(p) = &decoded else { panic!() };
    assert!(p.new_port_ext);
    // A port built with Port::new is written as V4_PORT_EXT (the OTP 26+ form).
    let built = Term::from(Port::new(node("nonode@nohost"), 5, 0));
    assert_eq!(encode(&built).unwrap()[1], 120);
    assert_eq!(built, decoded, "the tag is not part of a port's identity");
}

#[test]
fn v4_port_with_a_64_bit_id() {
    let n = [119, 3, b'a', b'@', b'b'];
    let bytes = [&[131, 120][..], &n, &[0, 0, 0, 1, 0, 0, 0, 0], &[0, 0, 0, 3]].concat();
    assert_eq!(vm!("legacy_v4_port_ext"), &bytes[..], "the VM writes it back unchanged");
    golden(&bytes, Term::from(Port::new(node("a@b"), 1 << 32, 3)));
    // Even a port that asks for NEW_PORT_EXT gets V4_PORT_EXT when its id needs 64 bits.
    let wide = Term::from(Port { node: node("a@b"), id: 1 << 32, creation: 3, new_port_ext: true });
    assert_eq!(encode(&wide).unwrap(), bytes);
}

#[test]
fn newer_references_of_one_four_and_five_words() {
    let n = [119, 3, b'a', b'@', b'b'];
    for words in [1u32, 4, 5] {
        let mut bytes = [&[131, 90, 0, words as u8][..], &n, &[0, 0, 0, 1]].concat();
        for id in 1..=words {
            bytes.extend_from_slice(&id.to_be_bytes());
        }
        let modern = match words {
            1 => vm!("legacy_newer_ref1"),
            4 => vm!("legacy_newer_ref4"),
            _ => vm!("legacy_newer_ref5"),
        };
        assert_eq!(modern, &bytes[..], "the VM writes it back unchanged");
        golden(&bytes, Term::from(Reference { node: node("a@b"), creation: 1, ids: (1..=words).collect() }));
    }
}

// ---------------------------------------------------------------------------------------
// NEW_FUN_EXT (112), EXPORT_EXT (113)
// ---------------------------------------------------------------------------------------

fn fun_of(t: &Term) -> &Fun {
    let Term::Fun(f) = t else { panic!("not a fun: {t:?}") };
    f
}

#[test]
fn fun_with_one_free_variable() {
    // golden_gen:adder(7) = fun(X) -> X + Y end with Y bound to 7.
    let bytes = vm!("fun_adder");
    let t = decode(bytes).unwrap();
    let f = fun_of(&t);
    assert_eq!(f.module, node("golden_gen"));
    assert_eq!(f.arity, 1);
    assert_eq!(f.index, 0);
    assert_eq!(f.old_index, 0);
    assert_eq!(f.pid.node, node("nonode@nohost"));
    assert_eq!(f.free_vars, vec![int(7)]);
    assert_eq!(encode(&t).unwrap(), bytes, "byte-exact round trip");
    // Built from its fields, it encodes the same.
    let rebuilt = Term::from(Fun { free_vars: vec![int(7)], ..f.clone() });
    assert_eq!(encode(&rebuilt).unwrap(), bytes);
    // Another environment changes the bytes (and the Size field) accordingly.
    let other = Term::from(Fun { free_vars: vec![int(1000)], ..f.clone() });
    let other_bytes = encode(&other).unwrap();
    assert_eq!(other_bytes.len(), bytes.len() + 3);
    assert_eq!(decode(&other_bytes).unwrap(), other);
}

#[test]
fn fun_with_two_free_variables() {
    // golden_gen:tagger(<<"bin">>, [x, {y}])
    let bytes = vm!("fun_tagger");
    let t = decode(bytes).unwrap();
    let f = fun_of(&t);
    assert_eq!((f.arity, f.index), (1, 1));
    assert_eq!(f.free_vars, vec![binary(b"bin"), proper(vec![atom("x"), tuple(vec![atom("y")])])]);
    assert_eq!(encode(&t).unwrap(), bytes);
    // Funs of one module share its uniq.
    assert_eq!(f.uniq, fun_of(&decode(vm!("fun_adder")).unwrap()).uniq);
}

#[test]
fn fun_without_environment() {
    let bytes = vm!("fun_noenv");
    let t = decode(bytes).unwrap();
    let f = fun_of(&t);
    assert_eq!((f.arity, f.index), (0, 2));
    assert!(f.free_vars.is_empty());
    assert_eq!(encode(&t).unwrap(), bytes);
}

#[test]
fn fun_made_by_erl_eval() {
    // What `erl -eval 'Y = 7, term_to_binary(fun(X) -> X + Y end)'` gives: an erl_eval closure
    // whose one free variable holds the bindings and the fun's abstract code.
    let bytes = vm!("fun_eval");
    let t = decode(bytes).unwrap();
    let f = fun_of(&t);
    assert_eq!(f.module, node("erl_eval"));
    assert_eq!(f.arity, 1);
    assert_eq!(f.free_vars.len(), 1);
    let Term::Tuple(env) = &f.free_vars[0] else { panic!("{:?}", f.free_vars) };
    // OTP 25's layout: {1, Bindings, LocalFunHandler, ExternalFunHandler, #{}, Clauses}.
    assert_eq!(env.len(), 6);
    assert_eq!(env[1], proper(vec![tuple(vec![atom("Y"), int(7)])]));
    assert_eq!(encode(&t).unwrap(), bytes, "byte-exact round trip");
}

golden_tests! {
    export => Term::from(Export { module: node("lists"), function: node("map"), arity: 2 });
}

// ---------------------------------------------------------------------------------------
// Compressed terms (80)
// ---------------------------------------------------------------------------------------

#[test]
fn compressed_terms_decode_to_the_term() {
    let t1 = proper(ints(vec![1000; 50]));
    let t2 = tuple(vec![proper(ints(1..=300)), binary(&[0; 1000]), atom("héllo"), big(false, &pow2(100))]);
    for (compressed, plain, expected) in
        [(vm!("compressed1"), vm!("uncompressed1"), t1), (vm!("compressed2"), vm!("uncompressed2"), t2)]
    {
        assert_eq!(compressed[1], 80);
        assert!(compressed.len() < plain.len());
        let claimed = u32::from_be_bytes(compressed[2..6].try_into().unwrap()) as usize;
        assert_eq!(claimed, plain.len() - 1, "the size field counts the term without its version byte");
        let decoded = decode(compressed).unwrap();
        assert_eq!(decoded, expected);
        // The codec does not compress: it writes the term as term_to_binary/1 without options.
        assert_eq!(encode(&decoded).unwrap(), plain);
        golden(plain, expected);
    }
}

// ---------------------------------------------------------------------------------------
// Legacy encodings, canonicalized on decoding
// ---------------------------------------------------------------------------------------

fn float_ext(text: &str) -> Vec<u8> {
    let mut b = vec![131, 99];
    let mut t = text.as_bytes().to_vec();
    assert!(t.len() < 31);
    t.resize(31, 0);
    b.extend_from_slice(&t);
    b
}

#[test]
fn legacy_float_ext() {
    // As C's "%.20e" (what old VMs wrote), and as Erlang's own ~.20e.
    legacy(&float_ext("1.50000000000000000000e+00"), Term::Float(1.5), vm!("legacy_float_c"));
    assert_eq!(vm!("legacy_float_c"), vm!("f15"));
    legacy(&float_ext("3.1415926535897931160e+0"), Term::Float(std::f64::consts::PI), vm!("legacy_float_erl"));
    assert_eq!(vm!("legacy_float_erl"), vm!("fpi"));
    legacy(&float_ext("-2.50000000000000000000e-10"), Term::Float(-2.5e-10), vm!("legacy_float_neg"));
}

#[test]
fn legacy_latin1_atoms() {
    // ATOM_EXT (100) and SMALL_ATOM_EXT (115) hold Latin-1: bytes >= 128 are U+0080..U+00FF.
    legacy(&[131, 100, 0, 2, b'o', b'k'], atom("ok"), vm!("legacy_atom_ext"));
    legacy(&[131, 100, 0, 5, b'h', 0xe9, b'l', b'l', b'o'], atom("héllo"), vm!("legacy_atom_ext_latin1"));
    assert_eq!(vm!("legacy_atom_ext_latin1"), vm!("atom_uni"));
    legacy(&[131, 100, 0, 1, 0xff], atom("ÿ"), vm!("legacy_atom_ext_ff"));
    legacy(&[131, 115, 1, 0xe9], atom("é"), vm!("legacy_small_atom_ext"));
    // Legacy atoms inside other terms.
    legacy(
        &[131, 113, 100, 0, 1, b'm', 115, 1, b'f', 97, 1],
        Term::from(Export { module: node("m"), function: node("f"), arity: 1 }),
        vm!("legacy_export_old_atoms"),
    );
}

const NODE: [u8; 5] = [119, 3, b'a', b'@', b'b'];

fn with_node(head: &[u8], tail: &[u8]) -> Vec<u8> {
    [head, &NODE, tail].concat()
}

#[test]
fn legacy_pid_ext() {
    legacy(
        &with_node(&[131, 103], &[0, 0, 0, 1, 0, 0, 0, 2, 3]),
        Term::from(Pid { node: node("a@b"), id: 1, serial: 2, creation: 3 }),
        vm!("legacy_pid_ext"),
    );
}

#[test]
fn legacy_port_ext_and_new_port_ext() {
    let expected = Term::from(Port { node: node("a@b"), id: 9, creation: 3, new_port_ext: true });
    // PORT_EXT (102) becomes NEW_PORT_EXT, as OTP 25 writes it.
    legacy(&with_node(&[131, 102], &[0, 0, 0, 9, 3]), expected.clone(), vm!("legacy_port_ext"));
    // NEW_PORT_EXT (89) is written back as it came.
    let new_port = with_node(&[131, 89], &[0, 0, 0, 9, 0, 0, 0, 3]);
    assert_eq!(vm!("legacy_new_port_ext"), &new_port[..]);
    golden(&new_port, expected);
}

#[test]
fn v4_port_with_a_small_id_stays_v4() {
    // OTP 25 writes this port back as NEW_PORT_EXT; the codec keeps the V4_PORT_EXT it came
    // in (Port::new_port_ext is false), which OTP 26+ writes for every port. Same term.
    let input = with_node(&[131, 120], &[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3]);
    let t = decode(&input).unwrap();
    assert_eq!(t, decode(vm!("legacy_v4_port_small")).unwrap());
    assert_eq!(vm!("legacy_v4_port_small")[1], 89);
    assert_eq!(encode(&t).unwrap(), input);
}

#[test]
fn legacy_references() {
    let r = |creation, ids: Vec<u32>| Term::from(Reference { node: node("a@b"), creation, ids });
    // REFERENCE_EXT (101): one id word, 8-bit creation.
    legacy(&with_node(&[131, 101], &[0, 0, 0, 9, 3]), r(3, vec![9]), vm!("legacy_ref_ext"));
    // NEW_REFERENCE_EXT (114): 8-bit creation.
    legacy(&with_node(&[131, 114, 0, 2], &[3, 0, 0, 0, 1, 0, 0, 0, 2]), r(3, vec![1, 2]), vm!("legacy_new_ref_ext"));
    legacy(
        &with_node(&[131, 114, 0, 3], &[3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
        r(3, vec![1, 2, 3]),
        vm!("legacy_new_ref_ext3"),
    );
}

#[test]
fn non_canonical_integers() {
    legacy(&[131, 110, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0], int(5), vm!("legacy_big_nonminimal"));
    legacy(&[131, 110, 0, 0], int(0), vm!("legacy_big_zero"));
    legacy(&[131, 110, 0, 1], int(0), vm!("legacy_big_neg_zero"));
    legacy(&[131, 111, 0, 0, 0, 1, 0, 5], int(5), vm!("legacy_large_big_small"));
    legacy(&[131, 111, 0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128], int(i64::MIN), vm!("legacy_big_i64_as_large"));
    legacy(&[131, 98, 0, 0, 0, 5], int(5), vm!("legacy_integer_small"));
}

#[test]
fn non_canonical_containers() {
    legacy(&[131, 105, 0, 0, 0, 2, 97, 1, 97, 2], tuple(ints([1, 2])), vm!("legacy_large_tuple_small"));
    legacy(&[131, 77, 0, 0, 0, 0, 0], binary(&[]), vm!("legacy_bits_empty"));
    legacy(&[131, 77, 0, 0, 0, 1, 8, 5], binary(&[5]), vm!("legacy_bits_whole_byte"));
    legacy(
        &[131, 77, 0, 0, 0, 1, 3, 0xff],
        Term::bitstring(vec![0b1110_0000], 3),
        vm!("legacy_bits_dirty"),
    );
    // A list whose tail is another list (or a string) is one list.
    legacy(&[131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106], proper(ints([1, 2])), vm!("legacy_list_split_tail"));
    legacy(&[131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 2, 3], proper(ints([1, 2, 3])), vm!("legacy_list_string_tail"));
    // A LIST_EXT of no elements is its tail.
    legacy(&[131, 108, 0, 0, 0, 0, 97, 1], int(1), vm!("legacy_list_empty_with_tail"));
    legacy(&[131, 108, 0, 0, 0, 0, 106], Term::nil(), vm!("legacy_list_empty_nil"));
    legacy(&[131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 106], proper(ints([1, 2])), vm!("legacy_list_of_bytes"));
    legacy(&[131, 107, 0, 0], Term::nil(), vm!("legacy_string_empty"));
}

#[test]
fn unsorted_map_keeps_its_order() {
    // The VM accepts pairs in any order and writes them sorted; the codec keeps the order
    // they came in (see encode.rs), so the term is the same but the bytes are not.
    let input = [131, 116, 0, 0, 0, 2, 119, 1, b'b', 97, 1, 119, 1, b'a', 97, 2];
    let t = decode(&input).unwrap();
    assert_eq!(t, map(vec![(atom("a"), int(2)), (atom("b"), int(1))]));
    assert_eq!(t, decode(vm!("legacy_map_unsorted")).unwrap());
    assert_eq!(encode(&t).unwrap(), input);
    assert_eq!(keys_of(&t), vec![atom("b"), atom("a")]);
}

// ---------------------------------------------------------------------------------------
// Every tag is covered
// ---------------------------------------------------------------------------------------

#[test]
fn every_decodable_tag_has_a_golden_case() {
    use rustelixir_etf::tags::*;
    let mut seen = std::collections::BTreeSet::new();
    let mut note = |b: &[u8]| {
        seen.insert(b[1]);
    };
    for b in [
        vm!("small0"), vm!("int256"), vm!("big2_100"), vm!("big256b"), vm!("f15"), vm!("atom_ok"),
        vm!("atom_long"), vm!("bin"), vm!("bits3"), vm!("tuple2"), vm!("tuple256"), vm!("nil"),
        vm!("string"), vm!("list"), vm!("map1"), vm!("pid"), vm!("port"), vm!("reference"),
        vm!("fun_adder"), vm!("export"), vm!("compressed1"), vm!("legacy_v4_port_ext"),
    ] {
        note(b);
    }
    for b in [
        float_ext("1.5"),
        vec![131, 100, 0, 0],
        vec![131, 115, 0],
        with_node(&[131, 103], &[0; 9]),
        with_node(&[131, 102], &[0; 5]),
        with_node(&[131, 101], &[0; 5]),
        with_node(&[131, 114, 0, 1], &[0; 5]),
    ] {
        decode(&b).unwrap();
        note(&b);
    }
    let all = [
        COMPRESSED, NEW_FLOAT_EXT, BIT_BINARY_EXT, NEW_PID_EXT, NEW_PORT_EXT, NEWER_REFERENCE_EXT,
        SMALL_INTEGER_EXT, INTEGER_EXT, FLOAT_EXT, ATOM_EXT, REFERENCE_EXT, PORT_EXT, PID_EXT,
        SMALL_TUPLE_EXT, LARGE_TUPLE_EXT, NIL_EXT, STRING_EXT, LIST_EXT, BINARY_EXT, SMALL_BIG_EXT,
        LARGE_BIG_EXT, NEW_FUN_EXT, EXPORT_EXT, NEW_REFERENCE_EXT, SMALL_ATOM_EXT, MAP_EXT,
        ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT, V4_PORT_EXT,
    ];
    for tag in all {
        assert!(seen.contains(&tag), "no golden case for tag {tag}");
    }
    // The three tags a standalone term may not use (ATOM_CACHE_REF, FUN_EXT, LOCAL_EXT) are
    // refused; see malformed.rs.
}
