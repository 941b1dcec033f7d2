//! Natives that exist only for the node's own tests of conversions, isolation,
//! cancellation and resources. A crate of their own, built as its own Python extension
//! exactly as a user's crate is (`make test-natives`), and served only when a test asks
//! for it: `rustelixir serve --module rustelixir_test_natives`. It links its own copy of
//! rustelixir-nif, so its `Probe` resource shows that a crate's `ResourceArc` lives in the
//! node's table, through the host of each call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustelixir_nif::{
    native, natives, Atom, NifException, NifMap, NifRecord, NifStruct, NifTaggedEnum, NifTuple, NifUnitEnum, NifUntaggedEnum, Pid,
    Reference, Resource, ResourceArc, Term,
};

fn test_panic(message: String) -> i64 {
    panic!("{message}")
}

fn test_scalars(a: i64, b: f64, c: bool, d: String) -> (i64, f64, bool, String) {
    (a, b, c, d)
}

fn test_containers(a: Vec<u8>, b: Vec<i64>, c: (i64, bool), d: Option<i64>) -> (Vec<u8>, Vec<i64>, (i64, bool), Option<i64>) {
    (a, b, c, d)
}

fn test_terms(a: HashMap<String, i64>, b: Atom, c: Pid, d: Reference) -> (HashMap<String, i64>, Atom, Pid, Reference) {
    (a, b, c, d)
}

fn test_small(a: u8, b: i32, c: u64) -> (u8, i32, u64) {
    (a, b, c)
}

fn test_segfault() -> i64 {
    // A native with a memory bug: the node process dies, the BEAM callers see nodedown.
    unsafe { std::ptr::write_volatile(std::ptr::null_mut::<i64>(), 1) };
    0
}

fn test_abort() -> i64 {
    std::process::abort()
}

static CANCELLED_SEEN: AtomicU64 = AtomicU64::new(0);

/// Works (sleeps in 5 ms steps) for `ms`, stopping early when its caller gives up.
fn test_wait_cancel(ms: u64) -> Atom {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        if rustelixir_nif::cancelled() {
            CANCELLED_SEEN.fetch_add(1, Ordering::Relaxed);
            return Atom::new("cancelled");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Atom::new("finished")
}

/// How many test_wait_cancel calls saw their cancellation.
fn test_cancel_seen() -> u64 {
    CANCELLED_SEEN.load(Ordering::Relaxed)
}

/// A resource whose drop is counted, to observe when the table frees it.
struct Probe;

impl Resource for Probe {
    const TYPE_NAME: &'static str = "probe";
}

static PROBES_DROPPED: AtomicU64 = AtomicU64::new(0);

impl Drop for Probe {
    fn drop(&mut self) {
        PROBES_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

fn test_probe_new() -> Result<ResourceArc<Probe>, rustelixir_nif::resource::Overloaded> {
    ResourceArc::try_new(Probe)
}

fn test_probe_use(probe: ResourceArc<Probe>) -> bool {
    let _ = &*probe;
    true
}

fn test_probes_dropped() -> u64 {
    PROBES_DROPPED.load(Ordering::Relaxed)
}

/// Streams 1..=n to its caller, then answers n.
fn test_emit(n: u64) -> Result<u64, rustelixir_nif::SendError> {
    for i in 1..=n {
        rustelixir_nif::emit(&i)?;
    }
    Ok(n)
}

/// Streams 1, 2, ... every `every_ms` on the worker pool until its caller gives up or `n`
/// went; how many went.
fn test_emit_slow(n: u64, every_ms: u64) -> u64 {
    for i in 1..=n {
        if rustelixir_nif::cancelled() {
            CANCELLED_SEEN.fetch_add(1, Ordering::Relaxed);
            return i - 1;
        }
        let _ = rustelixir_nif::emit(&i);
        std::thread::sleep(Duration::from_millis(every_ms));
    }
    n
}

/// Sends `message` to `to`; what `send` said.
fn test_send(to: Pid, message: Term) -> Result<Atom, rustelixir_nif::SendError> {
    rustelixir_nif::send(&to, &message).map(|()| Atom::new("sent"))
}

/// Answers at once; a thread of its own sends `{done, Value}` to the caller `ms` later
/// (or a panic's error when `value` is the atom `panic`).
fn test_spawn(ms: u64, value: Term) -> Atom {
    rustelixir_nif::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        if value == Term::Atom(Atom::new("panic")) {
            panic!("the thread panicked");
        }
        (Atom::new("done"), value)
    });
    Atom::new("started")
}

/// The caller, a fresh reference of the node, and a sender's caller (the same pid).
fn test_caller() -> (Option<Pid>, Reference, Option<Pid>) {
    (rustelixir_nif::caller(), rustelixir_nif::make_ref(), rustelixir_nif::sender().caller())
}

/// Named apart from its Rust function: `{:"test_even?", n}`.
fn test_is_even(n: i64) -> bool {
    n % 2 == 0
}

/// A resource that monitors processes and reports each one's exit to `report_to`.
struct Watcher {
    report_to: Pid,
}

impl Resource for Watcher {
    const TYPE_NAME: &'static str = "watcher";

    fn down(&self, pid: Pid, monitor: Reference) {
        let _ = rustelixir_nif::send(&self.report_to, &(Atom::new("down"), pid, monitor));
    }
}

fn test_watcher_new(report_to: Pid) -> ResourceArc<Watcher> {
    ResourceArc::new(Watcher { report_to })
}

fn test_watch(watcher: ResourceArc<Watcher>, pid: Pid) -> Option<Reference> {
    watcher.monitor(&pid)
}

fn test_unwatch(watcher: ResourceArc<Watcher>, monitor: Reference) -> bool {
    watcher.demonitor(&monitor)
}

/// Every derive form, for Elixir callers (elixir_client/test/integration/derives_test.exs).
#[derive(NifStruct)]
#[module = "RustElixir.TestPoint"]
struct TestPoint {
    x: i64,
    y: i64,
}

#[derive(NifTaggedEnum)]
enum TestShape {
    Empty,
    Circle(f64),
    Labeled { label: String, sides: u32 },
}

#[derive(NifUnitEnum)]
enum TestColor {
    Red,
    DarkBlue,
}

#[derive(NifRecord)]
#[tag = "user"]
struct TestUser {
    name: String,
    age: u8,
}

#[derive(NifMap)]
struct TestSettings {
    name: String,
    #[rustelixir(rename = "maxSize")]
    max_size: u32,
}

#[derive(NifTuple)]
struct TestPair(i64, String);

#[derive(NifUntaggedEnum)]
enum TestNum {
    Int(i64),
    Text(String),
}

#[derive(NifException)]
#[module = "RustElixir.TestError"]
struct TestError {
    message: String,
}

/// Swaps a point's coordinates.
#[native]
fn test_point_flip(p: TestPoint) -> TestPoint {
    TestPoint { x: p.y, y: p.x }
}

/// Each argument back, through its derived Decoder and Encoder.
fn test_derived_echo(
    shape: TestShape,
    color: TestColor,
    user: TestUser,
    settings: TestSettings,
    pair: TestPair,
    num: TestNum,
) -> (TestShape, TestColor, TestUser, TestSettings, TestPair, TestNum) {
    (shape, color, user, settings, pair, num)
}

fn test_raise(message: String) -> Result<(), TestError> {
    Err(TestError { message })
}

/// Adds two integers, checked.
///
/// An overflow is a badarg.
#[native(name = "test_checked_add")]
fn checked_add(first: i64, second: i64) -> Result<i64, rustelixir_nif::BadArg> {
    first.checked_add(second).ok_or_else(|| rustelixir_nif::BadArg::new(2, "the sum overflows"))
}

static ASYNC_CANCELLED: AtomicU64 = AtomicU64::new(0);

/// Counts the async natives dropped before they were done (their caller gave up).
struct UnlessDone(bool);

impl Drop for UnlessDone {
    fn drop(&mut self) {
        if !self.0 {
            ASYNC_CANCELLED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits `ms` (no thread of its own: a timer wakes it), then answers `value`.
#[native]
async fn test_async_sleep(ms: u64, value: Term) -> Term {
    let mut guard = UnlessDone(false);
    rustelixir_nif::sleep(Duration::from_millis(ms)).await;
    guard.0 = true;
    value
}

/// Streams 1..=n to its caller, a millisecond apart, from its task.
#[native]
async fn test_async_emit(n: u64) -> u64 {
    for i in 1..=n {
        let _ = rustelixir_nif::emit(&i);
        rustelixir_nif::sleep(Duration::from_millis(1)).await;
    }
    n
}

/// How many async natives were dropped before they were done.
#[native]
fn test_async_cancelled() -> u64 {
    ASYNC_CANCELLED.load(Ordering::Relaxed)
}

/// The binary's length and the text upper-cased, the binary borrowed from the call's bytes.
#[native]
fn test_borrowed(data: &[u8], text: &str) -> (usize, String) {
    (data.len(), text.to_uppercase())
}

/// The length of a binary taken as it lies in the call (no copy).
#[native]
fn test_len_borrowed(data: &[u8]) -> usize {
    data.len()
}

/// The length of a binary copied into a `Vec<u8>` first.
#[native]
fn test_len_owned(data: Vec<u8>) -> usize {
    data.len()
}

natives!(TEST_NATIVES = [
    test_borrowed,
    test_len_borrowed,
    test_len_owned,
    test_async_sleep,
    test_async_emit,
    test_async_cancelled,
    test_point_flip,
    checked_add,
    quick test_derived_echo,
    quick test_raise,
    quick test_watcher_new,
    quick test_watch,
    quick test_unwatch,
    quick test_emit,
    slow test_emit_slow,
    quick test_send,
    quick test_spawn,
    quick test_caller,
    quick test_is_even as "test_even?",
    quick test_probe_new,
    quick test_probe_use,
    quick test_probes_dropped,
    quick test_panic,
    quick test_scalars,
    quick test_containers,
    quick test_terms,
    quick test_small,
    quick test_segfault,
    quick test_abort,
    slow test_wait_cancel,
    quick test_cancel_seen,
]);

rustelixir_nif::python_module!(rustelixir_test_natives, TEST_NATIVES);
