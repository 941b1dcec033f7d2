//! Properties over generated terms and bytes.

use proptest::prelude::*;
use rustelixir_etf::order::compare;
use rustelixir_etf::{decode, encode, Atom, BigInt, Export, Pid, Port, Reference, Term};

fn atom() -> impl Strategy<Value = Atom> {
    "\\PC{0,20}".prop_map(Atom)
}

fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        any::<i64>().prop_map(Term::Int),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(n, m)| BigInt::normalized(n, &m)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Term::Float),
        atom().prop_map(Term::Atom),
        proptest::collection::vec(any::<u8>(), 0..30).prop_map(Term::Binary),
        (proptest::collection::vec(any::<u8>(), 1..8), 1u8..8).prop_map(|(mut data, tail_bits)| {
            let last = data.len() - 1;
            data[last] &= 0xffu8 << (8 - tail_bits);
            Term::BitString { data, tail_bits }
        }),
        (atom(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(node, id, serial, creation)| Term::Pid(Pid { node, id, serial, creation })),
        (atom(), any::<u64>(), any::<u32>()).prop_map(|(node, id, creation)| Term::Port(Port::new(node, id, creation))),
        (atom(), any::<u32>(), proptest::collection::vec(any::<u32>(), 1..=5))
            .prop_map(|(node, creation, ids)| Term::Ref(Reference { node, creation, ids })),
        (atom(), atom(), any::<u8>()).prop_map(|(module, function, arity)| Term::Export(Export { module, function, arity })),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Term::Tuple),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Term::List),
            (proptest::collection::vec(inner.clone(), 1..4), leaf()).prop_map(|(items, tail)| match tail {
                Term::List(_) => Term::List(items),
                tail => Term::ImproperList(items, Box::new(tail)),
            }),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(|pairs| {
                let mut unique: Vec<(Term, Term)> = Vec::new();
                for (k, v) in pairs {
                    if !unique.iter().any(|(u, _)| *u == k) {
                        unique.push((k, v));
                    }
                }
                Term::Map(unique)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_encode_is_identity(t in term()) {
        let bytes = encode(&t).unwrap();
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(encode(&back).unwrap(), bytes);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if !bytes.is_empty() { bytes[0] = 131; }
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(t in term(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let mut bytes = encode(&t).unwrap();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        let cut = cut % (bytes.len() + 1);
        if let Err(e) = decode(&bytes[..cut]) {
            prop_assert!(e.offset <= cut);
        }
    }

    #[test]
    fn term_order_is_a_total_order(a in term(), b in term(), c in term()) {
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        prop_assert!(compare(&a, &a).is_eq());
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        if a <= b && b <= c { prop_assert!(a <= c); }
        if compare(&a, &b).is_le() && compare(&b, &c).is_le() { prop_assert!(compare(&a, &c).is_le()); }
    }
}

#[test]
fn a_term_at_the_depth_limit_decodes_encodes_and_drops_on_a_2_mib_thread() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let depth = rustelixir_etf::decode::DEFAULT_MAX_DEPTH;
            let mut bytes = vec![131];
            bytes.extend(std::iter::repeat([108u8, 0, 0, 0, 1]).take(depth).flatten());
            bytes.push(106);
            bytes.extend(std::iter::repeat(106u8).take(depth));
            let t = decode(&bytes).unwrap();
            assert_eq!(encode(&t).unwrap(), bytes);
            assert!(compare(&t, &t.clone()).is_eq());
            drop(t);
        })
        .unwrap()
        .join()
        .unwrap();
}
