//! Many threads on one Buffer and one SortedSet at once, through the natives: each object's
//! lock keeps every operation whole, and the final content is exactly what was done.

mod common;

use std::sync::Arc;
use std::thread;

use common::*;
use rustelixir_nif::etf::Term;

const THREADS: usize = 16;

#[test]
fn threads_hammering_one_buffer() {
    setup();
    const REGION: usize = 4096;
    const SLOT: i64 = (THREADS * REGION) as i64; // an 8-byte slot every thread overwrites
    let buf = Arc::new(new_buffer(SLOT + 8));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let buf = buf.clone();
            thread::spawn(move || {
                let mark = t as u8 + 1;
                let base = (t * REGION) as i64;
                for round in 0..200 {
                    // Its own region, in 64-byte pieces, then read back.
                    let at = base + ((round * 64) % REGION) as i64;
                    let piece = Term::Binary(vec![mark; 64]);
                    assert_eq!(
                        call("buffer_write", &[(*buf).clone(), int(at), piece.clone()]),
                        ok(Term::atom("ok"))
                    );
                    assert_eq!(
                        call("buffer_read", &[(*buf).clone(), int(at), int(64)]),
                        ok(piece)
                    );
                    // The shared slot: a read never sees two writers' bytes mixed.
                    call(
                        "buffer_write",
                        &[(*buf).clone(), int(SLOT), Term::Binary(vec![mark; 8])],
                    );
                    match &ok_value(call("buffer_read", &[(*buf).clone(), int(SLOT), int(8)])) {
                        Term::Binary(b) => {
                            assert!(b.iter().all(|&x| x == b[0]) && b[0] != 0, "torn slot {b:?}")
                        }
                        other => panic!("{other:?}"),
                    }
                    assert_eq!(call("buffer_size", &[(*buf).clone()]), ok(int(SLOT + 8)));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let reply = ok_value(call("buffer_to_binary", &[(*buf).clone()]));
    let Term::Binary(all) = &reply else { panic!() };
    assert_eq!(all.len(), SLOT as usize + 8);
    for t in 0..THREADS {
        assert!(
            all[t * REGION..(t + 1) * REGION]
                .iter()
                .all(|&b| b == t as u8 + 1),
            "region {t}"
        );
    }
    let slot = &all[SLOT as usize..];
    assert!(slot.iter().all(|&x| x == slot[0]) && (1..=THREADS as u8).contains(&slot[0]));
}

#[test]
fn threads_hammering_one_sorted_set() {
    setup();
    const PER: i64 = 3000;
    let set = Arc::new(new_set());
    let handles: Vec<_> = (0..THREADS as i64)
        .map(|t| {
            let set = set.clone();
            thread::spawn(move || {
                let base = t * 100_000;
                // Half one by one (as ints), half in batches (as equal floats for the odds
                // the other half will remove again).
                for i in 0..PER / 2 {
                    let reply = call("sorted_set_add", &[(*set).clone(), int(base + i)]);
                    assert!(matches!(ok_value(reply), Term::Int(_)));
                }
                for chunk in (PER / 2..PER).collect::<Vec<_>>().chunks(250) {
                    let batch: Vec<Term> = chunk
                        .iter()
                        .map(|i| Term::Float((base + i) as f64))
                        .collect();
                    ok_value(call("sorted_set_add_many", &[(*set).clone(), list(batch)]));
                }
                // Everything of this thread is in, and findable (floats == ints).
                for i in (0..PER).step_by(97) {
                    assert!(matches!(
                        ok_value(call(
                            "sorted_set_index_of",
                            &[(*set).clone(), Term::Float((base + i) as f64)]
                        )),
                        Term::Int(_)
                    ));
                }
                // Remove the odd ones (the float batch members by their int twin).
                for i in (1..PER).step_by(2) {
                    assert_eq!(
                        call("sorted_set_remove", &[(*set).clone(), int(base + i)]),
                        ok(Term::atom("true"))
                    );
                }
                // Readers see a sorted slice at any moment.
                let size = match ok_value(call("sorted_set_size", &[(*set).clone()])) {
                    Term::Int(n) => n,
                    o => panic!("{o:?}"),
                };
                let reply = ok_value(call(
                    "sorted_set_slice",
                    &[(*set).clone(), int(size / 3), int(500)],
                ));
                let Term::List(window) = &reply else { panic!() };
                assert!(window
                    .windows(2)
                    .all(|w| rustelixir_nif::etf::order::compare(&w[0], &w[1]).is_lt()));
                let _ = call("sorted_set_at", &[(*set).clone(), int(size / 2)]);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut expected = Vec::new();
    for t in 0..THREADS as i64 {
        for i in (0..PER).step_by(2) {
            let v = t * 100_000 + i;
            expected.push(if i < PER / 2 {
                int(v)
            } else {
                Term::Float(v as f64)
            });
        }
    }
    assert_eq!(
        call("sorted_set_size", &[(*set).clone()]),
        ok(int(expected.len() as i64))
    );
    assert_eq!(
        call("sorted_set_to_list", &[(*set).clone()]),
        ok(list(expected.clone()))
    );
    assert_eq!(
        call(
            "sorted_set_at",
            &[(*set).clone(), int(expected.len() as i64 - 1)]
        ),
        ok(expected.last().unwrap().clone())
    );
}
