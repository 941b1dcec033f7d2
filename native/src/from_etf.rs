//! ETF bytes -> Python objects, in one walk of the bytes (the codec's decoder drives this
//! builder; no intermediate `Term`s).

use std::vec::Drain;

use etf::decode::Builder;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::ffi;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList};

use crate::atoms;
use crate::error::Error;
use crate::types::{self, MapKey};

pub struct PyBuilder<'py, 'a> {
    pub py: Python<'py>,
    pub atoms: &'a atoms::AtomCache,
}

impl<'py> PyBuilder<'py, '_> {
    /// A list made in place from the values (PyTuple::new / PyList::new go through a generic
    /// iterator protocol with length checks that cost more than the list itself on small
    /// terms).
    fn new_list(&self, items: Drain<'_, Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyList>> {
        let n = items.len();
        // SAFETY: as for tuples: `n` slots, each set once with an owned reference (a list
        // with NULL items would be unsafe to expose, but the Drain yields exactly `n`).
        unsafe {
            let list = Bound::from_owned_ptr_or_err(self.py, ffi::PyList_New(n as ffi::Py_ssize_t))?;
            for (i, item) in (0..n).zip(items) {
                ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
            }
            Ok(list.cast_into_unchecked())
        }
    }
}

impl<'py> Builder for PyBuilder<'py, '_> {
    type Value = Bound<'py, PyAny>;
    type Error = Error;

    fn int(&mut self, v: i64) -> Result<Self::Value, Error> {
        Ok(v.into_pyobject(self.py).unwrap().into_any())
    }

    fn big_int(&mut self, negative: bool, magnitude: &[u8]) -> Result<Self::Value, Error> {
        let int_type = self.py.get_type::<pyo3::types::PyInt>();
        let v = int_type.call_method1("from_bytes", (PyBytes::new(self.py, magnitude), "little"))?;
        Ok(if negative { v.neg()? } else { v })
    }

    fn float(&mut self, v: f64) -> Result<Self::Value, Error> {
        Ok(PyFloat::new(self.py, v).into_any())
    }

    fn atom(&mut self, name: &str) -> Result<Self::Value, Error> {
        Ok(self.atoms.atom(self.py, name)?)
    }

    fn binary(&mut self, data: &[u8]) -> Result<Self::Value, Error> {
        Ok(PyBytes::new(self.py, data).into_any())
    }

    fn bitstring(&mut self, data: &[u8], tail_bits: u8) -> Result<Self::Value, Error> {
        Ok(Bound::new(self.py, types::BitString::new(data, tail_bits)?)?.into_any())
    }

    fn pid(&mut self, node: &str, id: u32, serial: u32, creation: u32) -> Result<Self::Value, Error> {
        let node = self.atoms.atom_ref(self.py, node)?.unbind();
        Ok(Bound::new(self.py, types::Pid { node, id, serial, creation })?.into_any())
    }

    fn port(&mut self, port: etf::Port) -> Result<Self::Value, Error> {
        Ok(Bound::new(self.py, types::Port(port))?.into_any())
    }

    fn reference(&mut self, node: &str, creation: u32, ids: &[u32]) -> Result<Self::Value, Error> {
        let node = self.atoms.atom_ref(self.py, node)?.unbind();
        Ok(Bound::new(self.py, types::Reference::new(node, creation, ids))?.into_any())
    }

    fn fun(&mut self, fun: etf::Fun) -> Result<Self::Value, Error> {
        Ok(Bound::new(self.py, types::Fun(fun))?.into_any())
    }

    fn export(&mut self, e: etf::Export) -> Result<Self::Value, Error> {
        Ok(Bound::new(self.py, types::Export(e))?.into_any())
    }

    fn tuple(&mut self, items: Drain<'_, Self::Value>) -> Result<Self::Value, Error> {
        let n = items.len();
        // SAFETY: a new tuple of `n` empty slots, each filled once below with an owned
        // reference (the Drain yields exactly `n` items; any slot left empty would stay NULL,
        // which CPython's tuple deallocation tolerates).
        unsafe {
            let tuple = Bound::from_owned_ptr_or_err(self.py, ffi::PyTuple_New(n as ffi::Py_ssize_t))?;
            for (i, item) in (0..n).zip(items) {
                ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
            }
            Ok(tuple)
        }
    }

    fn list(&mut self, items: Drain<'_, Self::Value>, tail: Option<Self::Value>) -> Result<Self::Value, Error> {
        let list = self.new_list(items)?;
        Ok(match tail {
            None => list.into_any(),
            Some(tail) => {
                Bound::new(self.py, types::ImproperList { items: list.unbind(), tail: tail.unbind() })?.into_any()
            }
        })
    }

    fn string(&mut self, bytes: &[u8]) -> Result<Self::Value, Error> {
        // Charlists stay lists of ints; small ints are shared objects in CPython, so this is cheap.
        let items: Vec<Bound<'py, PyAny>> =
            bytes.iter().map(|&b| (b as i64).into_pyobject(self.py).unwrap().into_any()).collect();
        Ok(PyList::new(self.py, items)?.into_any())
    }

    fn map(&mut self, mut kvs: Drain<'_, Self::Value>, at: usize) -> Result<Self::Value, Error> {
        let mut pairs = Vec::with_capacity(kvs.len() / 2);
        while let (Some(k), Some(v)) = (kvs.next(), kvs.next()) {
            pairs.push((k, v));
        }
        let repeated = || Error::Decode(etf::DecodeError::new(at, "map with a repeated key"));
        let dict = PyDict::new(self.py);
        for (i, (key, value)) in pairs.iter().enumerate() {
            let before = dict.len();
            match dict.set_item(key, value) {
                Ok(()) if dict.len() > before => continue,
                Ok(()) => {
                    // `key` is equal, for Python, to an earlier key: the same term (refused,
                    // as binary_to_term refuses it), or one Erlang tells apart (1, 1.0 and
                    // true). Give the earlier key its value back and keep this one apart
                    // under a MapKey.
                    let (earlier_key, earlier_value) = pairs[..i]
                        .iter()
                        .find(|(k, _)| k.eq(key).unwrap_or(false))
                        .expect("a key that did not grow the dict equals an earlier key");
                    dict.set_item(key, earlier_value)?;
                    let wrapped = MapKey::wrap(key)?;
                    if MapKey::wrap(earlier_key)?.encoded == wrapped.encoded {
                        return Err(repeated());
                    }
                    dict.set_item(Bound::new(self.py, wrapped)?, value)?;
                }
                Err(e) if e.is_instance_of::<PyTypeError>(self.py) => {
                    dict.set_item(Bound::new(self.py, MapKey::wrap(key)?)?, value)?;
                }
                Err(e) => return Err(e.into()),
            }
            // A MapKey equal to one already there is the same term again.
            if dict.len() == before {
                return Err(repeated());
            }
        }
        Ok(dict.into_any())
    }
}

/// One term's bytes (no version byte, as natives and the resource table hold them) as a
/// Python value.
pub fn term_to_py<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    crate::atoms::with_cache(|atoms| {
        etf::decode::decode_at_with(bytes, 0, &mut PyBuilder { py, atoms }, &etf::Limits::default())
            .map(|(value, _)| value)
            .map_err(PyErr::from)
    })
}
