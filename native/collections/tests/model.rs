//! The sorted set against a reference model: a `Vec<Term>` kept sorted with
//! `etf::order::compare`, adding a term only when no equal (`==`) member is there. Random
//! add / add_many / remove / index_of / at / slice sequences over mixed terms (integers,
//! floats equal to integers, other floats, atoms, binaries, tuples, lists) must give the
//! same answers, including which of two equal members (`1`, `1.0`) is kept.

mod common;

use std::cmp::Ordering;

use common::*;
use proptest::prelude::*;
use rustelixir_collections::sorted_set::SortedTerms;
use rustelixir_nif::etf::order::compare;
use rustelixir_nif::etf::Term;

fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        4 => (-40i64..40).prop_map(Term::Int),
        2 => (-40i64..40).prop_map(|i| Term::Float(i as f64)),
        1 => (-40i64..40).prop_map(|i| Term::Float(i as f64 + 0.5)),
        2 => prop::sample::select(vec!["a", "b", "nil", "true", "zz"]).prop_map(Term::atom),
        2 => prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b', 255]), 0..3).prop_map(Term::Binary),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Term::Tuple),
            prop::collection::vec(inner, 0..3).prop_map(Term::List),
        ]
    })
}

#[derive(Debug, Clone)]
enum Op {
    Add(Term),
    AddMany(Vec<Term>),
    Remove(Term),
    IndexOf(Term),
    /// An index drawn from a seed: `seed % (len + 3)` (so some are out of range).
    At(usize),
    Slice(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => term().prop_map(Op::Add),
        1 => prop::collection::vec(term(), 0..40).prop_map(Op::AddMany),
        1 => prop::collection::vec(term(), 60..200).prop_map(Op::AddMany),
        4 => term().prop_map(Op::Remove),
        3 => term().prop_map(Op::IndexOf),
        3 => any::<usize>().prop_map(Op::At),
        2 => (any::<usize>(), 0usize..30).prop_map(|(s, c)| Op::Slice(s, c)),
    ]
}

#[derive(Default)]
struct Model(Vec<Term>);

impl Model {
    fn find(&self, t: &Term) -> Result<usize, usize> {
        self.0.binary_search_by(|m| compare(m, t))
    }
    fn add(&mut self, t: Term) -> usize {
        match self.find(&t) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, t);
                i
            }
        }
    }
    fn remove(&mut self, t: &Term) -> bool {
        match self.find(t) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }
    fn index_of(&self, t: &Term) -> Option<usize> {
        self.find(t).ok()
    }
    fn slice(&self, start: usize, count: usize) -> Vec<Term> {
        self.0.iter().skip(start).take(count).cloned().collect()
    }
}

fn idx(i: usize) -> Term {
    Term::Int(i as i64)
}

/// The natives, on one set resource.
fn run_natives(ops: &[Op]) -> Result<(), TestCaseError> {
    setup();
    let set = new_set();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Add(t) => {
                let want = model.add(t.clone());
                prop_assert_eq!(
                    call("sorted_set_add", &[set.clone(), t.clone()]),
                    ok(idx(want))
                );
            }
            Op::AddMany(ts) => {
                for t in ts {
                    model.add(t.clone());
                }
                let got = call("sorted_set_add_many", &[set.clone(), list(ts.clone())]);
                prop_assert_eq!(got, ok(idx(model.0.len())));
            }
            Op::Remove(t) => {
                let want = model.remove(t);
                prop_assert_eq!(
                    call("sorted_set_remove", &[set.clone(), t.clone()]),
                    ok(Term::atom(&want.to_string()))
                );
            }
            Op::IndexOf(t) => {
                let want = model.index_of(t).map_or(Term::atom("nil"), idx);
                prop_assert_eq!(
                    call("sorted_set_index_of", &[set.clone(), t.clone()]),
                    ok(want)
                );
            }
            Op::At(seed) => {
                let i = seed % (model.0.len() + 3);
                let want = match model.0.get(i) {
                    Some(t) => ok(t.clone()),
                    None => badarg(
                        2,
                        &format!("index {i} out of range for a set of {}", model.0.len()),
                    ),
                };
                prop_assert_eq!(call("sorted_set_at", &[set.clone(), idx(i)]), want);
            }
            Op::Slice(seed, count) => {
                let start = seed % (model.0.len() + 3);
                let want = ok(list(model.slice(start, *count)));
                prop_assert_eq!(
                    call("sorted_set_slice", &[set.clone(), idx(start), idx(*count)]),
                    want
                );
            }
        }
    }
    prop_assert_eq!(
        call("sorted_set_size", &[set.clone()]),
        ok(idx(model.0.len()))
    );
    prop_assert_eq!(
        call("sorted_set_to_list", &[set.clone()]),
        ok(list(model.0.clone()))
    );
    if let Term::Ref(r) = &set {
        common::table().free(r);
    }
    Ok(())
}

/// The structure itself with tiny buckets, so that splits, merges and bucket removal
/// happen all the time; its invariants are checked after every step.
fn run_structure(max_bucket: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut set = SortedTerms::with_max_bucket(max_bucket);
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Add(t) => prop_assert_eq!(set.add(t.clone()), model.add(t.clone())),
            Op::AddMany(ts) => {
                for t in ts {
                    model.add(t.clone());
                }
                prop_assert_eq!(set.add_many(ts.clone()), model.0.len());
            }
            Op::Remove(t) => prop_assert_eq!(set.remove(t), model.remove(t)),
            Op::IndexOf(t) => prop_assert_eq!(set.index_of(t), model.index_of(t)),
            Op::At(seed) => {
                let i = seed % (model.0.len() + 3);
                prop_assert_eq!(set.at(i), model.0.get(i));
            }
            Op::Slice(seed, count) => {
                let start = seed % (model.0.len() + 3);
                let got: Vec<Term> = set.slice(start, *count).cloned().collect();
                prop_assert_eq!(got, model.slice(start, *count));
            }
        }
        if let Err(e) = set.check() {
            return Err(TestCaseError::fail(e));
        }
        prop_assert_eq!(set.len(), model.0.len());
    }
    let all: Vec<Term> = set.iter().cloned().collect();
    prop_assert_eq!(all, model.0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn natives_agree_with_the_model(ops in prop::collection::vec(op(), 1..120)) {
        run_natives(&ops)?;
    }

    #[test]
    fn small_buckets_agree_with_the_model(max_bucket in 4usize..12, ops in prop::collection::vec(op(), 1..200)) {
        run_structure(max_bucket, &ops)?;
    }
}

/// Long runs with many more members than a bucket holds, on the natives (default bucket
/// size): integers, their float twins and a spread of other terms.
#[test]
fn long_random_runs_through_the_natives() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 8,
        ..Config::default()
    });
    let wide = prop_oneof![
        (0i64..5000).prop_map(|i| Op::Add(Term::Int(i))),
        (0i64..5000).prop_map(|i| Op::Add(Term::Float(i as f64))),
        (0i64..5000).prop_map(|i| Op::Remove(Term::Int(i))),
        (0i64..5000).prop_map(|i| Op::IndexOf(Term::Float(i as f64))),
        prop::collection::vec((0i64..5000).prop_map(Term::Int), 100..800).prop_map(Op::AddMany),
        term().prop_map(Op::Add),
        any::<usize>().prop_map(Op::At),
        (any::<usize>(), 0usize..1200).prop_map(|(s, c)| Op::Slice(s, c)),
    ];
    runner
        .run(&prop::collection::vec(wide, 500..3000), |ops| {
            run_natives(&ops)
        })
        .unwrap();
}

#[test]
fn model_order_is_term_order() {
    // The model's own premise: 1 == 1.0 under compare, and an int sorts before a bigger float.
    assert_eq!(compare(&Term::Int(1), &Term::Float(1.0)), Ordering::Equal);
    assert_eq!(compare(&Term::Int(1), &Term::Float(1.5)), Ordering::Less);
}
