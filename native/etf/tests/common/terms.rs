//! Strategies for generated terms, shared by the property tests: every `Term` variant,
//! nested a few levels.

use proptest::prelude::*;
use rustelixir_etf::{Atom, BigInt, Export, Fun, Pid, Port, Reference, Term};

pub fn atom_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-zA-Z0-9_@.]{0,12}",
        2 => "\\PC{0,20}",
        // Up to the 255-character limit, in up to 4 bytes each (ATOM_UTF8_EXT).
        1 => proptest::collection::vec(any::<char>(), 0..=255).prop_map(String::from_iter),
        1 => Just("a".repeat(255)),
    ]
}

pub fn atom() -> impl Strategy<Value = Atom> {
    atom_text().prop_map(Atom)
}

pub fn node() -> impl Strategy<Value = Atom> {
    prop_oneof![Just(Atom::from("nonode@nohost")), "[a-z]{1,8}@[a-z]{1,8}".prop_map(Atom)]
}

pub fn pid() -> impl Strategy<Value = Pid> {
    (node(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(node, id, serial, creation)| Pid { node, id, serial, creation })
}

pub fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(f64::from_bits(1)),
        (-1e6f64..1e6).prop_map(|f| f.trunc()),
    ]
}

pub fn int() -> impl Strategy<Value = Term> {
    prop_oneof![
        (0i64..=255).prop_map(Term::Int),
        any::<i32>().prop_map(|v| Term::Int(v as i64)),
        any::<i64>().prop_map(Term::Int),
        Just(Term::Int(i64::MIN)),
        Just(Term::Int(i64::MAX)),
        // Bignums, mostly just past i64, sometimes LARGE_BIG_EXT (> 255 bytes).
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..=16)).prop_map(|(n, m)| BigInt::normalized(n, &m)),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 250..=300)).prop_map(|(n, m)| BigInt::normalized(n, &m)),
    ]
}

pub fn bitstring() -> impl Strategy<Value = Term> {
    (proptest::collection::vec(any::<u8>(), 1..12), 1u8..=7).prop_map(|(mut data, tail_bits)| {
        let last = data.len() - 1;
        data[last] &= 0xffu8 << (8 - tail_bits);
        Term::bitstring(data, tail_bits)
    })
}

pub fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        4 => int(),
        2 => float().prop_map(Term::Float),
        3 => atom().prop_map(Term::Atom),
        2 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Term::Binary),
        1 => bitstring(),
        1 => pid().prop_map(Term::from),
        1 => (node(), prop_oneof![any::<u32>().prop_map(u64::from), any::<u64>()], any::<u32>(), any::<bool>())
            .prop_map(|(node, id, creation, new_port_ext)| Term::from(Port { node, id, creation, new_port_ext })),
        1 => (node(), any::<u32>(), proptest::collection::vec(any::<u32>(), 1..=5))
            .prop_map(|(node, creation, ids)| Term::from(Reference { node, creation, ids })),
        1 => (atom(), atom(), any::<u8>()).prop_map(|(module, function, arity)| Term::from(Export { module, function, arity })),
        1 => Just(Term::nil()),
        1 => Just(Term::Tuple(vec![])),
        1 => Just(Term::Map(vec![])),
    ]
}

pub fn is_list(t: &Term) -> bool {
    matches!(t, Term::List(_) | Term::ImproperList(..))
}

pub fn unique_pairs(pairs: Vec<(Term, Term)>) -> Vec<(Term, Term)> {
    let mut unique: Vec<(Term, Term)> = Vec::new();
    for (k, v) in pairs {
        if !unique.iter().any(|(u, _)| *u == k) {
            unique.push((k, v));
        }
    }
    unique
}

pub fn fun_of(inner: impl Strategy<Value = Term> + Clone) -> impl Strategy<Value = Term> {
    (
        (atom(), any::<u8>(), any::<[u8; 16]>(), any::<u32>()),
        // old index and old uniq are written as SMALL_INTEGER_EXT/INTEGER_EXT by the VM.
        (any::<i32>(), any::<i32>(), pid()),
        proptest::collection::vec(inner, 0..4),
    )
        .prop_map(|((module, arity, uniq, index), (old_index, old_uniq, pid), free_vars)| {
            Term::from(Fun { module, arity, uniq, index, old_index: old_index as i64, old_uniq: old_uniq as i64, pid, free_vars })
        })
}

/// Every variant, nested a few levels. `with_funs` adds NEW_FUN_EXT funs.
pub fn term_with(with_funs: bool) -> BoxedStrategy<Term> {
    leaf()
        .prop_recursive(4, 48, 6, move |inner| {
            let tail = inner.clone().prop_filter("an improper tail is not a list", |t| !is_list(t));
            let mut options: Vec<(u32, BoxedStrategy<Term>)> = vec![
                (3, proptest::collection::vec(inner.clone(), 0..6).prop_map(Term::Tuple).boxed()),
                (3, proptest::collection::vec(inner.clone(), 0..6).prop_map(Term::List).boxed()),
                // Lists of bytes: STRING_EXT.
                (1, proptest::collection::vec(0i64..=255, 1..20).prop_map(|v| Term::List(v.into_iter().map(Term::Int).collect())).boxed()),
                (2, (proptest::collection::vec(inner.clone(), 1..4), tail).prop_map(|(items, tail)| Term::improper_list(items, tail)).boxed()),
                (3, proptest::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(|p| Term::Map(unique_pairs(p))).boxed()),
                // Maps sorted by key, as the VM writes small maps.
                (1, proptest::collection::vec((inner.clone(), inner.clone()), 0..6)
                    .prop_map(|p| {
                        let mut p = unique_pairs(p);
                        p.sort_by(|a, b| a.0.cmp(&b.0));
                        Term::Map(p)
                    })
                    .boxed()),
                // A large tuple now and then.
                (1, proptest::collection::vec(int(), 256..300).prop_map(Term::Tuple).boxed()),
            ];
            if with_funs {
                options.push((2, fun_of(inner.clone()).boxed()));
            }
            proptest::strategy::Union::new_weighted(options)
        })
        .boxed()
}

pub fn term() -> BoxedStrategy<Term> {
    term_with(true)
}
