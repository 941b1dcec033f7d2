//! The built-in Rust natives. A native takes its arguments as raw ETF (each without a
//! version byte) and writes its result as ETF into `out`; it never sees a Python object, so
//! the node's fast path can run it straight from the bytes of a call.

use etf::decode::{decode_at_with, Limits, TermBuilder};
use etf::{BigInt, Term};
use rustelixir_nif::{Atom, BadArg, CallFrame, NativeEntry, NativeTable, ABI_VERSION, MAGIC};

pub enum NativeError {
    /// Argument `index` (1-based) could not be converted: `{:badarg, index, message}`.
    BadArg(usize, String),
}

/// A native working on raw argument bytes, writing its value's bytes.
pub type RawFn = fn(args: &[&[u8]], out: &mut Vec<u8>) -> Result<(), NativeError>;

/// The body of a raw built-in's entry point: `{ok, Value}` or the badarg, panics caught.
///
/// # Safety
/// `frame` must be a valid frame from the node.
unsafe fn run_raw(f: RawFn, frame: *const CallFrame) {
    let frame = &*frame;
    let args: Vec<&[u8]> = (0..frame.nargs).map(|i| (*frame.args.add(i)).as_bytes()).collect();
    rustelixir_nif::with_reply_buffer(|reply| {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // The value is written in place, behind `{ok, `: a large one is copied once.
            rustelixir_nif::reply::write_ok_head(reply);
            if let Err(NativeError::BadArg(index, message)) = f(&args, reply) {
                reply.clear();
                rustelixir_nif::write_badarg(reply, index, &message);
            }
        }));
        if let Err(panic) = result {
            reply.clear();
            rustelixir_nif::write_panic(reply, &rustelixir_nif::panic_message(&*panic));
        }
        (frame.write)(frame.out, reply.as_ptr(), reply.len());
    })
}

macro_rules! raw_entry {
    ($name:literal, $arity:expr, $flags:expr, $f:path) => {
        NativeEntry {
            name: $name.as_ptr(),
            name_len: $name.len(),
            arity: $arity,
            flags: $flags,
            call: {
                extern "C" fn entry(frame: *const CallFrame) {
                    // SAFETY: the node calls with a valid frame.
                    unsafe { run_raw($f, frame) }
                }
                entry
            },
            meta: std::ptr::null(),
        }
    };
}

const BUILTIN_ENTRIES: &[NativeEntry] = &[
    raw_entry!("add", 2, 0, add),
    raw_entry!("echo", 1, 0, echo),
];

/// add/2 (integers of any size), echo/1 (any term, byte for byte).
pub static BUILTINS: NativeTable =
    NativeTable { magic: MAGIC, abi_version: ABI_VERSION, count: BUILTIN_ENTRIES.len(), entries: BUILTIN_ENTRIES.as_ptr() };

fn term_arg(args: &[&[u8]], index: usize) -> Result<Term, NativeError> {
    decode_at_with(args[index - 1], 0, &mut TermBuilder, &Limits::default())
        .map(|(term, _)| term)
        .map_err(|e| NativeError::BadArg(index, format!("undecodable term: {}", e.message)))
}

pub use rustelixir_nif::kind;

/// An integer argument as (negative, little-endian magnitude).
fn integer_arg(args: &[&[u8]], index: usize) -> Result<(bool, Vec<u8>), NativeError> {
    match &term_arg(args, index)? {
        Term::Int(v) => {
            let mag = v.unsigned_abs().to_le_bytes();
            Ok((*v < 0, BigInt::trimmed(&mag).to_vec()))
        }
        Term::BigInt(b) => Ok((b.negative, b.magnitude.to_vec())),
        other => Err(NativeError::BadArg(index, format!("expected an integer, got {}", kind(other)))),
    }
}

fn small_int(args: &[&[u8]], index: usize) -> Option<i64> {
    let a = args[index - 1];
    match a.first()? {
        &etf::tags::SMALL_INTEGER_EXT if a.len() == 2 => Some(a[1] as i64),
        &etf::tags::INTEGER_EXT if a.len() == 5 => Some(i32::from_be_bytes([a[1], a[2], a[3], a[4]]) as i64),
        _ => None,
    }
}

fn add(args: &[&[u8]], out: &mut Vec<u8>) -> Result<(), NativeError> {
    if let (Some(a), Some(b)) = (small_int(args, 1), small_int(args, 2)) {
        etf::encode::put_int(out, a + b);
        return Ok(());
    }
    let (an, am) = integer_arg(args, 1)?;
    let (bn, bm) = integer_arg(args, 2)?;
    let (negative, magnitude) = signed_add(an, &am, bn, &bm);
    match &BigInt::normalized(negative, &magnitude) {
        Term::Int(v) => etf::encode::put_int(out, *v),
        Term::BigInt(b) => etf::encode::put_big(out, b.negative, &b.magnitude),
        _ => unreachable!("normalized gives an integer"),
    }
    Ok(())
}

fn echo(args: &[&[u8]], out: &mut Vec<u8>) -> Result<(), NativeError> {
    // The argument's bytes are already the encoding of the result.
    out.extend_from_slice(args[0]);
    Ok(())
}

const DAY_MS: i64 = 86_400_000;

/// sleep/1: waits `milliseconds` (at most a day) on the worker pool, then answers `:ok`;
/// it stops early, its reply dropped, when its caller gives up.
fn sleep(milliseconds: Term) -> Result<Atom, BadArg> {
    let ms = match &milliseconds {
        Term::Int(v) if (0..=DAY_MS).contains(v) => *v as u64,
        Term::Int(v) if *v < 0 => return Err(BadArg::new(1, "expected a non-negative number of milliseconds")),
        Term::BigInt(b) if b.negative => return Err(BadArg::new(1, "expected a non-negative number of milliseconds")),
        Term::Int(_) | Term::BigInt(_) => {
            return Err(BadArg::new(1, format!("expected at most {DAY_MS} milliseconds (a day)")))
        }
        other => return Err(BadArg::new(1, format!("expected an integer, got {}", kind(other)))),
    };
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    loop {
        let now = std::time::Instant::now();
        if now >= end || rustelixir_nif::cancelled() {
            return Ok(Atom::new("ok"));
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(10)));
    }
}

rustelixir_nif::natives!(SLOW_BUILTINS = [slow sleep]);

// --- Arbitrary-precision addition on little-endian magnitudes ------------------------------

fn mag_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let a = BigInt::trimmed(a);
    let b = BigInt::trimmed(b);
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn mag_add(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0u16;
    for i in 0..a.len().max(b.len()) {
        let s = *a.get(i).unwrap_or(&0) as u16 + *b.get(i).unwrap_or(&0) as u16 + carry;
        out.push(s as u8);
        carry = s >> 8;
    }
    if carry > 0 {
        out.push(carry as u8);
    }
    out
}

/// a - b where a >= b.
fn mag_sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i16;
    for i in 0..a.len() {
        let mut d = a[i] as i16 - *b.get(i).unwrap_or(&0) as i16 - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out.push(d as u8);
    }
    out
}

pub fn signed_add(an: bool, a: &[u8], bn: bool, b: &[u8]) -> (bool, Vec<u8>) {
    if an == bn {
        return (an, mag_add(a, b));
    }
    match mag_cmp(a, b) {
        std::cmp::Ordering::Less => (bn, mag_sub(b, a)),
        _ => (an, mag_sub(a, b)),
    }
}
