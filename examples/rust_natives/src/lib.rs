//! A complete example of Rust natives written outside the rustelixir repository's node:
//! ordinary typed functions, one `natives!` line, and a PyO3 module that hands the node
//! the table's address. Serve with `rustelixir serve --name py@127.0.0.1 --module text_natives`.

use std::collections::HashMap;

use pyo3::prelude::*;
use rustelixir_nif::{natives, Atom, BadArg};

/// `{:word_count, text}` -> `{:ok, %{"word" => count}}` (words: runs of letters, lowercased).
fn word_count(text: String) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for word in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// `{:fib, n}` -> `{:ok, F(n)}` for n <= 93 (F(93) is the last that fits a u64).
fn fib(n: u32) -> Result<u64, BadArg> {
    if n > 93 {
        return Err(BadArg::new(1, format!("fib({n}) does not fit in 64 bits (n <= 93)")));
    }
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    Ok(a)
}

/// `{:primes_below, n}` -> `{:ok, [2, 3, 5, ...]}`: a sieve; slow for large n, so it runs on
/// the worker pool and gives up when its caller does.
fn primes_below(n: u64) -> Result<Vec<u64>, (Atom, String)> {
    if n > 100_000_000 {
        return Err((Atom::new("too_large"), format!("{n} is over 100000000")));
    }
    let n = n as usize;
    let mut composite = vec![false; n.max(2)];
    let mut primes = Vec::new();
    for i in 2..n {
        if i % 65_536 == 0 && rustelixir_nif::cancelled() {
            return Err((Atom::new("cancelled"), String::new()));
        }
        if !composite[i] {
            primes.push(i as u64);
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
    }
    Ok(primes)
}

/// `{:mean, [numbers]}` -> `{:ok, mean}` or `{:ok, nil}` for an empty list.
fn mean(numbers: Vec<f64>) -> Option<f64> {
    (!numbers.is_empty()).then(|| numbers.iter().sum::<f64>() / numbers.len() as f64)
}

natives!(NATIVES = [quick word_count, quick fib, slow primes_below, quick mean]);

#[pymodule]
fn text_natives(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__rustelixir_natives__", &NATIVES as *const rustelixir_nif::NativeTable as usize)?;
    Ok(())
}
