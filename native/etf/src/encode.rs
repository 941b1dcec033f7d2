//! Encoding, to the bytes `term_to_binary(T, [{minor_version, 2}])` gives (OTP 26+'s default):
//! the smallest integer form, NEW_FLOAT_EXT, UTF-8 atoms, STRING_EXT for short lists of
//! bytes.
//!
//! Maps are written in the order their pairs are held. The VM writes a map in its internal
//! order: hash order for maps of over 32 keys, and for smaller ones key order in which, from
//! OTP 26 on, atoms sort by their index in that VM's atom table. That order cannot be known
//! outside the VM, so a decoded map keeps the order it came in (and re-encodes to the same
//! bytes), and any order is accepted by `binary_to_term`.
//!
//! The `put_*` writers are shared with the Python binding, which walks Python objects and
//! writes through them, so both encoders make the same bytes.

use crate::error::EncodeError;
use crate::tags::*;
use crate::term::{Export, Fun, Pid, Port, Reference, Term};

/// term_to_binary uses STRING_EXT for proper lists of bytes shorter than this.
pub const STRING_EXT_MAX_LEN: usize = 65535;

pub fn put_int(out: &mut Vec<u8>, v: i64) {
    if (0..=255).contains(&v) {
        out.extend_from_slice(&[SMALL_INTEGER_EXT, v as u8]);
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        let mag = v.unsigned_abs().to_le_bytes();
        let len = 8 - (v.unsigned_abs().leading_zeros() / 8) as usize;
        put_big(out, v < 0, &mag[..len]);
    }
}

/// `magnitude` little-endian with no trailing zero byte.
pub fn put_big(out: &mut Vec<u8>, negative: bool, magnitude: &[u8]) {
    if magnitude.len() <= 255 {
        out.extend_from_slice(&[SMALL_BIG_EXT, magnitude.len() as u8]);
    } else {
        out.push(LARGE_BIG_EXT);
        out.extend_from_slice(&(magnitude.len() as u32).to_be_bytes());
    }
    out.push(negative as u8);
    out.extend_from_slice(magnitude);
}

pub fn put_float(out: &mut Vec<u8>, v: f64) -> Result<(), EncodeError> {
    if !v.is_finite() {
        return Err(EncodeError::new(format!("Erlang has no float {v}")));
    }
    out.push(NEW_FLOAT_EXT);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
    Ok(())
}

pub fn put_atom(out: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    let len = name.len();
    if len < 256 {
        out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, len as u8]);
    } else {
        if name.chars().count() > 255 {
            return Err(EncodeError::new(format!("atom of {} characters (at most 255)", name.chars().count())));
        }
        out.push(ATOM_UTF8_EXT);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

pub fn put_binary(out: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    put_binary_header(out, data.len())?;
    out.extend_from_slice(data);
    Ok(())
}

/// BINARY_EXT's tag and length; `len` bytes of data must follow.
pub fn put_binary_header(out: &mut Vec<u8>, len: usize) -> Result<(), EncodeError> {
    let len = u32::try_from(len).map_err(|_| EncodeError::new("binary larger than 4 GiB"))?;
    out.push(BINARY_EXT);
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// `tail_bits` in 1..=7; the unused low bits of the last byte are written as zero.
pub fn put_bitstring(out: &mut Vec<u8>, data: &[u8], tail_bits: u8) -> Result<(), EncodeError> {
    if data.is_empty() || !(1..=7).contains(&tail_bits) {
        return Err(EncodeError::new(format!(
            "a bitstring needs at least one byte and 1 to 7 bits in its last byte (got {} bytes, {tail_bits} bits)",
            data.len()
        )));
    }
    let len = u32::try_from(data.len()).map_err(|_| EncodeError::new("bitstring larger than 4 GiB"))?;
    out.push(BIT_BINARY_EXT);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(tail_bits);
    out.extend_from_slice(&data[..data.len() - 1]);
    out.push(data[data.len() - 1] & (0xffu8 << (8 - tail_bits)));
    Ok(())
}

pub fn put_pid(out: &mut Vec<u8>, pid: &Pid) -> Result<(), EncodeError> {
    put_pid_parts(out, pid.node.as_str(), pid.id, pid.serial, pid.creation)
}

/// A pid from its parts, for holders of pids that are not a [`Pid`].
pub fn put_pid_parts(out: &mut Vec<u8>, node: &str, id: u32, serial: u32, creation: u32) -> Result<(), EncodeError> {
    out.push(NEW_PID_EXT);
    put_atom(out, node)?;
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&serial.to_be_bytes());
    out.extend_from_slice(&creation.to_be_bytes());
    Ok(())
}

pub fn put_port(out: &mut Vec<u8>, port: &Port) -> Result<(), EncodeError> {
    if port.new_port_ext && port.id <= u32::MAX as u64 {
        out.push(NEW_PORT_EXT);
        put_atom(out, port.node.as_str())?;
        out.extend_from_slice(&(port.id as u32).to_be_bytes());
    } else {
        out.push(V4_PORT_EXT);
        put_atom(out, port.node.as_str())?;
        out.extend_from_slice(&port.id.to_be_bytes());
    }
    out.extend_from_slice(&port.creation.to_be_bytes());
    Ok(())
}

pub fn put_reference(out: &mut Vec<u8>, r: &Reference) -> Result<(), EncodeError> {
    put_reference_parts(out, r.node.as_str(), r.creation, &r.ids)
}

/// A reference from its parts, for holders of references that are not a [`Reference`].
pub fn put_reference_parts(out: &mut Vec<u8>, node: &str, creation: u32, ids: &[u32]) -> Result<(), EncodeError> {
    if ids.is_empty() || ids.len() > 5 {
        return Err(EncodeError::new(format!("a reference has 1 to 5 id words, not {}", ids.len())));
    }
    out.push(NEWER_REFERENCE_EXT);
    out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
    put_atom(out, node)?;
    out.extend_from_slice(&creation.to_be_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    Ok(())
}

pub fn put_fun(out: &mut Vec<u8>, f: &Fun) -> Result<(), EncodeError> {
    out.push(NEW_FUN_EXT);
    let size_at = out.len();
    out.extend_from_slice(&[0; 4]); // Size, patched below: from itself to the end
    out.push(f.arity);
    out.extend_from_slice(&f.uniq);
    out.extend_from_slice(&f.index.to_be_bytes());
    let num_free = u32::try_from(f.free_vars.len()).map_err(|_| EncodeError::new("fun environment too large"))?;
    out.extend_from_slice(&num_free.to_be_bytes());
    put_atom(out, f.module.as_str())?;
    put_int(out, f.old_index);
    put_int(out, f.old_uniq);
    put_pid(out, &f.pid)?;
    for var in &f.free_vars {
        encode_into(var, out)?;
    }
    let size = u32::try_from(out.len() - size_at).map_err(|_| EncodeError::new("fun larger than 4 GiB"))?;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

pub fn put_export(out: &mut Vec<u8>, e: &Export) -> Result<(), EncodeError> {
    out.push(EXPORT_EXT);
    put_atom(out, e.module.as_str())?;
    put_atom(out, e.function.as_str())?;
    out.extend_from_slice(&[SMALL_INTEGER_EXT, e.arity]);
    Ok(())
}

pub fn put_tuple_header(out: &mut Vec<u8>, arity: usize) -> Result<(), EncodeError> {
    if arity <= 255 {
        out.extend_from_slice(&[SMALL_TUPLE_EXT, arity as u8]);
    } else {
        let n = u32::try_from(arity).map_err(|_| EncodeError::new("tuple too large"))?;
        out.push(LARGE_TUPLE_EXT);
        out.extend_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// LIST_EXT header for `len` (> 0) elements; the elements and then the tail follow.
pub fn put_list_header(out: &mut Vec<u8>, len: usize) -> Result<(), EncodeError> {
    let n = u32::try_from(len).map_err(|_| EncodeError::new("list too long"))?;
    out.push(LIST_EXT);
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

pub fn put_nil(out: &mut Vec<u8>) {
    out.push(NIL_EXT);
}

/// STRING_EXT: a proper list of fewer than 65,536 bytes.
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(!bytes.is_empty() && bytes.len() <= STRING_EXT_MAX_LEN);
    out.push(STRING_EXT);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn put_map_header(out: &mut Vec<u8>, len: usize) -> Result<(), EncodeError> {
    let n = u32::try_from(len).map_err(|_| EncodeError::new("map too large"))?;
    out.push(MAP_EXT);
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// The bytes of a proper list if every element is an integer 0..=255 and STRING_EXT can hold it.
fn as_byte_string(items: &[Term]) -> Option<Vec<u8>> {
    if items.is_empty() || items.len() > STRING_EXT_MAX_LEN {
        return None;
    }
    items
        .iter()
        .map(|t| match t {
            Term::Int(v) if (0..=255).contains(v) => Some(*v as u8),
            _ => None,
        })
        .collect()
}

/// Encodes with the version byte in front.
pub fn encode(term: &Term) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![VERSION];
    encode_into(term, &mut out)?;
    Ok(out)
}

/// Appends the term, without a version byte.
pub fn encode_into(term: &Term, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_term(term, out, crate::decode::DEFAULT_MAX_DEPTH)
}

/// Recursion depth follows the term's nesting; the stack grows on the heap when it runs low.
fn encode_term(term: &Term, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
    stacker::maybe_grow(crate::STACK_RED_ZONE, crate::STACK_GROWTH, || encode_term_inner(term, out, depth))
}

fn encode_term_inner(term: &Term, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
    let nested = |depth: usize| {
        depth.checked_sub(1).ok_or_else(|| EncodeError::new("term nested deeper than the depth limit"))
    };
    match term {
        Term::Int(v) => put_int(out, *v),
        Term::BigInt(b) => put_big(out, b.negative, &b.magnitude),
        Term::Float(v) => put_float(out, *v)?,
        Term::Atom(a) => put_atom(out, a.as_str())?,
        Term::Binary(data) => put_binary(out, data)?,
        Term::BitString { data, tail_bits } => put_bitstring(out, data, *tail_bits)?,
        Term::Pid(p) => put_pid(out, p)?,
        Term::Port(p) => put_port(out, p)?,
        Term::Ref(r) => put_reference(out, r)?,
        Term::Fun(f) => put_fun(out, f)?,
        Term::Export(e) => put_export(out, e)?,
        Term::Tuple(items) => {
            let depth = nested(depth)?;
            put_tuple_header(out, items.len())?;
            for item in items {
                encode_term(item, out, depth)?;
            }
        }
        Term::List(items) => {
            if items.is_empty() {
                put_nil(out);
            } else if let Some(bytes) = as_byte_string(items) {
                put_string(out, &bytes);
            } else {
                let depth = nested(depth)?;
                put_list_header(out, items.len())?;
                for item in items {
                    encode_term(item, out, depth)?;
                }
                put_nil(out);
            }
        }
        Term::ImproperList(items, tail) => {
            let depth = nested(depth)?;
            if items.is_empty() {
                return Err(EncodeError::new("an improper list needs at least one element"));
            }
            put_list_header(out, items.len())?;
            for item in items {
                encode_term(item, out, depth)?;
            }
            encode_term(tail, out, depth)?;
        }
        Term::Map(pairs) => {
            let depth = nested(depth)?;
            put_map_header(out, pairs.len())?;
            for (k, v) in pairs {
                encode_term(k, out, depth)?;
                encode_term(v, out, depth)?;
            }
        }
    }
    Ok(())
}
