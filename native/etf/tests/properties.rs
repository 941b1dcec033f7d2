//! Properties over generated terms and bytes:
//! - every `Term` (all variants) encodes, decodes to an equal term, and re-encodes to the
//!   same bytes;
//! - decoding random, structured-random and mutated bytes never panics or hangs, and every
//!   error's offset lies in the input;
//! - `Ord` on `Term` (and Erlang's `==` order, `order::compare`) is a total order;
//! - terms nested to the depth limit decode, encode, compare, clone and drop on a thread with
//!   a 2 MiB stack.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

mod common;
use common::fun_around;
use common::terms::{float, term, term_with};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rustelixir_etf::decode::DEFAULT_MAX_DEPTH;
use rustelixir_etf::order::{compare, compare_exact};
use rustelixir_etf::{decode, encode, Term};

// ---------------------------------------------------------------------------------------
// Mutations of valid encodings
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Overwrite 4 bytes with a length-like value.
    SetLength(usize, u32),
    /// Replace everything from a point with the tail of another encoding.
    Splice(usize, Vec<u8>, usize),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), Just(0), Just(1), Just(0x7f), Just(0x80), Just(0xff), 70u8..=121]
}

fn mutation(with_funs: bool) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => (any::<usize>(), proptest::collection::vec(interesting_byte(), 1..8)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), prop_oneof![Just(0u32), Just(1), Just(255), Just(256), Just(65535), Just(u32::MAX), Just(u32::MAX / 2), any::<u32>()])
            .prop_map(|(i, v)| Mutation::SetLength(i, v)),
        1 => (any::<usize>(), term_with(with_funs), any::<usize>()).prop_map(|(i, t, j)| Mutation::Splice(i, encode(&t).unwrap(), j)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    if n == 0 {
        return;
    }
    match m {
        Mutation::FlipBit(i, b) => bytes[i % n] ^= 1 << b,
        Mutation::SetByte(i, v) => bytes[i % n] = *v,
        Mutation::Insert(i, v) => {
            let at = i % (n + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(i, k) => {
            let at = i % n;
            bytes.drain(at..(at + k).min(n));
        }
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        Mutation::SetLength(i, v) => {
            if n >= 4 {
                let at = i % (n - 3);
                bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        Mutation::Splice(i, other, j) => {
            let at = i % n;
            let from = j % other.len();
            bytes.truncate(at);
            bytes.extend_from_slice(&other[from..]);
        }
    }
}

/// Decodes anything: Ok or an error whose offset lies in the input, quickly.
fn decode_any(bytes: &[u8]) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let r = decode(bytes);
    prop_assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    match r {
        Ok(t) => {
            // Whatever decodes re-encodes (to canonical bytes that decode to the same term),
            // unless it holds something the encoder refuses by design.
            if let Ok(again) = encode(&t) {
                prop_assert!(decode(&again).unwrap() == t);
            }
        }
        Err(e) => {
            // Inside a compressed term offsets are in the decompressed data (see malformed.rs
            // for the bug report); everywhere else they lie within the input.
            if bytes.get(1) != Some(&80) {
                prop_assert!(e.offset <= bytes.len(), "offset {} in {} bytes: {}", e.offset, bytes.len(), e.message);
            }
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

/// Random bytes shaped like terms: tags, small and absurd length fields, atoms, integers.
fn structured_bytes() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        4 => prop_oneof![70u8..=80, 82u8..=82, 88u8..=90, 97u8..=121].prop_map(|t| vec![t]),
        2 => any::<u8>().prop_map(|b| vec![b]),
        2 => prop_oneof![Just(0u32), Just(1), Just(2), Just(3), Just(u32::MAX), any::<u32>()].prop_map(|n| n.to_be_bytes().to_vec()),
        1 => prop_oneof![Just(0u16), Just(1), Just(5), Just(u16::MAX)].prop_map(|n| n.to_be_bytes().to_vec()),
        2 => "[a-z@]{0,6}".prop_map(|s| [&[119, s.len() as u8][..], s.as_bytes()].concat()),
        1 => Just(vec![106]),
        1 => Just(vec![97, 1]),
    ];
    proptest::collection::vec(chunk, 0..24).prop_map(|chunks| {
        let mut b = vec![131];
        for c in chunks {
            b.extend(c);
        }
        b
    })
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, max_shrink_iters: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_encode_is_identity(t in term()) {
        let bytes = encode(&t).unwrap();
        let back = decode(&bytes).unwrap_or_else(|e| panic!("{t:?} encoded to {bytes:?}, which does not decode: {e}"));
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(encode(&back).unwrap(), bytes);
        // Clones are equal and encode the same.
        let c = back.clone();
        prop_assert!(c == t);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_any(&bytes)?;
        if !bytes.is_empty() {
            bytes[0] = 131;
            decode_any(&bytes)?;
        }
    }

    #[test]
    fn structured_random_bytes_never_panic(bytes in structured_bytes()) {
        decode_any(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(
        t in term_with(false),
        mutations in proptest::collection::vec(mutation(false), 1..5),
    ) {
        // (Funs are left out here: mutating a fun's Size hits the panic reported by
        // `mutated_encodings_with_funs_never_panic` below.)
        let mut bytes = encode(&t).unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode_any(&bytes)?;
    }
}

proptest! {
    // Generating three to ten terms per case is the cost here.
    #![proptest_config(ProptestConfig { cases: 400, max_shrink_iters: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn term_ord_is_a_total_order(a in term(), b in term(), c in term()) {
        for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
            // Antisymmetric, and Equal exactly when ==.
            prop_assert_eq!(x.cmp(y), y.cmp(x).reverse());
            prop_assert_eq!(x.cmp(y) == Ordering::Equal, x == y);
            prop_assert_eq!(compare(x, y), compare(y, x).reverse());
        }
        prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert!(a.clone() == a);
        // Transitive, for both orders.
        for (x, y, z) in [(&a, &b, &c), (&a, &c, &b), (&b, &a, &c), (&b, &c, &a), (&c, &a, &b), (&c, &b, &a)] {
            if x <= y && y <= z {
                prop_assert!(x <= z);
            }
            if compare(x, y).is_le() && compare(y, z).is_le() {
                prop_assert!(compare(x, z).is_le());
            }
        }
    }

    #[test]
    fn sorting_by_ord_is_consistent(mut v in proptest::collection::vec(term(), 0..8), rot in any::<usize>()) {
        v.sort();
        for i in 0..v.len() {
            for j in i..v.len() {
                prop_assert!(v[i] <= v[j], "sorted[{}] > sorted[{}]", i, j);
                prop_assert!(compare_exact(&v[i], &v[j]).is_le());
            }
        }
        // Any permutation sorts to the same sequence.
        let mut w = v.clone();
        w.reverse();
        if !w.is_empty() {
            let k = rot % w.len();
            w.rotate_left(k);
        }
        w.sort();
        prop_assert!(v.iter().zip(&w).all(|(x, y)| x.cmp(y).is_eq()));
    }

    #[test]
    fn numbers_compare_by_value(i in any::<i64>(), f in float(), small in -1000i64..1000) {
        // Erlang's == order compares integers and floats by exact value; map-key order puts
        // every integer before every float.
        let exact = exact_int_float_cmp(i, f);
        prop_assert_eq!(compare(&Term::Int(i), &Term::Float(f)), exact);
        prop_assert_eq!(compare_exact(&Term::Int(i), &Term::Float(f)), Ordering::Less);
        prop_assert_eq!(compare(&Term::Int(small), &Term::Float(small as f64)), Ordering::Equal);
        prop_assert_ne!(Term::Int(small), Term::Float(small as f64));
    }
}

/// The order of the integer `i` and the float `f` by their mathematical values.
fn exact_int_float_cmp(i: i64, f: f64) -> Ordering {
    if f >= 1e19 {
        return Ordering::Less;
    }
    if f <= -1e19 {
        return Ordering::Greater;
    }
    // |f| < 1e19 < 2^64: its integer part is exact in i128.
    let t = f.trunc();
    match (i as i128).cmp(&(t as i128)) {
        Ordering::Equal => {
            let frac = f - t;
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, max_shrink_iters: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_encodings_with_funs_never_panic(
        t in term_with(true),
        mutations in proptest::collection::vec(mutation(true), 1..5),
    ) {
        let mut bytes = encode(&t).unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode_any(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------------
// Terms at the depth limit, on a thread with a 2 MiB stack
// ---------------------------------------------------------------------------------------


/// `depth` containers around an atom, cycling through tuple, list, map value, map key and
/// improper-list element; every `fun_every`-th level (if any) a fun instead.
fn deep_bytes(depth: usize, fun_every: Option<usize>) -> Vec<u8> {
    let mut t = vec![119, 4, b'l', b'e', b'a', b'f'];
    for level in 0..depth {
        if fun_every.is_some_and(|k| level % k == k - 1) {
            t = fun_around(&t);
            continue;
        }
        t = match level % 5 {
            0 => [&[104u8, 1][..], &t].concat(),
            1 => [&[108u8, 0, 0, 0, 1][..], &t, &[106]].concat(),
            2 => [&[116u8, 0, 0, 0, 1, 97, 0][..], &t].concat(),
            3 => [&[116u8, 0, 0, 0, 1][..], &t, &[97, 0]].concat(),
            _ => [&[108u8, 0, 0, 0, 1][..], &t, &[97, 0]].concat(),
        };
    }
    [&[131u8][..], &t].concat()
}

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn a_term_at_the_depth_limit_decodes_encodes_compares_and_drops_on_a_2_mib_thread() {
    for fun_every in [None, Some(7)] {
        on_small_stack(move || {
            let bytes = deep_bytes(DEFAULT_MAX_DEPTH, fun_every);
            let t = decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
            // (No assert_eq!: a failure's Debug output would recurse 10,000 levels.)
            assert!(encode(&t).unwrap() == bytes, "re-encoding differs");
            let c = t.clone();
            assert!(c == t);
            assert_eq!(t.cmp(&c), Ordering::Equal);
            assert_eq!(compare(&t, &c), Ordering::Equal);
            drop(c);
            drop(t);
            // One level more is refused.
            let e = decode(&deep_bytes(DEFAULT_MAX_DEPTH + 1, fun_every)).unwrap_err();
            assert!(e.message.contains("depth"), "{}", e.message);
        });
    }
}

#[test]
fn deep_terms_built_in_rust_drop_on_a_2_mib_thread() {
    on_small_stack(|| {
        // Far deeper than the decoder allows: building and dropping must still not recurse.
        let mut t = Term::atom("leaf");
        for level in 0..200_000 {
            t = match level % 4 {
                0 => Term::Tuple(vec![t]),
                1 => Term::List(vec![t, Term::Int(1)]),
                2 => Term::Map(vec![(Term::Int(0), t)]),
                _ => Term::improper_list(vec![Term::Int(0)], Term::Tuple(vec![t])),
            };
        }
        drop(t);
    });
}

#[test]
fn decoded_deep_lists_drop_on_a_2_mib_thread() {
    on_small_stack(|| {
        let depth = DEFAULT_MAX_DEPTH;
        let mut bytes = vec![131];
        bytes.extend(vec![[108u8, 0, 0, 0, 1]; depth].concat());
        bytes.push(106);
        bytes.extend(vec![106u8; depth]);
        let t = decode(&bytes).unwrap();
        assert!(encode(&t).unwrap() == bytes);
        assert!(compare(&t, &t.clone()).is_eq());
        drop(t);
    });
}
