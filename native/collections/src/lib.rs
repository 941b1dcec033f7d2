//! Collections as rustelixir resources: a sorted set of terms and a byte buffer, served by
//! the natives in [`COLLECTIONS`].
//!
//! Each object carries its own lock (an `RwLock`: readers of one object run together,
//! objects never wait for each other).
//!
//! | native | reply |
//! |---|---|
//! | `sorted_set_new()` | `{ok, Ref}` |
//! | `sorted_set_add(Set, Term)` | `{ok, Index}` (0-based, where the member now is) |
//! | `sorted_set_add_many(Set, [Term])` | `{ok, SizeAfter}` |
//! | `sorted_set_remove(Set, Term)` | `{ok, true \| false}` |
//! | `sorted_set_index_of(Set, Term)` | `{ok, Index}` or `{ok, nil}` |
//! | `sorted_set_at(Set, Index)` | `{ok, Term}`; out of range: `{error, {badarg, 2, Msg}}` |
//! | `sorted_set_slice(Set, Start, Count)` | `{ok, [Term]}` (clipped; negative: badarg) |
//! | `sorted_set_size(Set)` | `{ok, N}` |
//! | `sorted_set_to_list(Set)` | `{ok, [Term]}` |
//! | `buffer_new(Size)` | `{ok, Ref}` (zero-filled; over the maximum: badarg 1) |
//! | `buffer_write(Buf, Offset, Binary)` | `{ok, ok}` |
//! | `buffer_read(Buf, Offset, Length)` | `{ok, Binary}` |
//! | `buffer_size(Buf)` | `{ok, N}` |
//! | `buffer_to_binary(Buf)` | `{ok, Binary}` |

pub mod buffer;
pub mod sorted_set;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustelixir_nif::etf::{self, encode};
use rustelixir_nif::{
    kind, natives, ArgError, BadArg, Decoder, Encoder, Resource, ResourceArc, Term,
};

pub use buffer::{max_buffer_size, set_max_buffer_size, DEFAULT_MAX_BUFFER_SIZE};
use sorted_set::SortedTerms;

// A panic while a lock is held (an allocation failure, say) leaves the structure whole
// (every mutation is a single Vec operation), so a poisoned lock is used as it is rather
// than turning every later call on the object into a panic.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

// --- Argument and result helpers -----------------------------------------------------------

fn decode_owned(bytes: &[u8]) -> Result<Term, ArgError> {
    etf::decode::decode_at_with(
        bytes,
        0,
        &mut etf::decode::TermBuilder,
        &etf::Limits::default(),
    )
    .map(|(term, _)| term)
    .map_err(|e| ArgError::BadArg(format!("undecodable term: {}", e.message)))
}

/// Any term, taken as decoded (no copy).
pub struct Member(pub Term);

impl Decoder for Member {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        Ok(Member(term.clone()))
    }
    fn decode_bytes(bytes: &[u8]) -> Result<Self, ArgError> {
        decode_owned(bytes).map(Member)
    }
}

/// A proper list of any terms, its items moved out of the decoded list.
pub struct Members(pub Vec<Term>);

fn not_a_list(term: &Term) -> ArgError {
    match term {
        Term::ImproperList(..) => {
            ArgError::BadArg("expected a proper list, got an improper list".into())
        }
        other => ArgError::BadArg(format!("expected a list, got {}", kind(other))),
    }
}

impl Decoder for Members {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::List(items) => Ok(Members(items.clone())),
            other => Err(not_a_list(other)),
        }
    }
    fn decode_bytes(bytes: &[u8]) -> Result<Self, ArgError> {
        let mut term = decode_owned(bytes)?;
        match &mut term {
            Term::List(items) => Ok(Members(std::mem::take(items))),
            other => Err(not_a_list(other)),
        }
    }
}

/// A reply term already written in the External Term Format (encoded while the object's
/// lock was held, so members are not copied first).
pub struct Encoded(Vec<u8>);

impl Encoder for Encoded {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

fn encode_list<'a>(items: impl Iterator<Item = &'a Term>, count: usize) -> Encoded {
    let mut out = Vec::new();
    if count > 0 {
        encode::put_list_header(&mut out, count).expect("list under 4G items");
        for item in items {
            encode::encode_into(item, &mut out).expect("members were decoded, so they encode");
        }
    }
    encode::put_nil(&mut out);
    Encoded(out)
}

fn not_negative(index: usize, what: &str, value: i64) -> Result<usize, BadArg> {
    usize::try_from(value)
        .map_err(|_| BadArg::new(index, format!("{what} must not be negative, got {value}")))
}

// --- SortedSet -----------------------------------------------------------------------------

/// A set of terms in Erlang term order (see [`sorted_set`]).
#[derive(Default)]
pub struct SortedSet {
    terms: RwLock<SortedTerms>,
}

impl Resource for SortedSet {
    const TYPE_NAME: &'static str = "sorted_set";
    /// For a set, `resource_info`'s size is its number of members.
    fn size(&self) -> usize {
        read(&self.terms).len()
    }
}

fn sorted_set_new() -> Result<ResourceArc<SortedSet>, rustelixir_nif::resource::Overloaded> {
    ResourceArc::try_new(SortedSet::default())
}

fn sorted_set_add(set: ResourceArc<SortedSet>, term: Member) -> usize {
    write(&set.terms).add(term.0)
}

fn sorted_set_add_many(set: ResourceArc<SortedSet>, terms: Members) -> usize {
    write(&set.terms).add_many(terms.0)
}

fn sorted_set_remove(set: ResourceArc<SortedSet>, term: Member) -> bool {
    write(&set.terms).remove(&term.0)
}

fn sorted_set_index_of(set: ResourceArc<SortedSet>, term: Member) -> Option<usize> {
    read(&set.terms).index_of(&term.0)
}

fn sorted_set_at(set: ResourceArc<SortedSet>, index: i64) -> Result<Encoded, BadArg> {
    let terms = read(&set.terms);
    let member = usize::try_from(index).ok().and_then(|i| terms.at(i));
    match member {
        Some(term) => {
            let mut out = Vec::new();
            encode::encode_into(term, &mut out).expect("members were decoded, so they encode");
            Ok(Encoded(out))
        }
        None => Err(BadArg::new(
            2,
            format!("index {index} out of range for a set of {}", terms.len()),
        )),
    }
}

fn sorted_set_slice(
    set: ResourceArc<SortedSet>,
    start: i64,
    count: i64,
) -> Result<Encoded, BadArg> {
    let start = not_negative(2, "start", start)?;
    let count = not_negative(3, "count", count)?;
    let terms = read(&set.terms);
    let n = count.min(terms.len().saturating_sub(start));
    Ok(encode_list(terms.slice(start, n), n))
}

fn sorted_set_size(set: ResourceArc<SortedSet>) -> usize {
    read(&set.terms).len()
}

fn sorted_set_to_list(set: ResourceArc<SortedSet>) -> Encoded {
    let terms = read(&set.terms);
    encode_list(terms.iter(), terms.len())
}

// --- Buffer --------------------------------------------------------------------------------

/// A fixed-size byte buffer.
pub struct Buffer {
    data: RwLock<Vec<u8>>,
    size: usize,
}

impl Resource for Buffer {
    const TYPE_NAME: &'static str = "buffer";
    fn size(&self) -> usize {
        self.size
    }
}

/// Bytes held by live buffers, all together; past `max_total_buffer_bytes` a new buffer is
/// `{:error, :overloaded}`.
static TOTAL_BUFFER_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static MAX_TOTAL_BUFFER_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(8 << 30);

pub fn set_max_total_buffer_bytes(bytes: u64) {
    MAX_TOTAL_BUFFER_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

pub fn total_buffer_bytes() -> u64 {
    TOTAL_BUFFER_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Buffer {
    fn drop(&mut self) {
        TOTAL_BUFFER_BYTES.fetch_sub(self.size as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a buffer could not be made: a bad size, or the node's buffers are full.
pub enum BufferNewError {
    BadArg(BadArg),
    Overloaded,
}

impl rustelixir_nif::Encoder for BufferNewError {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            BufferNewError::BadArg(b) => b.encode(out),
            BufferNewError::Overloaded => rustelixir_nif::resource::Overloaded.encode(out),
        }
    }
}

impl From<BadArg> for BufferNewError {
    fn from(b: BadArg) -> Self {
        BufferNewError::BadArg(b)
    }
}

fn buffer_new(size: i64) -> Result<ResourceArc<Buffer>, BufferNewError> {
    let size = not_negative(1, "size", size)?;
    let max = max_buffer_size();
    if size as u64 > max {
        return Err(BadArg::new(
            1,
            format!("size {size} is over the maximum buffer size of {max} bytes"),
        )
        .into());
    }
    use std::sync::atomic::Ordering::Relaxed;
    let total = TOTAL_BUFFER_BYTES.fetch_add(size as u64, Relaxed) + size as u64;
    if total > MAX_TOTAL_BUFFER_BYTES.load(Relaxed) {
        TOTAL_BUFFER_BYTES.fetch_sub(size as u64, Relaxed);
        return Err(BufferNewError::Overloaded);
    }
    let Some(data) = buffer::zeroed(size) else {
        TOTAL_BUFFER_BYTES.fetch_sub(size as u64, Relaxed);
        return Err(BadArg::new(1, format!("cannot allocate {size} bytes")).into());
    };
    let buffer = Buffer { data: RwLock::new(data), size };
    ResourceArc::try_new(buffer).map_err(|_| BufferNewError::Overloaded)
}

fn buffer_write(buf: ResourceArc<Buffer>, offset: i64, bytes: Vec<u8>) -> Result<(), BadArg> {
    let mut data = write(&buf.data);
    let range = buffer::range(offset, bytes.len() as i64, data.len(), "writing")
        .map_err(|(index, message)| BadArg::new(index, message))?;
    data[range].copy_from_slice(&bytes);
    Ok(())
}

fn buffer_read(buf: ResourceArc<Buffer>, offset: i64, length: i64) -> Result<Vec<u8>, BadArg> {
    let data = read(&buf.data);
    let range = buffer::range(offset, length, data.len(), "reading")
        .map_err(|(index, message)| BadArg::new(index, message))?;
    Ok(data[range].to_vec())
}

fn buffer_size(buf: ResourceArc<Buffer>) -> usize {
    read(&buf.data).len()
}

fn buffer_to_binary(buf: ResourceArc<Buffer>) -> Encoded {
    let data = read(&buf.data);
    let mut out = Vec::with_capacity(data.len() + 5);
    encode::put_binary(&mut out, &data).expect("buffers are at most 4 GiB");
    Encoded(out)
}

natives!(COLLECTIONS = [
    quick sorted_set_new,
    quick sorted_set_add,
    slow sorted_set_add_many,
    quick sorted_set_remove,
    quick sorted_set_index_of,
    quick sorted_set_at,
    quick sorted_set_slice,
    quick sorted_set_size,
    slow sorted_set_to_list,
    quick buffer_new,
    quick buffer_write,
    quick buffer_read,
    quick buffer_size,
    slow buffer_to_binary,
]);
