//! Python objects -> ETF bytes, written straight from the objects through the codec's writers.

use etf::encode as w;
use etf::EncodeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple};

use crate::error::Error;
use crate::types::{Atom, BitString, Export, Fun, ImproperList, MapKey, Pid, Port, Reference};

pub const DEFAULT_MAX_DEPTH: usize = etf::decode::DEFAULT_MAX_DEPTH;

pub fn encode_to_vec(obj: &Bound<'_, PyAny>, max_depth: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(64);
    encode(obj, &mut out, max_depth)?;
    Ok(out)
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

/// Appends `obj` (no version byte).
pub fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
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
        w::put_binary(out, b.as_bytes())?;
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        let depth = deeper(depth)?;
        w::put_tuple_header(out, t.len())?;
        for item in t.iter() {
            encode(&item, out, depth)?;
        }
    } else if let Ok(l) = obj.cast::<PyList>() {
        encode_list(l, out, depth)?;
    } else if let Ok(d) = obj.cast::<PyDict>() {
        encode_map(d, out, depth)?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        w::put_float(out, f.value())?;
    } else if let Ok(s) = obj.cast::<PyString>() {
        w::put_binary(out, s.to_str()?.as_bytes())?;
    } else if let Ok(p) = obj.cast::<Pid>() {
        let p = p.get();
        w::put_pid(out, &etf::Pid { node: etf::Atom(p.node.clone()), id: p.id, serial: p.serial, creation: p.creation })?;
    } else if let Ok(r) = obj.cast::<Reference>() {
        let r = r.get();
        w::put_reference(out, &etf::Reference { node: etf::Atom(r.node.clone()), creation: r.creation, ids: r.ids.clone() })?;
    } else if let Ok(p) = obj.cast::<Port>() {
        let p = p.get();
        w::put_port(
            out,
            &etf::Port { node: etf::Atom(p.node.clone()), id: p.id, creation: p.creation, new_port_ext: p.new_port_ext },
        )?;
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
        for item in items.iter() {
            encode(&item, out, depth)?;
        }
        encode(l.tail.bind(py), out, depth)?;
    } else if let Ok(f) = obj.cast::<Fun>() {
        out.extend_from_slice(&f.get().bytes);
    } else if let Ok(e) = obj.cast::<Export>() {
        let e = e.get();
        w::put_export(
            out,
            &etf::Export { module: etf::Atom(e.module.clone()), function: etf::Atom(e.function.clone()), arity: e.arity },
        )?;
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
    Ok(())
}

fn encode_list(list: &Bound<'_, PyList>, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
    let n = list.len();
    if n == 0 {
        w::put_nil(out);
        return Ok(());
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
            return Ok(());
        }
    }
    let depth = deeper(depth)?;
    w::put_list_header(out, n)?;
    for item in list.iter() {
        encode(&item, out, depth)?;
    }
    w::put_nil(out);
    Ok(())
}

/// In the dict's order: see the codec's note on map order (`etf::encode`).
fn encode_map(dict: &Bound<'_, PyDict>, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
    let depth = deeper(depth)?;
    w::put_map_header(out, dict.len())?;
    for (k, v) in dict.iter() {
        encode(&k, out, depth)?;
        encode(&v, out, depth)?;
    }
    Ok(())
}
