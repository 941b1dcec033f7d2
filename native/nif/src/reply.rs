//! The replies of the call contract (shared/DESIGN.md section 1), written here once: every
//! `{ok, Value}` and every `{error, Reason}` the node sends, whoever makes it (a native in
//! any crate, the node's server, a refusal of an oversized call).

use etf::encode::{put_atom, put_binary, put_int};
use etf::tags::SMALL_TUPLE_EXT;

/// Why a call failed: the reasons of the contract, each one fixed shape.
#[derive(Debug, Clone, Copy)]
pub enum Reason<'a> {
    /// `{undef, Fun, Arity}`: no native `fun/arity`.
    Undef { name: &'a str, arity: usize },
    /// `{badarg, Index, <<Message>>}`: argument `index` (1-based) could not be converted.
    BadArg { index: usize, message: &'a str },
    /// `{panic, <<Message>>}`: the Rust native panicked.
    Panic(&'a str),
    /// `{exception, <<Type>>, <<Message>>}`: the Python native raised.
    Exception { kind: &'a str, message: &'a str },
    /// `{badresource, Ref}`: `Ref` (a term's bytes, no version byte) is no live resource.
    BadResource(&'a [u8]),
    /// `overloaded`: a configured limit was hit.
    Overloaded,
    /// `{badrequest, <<Message>>}`: the request is none of the contract's shapes.
    BadRequest(&'a str),
}

fn tuple(out: &mut Vec<u8>, arity: u8, tag: &str) {
    out.extend_from_slice(&[SMALL_TUPLE_EXT, arity]);
    put_atom(out, tag).expect("short atom");
}

fn text(out: &mut Vec<u8>, s: &str) {
    put_binary(out, s.as_bytes()).expect("message under 4 GiB");
}

/// `{ok, ` : the value's bytes follow.
pub fn write_ok_head(out: &mut Vec<u8>) {
    tuple(out, 2, "ok");
}

/// `{error, ` : the reason's bytes follow.
pub fn write_error_head(out: &mut Vec<u8>) {
    tuple(out, 2, "error");
}

/// The reason alone (as a native's `Err` encodes it inside `{error, _}`).
pub fn write_reason(out: &mut Vec<u8>, reason: Reason<'_>) {
    match reason {
        Reason::Undef { name, arity } => {
            tuple(out, 3, "undef");
            put_atom(out, name).expect("a native's name is an atom");
            put_int(out, arity as i64);
        }
        Reason::BadArg { index, message } => {
            tuple(out, 3, "badarg");
            put_int(out, index as i64);
            text(out, message);
        }
        Reason::Panic(message) => {
            tuple(out, 2, "panic");
            text(out, message);
        }
        Reason::Exception { kind, message } => {
            tuple(out, 3, "exception");
            text(out, kind);
            text(out, message);
        }
        Reason::BadResource(term) => {
            tuple(out, 2, "badresource");
            out.extend_from_slice(term);
        }
        Reason::Overloaded => put_atom(out, "overloaded").expect("short atom"),
        Reason::BadRequest(message) => {
            tuple(out, 2, "badrequest");
            text(out, message);
        }
    }
}

/// `{error, Reason}`
pub fn write_error(out: &mut Vec<u8>, reason: Reason<'_>) {
    write_error_head(out);
    write_reason(out, reason);
}

/// The first element of the messages a native streams to its caller while the call runs:
/// `{rustelixir_stream, Tag, Item}`, `Tag` the call's reply tag (so a caller tells one call's
/// items from another's, and a gen_server call never takes one for its reply).
pub const STREAM_TAG: &str = "rustelixir_stream";

/// `{rustelixir_stream, Tag, ` : the item's bytes follow (`tag` encoded, no version byte).
pub fn write_stream_head(out: &mut Vec<u8>, tag: &[u8]) {
    tuple(out, 3, STREAM_TAG);
    out.extend_from_slice(tag);
}

/// Whether a reply (`{ok, _}` or `{error, _}`, as written here) is an error: for the
/// node's counters.
pub fn is_error(reply: &[u8]) -> bool {
    reply.starts_with(ERROR_HEAD)
}

/// The tag of an `{error, Reason}` reply's reason: the atom it is, or its tuple's first
/// element when that is an atom (`badarg`, `overloaded`, a user crate's own); None for an
/// `{ok, _}` reply or a reason of another shape.
pub fn error_tag(reply: &[u8]) -> Option<&[u8]> {
    let reason = reply.strip_prefix(ERROR_HEAD)?;
    let atom = match reason {
        [SMALL_TUPLE_EXT, n, rest @ ..] if *n > 0 => rest,
        _ => reason,
    };
    match atom {
        [etf::tags::SMALL_ATOM_UTF8_EXT | etf::tags::SMALL_ATOM_EXT, len, rest @ ..] => rest.get(..*len as usize),
        [etf::tags::ATOM_UTF8_EXT | etf::tags::ATOM_EXT, a, b, rest @ ..] => rest.get(..u16::from_be_bytes([*a, *b]) as usize),
        _ => None,
    }
}

const OK_HEAD: &[u8] = &[SMALL_TUPLE_EXT, 2, etf::tags::SMALL_ATOM_UTF8_EXT, 2, b'o', b'k'];
const ERROR_HEAD: &[u8] = &[SMALL_TUPLE_EXT, 2, etf::tags::SMALL_ATOM_UTF8_EXT, 5, b'e', b'r', b'r', b'o', b'r'];

/// A reply (`{ok, Value}` or `{error, Reason}`, as written here) taken apart: `Ok(value)` or
/// `Err(reason)`, the term's bytes.
pub fn split(reply: &[u8]) -> Result<&[u8], &[u8]> {
    match reply.strip_prefix(OK_HEAD) {
        Some(value) => Ok(value),
        None => Err(reply.strip_prefix(ERROR_HEAD).unwrap_or(reply)),
    }
}
