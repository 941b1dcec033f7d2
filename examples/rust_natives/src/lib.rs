//! A complete example of Rust natives written outside the rustelixir repository's node:
//! ordinary typed functions, one `natives!` line, and a PyO3 module that hands the node
//! the table's address. Serve with `rustelixir serve --name py@127.0.0.1 --module text_natives`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustelixir_nif::resource::Overloaded;
use rustelixir_nif::{native, natives, Atom, BadArg, NifMap, Pid, Reference, Resource, ResourceArc};

/// The words of `text`: runs of letters, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// Counts each word of a text: `{:word_count, text}` -> `{:ok, %{"word" => count}}`.
///
/// The text is borrowed where it lies in the call (a `&str` argument of a `#[native]`).
#[native]
fn word_count(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for word in words(text) {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

/// What `text_stats` tells of a text: `%{words: n, letters: n, longest: "word"}` (a map
/// made by a derive; an Elixir struct would be `#[derive(NifStruct)]`).
#[derive(NifMap)]
struct TextStats {
    words: u64,
    letters: u64,
    longest: String,
}

/// Word and letter counts of a text, and its longest word.
#[native]
fn text_stats(text: &str) -> TextStats {
    let all: Vec<String> = words(text).collect();
    let longest = all.iter().max_by_key(|w| w.chars().count()).cloned().unwrap_or_default();
    TextStats { words: all.len() as u64, letters: all.iter().map(|w| w.chars().count() as u64).sum(), longest }
}

/// The Fibonacci number `n`, answered after `ms` milliseconds without holding a thread
/// meanwhile (an async native; dropped if the caller gives up first).
#[native]
async fn fib_later(n: u32, ms: u64) -> Result<u64, BadArg> {
    rustelixir_nif::sleep(std::time::Duration::from_millis(ms)).await;
    fib(n)
}

/// A word index kept in the node between calls: a resource. Its caller gets a reference,
/// passes it back in later calls, and the index is dropped (here, by this crate's code) when
/// no process holds it any more.
struct WordIndex {
    counts: Mutex<HashMap<String, u64>>,
    /// Processes told of every text added (`index_subscribe`), by their monitor.
    subscribers: Mutex<HashMap<Reference, Pid>>,
}

impl Resource for WordIndex {
    const TYPE_NAME: &'static str = "word_index";

    /// Roughly what it holds, for `{:resource_info, index}`.
    fn size(&self) -> usize {
        self.counts.lock().unwrap().keys().map(|w| w.len() + 32).sum()
    }

    /// A subscriber exited: it is told of nothing more.
    fn down(&self, _pid: Pid, monitor: Reference) {
        self.subscribers.lock().unwrap().remove(&monitor);
    }
}

static INDEXES_DROPPED: AtomicU64 = AtomicU64::new(0);

impl Drop for WordIndex {
    fn drop(&mut self) {
        INDEXES_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// `{:index_new}` -> `{:ok, index}`, or `{:error, :overloaded}` when the node's resource
/// table is full.
fn index_new() -> Result<ResourceArc<WordIndex>, Overloaded> {
    ResourceArc::try_new(WordIndex { counts: Mutex::new(HashMap::new()), subscribers: Mutex::new(HashMap::new()) })
}

/// `{:index_add, index, text}` -> `{:ok, words added}`; each subscriber gets `{:indexed,
/// index, words added}`.
fn index_add(index: ResourceArc<WordIndex>, text: String) -> u64 {
    let added = {
        let mut counts = index.counts.lock().unwrap();
        words(&text).map(|w| *counts.entry(w).or_insert(0) += 1).count() as u64
    };
    for pid in index.subscribers.lock().unwrap().values() {
        let _ = rustelixir_nif::send(pid, &(Atom::new("indexed"), index.clone(), added));
    }
    added
}

/// `{:index_subscribe, index, pid}` -> `{:ok, true}`: `pid` is told of every text added
/// until it exits (the index monitors it) — or `{:ok, false}` when its node is not
/// connected.
fn index_subscribe(index: ResourceArc<WordIndex>, pid: Pid) -> bool {
    match index.monitor(&pid) {
        Some(monitor) => index.subscribers.lock().unwrap().insert(monitor, pid).is_none(),
        None => false,
    }
}

/// `{:index_subscribers, index}` -> `{:ok, n}`.
fn index_subscribers(index: ResourceArc<WordIndex>) -> usize {
    index.subscribers.lock().unwrap().len()
}

/// `{:index_add_all, index, texts}` -> `{:ok, words added}`, on the worker pool; after each
/// text the running total goes to the caller as a stream item (`RustElixir.stream/4`).
fn index_add_all(index: ResourceArc<WordIndex>, texts: Vec<String>) -> u64 {
    let mut total = 0;
    for text in texts {
        total += index_add(index.clone(), text);
        let _ = rustelixir_nif::emit(&total);
    }
    total
}

/// `{:index_count, index, word}` -> `{:ok, count}`.
fn index_count(index: ResourceArc<WordIndex>, word: String) -> u64 {
    index.counts.lock().unwrap().get(&word.to_lowercase()).copied().unwrap_or(0)
}

/// `{:indexes_dropped}` -> `{:ok, n}`: indexes freed so far.
fn indexes_dropped() -> u64 {
    INDEXES_DROPPED.load(Ordering::Relaxed)
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

natives!(NATIVES = [
    word_count,
    text_stats,
    fib_later,
    quick index_subscribe,
    quick index_subscribers,
    quick fib,
    slow primes_below,
    quick mean,
    quick index_new,
    quick index_add,
    slow index_add_all,
    quick index_count,
    quick indexes_dropped,
]);

rustelixir_nif::python_module!(text_natives, NATIVES);
