//! Decoding. One decoder walks the bytes without recursion (an explicit stack of open
//! containers), and hands every value to a [`Builder`]: [`TermBuilder`] makes [`Term`]s, the
//! Python binding makes Python objects directly from the same walk.
//!
//! Untrusted input: every length is checked against the bytes that remain before anything is
//! allocated, nesting is bounded by [`Limits::max_depth`], a compressed term may not claim
//! more than [`Limits::max_uncompressed_size`], what decoding may allocate is bounded by
//! [`Limits::max_memory`] (charged value by value, see [`cost`]), and every error names the
//! offset. Errors over a limit have [`DecodeErrorKind::Limit`]; all others are malformed input.

use std::borrow::Cow;
use std::vec::Drain;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::tags::*;
use crate::term::{Atom, BigInt, Export, Fun, Pid, Port, Reference, Term};

#[derive(Clone, Debug)]
pub struct Limits {
    /// Containers (tuples, lists, maps, fun environments) nested deeper than this are refused.
    pub max_depth: usize,
    /// The largest size a compressed term may decompress to.
    pub max_uncompressed_size: usize,
    /// An upper estimate of the bytes decoding may allocate, whatever the builder: the
    /// decoded value, the decoder's own stacks, and the inflated bytes of a compressed term.
    /// Charged as the bytes are read, by the table in [`cost`] (which also says what it
    /// leaves out), so a term is refused as soon as it passes the bound, before the memory
    /// is taken.
    pub max_memory: usize,
}

pub const DEFAULT_MAX_DEPTH: usize = 10_000;
pub const DEFAULT_MAX_UNCOMPRESSED_SIZE: usize = 1 << 30;
pub const DEFAULT_MAX_MEMORY: usize = 1 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_uncompressed_size: DEFAULT_MAX_UNCOMPRESSED_SIZE,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

pub mod cost {
    //! What each value costs against [`Limits::max_memory`](super::Limits::max_memory):
    //! the one table the decoder charges from. The decoder charges by tag, the same for
    //! every builder, so a term one builder accepts every builder accepts; each cost is an
    //! upper bound on what *both* builders of this project allocate for the value,
    //! transients included:
    //!
    //! - [`TermBuilder`](super::TermBuilder): the value's `Term` (`size_of::<Term>()`, 32
    //!   bytes, in its container's `Vec`) plus its heap (strings, byte slices, child vectors,
    //!   the boxes of the boxed variants), each heap allocation counted with [`HEAP`] bytes of
    //!   allocator overhead;
    //! - the Python builder (`native/src/from_etf.rs`), against CPython 3.11 object sizes
    //!   (`sys.getsizeof`, rounded up to pymalloc's 16 bytes, or plus [`HEAP`] past 512 bytes).
    //!   Small ints (-5..=256), `True`/`False`/`None`, the empty tuple and cached atoms are
    //!   shared objects: those values cost only their place in their container.
    //!
    //! A value costs the place it takes in its container plus the extra of its kind. The
    //! place is paid by whoever claims the value, before reading it: a container opening
    //! pays for its `n` children's places (so no `reserve` for them can exceed the budget), a
    //! fun for its free variables, the decoder for the root. Its size depends on the
    //! container, its extra only on the value:
    //!
    //! - in a list or tuple, a fun's environment, or at the root: a [`SLOT`], the larger of a
    //!   `Term` and a Python item pointer (8 bytes). What the slot has left beside the pointer
    //!   ([`PY_SPARE`], 24 bytes) holds the start of the value's Python object;
    //! - in a map, a share of [`MAP_PAIR`]: a pair's place in the dict's table (at most 90
    //!   bytes a pair past its first 128, measured with `tracemalloc` up to 2^17 entries,
    //!   around every resize, the old and new tables alive at once) and in the builder's pair
    //!   `Vec` (16), the start of its key's and its value's objects as in a slot, and a
    //!   `MapKey` (64 + its encoding's `Vec`) in case Python cannot hash the key; for Term,
    //!   the pair (two `Term`s) and its key's index for the repeated-key check (8).
    //!
    //! So a kind's extra is whichever is larger: its `Term`'s heap, or its Python object
    //! past the [`PY_SPARE`] bytes its place holds. "+ n" extras are charged with the bytes
    //! the value carries (text, digits, data), read from its length field. In bytes, on a
    //! 64-bit target (`budget.rs` checks these numbers):
    //!
    //! | place | cost | what |
    //! |---|---|---|
    //! | in a list, tuple, fun environment, or the root | [`SLOT`] 32 | a `Term`; an item pointer and 24 bytes of the object |
    //! | in a map | [`MAP_PAIR`] 250 a pair | see above |
    //! | on the decoder's stack | [`STACK_SLOT`] 32 | a `Term` |
    //!
    //! | value | extra | the larger builder, and why |
    //! |---|---|---|
    //! | integer 0..=255 (SMALL_INTEGER_EXT), `{}` | 0 | shared in Python; no heap in Term |
    //! | integer of INTEGER_EXT | [`INT32`] 8 | Python: an `int` of 28 or 32 bytes (32 with pymalloc's rounding) |
    //! | float | [`FLOAT`] 8 | Python: a `float` of 24 bytes (32) |
    //! | integer in `i64` sent in a big encoding | [`INT64`] 24 | Python: an `int` of up to 36 bytes (48) |
    //! | integer past `i64`, `n` digit bytes | [`BIG_INT`] 229 + [`BIG_INT_PER_BYTE`] 3 × n | Python: `int.from_bytes` of a `bytes` copy (its argument tuple and a bound method alive meanwhile), then the negation: two ints of about 1.07 n alive at once |
    //! | `[]` | [`NIL`] 40 | Python: a new list of 56 bytes (64) |
    //! | `%{}` | [`EMPTY_MAP`] 40 | Python: a new dict of 64 bytes |
    //! | atom, text of n bytes | [`ATOM`] 56 + n | Python, once the atom cache is full: an `Atom` of 40 bytes (48) holding a `String` like Term's (a Latin-1 text that is not ASCII costs its UTF-8 length, once more for the conversion) |
    //! | binary, n bytes | [`BINARY`] 41 + n | Python: `bytes`, 33 + n |
    //! | bitstring, n bytes | [`BITSTRING`] 56 + n (+ [`HEAP`] + n when its unused bits must be cleared) | Python: a `BitString` (48) holding a `Vec<u8>`; and the cleared copy |
    //! | pid, node name of n bytes | [`PID`] 104 + n | both: Term's boxed `Pid` (40) and its node's `String`; Python's `Pid` (40, so 48) and an uncached node `Atom` |
    //! | port | [`PORT`] 104 + n | Term: the boxed `Port` (40) and its node's `String` (Python's `Port` is 64 with the same `String`) |
    //! | reference | [`REFERENCE`] 172 + n | Term: the boxed `Reference` (56), the node's `String` and the ids' `Vec`; Python: `Reference` (56, so 64, ids inline) and an uncached node `Atom` |
    //! | fun, module and node names of n bytes | [`FUN`] 256 + n, and a slot per free variable | Term: the boxed `Fun` (128; Python's `Fun` of 144 holds the same `etf::Fun`), two `String`s and the environment's `Vec` |
    //! | export, n bytes of names | [`EXPORT`] 152 + n | Term: the boxed `Export` (56) and two `String`s (Python's `Export` is 80 with the same) |
    //! | tuple of n ≥ 1 | [`TUPLE`] 48, and n slots | Python: the tuple (40 + its 8 n of item pointers, which the slots cover; pymalloc's rounding, or malloc's overhead past 512 bytes) |
    //! | list of n (LIST_EXT) | [`LIST`] 72, and n slots | Python: the list (56, so 64) and its separately allocated item array |
    //! | improper tail | [`IMPROPER_TAIL`] 64 | the tail's slot, and Python's `ImproperList` (32) around the list (Term: the tail's `Box`) |
    //! | string (STRING_EXT) of n | [`STRING`] 104, and n slots | Python: the list and the item `Vec` the builder collects first |
    //! | map of n ≥ 1 pairs | [`MAP`] 136, and n × [`MAP_PAIR`] | Python: the dict's fixed part (128 bytes with its first table) and the builder's pair `Vec`; Term: the pair `Vec` and the key index |
    //!
    //! The decoder's own memory is charged as it grows: its stack of finished values at
    //! [`STACK_SLOT`] a place and its stack of open containers at [`OPEN_SLOT`], both charged
    //! for each new capacity (and [`HEAP`] for the new buffer) before it is allocated, and a
    //! compressed term's inflated bytes (its size field) before it is inflated.
    //!
    //! Not charged: a few fixed buffers (the inflater's 64 KiB window and state), the copy a
    //! `realloc` may make while it moves a buffer, the page rounding of blocks malloc maps on
    //! their own (128 KiB or more: under 4 KiB each), and, in Python, the thread's atom cache
    //! (atoms outlive the call; the cache is bounded on its own) and the encoding a `MapKey`
    //! holds for a key Python cannot hash (a second copy of the key's bytes: in all, at most
    //! twice the term's own size).

    use std::mem::size_of;

    use crate::term::{Export, Fun, Pid, Port, Reference, Term};

    const fn max(a: usize, b: usize) -> usize {
        if a > b {
            a
        } else {
            b
        }
    }

    /// One heap allocation's overhead: glibc's malloc adds an 8-byte header, rounds to 16
    /// bytes and takes at least 32, so `n` requested bytes take at most `n + 32`.
    pub const HEAP: usize = 32;
    /// A value's place in a list or tuple, a fun's environment, or the root's: a `Term` in
    /// its container's `Vec`, or a Python item pointer and the first [`PY_SPARE`] bytes of
    /// the value's object. Also at least the two pointers a STRING_EXT's character takes in
    /// Python (the builder's `Vec`, then the list).
    pub const SLOT: usize = max(size_of::<Term>(), 2 * PY_POINTER);
    /// What of a value's Python object its [`SLOT`] holds beside the item pointer.
    pub const PY_SPARE: usize = SLOT - PY_POINTER;
    /// A place in the decoder's stack of finished values, for any builder: the largest
    /// `Builder::Value` here (a `Term`; a Python object is a pointer).
    pub const STACK_SLOT: usize = size_of::<Term>();
    /// A place in the decoder's stack of open containers.
    pub const OPEN_SLOT: usize = size_of::<super::Open>();

    const PY_POINTER: usize = 8;
    /// The largest Python object of a kind, as pymalloc takes it (`sys.getsizeof` rounded up
    /// to 16), less what the value's place holds.
    const fn py(object: usize) -> usize {
        ((object + 15) & !15).saturating_sub(PY_SPARE)
    }
    /// A Python `Atom` made for a name the cache no longer takes: the object and its `String`.
    const PY_ATOM: usize = ((40 + 15) & !15) + HEAP;

    pub const INT32: usize = py(32);
    pub const INT64: usize = py(36);
    pub const FLOAT: usize = py(24);
    /// Python, at most: a `bytes` copy of the digits (33 + n, and malloc's overhead), the
    /// argument tuple (56) and a bound method (64) around it, and the int made of them (28 +
    /// 1.07 n, and malloc's overhead); then that int and its negation.
    pub const BIG_INT: usize = (33 + HEAP) + 64 + 64 + (28 + HEAP) - PY_SPARE;
    pub const BIG_INT_PER_BYTE: usize = 3;
    pub const NIL: usize = py(56);
    pub const EMPTY_MAP: usize = py(64);
    pub const ATOM: usize = max(HEAP, py(40) + HEAP);
    pub const BINARY: usize = max(HEAP, (33 + HEAP).saturating_sub(PY_SPARE));
    pub const BITSTRING: usize = max(HEAP, py(48) + HEAP);
    pub const PID: usize = max(HEAP + size_of::<Pid>() + HEAP, py(40) + PY_ATOM);
    pub const PORT: usize = max(HEAP + size_of::<Port>() + HEAP, py(64) + HEAP);
    /// Term's ids: at most five words.
    pub const REFERENCE: usize = max(HEAP + size_of::<Reference>() + HEAP + (20 + HEAP), py(56) + PY_ATOM);
    /// The fun (boxed in Term, inline in Python's 16-byte object header), its module's and
    /// its pid's node's `String`s and the environment's `Vec`.
    pub const FUN: usize = max(HEAP + size_of::<Fun>(), py(16 + size_of::<Fun>())) + 3 * HEAP;
    pub const EXPORT: usize = max(HEAP + size_of::<Export>(), py(72)) + 2 * HEAP;
    pub const TUPLE: usize = max(HEAP, (40 + HEAP).saturating_sub(PY_SPARE));
    pub const LIST: usize = max(HEAP, py(56) + HEAP);
    /// The tail's own slot, and in Term its `Box`; in Python the `ImproperList` (32) around
    /// the list, which takes the spare bytes of the list's place, so that the list's object
    /// has none: both are charged here.
    pub const IMPROPER_TAIL: usize = SLOT + max(HEAP, py(32) + PY_SPARE);
    /// The list and, besides its item array, the `Vec` the Python builder collects first.
    pub const STRING: usize = max(HEAP, py(56) + 2 * HEAP);
    pub const MAP: usize = max(2 * HEAP, (128 + HEAP).saturating_sub(PY_SPARE));
    /// A pair's place (see the module's doc).
    pub const MAP_PAIR: usize =
        max(2 * size_of::<Term>() + 8, 90 + 2 * PY_POINTER + ((56 + 15) & !15) + HEAP + 2 * PY_SPARE);
}

/// Receives the decoded values, leaves first. Containers get their children already built.
pub trait Builder {
    type Value;
    type Error: From<DecodeError>;

    fn int(&mut self, v: i64) -> Result<Self::Value, Self::Error>;
    /// An integer outside `i64`; `magnitude` is little-endian with no trailing zero byte.
    fn big_int(&mut self, negative: bool, magnitude: &[u8]) -> Result<Self::Value, Self::Error>;
    fn float(&mut self, v: f64) -> Result<Self::Value, Self::Error>;
    fn atom(&mut self, name: &str) -> Result<Self::Value, Self::Error>;
    fn binary(&mut self, data: &[u8]) -> Result<Self::Value, Self::Error>;
    /// `tail_bits` in 1..=7; the unused low bits of the last byte are zero.
    fn bitstring(&mut self, data: &[u8], tail_bits: u8) -> Result<Self::Value, Self::Error>;
    /// Pids and references come in parts, with the node's name borrowed from the input: a
    /// builder that shares node names (they repeat in every message) allocates nothing for them.
    fn pid(&mut self, node: &str, id: u32, serial: u32, creation: u32) -> Result<Self::Value, Self::Error>;
    fn port(&mut self, port: Port) -> Result<Self::Value, Self::Error>;
    /// `ids`: 1 to 5 words.
    fn reference(&mut self, node: &str, creation: u32, ids: &[u32]) -> Result<Self::Value, Self::Error>;
    fn fun(&mut self, fun: Fun) -> Result<Self::Value, Self::Error>;
    fn export(&mut self, export: Export) -> Result<Self::Value, Self::Error>;
    /// Containers get their children as a draining iterator over the decoder's one value
    /// stack, so no container costs an allocation of its own before the builder's.
    fn tuple(&mut self, items: Drain<'_, Self::Value>) -> Result<Self::Value, Self::Error>;
    /// `tail` is `None` for a proper list; otherwise `items` is not empty and `tail` is not a list.
    fn list(&mut self, items: Drain<'_, Self::Value>, tail: Option<Self::Value>) -> Result<Self::Value, Self::Error>;
    /// STRING_EXT: a proper list of small integers, given as bytes.
    fn string(&mut self, bytes: &[u8]) -> Result<Self::Value, Self::Error> {
        let mut items = bytes.iter().map(|&b| self.int(b as i64)).collect::<Result<Vec<_>, _>>()?;
        self.list(items.drain(..), None)
    }
    /// Keys and values alternate: key, value, key, value, ... A key repeated (exactly equal
    /// to another) must be refused, as binary_to_term does, with `at` (the map's offset).
    fn map(&mut self, kvs: Drain<'_, Self::Value>, at: usize) -> Result<Self::Value, Self::Error>;
}

/// Builds [`Term`]s.
pub struct TermBuilder;

impl Builder for TermBuilder {
    type Value = Term;
    type Error = DecodeError;

    fn int(&mut self, v: i64) -> Result<Term, DecodeError> {
        Ok(Term::Int(v))
    }
    fn big_int(&mut self, negative: bool, magnitude: &[u8]) -> Result<Term, DecodeError> {
        Ok(BigInt::normalized(negative, magnitude))
    }
    fn float(&mut self, v: f64) -> Result<Term, DecodeError> {
        Ok(Term::Float(v))
    }
    fn atom(&mut self, name: &str) -> Result<Term, DecodeError> {
        Ok(Term::atom(name))
    }
    fn binary(&mut self, data: &[u8]) -> Result<Term, DecodeError> {
        Ok(Term::Binary(data.to_vec()))
    }
    fn bitstring(&mut self, data: &[u8], tail_bits: u8) -> Result<Term, DecodeError> {
        Ok(Term::bitstring(data, tail_bits))
    }
    fn pid(&mut self, node: &str, id: u32, serial: u32, creation: u32) -> Result<Term, DecodeError> {
        Ok(Term::from(Pid { node: Atom::from(node), id, serial, creation }))
    }
    fn port(&mut self, port: Port) -> Result<Term, DecodeError> {
        Ok(Term::from(port))
    }
    fn reference(&mut self, node: &str, creation: u32, ids: &[u32]) -> Result<Term, DecodeError> {
        Ok(Term::from(Reference { node: Atom::from(node), creation, ids: ids.to_vec() }))
    }
    fn fun(&mut self, fun: Fun) -> Result<Term, DecodeError> {
        Ok(Term::from(fun))
    }
    fn export(&mut self, export: Export) -> Result<Term, DecodeError> {
        Ok(Term::from(export))
    }
    fn tuple(&mut self, items: Drain<'_, Term>) -> Result<Term, DecodeError> {
        Ok(Term::Tuple(items.collect()))
    }
    fn list(&mut self, items: Drain<'_, Term>, tail: Option<Term>) -> Result<Term, DecodeError> {
        Ok(match tail {
            None => Term::List(items.collect()),
            Some(tail) => Term::ImproperList(items.collect(), Box::new(tail)),
        })
    }
    fn string(&mut self, bytes: &[u8]) -> Result<Term, DecodeError> {
        // Straight into the list: the default goes through a `Vec` of its own first, which
        // held every element twice.
        Ok(Term::List(bytes.iter().map(|&b| Term::Int(b as i64)).collect()))
    }
    fn map(&mut self, mut kvs: Drain<'_, Term>, at: usize) -> Result<Term, DecodeError> {
        let mut pairs = Vec::with_capacity(kvs.len() / 2);
        while let (Some(k), Some(v)) = (kvs.next(), kvs.next()) {
            pairs.push((k, v));
        }
        let repeated = if pairs.len() <= 16 {
            pairs.iter().enumerate().any(|(i, (k, _))| pairs[..i].iter().any(|(e, _)| e == k))
        } else {
            let mut keys: Vec<&Term> = pairs.iter().map(|(k, _)| k).collect();
            // Unstable: the stable sort takes a scratch buffer as large as the keys.
            keys.sort_unstable();
            keys.windows(2).any(|w| w[0] == w[1])
        };
        if repeated {
            return Err(DecodeError::new(at, "map with a repeated key"));
        }
        Ok(Term::Map(pairs))
    }
}

/// Decodes one whole term (version byte first); trailing bytes are an error.
pub fn decode(data: &[u8]) -> Result<Term, DecodeError> {
    decode_with(data, &mut TermBuilder, &Limits::default())
}

pub fn decode_with<B: Builder>(data: &[u8], builder: &mut B, limits: &Limits) -> Result<B::Value, B::Error> {
    let (value, used) = decode_prefix_with(data, builder, limits)?;
    if used != data.len() {
        return Err(DecodeError::new(used, format!("{} trailing bytes after the term", data.len() - used)).into());
    }
    Ok(value)
}

/// Decodes the term at the start of `data` (version byte first) and says how many bytes it
/// took, for streams that carry several terms back to back.
pub fn decode_prefix_with<B: Builder>(
    data: &[u8],
    builder: &mut B,
    limits: &Limits,
) -> Result<(B::Value, usize), B::Error> {
    match data.first() {
        None => return Err(DecodeError::new(0, "empty input").into()),
        Some(&VERSION) => {}
        Some(&other) => {
            return Err(DecodeError::new(0, format!("bad version byte {other} (expected {VERSION})")).into())
        }
    }
    decode_at_with(data, 0, builder, limits)
}

/// Decodes the term at `data[start..]`, with or without the version byte in front (the terms
/// after a distribution header have none), and says where it ends. Error offsets count from
/// the start of `data`, so they point into the frame the bytes came in.
pub fn decode_at_with<B: Builder>(
    data: &[u8],
    start: usize,
    builder: &mut B,
    limits: &Limits,
) -> Result<(B::Value, usize), B::Error> {
    let mut memory = limits.max_memory;
    decode_at_within(data, start, builder, limits, &mut memory)
}

/// [`decode_at_with`] against a memory budget the caller holds, for several terms that must
/// fit in one [`Limits::max_memory`] together (the control message and the payload of one
/// distribution message): `memory` is what may still be allocated, and what this term
/// costs is taken from it. Left as it was when the term is refused.
pub fn decode_at_within<B: Builder>(
    data: &[u8],
    start: usize,
    builder: &mut B,
    limits: &Limits,
    memory: &mut usize,
) -> Result<(B::Value, usize), B::Error> {
    let mut at = start;
    if data.get(at) == Some(&VERSION) {
        at += 1;
    }
    if data.get(at) == Some(&COMPRESSED) {
        let (inflated, end, left) = inflate(data, at, limits, *memory)?;
        let mut inner = Decoder::new(&inflated, 0, limits, left);
        inner.compressed_at = Some(at);
        inner.charge(cost::SLOT, 0)?;
        let value = inner.term(builder)?;
        if inner.pos != inflated.len() {
            return Err(inner.err(inner.pos, "trailing bytes inside the decompressed term").into());
        }
        *memory = inner.budget;
        return Ok((value, end));
    }
    let mut decoder = Decoder::new(data, at, limits, *memory);
    decoder.charge(cost::SLOT, at)?;
    let value = decoder.term(builder)?;
    *memory = decoder.budget;
    Ok((value, decoder.pos))
}

/// COMPRESSED: 4-byte uncompressed size, then a zlib stream. The size is charged to the
/// memory budget before anything is inflated, and the buffer never grows past it, so a term
/// claiming too much is refused at once and one lying about its size stops at its claim.
/// Memory grows only with what the stream really produces, never with what the size field
/// claims. Returns the inflated bytes, where the term ends in `data`, and the budget left.
fn inflate(data: &[u8], tag_at: usize, limits: &Limits, memory: usize) -> Result<(Vec<u8>, usize, usize), DecodeError> {
    let size_at = tag_at + 1;
    let Some(size_bytes) = data.get(size_at..size_at + 4) else {
        return Err(DecodeError::new(size_at, "truncated compressed term size"));
    };
    let claimed = u32::from_be_bytes(size_bytes.try_into().unwrap()) as usize;
    if claimed > limits.max_uncompressed_size {
        return Err(DecodeError::limit(
            size_at,
            format!("compressed term claims {claimed} bytes, over the limit of {}", limits.max_uncompressed_size),
        ));
    }
    let Some(left) = memory.checked_sub(claimed) else {
        return Err(DecodeError::limit(
            size_at,
            format!("compressed term claims {claimed} bytes, more than the memory limit of {} bytes leaves", limits.max_memory),
        ));
    };
    let payload = &data[size_at + 4..];
    let mut out: Vec<u8> = Vec::new();
    let mut state = miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Zlib);
    // One byte past the claim, so a stream that inflates to more than it claims is caught.
    let mut chunk = vec![0u8; 64 * 1024];
    let mut input = payload;
    loop {
        let want = chunk.len().min(claimed + 1 - out.len());
        let res = miniz_oxide::inflate::stream::inflate(
            &mut state,
            input,
            &mut chunk[..want],
            miniz_oxide::MZFlush::None,
        );
        input = &input[res.bytes_consumed..];
        let written = res.bytes_written;
        if out.len() + written > claimed {
            return Err(DecodeError::new(size_at, format!("compressed term inflates to more than the {claimed} bytes it claims")));
        }
        if written > out.capacity() - out.len() {
            // Doubling, as `extend` would, but never past the claim that was charged.
            let room = (2 * out.capacity()).max(out.len() + written).min(claimed);
            out.reserve_exact(room - out.len());
        }
        out.extend_from_slice(&chunk[..written]);
        match res.status {
            Ok(miniz_oxide::MZStatus::StreamEnd) => break,
            Ok(_) if res.bytes_consumed == 0 && written == 0 => {
                return Err(DecodeError::new(data.len(), "truncated compressed term"));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(DecodeError::new(size_at + 4 + (payload.len() - input.len()), format!("bad zlib data in compressed term: {e:?}")));
            }
        }
    }
    if out.len() != claimed {
        return Err(DecodeError::new(size_at, format!("compressed term inflates to {} bytes, not the {claimed} it claims", out.len())));
    }
    Ok((out, data.len() - input.len(), left))
}

/// `bytes` as text when they are all ASCII, as nearly every atom is. The general UTF-8
/// validation costs several instructions a byte on these short texts (it was the largest
/// single cost of decoding a small message); the ASCII test reads a word at a time.
#[inline(always)]
fn ascii_str(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        None
    }
}

/// A container still being filled: its children so far are the values from `start` on.
enum Open {
    Tuple { start: usize, remaining: usize },
    /// `remaining` elements to come; at 0, the next value read is the (improper) tail.
    List { start: usize, remaining: usize },
    /// `remaining` counts keys and values; `at` is the map's offset.
    Map { start: usize, remaining: usize, at: usize },
}

struct Decoder<'a, 'l> {
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
    limits: &'l Limits,
    /// Inside a compressed term: where its tag is in the input. Errors then name that
    /// offset, and the offset inside the decompressed data in their message.
    compressed_at: Option<usize>,
    /// Bytes that may still be allocated (see [`cost`]).
    budget: usize,
}

impl<'a, 'l> Decoder<'a, 'l> {
    fn new(data: &'a [u8], pos: usize, limits: &'l Limits, budget: usize) -> Self {
        Decoder { data, pos, max_depth: limits.max_depth, limits, compressed_at: None, budget }
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> DecodeError {
        self.err_of(DecodeErrorKind::Malformed, at, msg.into())
    }

    fn err_of(&self, kind: DecodeErrorKind, at: usize, msg: String) -> DecodeError {
        let (offset, message) = match self.compressed_at {
            None => (at, msg),
            Some(tag_at) => (tag_at, format!("{msg} (at offset {at} of the decompressed term)")),
        };
        DecodeError { kind, offset, message }
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self, at: usize) -> DecodeError {
        self.err_of(DecodeErrorKind::Limit, at, format!("nesting deeper than the depth limit ({})", self.limits.max_depth))
    }

    /// Takes `cost` bytes from the budget, or refuses the value at `at`: one subtraction and
    /// one branch, the whole price of the limit on the values that pay anything.
    #[inline(always)]
    fn charge(&mut self, cost: usize, at: usize) -> Result<(), DecodeError> {
        match self.budget.checked_sub(cost) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(self.over_budget(at)),
        }
    }

    /// `fixed + n * each`, for the costs that grow with a length read from the input.
    #[inline(always)]
    fn charge_n(&mut self, fixed: usize, n: usize, each: usize, at: usize) -> Result<(), DecodeError> {
        self.charge(fixed.saturating_add(n.saturating_mul(each)), at)
    }

    #[cold]
    #[inline(never)]
    fn over_budget(&self, at: usize) -> DecodeError {
        self.err_of(
            DecodeErrorKind::Limit,
            at,
            format!("term needs more than the memory limit of {} bytes", self.limits.max_memory),
        )
    }

    /// Room on the stack of finished values for `additional` more, charged before it is
    /// taken. `room` is the stack's capacity as charged: the decoder decides the growth so it
    /// is the same for every builder, even one whose values take no memory. It grows by a
    /// quarter, not double: a container reserves room for all its children when it opens,
    /// so the stack outgrows that only while its last children are filled with children of
    /// their own, and doubling there (a long list of pairs, at its last pair) took as much
    /// again as the whole list.
    #[inline(always)]
    fn make_room<V>(&mut self, values: &mut Vec<V>, room: &mut usize, additional: usize, at: usize) -> Result<(), DecodeError> {
        let need = values.len() + additional;
        if need > *room {
            let grown = need.max(*room + *room / 4).max(16);
            self.charge((grown - *room).saturating_mul(cost::STACK_SLOT) + cost::HEAP, at)?;
            values.reserve_exact(grown - values.len());
            *room = grown;
        }
        Ok(())
    }

    /// Pushes an open container, charging the stack's growth before it is taken.
    #[inline(always)]
    fn open(&mut self, stack: &mut Vec<Open>, open: Open, at: usize) -> Result<(), DecodeError> {
        if stack.len() == stack.capacity() {
            let grown = (2 * stack.capacity()).max(8);
            self.charge((grown - stack.capacity()) * cost::OPEN_SLOT + cost::HEAP, at)?;
            stack.reserve_exact(grown - stack.len());
        }
        stack.push(open);
        Ok(())
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    // The readers below run for every byte of every term: they are inlined into the
    // decoder's loop, and the error they rarely make is built out of line (a `DecodeError`
    // owns a `String`; formatting it inline bloated every call site and kept the readers
    // themselves from being inlined).
    #[inline(always)]
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        match self.data.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.truncated(n, what)),
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize, what: &str) -> DecodeError {
        self.err(self.pos, format!("truncated {what}: needs {n} bytes, {} remain", self.remaining()))
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        match self.data.get(self.pos..).and_then(|rest| rest.first_chunk::<N>()) {
            Some(a) => {
                self.pos += N;
                Ok(*a)
            }
            None => Err(self.truncated(N, what)),
        }
    }

    #[inline(always)]
    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(1, what)),
        }
    }
    #[inline(always)]
    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    #[inline(always)]
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    #[inline(always)]
    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A count of things that each take at least `min_each` bytes: refused at once when the
    /// remaining input cannot hold them, so no allocation follows an absurd length.
    #[inline(always)]
    fn count(&mut self, n: usize, min_each: usize, at: usize, what: &str) -> Result<usize, DecodeError> {
        if n.saturating_mul(min_each) > self.remaining() {
            return Err(self.too_many(n, at, what));
        }
        Ok(n)
    }

    #[cold]
    #[inline(never)]
    fn too_many(&self, n: usize, at: usize, what: &str) -> DecodeError {
        self.err(at, format!("{what} claims {n} elements but only {} bytes remain", self.remaining()))
    }

    /// An atom in any of its four encodings.
    #[inline]
    fn atom_text(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        let at = self.pos;
        let tag = self.u8("atom tag")?;
        self.atom_body(tag, at)
    }

    #[inline]
    fn atom_body(&mut self, tag: u8, at: usize) -> Result<Cow<'a, str>, DecodeError> {
        let (len, utf8) = match tag {
            SMALL_ATOM_UTF8_EXT => (self.u8("atom length")? as usize, true),
            ATOM_UTF8_EXT => (self.u16("atom length")? as usize, true),
            SMALL_ATOM_EXT => (self.u8("atom length")? as usize, false),
            ATOM_EXT => (self.u16("atom length")? as usize, false),
            ATOM_CACHE_REF => return Err(self.err(at, "atom cache reference outside a distribution header")),
            other => return Err(self.err(at, format!("expected an atom, found tag {other}"))),
        };
        let bytes = self.take(len, "atom text")?;
        if utf8 {
            let text = match ascii_str(bytes) {
                Some(text) => text,
                None => std::str::from_utf8(bytes).map_err(|_| self.err(at, "atom text is not valid UTF-8"))?,
            };
            // At most 255 bytes is at most 255 characters: only longer texts need counting.
            if len > 255 && text.chars().count() > 255 {
                return Err(self.err(at, "atom longer than 255 characters"));
            }
            Ok(Cow::Borrowed(text))
        } else if len > 255 {
            // Latin-1: one byte, one character.
            Err(self.err(at, "atom longer than 255 characters"))
        } else if let Some(text) = ascii_str(bytes) {
            Ok(Cow::Borrowed(text))
        } else {
            // The conversion is a copy of its own (at most two bytes a character), besides
            // the one the builder makes of the text, which the value's cost covers.
            self.charge(cost::HEAP + 2 * len, at)?;
            Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect()))
        }
    }

    fn small_int_field(&mut self, what: &str) -> Result<i64, DecodeError> {
        let at = self.pos;
        match self.u8(what)? {
            SMALL_INTEGER_EXT => Ok(self.u8(what)? as i64),
            INTEGER_EXT => Ok(self.u32(what)? as i32 as i64),
            other => Err(self.err(at, format!("expected an integer for {what}, found tag {other}"))),
        }
    }

    /// A pid after its tag: node, id, serial, creation.
    #[inline]
    fn pid_fields(&mut self, tag: u8) -> Result<(Cow<'a, str>, u32, u32, u32), DecodeError> {
        let node = self.atom_text()?;
        let id = self.u32("pid id")?;
        let serial = self.u32("pid serial")?;
        let creation = if tag == NEW_PID_EXT { self.u32("pid creation")? } else { self.u8("pid creation")? as u32 };
        Ok((node, id, serial, creation))
    }

    fn pid_term(&mut self) -> Result<Pid, DecodeError> {
        let at = self.pos;
        match self.u8("pid tag")? {
            tag @ (NEW_PID_EXT | PID_EXT) => {
                let (node, id, serial, creation) = self.pid_fields(tag)?;
                Ok(Pid { node: Atom(node.into_owned()), id, serial, creation })
            }
            other => Err(self.err(at, format!("expected a pid, found tag {other}"))),
        }
    }

    /// NEW_FUN_EXT, field by field; its Size must agree with its contents.
    fn fun(&mut self, tag_at: usize, depth: usize) -> Result<Fun, DecodeError> {
        let size_at = self.pos;
        let size = self.u32("fun size")? as usize;
        const FIXED: usize = 4 + 1 + 16 + 4 + 4;
        if size < FIXED || size - 4 > self.remaining() {
            return Err(self.err(size_at, format!("fun size {size} does not fit the {} bytes that remain", self.remaining() + 4)));
        }
        let end = size_at + size;
        // `depth` containers are open around this fun; its environment gets what is left.
        let Some(inner_depth) = self.max_depth.checked_sub(depth + 1) else {
            return Err(self.too_deep(tag_at));
        };
        // Every field is read inside the window Size gives, so a Size that ends early is a
        // truncation like any other.
        let mut inner = Decoder { data: &self.data[..end], pos: self.pos, max_depth: inner_depth, ..*self };
        let arity = inner.u8("fun arity")?;
        let uniq: [u8; 16] = inner.take(16, "fun uniq")?.try_into().unwrap();
        let index = inner.u32("fun index")?;
        let num_free = inner.u32("fun free variable count")?;
        let module = Atom(inner.atom_text()?.into_owned());
        let old_index = inner.small_int_field("fun old index")?;
        let old_uniq = inner.small_int_field("fun old uniq")?;
        let pid = inner.pid_term()?;
        inner.count(num_free as usize, 1, size_at, "fun environment")?;
        // The free variables' slots are paid before their `Vec` is allocated.
        inner.charge_n(cost::FUN + module.0.len() + pid.node.0.len(), num_free as usize, cost::SLOT, tag_at)?;
        let mut free_vars = Vec::with_capacity(num_free as usize);
        for _ in 0..num_free {
            // Funs nested in funs recurse here; the stack grows on the heap when it runs low.
            let var = stacker::maybe_grow(crate::STACK_RED_ZONE, crate::STACK_GROWTH, || inner.term(&mut TermBuilder))?;
            free_vars.push(var);
        }
        self.pos = inner.pos;
        self.budget = inner.budget;
        if self.pos != end {
            return Err(self.err(size_at, format!("fun size {size} disagrees with its contents ({} bytes)", self.pos - size_at)));
        }
        Ok(Fun { module, arity, uniq, index, old_index, old_uniq, pid, free_vars })
    }

    /// Decodes one term at `pos` (no version byte).
    fn term<B: Builder>(&mut self, b: &mut B) -> Result<B::Value, B::Error> {
        let mut stack: Vec<Open> = Vec::new();
        let mut values: Vec<B::Value> = Vec::new();
        // `values`' capacity as charged (see `make_room`).
        let mut room = 0usize;
        loop {
            let at = self.pos;
            let tag = self.u8("term tag")?;
            let mut value = match tag {
                // The one kind of value that pays nothing beyond its place.
                SMALL_INTEGER_EXT => b.int(self.u8("integer")? as i64)?,
                INTEGER_EXT => {
                    let v = self.u32("integer")? as i32 as i64;
                    self.charge(cost::INT32, at)?;
                    b.int(v)?
                }
                SMALL_BIG_EXT | LARGE_BIG_EXT => {
                    let n = if tag == SMALL_BIG_EXT { self.u8("big length")? as usize } else { self.u32("big length")? as usize };
                    // Any nonzero sign byte means negative, as binary_to_term reads it.
                    let negative = self.u8("big sign")? != 0;
                    let digits = BigInt::trimmed(self.take(n, "big integer digits")?);
                    match BigInt::to_i64(negative, digits) {
                        Some(v) => {
                            self.charge(cost::INT64, at)?;
                            b.int(v)?
                        }
                        None => {
                            self.charge_n(cost::BIG_INT, digits.len(), cost::BIG_INT_PER_BYTE, at)?;
                            b.big_int(negative, digits)?
                        }
                    }
                }
                NEW_FLOAT_EXT => {
                    let v = f64::from_bits(self.u64("float")?);
                    if !v.is_finite() {
                        return Err(self.err(at, "float is not finite").into());
                    }
                    self.charge(cost::FLOAT, at)?;
                    b.float(v)?
                }
                FLOAT_EXT => {
                    let raw = self.take(31, "float text")?;
                    let text = raw.split(|&c| c == 0).next().unwrap_or(&[]);
                    let v = std::str::from_utf8(text)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| self.err(at, "unreadable FLOAT_EXT text"))?;
                    self.charge(cost::FLOAT, at)?;
                    b.float(v)?
                }
                ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT | ATOM_CACHE_REF => {
                    let name = self.atom_body(tag, at)?;
                    self.charge(cost::ATOM + name.len(), at)?;
                    b.atom(&name)?
                }
                BINARY_EXT => {
                    let n = self.u32("binary length")? as usize;
                    let data = self.take(n, "binary")?;
                    self.charge(cost::BINARY + n, at)?;
                    b.binary(data)?
                }
                BIT_BINARY_EXT => {
                    let n = self.u32("bitstring length")? as usize;
                    let bits_at = self.pos;
                    let bits = self.u8("bitstring bits")?;
                    let data = self.take(n, "bitstring")?;
                    match (n, bits) {
                        (0, 0) | (1.., 8) => {
                            self.charge(cost::BINARY + n, at)?;
                            b.binary(data)?
                        }
                        (1.., 1..=7) => {
                            self.charge(cost::BITSTRING + n, at)?;
                            let mask = 0xffu8 << (8 - bits);
                            if data[n - 1] & !mask == 0 {
                                b.bitstring(data, bits)?
                            } else {
                                self.charge(cost::HEAP + n, at)?;
                                let mut owned = data.to_vec();
                                owned[n - 1] &= mask;
                                b.bitstring(&owned, bits)?
                            }
                        }
                        _ => return Err(self.err(bits_at, format!("bitstring of {n} bytes cannot have {bits} bits in its last byte")).into()),
                    }
                }
                NEW_PID_EXT | PID_EXT => {
                    let (node, id, serial, creation) = self.pid_fields(tag)?;
                    self.charge(cost::PID + node.len(), at)?;
                    b.pid(&node, id, serial, creation)?
                }
                NEW_PORT_EXT | V4_PORT_EXT | PORT_EXT => {
                    let node = self.atom_text()?;
                    let id = if tag == V4_PORT_EXT { self.u64("port id")? } else { self.u32("port id")? as u64 };
                    let creation = if tag == PORT_EXT { self.u8("port creation")? as u32 } else { self.u32("port creation")? };
                    self.charge(cost::PORT + node.len(), at)?;
                    b.port(Port { node: Atom(node.into_owned()), id, creation, new_port_ext: tag != V4_PORT_EXT })?
                }
                NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT => {
                    let len_at = self.pos;
                    let len = self.u16("reference length")? as usize;
                    let max = if tag == NEWER_REFERENCE_EXT { 5 } else { 3 };
                    if len == 0 || len > max {
                        return Err(self.err(len_at, format!("reference with {len} id words (1 to {max} allowed)")).into());
                    }
                    let node = self.atom_text()?;
                    let creation =
                        if tag == NEWER_REFERENCE_EXT { self.u32("reference creation")? } else { self.u8("reference creation")? as u32 };
                    let mut ids = [0u32; 5];
                    for id in &mut ids[..len] {
                        *id = self.u32("reference id")?;
                    }
                    self.charge(cost::REFERENCE + node.len(), at)?;
                    b.reference(&node, creation, &ids[..len])?
                }
                REFERENCE_EXT => {
                    let node = self.atom_text()?;
                    let id = self.u32("reference id")?;
                    let creation = self.u8("reference creation")? as u32;
                    self.charge(cost::REFERENCE + node.len(), at)?;
                    b.reference(&node, creation, &[id])?
                }
                NEW_FUN_EXT => {
                    if stack.len() >= self.max_depth {
                        return Err(self.too_deep(at).into());
                    }
                    let fun = self.fun(at, stack.len())?;
                    b.fun(fun)?
                }
                EXPORT_EXT => {
                    let module = self.atom_text()?;
                    let function = self.atom_text()?;
                    let arity_at = self.pos;
                    let arity = self.small_int_field("export arity")?;
                    if !(0..=255).contains(&arity) {
                        return Err(self.err(arity_at, format!("export arity {arity} out of range")).into());
                    }
                    self.charge(cost::EXPORT + module.len() + function.len(), at)?;
                    let (module, function) = (Atom(module.into_owned()), Atom(function.into_owned()));
                    b.export(Export { module, function, arity: arity as u8 })?
                }
                NIL_EXT => {
                    self.charge(cost::NIL, at)?;
                    b.list(values.drain(values.len()..), None)?
                }
                STRING_EXT => {
                    let n = self.u16("string length")? as usize;
                    let bytes = self.take(n, "string")?;
                    self.charge_n(cost::STRING, n, cost::SLOT, at)?;
                    b.string(bytes)?
                }
                SMALL_TUPLE_EXT | LARGE_TUPLE_EXT | LIST_EXT | MAP_EXT => {
                    let n = match tag {
                        SMALL_TUPLE_EXT => self.u8("tuple arity")? as usize,
                        _ => self.u32("length")? as usize,
                    };
                    if stack.len() >= self.max_depth {
                        return Err(self.too_deep(at).into());
                    }
                    // Each container pays for its children's slots when it opens, before
                    // anything is reserved for them.
                    match tag {
                        SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                            if n == 0 {
                                // `{}` is shared in Python, and an empty `Vec` in Term.
                                b.tuple(values.drain(values.len()..))?
                            } else {
                                let n = self.count(n, 1, at, "tuple")?;
                                self.charge_n(cost::TUPLE, n, cost::SLOT, at)?;
                                self.make_room(&mut values, &mut room, n, at)?;
                                self.open(&mut stack, Open::Tuple { start: values.len(), remaining: n }, at)?;
                                continue;
                            }
                        }
                        LIST_EXT => {
                            // Elements, then a tail; `n` elements plus the tail.
                            let n = self.count(n, 1, at, "list")?;
                            self.charge_n(cost::LIST, n, cost::SLOT, at)?;
                            self.make_room(&mut values, &mut room, n, at)?;
                            self.open(&mut stack, Open::List { start: values.len(), remaining: n }, at)?;
                            if n == 0 {
                                // Only the tail follows: handled like any list reaching its tail.
                                match self.list_tail(b, &mut stack, &mut values, &mut room)? {
                                    Some(v) => v,
                                    None => continue,
                                }
                            } else {
                                continue;
                            }
                        }
                        _ => {
                            if n == 0 {
                                self.charge(cost::EMPTY_MAP, at)?;
                                b.map(values.drain(values.len()..), at)?
                            } else {
                                let n = self.count(n, 2, at, "map")?;
                                self.charge_n(cost::MAP, n, cost::MAP_PAIR, at)?;
                                self.make_room(&mut values, &mut room, 2 * n, at)?;
                                self.open(&mut stack, Open::Map { start: values.len(), remaining: 2 * n, at }, at)?;
                                continue;
                            }
                        }
                    }
                }
                COMPRESSED => return Err(self.err(at, "compressed term nested inside a term").into()),
                FUN_EXT => return Err(self.err(at, "FUN_EXT (removed in OTP 23) is not supported").into()),
                LOCAL_EXT => return Err(self.err(at, "LOCAL_EXT can only be decoded by the node that made it").into()),
                other => return Err(self.err(at, format!("unknown tag {other}")).into()),
            };
            // `value` is complete: hand it to the innermost open container, closing every
            // container it completes.
            loop {
                match stack.last_mut() {
                    None => return Ok(value),
                    Some(Open::Tuple { start, remaining }) | Some(Open::Map { start, remaining, .. }) => {
                        values.push(value);
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                        let start = *start;
                        value = match stack.pop() {
                            Some(Open::Map { at, .. }) => {
                                // Errors the builder raises are its own; only the offset is ours.
                                let at = self.compressed_at.unwrap_or(at);
                                b.map(values.drain(start..), at)?
                            }
                            _ => b.tuple(values.drain(start..))?,
                        };
                    }
                    Some(Open::List { start, remaining }) => {
                        if *remaining == 0 {
                            // `value` is this list's (improper) tail.
                            let start = *start;
                            stack.pop();
                            if values.len() > start {
                                value = b.list(values.drain(start..), Some(value))?;
                            }
                            continue;
                        }
                        values.push(value);
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                        match self.list_tail(b, &mut stack, &mut values, &mut room)? {
                            Some(v) => value = v,
                            None => break,
                        }
                    }
                }
            }
        }
    }

    /// The list on top of the stack has all its elements. If its tail is `[]`, or another
    /// list (which a canonical encoder would have merged), finish or extend it here and return
    /// the finished list; otherwise leave it open so the next term read becomes its tail.
    fn list_tail<B: Builder>(
        &mut self,
        b: &mut B,
        stack: &mut Vec<Open>,
        values: &mut Vec<B::Value>,
        room: &mut usize,
    ) -> Result<Option<B::Value>, B::Error> {
        let Some(&Open::List { start, .. }) = stack.last() else { unreachable!() };
        loop {
            let at = self.pos;
            match self.data.get(self.pos) {
                Some(&NIL_EXT) => {
                    self.pos += 1;
                    stack.pop();
                    return Ok(Some(b.list(values.drain(start..), None)?));
                }
                Some(&LIST_EXT) => {
                    self.pos += 1;
                    let n = self.u32("length")? as usize;
                    let n = self.count(n, 1, at, "list")?;
                    if n == 0 {
                        continue;
                    }
                    self.charge_n(0, n, cost::SLOT, at)?;
                    self.make_room(values, room, n, at)?;
                    let Some(Open::List { remaining, .. }) = stack.last_mut() else { unreachable!() };
                    *remaining = n;
                    return Ok(None);
                }
                Some(&STRING_EXT) => {
                    self.pos += 1;
                    let n = self.u16("string length")? as usize;
                    let bytes = self.take(n, "string")?;
                    self.charge_n(0, n, cost::SLOT, at)?;
                    self.make_room(values, room, n, at)?;
                    for &byte in bytes {
                        values.push(b.int(byte as i64)?);
                    }
                    // A STRING_EXT is a proper list: its tail is [].
                    stack.pop();
                    return Ok(Some(b.list(values.drain(start..), None)?));
                }
                Some(_) => {
                    // An improper tail follows: its slot is no container's.
                    self.charge(cost::IMPROPER_TAIL, at)?;
                    return Ok(None);
                }
                None => return Ok(None),
            }
        }
    }
}
