//! Python objects -> ETF bytes, written straight from the objects through the codec's writers.

use etf::encode as w;
use etf::EncodeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple};

use crate::error::Error;
use crate::types::{Atom, BitString, Export, Fun, ImproperList, MapKey, Pid, Port, Reference};

pub const DEFAULT_MAX_DEPTH: usize = etf::decode::DEFAULT_MAX_DEPTH;

/// Binaries at least this large are not copied into the encoder's buffer: they are copied
/// once, straight into the final `bytes` object (see [`Encoded`]).
const BIG_BINARY: usize = 64 * 1024;

/// An encoding in progress: the bytes written so far, and the large binaries left out of
/// them, each with the offset in `buf` where its data belongs.
pub struct Encoded<'py> {
    pub buf: Vec<u8>,
    big: Vec<(usize, Bound<'py, PyBytes>)>,
}

impl<'py> Encoded<'py> {
    pub fn new(prefix: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(prefix);
        Encoded { buf, big: Vec::new() }
    }

    fn total_len(&self) -> usize {
        self.buf.len() + self.big.iter().map(|(_, b)| b.as_bytes().len()).sum::<usize>()
    }

    /// Visits the encoding in order, as slices of `buf` and of the large binaries.
    fn for_each_part(&self, mut f: impl FnMut(&[u8])) {
        let mut at = 0;
        for (offset, blob) in &self.big {
            f(&self.buf[at..*offset]);
            f(blob.as_bytes());
            at = *offset;
        }
        f(&self.buf[at..]);
    }

    /// The final `bytes` object, allocated once at its exact size.
    pub fn into_pybytes(self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        if self.big.is_empty() {
            return Ok(PyBytes::new(py, &self.buf));
        }
        let total = self.total_len();
        // Not PyBytes::new_with, which zero-fills first: that pass alone costs as much as
        // the copy, and every byte is written below.
        unsafe {
            let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), total as pyo3::ffi::Py_ssize_t);
            if raw.is_null() {
                return Err(PyErr::fetch(py));
            }
            let dst = pyo3::ffi::PyBytes_AsString(raw) as *mut u8;
            let mut at = 0;
            self.for_each_part(|part| {
                std::ptr::copy_nonoverlapping(part.as_ptr(), dst.add(at), part.len());
                at += part.len();
            });
            debug_assert_eq!(at, total);
            Ok(Bound::from_owned_ptr(py, raw).cast_into_unchecked())
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        if self.big.is_empty() {
            return self.buf;
        }
        let mut out = Vec::with_capacity(self.total_len());
        self.for_each_part(|part| out.extend_from_slice(part));
        out
    }
}

pub fn encode_to_vec(obj: &Bound<'_, PyAny>, max_depth: usize) -> Result<Vec<u8>, Error> {
    let mut out = Encoded::new(&[]);
    encode(obj, &mut out, max_depth)?;
    Ok(out.into_vec())
}

fn deeper(depth: usize) -> Result<usize, Error> {
    depth
        .checked_sub(1)
        .ok_or_else(|| Error::Encode(EncodeError::new("value nested deeper than max_depth (or it contains itself)")))
}

fn encode_int(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), Error> {
    if let Ok(v) = obj.extract::<i64>() {
        w::put_int(out, v);
        return Ok(());
    }
    // Outside i64: sign and little-endian magnitude through int.to_bytes.
    let negative = obj.lt(0)?;
    let magnitude = if negative { obj.neg()? } else { obj.clone() };
    let bits: usize = magnitude.call_method0("bit_length")?.extract()?;
    let len = bits.div_ceil(8);
    let bytes = magnitude.call_method1("to_bytes", (len, "little"))?;
    w::put_big(out, negative, bytes.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes());
    Ok(())
}

/// A container part-way through being written.
enum Open<'py> {
    /// Items of a list, then `[]` or the improper tail.
    List { list: Bound<'py, PyList>, next: usize, tail: Option<Bound<'py, PyAny>>, depth: usize },
    Tuple { tuple: Bound<'py, PyTuple>, next: usize, depth: usize },
    Map { pairs: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>, next: usize, value_due: bool, depth: usize },
}

/// Appends `obj` (no version byte). Walks the value with an explicit stack, so neither a
/// deeply nested value nor one that contains itself can exhaust the thread's stack: nesting
/// past `max_depth` is an `EncodeError`.
pub fn encode<'py>(obj: &Bound<'py, PyAny>, encoded: &mut Encoded<'py>, max_depth: usize) -> Result<(), Error> {
    let Encoded { buf: out, big } = encoded;
    let mut stack: Vec<Open<'py>> = Vec::new();
    let mut current: Option<(Bound<'py, PyAny>, usize)> = Some((obj.clone(), max_depth));
    loop {
        if let Some((obj, depth)) = current.take() {
            if let Some(open) = write_value(&obj, out, big, depth)? {
                stack.push(open);
            }
        }
        // The next value due: from the innermost open container.
        let Some(top) = stack.last_mut() else { return Ok(()) };
        match top {
            Open::List { list, next, tail, depth } => {
                if *next < list.len() {
                    current = Some((list.get_item(*next)?, *depth));
                    *next += 1;
                } else {
                    let (tail, depth) = (tail.take(), *depth);
                    stack.pop();
                    match tail {
                        Some(tail) => current = Some((tail, depth)),
                        None => w::put_nil(out),
                    }
                }
            }
            Open::Tuple { tuple, next, depth } => {
                if *next < tuple.len() {
                    current = Some((tuple.get_item(*next)?, *depth));
                    *next += 1;
                } else {
                    stack.pop();
                }
            }
            Open::Map { pairs, next, value_due, depth } => {
                if *next < pairs.len() {
                    let (k, v) = &pairs[*next];
                    if *value_due {
                        current = Some((v.clone(), *depth));
                        *value_due = false;
                        *next += 1;
                    } else {
                        current = Some((k.clone(), *depth));
                        *value_due = true;
                    }
                } else {
                    stack.pop();
                }
            }
        }
    }
}

/// Writes a scalar whole, or a container's header, returning the container to fill.
fn write_value<'py>(
    obj: &Bound<'py, PyAny>,
    out: &mut Vec<u8>,
    big: &mut Vec<(usize, Bound<'py, PyBytes>)>,
    depth: usize,
) -> Result<Option<Open<'py>>, Error> {
    // Most common types first; bool before int (bool is an int subclass).
    if let Ok(s) = obj.cast_exact::<PyString>() {
        w::put_binary(out, s.to_str()?.as_bytes())?;
    } else if let Ok(atom) = obj.cast_exact::<Atom>() {
        w::put_atom(out, &atom.get().name)?;
    } else if obj.is_instance_of::<PyBool>() {
        w::put_atom(out, if obj.is_truthy()? { "true" } else { "false" })?;
    } else if obj.is_instance_of::<PyInt>() {
        encode_int(obj, out)?;
    } else if obj.is_none() {
        w::put_atom(out, "nil")?;
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        let data = b.as_bytes();
        if data.len() >= BIG_BINARY {
            w::put_binary_header(out, data.len())?;
            big.push((out.len(), b.clone()));
        } else {
            w::put_binary(out, data)?;
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        let depth = deeper(depth)?;
        w::put_tuple_header(out, t.len())?;
        return Ok(Some(Open::Tuple { tuple: t.clone(), next: 0, depth }));
    } else if let Ok(l) = obj.cast::<PyList>() {
        return open_list(l, out, depth);
    } else if let Ok(d) = obj.cast::<PyDict>() {
        // In the dict's order: see the codec's note on map order (`etf::encode`).
        let depth = deeper(depth)?;
        w::put_map_header(out, d.len())?;
        let pairs: Vec<_> = d.iter().collect();
        return Ok(Some(Open::Map { pairs, next: 0, value_due: false, depth }));
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        w::put_float(out, f.value())?;
    } else if let Ok(s) = obj.cast::<PyString>() {
        w::put_binary(out, s.to_str()?.as_bytes())?;
    } else if let Ok(p) = obj.cast::<Pid>() {
        let p = p.get();
        w::put_pid_parts(out, p.node_name(), p.id, p.serial, p.creation)?;
    } else if let Ok(r) = obj.cast::<Reference>() {
        let r = r.get();
        w::put_reference_parts(out, r.node_name(), r.creation, r.ids())?;
    } else if let Ok(p) = obj.cast::<Port>() {
        w::put_port(out, &p.get().0)?;
    } else if let Ok(atom) = obj.cast::<Atom>() {
        w::put_atom(out, &atom.get().name)?;
    } else if let Ok(b) = obj.cast::<BitString>() {
        let b = b.get();
        w::put_bitstring(out, &b.data, b.tail_bits)?;
    } else if let Ok(l) = obj.cast::<ImproperList>() {
        let l = l.get();
        let py = obj.py();
        let items = l.items.bind(py);
        if items.is_empty() {
            return Err(Error::Encode(EncodeError::new("an ImproperList needs at least one item")));
        }
        let depth = deeper(depth)?;
        w::put_list_header(out, items.len())?;
        return Ok(Some(Open::List { list: items.clone(), next: 0, tail: Some(l.tail.bind(py).clone()), depth }));
    } else if let Ok(f) = obj.cast::<Fun>() {
        w::put_fun(out, &f.get().0)?;
    } else if let Ok(e) = obj.cast::<Export>() {
        w::put_export(out, &e.get().0)?;
    } else if let Ok(k) = obj.cast::<MapKey>() {
        out.extend_from_slice(&k.get().encoded);
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        w::put_binary(out, &b.to_vec())?;
    } else if obj.is_instance_of::<PyMemoryView>() {
        let bytes = obj.call_method0("tobytes")?;
        w::put_binary(out, bytes.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes())?;
    } else {
        return Err(Error::Encode(EncodeError::new(format!(
            "cannot encode a {} as an Erlang term",
            obj.get_type().name()?
        ))));
    }
    Ok(None)
}

fn open_list<'py>(list: &Bound<'py, PyList>, out: &mut Vec<u8>, depth: usize) -> Result<Option<Open<'py>>, Error> {
    let n = list.len();
    if n == 0 {
        w::put_nil(out);
        return Ok(None);
    }
    // term_to_binary writes a short list of bytes as STRING_EXT.
    if n <= w::STRING_EXT_MAX_LEN {
        let mut bytes = Vec::with_capacity(n);
        for item in list.iter() {
            if !item.is_exact_instance_of::<PyInt>() {
                break;
            }
            match item.extract::<i64>() {
                Ok(v @ 0..=255) => bytes.push(v as u8),
                _ => break,
            }
        }
        if bytes.len() == n {
            w::put_string(out, &bytes);
            return Ok(None);
        }
    }
    let depth = deeper(depth)?;
    w::put_list_header(out, n)?;
    Ok(Some(Open::List { list: list.clone(), next: 0, tail: None, depth }))
}
