//! `rustelixir._native`: the thin PyO3 layer over the `rustelixir-etf` codec. The Python
//! package `rustelixir` is the API; this module is private.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyTuple};

mod atoms;
mod error;
mod link;
mod server;
mod tls;
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

/// Runs a decode so that a bug in the decoder does not take the caller down with a
/// PanicException (a BaseException): it is reported as the bytes' error, like any other.
fn guarded<R>(f: impl FnOnce() -> PyResult<R>) -> PyResult<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(PyErr::from(Error::Decode(etf::DecodeError::new(0, internal_error(&panic))))))
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
#[pyo3(signature = (
    data,
    *,
    max_depth = etf::decode::DEFAULT_MAX_DEPTH,
    max_uncompressed_size = etf::decode::DEFAULT_MAX_UNCOMPRESSED_SIZE,
    max_memory = etf::decode::DEFAULT_MAX_MEMORY,
))]
fn decode<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    max_depth: usize,
    max_uncompressed_size: usize,
    max_memory: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let limits = etf::Limits { max_depth, max_uncompressed_size, max_memory };
    with_bytes(data, |bytes| {
        guarded(|| {
            atoms::with_cache(|atoms| {
                etf::decode::decode_with(bytes, &mut from_etf::PyBuilder { py, atoms }, &limits).map_err(PyErr::from)
            })
        })
    })?
}

use rustelixir_dist::frame::{DIST_HEADER, PASS_THROUGH};

/// Decodes the body of one distribution message (what follows the 4-byte length): either
/// pass-through (112, then the control term and the optional message, each with its version
/// byte) or a distribution header (131 68) with no atom-cache references (we never offer
/// DIST_HDR_ATOM_CACHE), then the two terms. Returns `(control,)` or `(control, payload)`
/// (a payload may be `nil`, so its absence is told by the length, not by None). The two
/// terms share one `max_memory`.
#[pyfunction]
#[pyo3(signature = (
    data,
    *,
    max_depth = etf::decode::DEFAULT_MAX_DEPTH,
    max_uncompressed_size = etf::decode::DEFAULT_MAX_UNCOMPRESSED_SIZE,
    max_memory = etf::decode::DEFAULT_MAX_MEMORY,
))]
fn decode_dist<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    max_depth: usize,
    max_uncompressed_size: usize,
    max_memory: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let limits = etf::Limits { max_depth, max_uncompressed_size, max_memory };
    with_bytes(data, |bytes| guarded(|| decode_dist_bytes(py, bytes, &limits)))?
}

/// `decode_dist` under the limits of a node whose peers may send messages of at most
/// `max_message_size` bytes (`rustelixir_dist::fast_path::wire_limits`: the same the fast
/// path walks them under).
#[pyfunction]
fn decode_message<'py>(py: Python<'py>, data: &Bound<'py, PyAny>, max_message_size: usize) -> PyResult<Bound<'py, PyTuple>> {
    let limits = rustelixir_dist::fast_path::wire_limits(max_message_size);
    with_bytes(data, |bytes| guarded(|| decode_dist_bytes(py, bytes, &limits)))?
}

fn bad_dist(offset: usize, message: String) -> PyErr {
    PyErr::from(Error::Decode(etf::DecodeError::new(offset, message)))
}

fn decode_dist_bytes<'py>(
    py: Python<'py>,
    bytes: &[u8],
    limits: &etf::Limits,
) -> PyResult<Bound<'py, PyTuple>> {
    let bad = bad_dist;
    let start = match bytes {
        [PASS_THROUGH, etf::tags::VERSION, ..] => 1,
        [etf::tags::VERSION, DIST_HEADER, 0, ..] => 3,
        [etf::tags::VERSION, DIST_HEADER, n, ..] => {
            return Err(bad(2, format!("{n} atom-cache references, but no atom cache was negotiated")))
        }
        [] => return Err(bad(0, "empty distribution message".into())),
        [first, ..] => return Err(bad(0, format!("not a distribution message (first byte {first})"))),
    };
    atoms::with_cache(|atoms| decode_dist_terms(py, bytes, start, atoms, limits))
}

fn decode_dist_terms<'py>(
    py: Python<'py>,
    bytes: &[u8],
    start: usize,
    atoms: &atoms::AtomCache,
    limits: &etf::Limits,
) -> PyResult<Bound<'py, PyTuple>> {
    let bad = bad_dist;
    let mut builder = from_etf::PyBuilder { py, atoms };
    let mut memory = limits.max_memory;
    let (control, end) =
        etf::decode::decode_at_within(bytes, start, &mut builder, limits, &mut memory).map_err(PyErr::from)?;
    if end == bytes.len() {
        return PyTuple::new(py, [control]);
    }
    let (message, end2) =
        etf::decode::decode_at_within(bytes, end, &mut builder, limits, &mut memory).map_err(PyErr::from)?;
    if end2 != bytes.len() {
        return Err(bad(end2, format!("{} trailing bytes after the message", bytes.len() - end2)));
    }
    PyTuple::new(py, [control, message])
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
    m.add_function(wrap_pyfunction!(decode_dist, m)?)?;
    m.add_function(wrap_pyfunction!(decode_message, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip_term, m)?)?;
    m.add_function(wrap_pyfunction!(sort_encoded, m)?)?;
    m.add_function(wrap_pyfunction!(server::register_native_table, m)?)?;
    m.add_function(wrap_pyfunction!(server::describe_native_table, m)?)?;
    m.add_function(wrap_pyfunction!(server::call_native, m)?)?;
    m.add_function(wrap_pyfunction!(server::set_max_buffer_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(server::take_released_python_objects, m)?)?;
    m.add_class::<server::CancelToken>()?;
    m.add_class::<server::NativeServer>()?;
    m.add_class::<link::DistLink>()?;
    m.add_class::<tls::TlsConfig>()?;
    m.add_class::<tls::TlsSession>()?;
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
    m.add("DEFAULT_MAX_MEMORY", etf::decode::DEFAULT_MAX_MEMORY)?;
    m.add("SERVER_NAME", rustelixir_dist::contract::SERVER_NAME)?;
    m.add("RESERVED", rustelixir_dist::contract::RESERVED.to_vec())?;
    m.add("OPCODES", rustelixir_dist::control::OPCODES.iter().copied().collect::<std::collections::HashMap<&str, u8>>())?;
    Ok(())
}
