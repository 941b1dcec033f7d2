//! A million members, built with add_many in batches of 1,000 (random order), then random
//! add / remove / index_of / at / slice on it. Prints timings (not asserted: machines
//! differ); checks the answers.

mod common;

use std::time::Instant;

use common::*;
use rustelixir_nif::etf::Term;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ops_per_s(n: usize, since: Instant) -> String {
    let s = since.elapsed().as_secs_f64();
    format!("{n} in {:.3} s = {:.0} ops/s", s, n as f64 / s)
}

#[test]
fn a_million_members_stay_fast() {
    setup();
    const N: i64 = 1_000_000;
    // Members 0, 2, 4, ... 2N-2 in a shuffled order; odd numbers stay absent.
    let mut order: Vec<i64> = (0..N).map(|i| i * 2).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let set = new_set();
    let started = Instant::now();
    let mut size = Term::Int(0);
    for batch in order.chunks(1000) {
        size = ok_value(call(
            "sorted_set_add_many",
            &[set.clone(), list(batch.iter().map(|&v| int(v)).collect())],
        ));
    }
    println!(
        "add_many, 1,000 batches of 1,000 (random order): {:.3} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(size, int(N));

    let one_batch = new_set();
    let started = Instant::now();
    let reply = call(
        "sorted_set_add_many",
        &[
            one_batch.clone(),
            list(order.iter().map(|&v| int(v)).collect()),
        ],
    );
    println!(
        "add_many, one batch of 1,000,000: {:.3} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(reply, ok(int(N)));

    const OPS: usize = 100_000;
    let started = Instant::now();
    for _ in 0..OPS {
        let i = rng.below(N as u64) as i64;
        assert_eq!(
            call("sorted_set_index_of", &[set.clone(), int(i * 2)]),
            ok(int(i))
        );
    }
    println!("index_of at 1M: {}", ops_per_s(OPS, started));

    let started = Instant::now();
    for _ in 0..OPS {
        let i = rng.below(N as u64) as i64;
        assert_eq!(
            call("sorted_set_at", &[set.clone(), int(i)]),
            ok(int(i * 2))
        );
    }
    println!("at at 1M: {}", ops_per_s(OPS, started));

    let started = Instant::now();
    for _ in 0..OPS / 10 {
        let i = rng.below(N as u64 - 100) as i64;
        assert_eq!(
            call("sorted_set_slice", &[set.clone(), int(i), int(100)]),
            ok(list((i..i + 100).map(|k| int(k * 2)).collect()))
        );
    }
    println!("slice of 100 at 1M: {}", ops_per_s(OPS / 10, started));

    // Add odd numbers (new members), then remove them again.
    let odds: Vec<i64> = (0..OPS)
        .map(|_| rng.below(N as u64) as i64 * 2 + 1)
        .collect();
    let started = Instant::now();
    for &v in &odds {
        ok_value(call("sorted_set_add", &[set.clone(), int(v)]));
    }
    println!("add at 1M: {}", ops_per_s(OPS, started));
    let started = Instant::now();
    for &v in &odds {
        call("sorted_set_remove", &[set.clone(), int(v)]);
    }
    println!("remove at 1M: {}", ops_per_s(OPS, started));
    assert_eq!(call("sorted_set_size", &[set.clone()]), ok(int(N)));

    let started = Instant::now();
    let reply = ok_value(call("sorted_set_to_list", &[set.clone()]));
    let Term::List(all) = &reply else { panic!() };
    println!(
        "to_list of 1M (encode + decode): {:.3} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(all.len(), N as usize);
    assert_eq!(all[123_456], int(246_912));
}
