//! Bad input: every error is a `DecodeError` naming the offset, found quickly, with nothing
//! allocated on the word of a length field, and no panic.

use rustelixir_etf::decode::{decode_with, TermBuilder};
use rustelixir_etf::{decode, encode, Limits, Term};

fn err_at(bytes: &[u8]) -> (usize, String) {
    let e = decode(bytes).expect_err("should not decode");
    assert!(e.offset <= bytes.len(), "offset {} past the input ({} bytes)", e.offset, bytes.len());
    (e.offset, e.message)
}

fn sample_terms() -> Vec<Term> {
    use rustelixir_etf::*;
    vec![
        Term::Int(5),
        Term::Int(-70000),
        Term::Int(i64::MAX),
        BigInt::normalized(true, &[1; 300]),
        Term::Float(2.5),
        Term::atom("héllo"),
        Term::Binary(vec![1, 2, 3]),
        Term::BitString { data: vec![0x80], tail_bits: 1 },
        Term::Pid(Pid { node: Atom::from("a@b"), id: 1, serial: 2, creation: 3 }),
        Term::Port(Port::new(Atom::from("a@b"), 1 << 40, 3)),
        Term::Ref(Reference { node: Atom::from("a@b"), creation: 1, ids: vec![1, 2, 3] }),
        Term::Export(Export { module: Atom::from("m"), function: Atom::from("f"), arity: 1 }),
        Term::Tuple(vec![Term::Int(1), Term::atom("x")]),
        Term::List(vec![Term::Int(1), Term::Int(300)]),
        Term::List(vec![Term::Int(1), Term::Int(2)]),
        Term::ImproperList(vec![Term::Int(1)], Box::new(Term::atom("t"))),
        Term::Map(vec![(Term::atom("k"), Term::Binary(vec![9]))]),
    ]
}

#[test]
fn every_truncation_of_every_tag_is_an_error() {
    for term in sample_terms() {
        let bytes = encode(&term).unwrap();
        for cut in 0..bytes.len() {
            let (offset, _) = err_at(&bytes[..cut]);
            assert!(offset <= cut);
        }
    }
}

#[test]
fn trailing_bytes_are_an_error_at_their_offset() {
    assert_eq!(err_at(&[131, 97, 1, 0]).0, 3);
}

#[test]
fn unknown_and_unsupported_tags() {
    assert!(err_at(&[131, 1]).1.contains("unknown tag"));
    assert!(err_at(&[131, 117, 0, 0, 0, 0]).1.contains("FUN_EXT"));
    assert!(err_at(&[131, 121, 0, 0]).1.contains("LOCAL_EXT"));
    assert!(err_at(&[131, 82, 0]).1.contains("atom cache"));
    assert_eq!(err_at(&[130, 97, 1]), (0, "bad version byte 130 (expected 131)".into()));
}

#[test]
fn absurd_lengths_fail_fast_without_allocating() {
    let start = std::time::Instant::now();
    for tag in [108u8, 105, 116, 109, 111, 77] {
        let mut bytes = vec![131, tag, 0xff, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(&[0; 4]);
        let (offset, message) = err_at(&bytes);
        assert!(offset <= bytes.len(), "{message}");
    }
    assert!(err_at(&[131, 107, 0xff, 0xff, 97]).1.contains("truncated"));
    assert!(err_at(&[131, 118, 0xff, 0xff, 97]).1.contains("truncated"));
    // A list claiming 4 billion elements is refused before any element is read.
    let (offset, message) = err_at(&[131, 108, 0xff, 0xff, 0xff, 0xff, 97, 1, 106]);
    assert_eq!(offset, 1);
    assert!(message.contains("claims 4294967295"), "{message}");
    assert!(start.elapsed().as_millis() < 1000);
}

#[test]
fn nesting_is_bounded_by_the_limit() {
    let nested = |depth: usize| {
        let mut b = vec![131];
        b.extend(std::iter::repeat([104u8, 1]).take(depth).flatten());
        b.extend_from_slice(&[97, 1]);
        b
    };
    let limits = Limits { max_depth: 100, ..Limits::default() };
    assert!(decode_with(&nested(100), &mut TermBuilder, &limits).is_ok());
    let e = decode_with(&nested(101), &mut TermBuilder, &limits).unwrap_err();
    assert!(e.message.contains("depth"), "{}", e.message);
    assert_eq!(e.offset, 1 + 2 * 100);
    // A million levels: refused at the default limit, quickly, with no stack overflow.
    let e = decode(&nested(1_000_000)).unwrap_err();
    assert!(e.message.contains("depth"));
}

#[test]
fn compressed_claims_are_checked_against_what_inflates() {
    // Claims 4 GiB, carries a few bytes: refused by the size limit before inflating.
    let e = decode(&[131, 80, 0xff, 0xff, 0xff, 0xff, 0x78, 0x9c, 3, 0]).unwrap_err();
    assert!(e.message.contains("limit"), "{}", e.message);
    // Claims less than it inflates to.
    let body = &encode(&Term::Binary(vec![0; 10_000])).unwrap()[1..];
    let z = miniz(body);
    let mut lying = vec![131, 80, 0, 0, 0, 10];
    lying.extend_from_slice(&z);
    assert!(decode(&lying).unwrap_err().message.contains("more than"));
    // A bomb: 10 MB of zeros in a few kB, under a 1 MB limit.
    let bomb_body = &encode(&Term::Binary(vec![0; 10_000_000])).unwrap()[1..];
    let mut bomb = vec![131, 80];
    bomb.extend_from_slice(&(bomb_body.len() as u32).to_be_bytes());
    bomb.extend_from_slice(&miniz(bomb_body));
    assert!(bomb.len() < 20_000);
    let limits = Limits { max_uncompressed_size: 1 << 20, ..Limits::default() };
    assert!(decode_with(&bomb, &mut TermBuilder, &limits).unwrap_err().message.contains("limit"));
    assert_eq!(decode(&bomb).unwrap(), Term::Binary(vec![0; 10_000_000]));
    // Garbage after the header.
    assert!(decode(&[131, 80, 0, 0, 0, 5, 1, 2, 3]).is_err());
}

fn miniz(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

#[test]
fn field_level_errors() {
    assert!(err_at(&[131, 119, 2, 0xff, 0xfe]).1.contains("UTF-8"));
    let nan = f64::NAN.to_bits().to_be_bytes();
    assert!(err_at(&[&[131, 70][..], &nan].concat()).1.contains("finite"));
    assert!(err_at(&[131, 110, 1, 2, 5]).1.contains("sign"));
    assert!(err_at(&[131, 90, 0, 0, 119, 1, b'a', 0, 0, 0, 0]).1.contains("id words"));
    assert!(err_at(&[131, 90, 0, 6, 119, 1, b'a', 0, 0, 0, 0]).1.contains("id words"));
    assert!(err_at(&[131, 77, 0, 0, 0, 1, 0, 5]).1.contains("bits"));
    assert!(err_at(&[131, 88, 97, 1]).1.contains("expected an atom"));
    assert!(err_at(&[131, 80, 0, 0, 0, 1, 131]).1.len() > 0);
}

/// A NEW_FUN_EXT whose one free variable is `inner` (a term, no version byte).
fn fun_around(inner: &[u8]) -> Vec<u8> {
    let mut body = vec![1u8]; // arity
    body.extend_from_slice(&[7; 16]); // uniq
    body.extend_from_slice(&0u32.to_be_bytes()); // index
    body.extend_from_slice(&1u32.to_be_bytes()); // one free variable
    body.extend_from_slice(&[119, 1, b'm', 97, 0, 97, 0]); // module, old index, old uniq
    body.extend_from_slice(&[88, 119, 3, b'a', b'@', b'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    body.extend_from_slice(inner);
    let mut fun = vec![112];
    fun.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    fun.extend_from_slice(&body);
    fun
}

#[test]
fn funs_nested_in_funs_count_against_the_depth_limit_and_never_overflow_the_stack() {
    let mut term = vec![97, 1];
    for _ in 0..3 {
        term = fun_around(&term);
    }
    let bytes = [&[131][..], &term].concat();
    let decoded = decode(&bytes).unwrap();
    assert_eq!(encode(&decoded).unwrap(), bytes);
    let limits = Limits { max_depth: 2, ..Limits::default() };
    assert!(decode_with(&bytes, &mut TermBuilder, &limits).unwrap_err().message.contains("depth"));

    // 20,000 funs deep, decoded on a thread with a 256 KiB stack: a clean depth error.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let mut term = vec![97, 1];
            for _ in 0..20_000 {
                term = fun_around(&term);
            }
            let bytes = [&[131][..], &term].concat();
            assert!(decode(&bytes).unwrap_err().message.contains("depth"));
            let limits = Limits { max_depth: 30_000, ..Limits::default() };
            let t = decode_with(&bytes, &mut TermBuilder, &limits).unwrap();
            assert_eq!(encode(&t).unwrap(), bytes);
        })
        .unwrap()
        .join()
        .unwrap();
}
