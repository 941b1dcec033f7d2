//! `rustelixir._native`: the thin PyO3 layer over the `rustelixir-etf` codec. The Python
//! package `rustelixir` is the API; this module is private.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

mod atoms;
mod error;
mod from_etf;
mod to_etf;
mod types;

use error::Error;

fn with_bytes<R>(data: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        return Ok(f(&b.to_vec()));
    }
    let b = data.call_method0("__bytes__").or_else(|_| data.py().get_type::<PyBytes>().call1((data,)))?;
    Ok(f(b.cast::<PyBytes>()?.as_bytes()))
}

fn internal_error(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("internal decoder error (please report it with the input): {what}")
}

/// Decodes one term in the External Term Format (starting with the version byte 131).
#[pyfunction]
#[pyo3(signature = (data, *, max_depth = etf::decode::DEFAULT_MAX_DEPTH, max_uncompressed_size = etf::decode::DEFAULT_MAX_UNCOMPRESSED_SIZE))]
fn decode<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    max_depth: usize,
    max_uncompressed_size: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let limits = etf::Limits { max_depth, max_uncompressed_size };
    with_bytes(data, |bytes| {
        // A bug in the decoder must not take the caller down with a PanicException (a
        // BaseException): it is reported as the bytes' error, like any other.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            atoms::with_cache(|atoms| {
                etf::decode::decode_with(bytes, &mut from_etf::PyBuilder { py, atoms }, &limits).map_err(PyErr::from)
            })
        }))
        .unwrap_or_else(|panic| Err(PyErr::from(Error::Decode(etf::DecodeError::new(0, internal_error(&panic))))))
    })?
}

/// Encodes a Python value as a term, with the version byte in front.
#[pyfunction]
#[pyo3(signature = (value, *, max_depth = to_etf::DEFAULT_MAX_DEPTH))]
fn encode<'py>(py: Python<'py>, value: &Bound<'py, PyAny>, max_depth: usize) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = to_etf::Encoded::new(&[etf::tags::VERSION]);
    to_etf::encode(value, &mut out, max_depth).map_err(PyErr::from)?;
    out.into_pybytes(py)
}

/// Re-encodes ETF bytes through the Rust `Term` model (no Python objects): the path the
/// node's fast path takes. For tests and benchmarks.
#[pyfunction]
fn roundtrip_term<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let term = etf::decode(data).map_err(|e| PyErr::from(Error::from(e)))?;
    let out = etf::encode(&term).map_err(|e| PyErr::from(Error::from(e)))?;
    Ok(PyBytes::new(py, &out))
}

/// Sorts a list of encoded terms (each with its version byte) by Erlang term order; `exact`
/// selects the map-key order (integers before floats).
#[pyfunction]
#[pyo3(signature = (encoded, *, exact = false))]
fn sort_encoded(encoded: Vec<Vec<u8>>, exact: bool) -> PyResult<Vec<usize>> {
    let terms = encoded
        .iter()
        .map(|b| etf::decode(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyErr::from(Error::from(e)))?;
    let mut idx: Vec<usize> = (0..terms.len()).collect();
    if exact {
        idx.sort_by(|&a, &b| etf::order::compare_exact(&terms[a], &terms[b]));
    } else {
        idx.sort_by(|&a, &b| etf::order::compare(&terms[a], &terms[b]));
    }
    Ok(idx)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip_term, m)?)?;
    m.add_function(wrap_pyfunction!(sort_encoded, m)?)?;
    m.add_class::<types::Atom>()?;
    m.add_class::<types::Pid>()?;
    m.add_class::<types::Port>()?;
    m.add_class::<types::Reference>()?;
    m.add_class::<types::BitString>()?;
    m.add_class::<types::ImproperList>()?;
    m.add_class::<types::Fun>()?;
    m.add_class::<types::Export>()?;
    m.add_class::<types::MapKey>()?;
    m.add("DEFAULT_MAX_DEPTH", etf::decode::DEFAULT_MAX_DEPTH)?;
    Ok(())
}
