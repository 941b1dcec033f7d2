//! PyO3 glue for the distribution fast path (`dist.rs`) and the built-in natives
//! (`builtins.rs`): `DistFastPath` per connection, and the natives callable from Python for
//! the requests the fast path leaves to Python (casts, slow natives).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::builtins::{self, NativeError};
use crate::dist::{Config, FastPath, FrameError};
use crate::error::{Error, RemoteProtocolError};

#[pyclass(module = "rustelixir._native")]
pub struct DistFastPath {
    inner: FastPath,
}

#[pymethods]
impl DistFastPath {
    #[new]
    #[pyo3(signature = (*, server_name, server_pid, alias, send_sender, header, max_message_size, fragment_size, test_natives = false))]
    fn new(
        server_name: Option<String>,
        server_pid: Vec<u8>,
        alias: bool,
        send_sender: bool,
        header: bool,
        max_message_size: usize,
        fragment_size: usize,
        test_natives: bool,
    ) -> Self {
        let mut inner = FastPath::new(Config {
                server_name: server_name.map(String::into_bytes),
                server_pid,
                alias,
                send_sender,
                header,
                max_message_size,
                fragment_size: fragment_size.max(1),
                test_natives,
            });
        inner.ticks_as_frames = true;
        DistFastPath { inner }
    }

    /// Feeds socket bytes: returns (frames to write or None, frame bodies for Python in
    /// order, an empty body for each tick; 0).
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, Bound<'py, PyList>, usize)> {
        let mut out = Vec::new();
        let mut to_python = Vec::new();
        let ticks = self.inner.feed(data, &mut out, &mut to_python).map_err(|e| match e {
            FrameError::TooLarge(len) => RemoteProtocolError::new_err(format!(
                "frame of {len} bytes is over the limit of {}",
                self.inner.config.max_message_size
            )),
            other => RemoteProtocolError::new_err(other.to_string()),
        })?;
        let out = if out.is_empty() { None } else { Some(PyBytes::new(py, &out)) };
        let bodies = PyList::new(py, to_python.iter().map(|b| PyBytes::new(py, b)))?;
        Ok((out, bodies, ticks))
    }

    /// Bytes held for a frame not yet complete.
    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    /// Fragmented messages begun and not yet complete.
    #[getter]
    fn open_sequences(&self) -> usize {
        self.inner.open_sequences()
    }

    /// (calls answered, of which errors) on this connection's fast path.
    #[getter]
    fn stats(&self) -> (u64, u64) {
        (self.inner.stats.calls, self.inner.stats.errors)
    }
}

/// The built-in natives: [(name, arity, quick), ...]; with `test_natives`, the test-only ones too.
#[pyfunction]
#[pyo3(signature = (*, test_natives = false))]
pub fn builtin_natives(test_natives: bool) -> Vec<(&'static str, usize, bool)> {
    let tests: &[builtins::Builtin] = if test_natives { builtins::TEST_BUILTINS } else { &[] };
    builtins::BUILTINS.iter().chain(tests).map(|b| (b.name, b.arity, b.quick)).collect()
}

/// Runs a built-in native on Python arguments (encoded to ETF on the way in, the result
/// decoded on the way out): the path for calls the fast path leaves to Python. Returns
/// `(:ok, value)` or `(:error, reason)` as Python terms. A slow native runs with the GIL
/// released.
#[pyfunction]
pub fn call_builtin<'py>(py: Python<'py>, name: &str, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let native = builtins::find(name.as_bytes(), args.len(), true)
        .ok_or_else(|| pyo3::exceptions::PyLookupError::new_err(format!("no built-in native {name}/{}", args.len())))?;
    let encoded = args
        .iter()
        .map(|a| crate::to_etf::encode_to_vec(&a, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from))
        .collect::<PyResult<Vec<Vec<u8>>>>()?;
    let slices: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    let mut value = Vec::new();
    let run = |value: &mut Vec<u8>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (native.function)(&slices, value)))
    };
    let result = if native.quick { run(&mut value) } else { py.detach(|| run(&mut value)) };
    let mut message = vec![etf::tags::VERSION, etf::tags::SMALL_TUPLE_EXT, 2];
    match result {
        Ok(Ok(())) => {
            etf::encode::put_atom(&mut message, "ok").unwrap();
            message.extend_from_slice(&value);
        }
        Ok(Err(NativeError::BadArg(index, text))) => {
            etf::encode::put_atom(&mut message, "error").unwrap();
            message.extend_from_slice(&[etf::tags::SMALL_TUPLE_EXT, 3]);
            etf::encode::put_atom(&mut message, "badarg").unwrap();
            etf::encode::put_int(&mut message, index as i64);
            etf::encode::put_binary(&mut message, text.as_bytes()).map_err(|e| PyErr::from(Error::from(e)))?;
        }
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "native panicked".into());
            etf::encode::put_atom(&mut message, "error").unwrap();
            message.extend_from_slice(&[etf::tags::SMALL_TUPLE_EXT, 2]);
            etf::encode::put_atom(&mut message, "panic").unwrap();
            etf::encode::put_binary(&mut message, text.as_bytes()).map_err(|e| PyErr::from(Error::from(e)))?;
        }
    }
    crate::atoms::with_cache(|atoms| {
        etf::decode::decode_with(&message, &mut crate::from_etf::PyBuilder { py, atoms }, &etf::Limits::default())
            .map_err(PyErr::from)
    })
}
