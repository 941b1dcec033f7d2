//! PyO3 glue for the distribution fast path (`dist.rs`) and the built-in natives
//! (`builtins.rs`): `DistFastPath` per connection, and the natives callable from Python for
//! the requests the fast path leaves to Python (casts, slow natives).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use pyo3::exceptions::PyValueError;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustelixir_dist::registry;
use rustelixir_dist::{Config, FastPath};
use crate::error::RemoteProtocolError;

#[pyclass(module = "rustelixir._native")]
pub struct DistFastPath {
    inner: FastPath,
}

#[pymethods]
impl DistFastPath {
    #[new]
    #[pyo3(signature = (*, peer_name, server_name, server_pid, alias, send_sender, header, max_message_size, fragment_size))]
    fn new(
        peer_name: String,
        server_name: Option<String>,
        server_pid: Vec<u8>,
        alias: bool,
        send_sender: bool,
        header: bool,
        max_message_size: usize,
        fragment_size: usize,
    ) -> Self {
        let mut inner = FastPath::new(Config {
                peer_name: peer_name.into_bytes(),
                server_name: server_name.map(String::into_bytes),
                server_pid,
                alias,
                send_sender,
                header,
                max_message_size,
                fragment_size: fragment_size.max(1),
                watched: Arc::new(Mutex::new(HashSet::new())),
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
        let ticks = self.inner.feed(data, &mut out, &mut to_python).map_err(|e| RemoteProtocolError::new_err(e.0))?;
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

    /// (calls answered, of which errors, messages discarded for their size) on this
    /// connection's fast path.
    #[getter]
    fn stats(&self) -> (u64, u64, u64) {
        (self.inner.stats.calls, self.inner.stats.errors, self.inner.stats.oversized)
    }
}

/// Registers the node's built-in natives (and with `test_natives` those for its own
/// tests): [(name, arity, slow), ...].
#[pyfunction]
#[pyo3(signature = (*, test_natives = false))]
pub fn register_builtin_natives(test_natives: bool) -> PyResult<Vec<(String, u32, bool)>> {
    let mut all = registry::register(&rustelixir_dist::builtins::BUILTINS).map_err(PyValueError::new_err)?;
    all.extend(registry::register(&rustelixir_dist::builtins::SLOW_BUILTINS).map_err(PyValueError::new_err)?);
    all.extend(registry::register(&rustelixir_collections::COLLECTIONS).map_err(PyValueError::new_err)?);
    if test_natives {
        all.extend(registry::register(&crate::test_natives::TEST_NATIVES).map_err(PyValueError::new_err)?);
    }
    Ok(all)
}

/// Registers the natives of a crate built as its own extension: `address` is the value of
/// its module's `__rustelixir_natives__` (the address of its `NativeTable`).
#[pyfunction]
pub fn register_native_table(address: usize) -> PyResult<Vec<(String, u32, bool)>> {
    // SAFETY: the address comes from a module that declares it as its native table; the
    // magic number and ABI version are checked before anything else is read.
    let table = unsafe { rustelixir_nif::NativeTable::from_address(address) }.map_err(PyValueError::new_err)?;
    registry::register(table).map_err(PyValueError::new_err)
}

/// A call's cancellation flag, shared with the native running it.
#[pyclass(module = "rustelixir._native", frozen)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        CancelToken { flag: Arc::new(AtomicBool::new(false)) }
    }
    fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
    #[getter]
    fn cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// Runs a registered Rust native on Python arguments (encoded on the way in, the reply
/// decoded on the way out), with the GIL released: the path for calls the fast path leaves
/// to Python (slow natives on the worker pool, casts). Returns `(:ok, value)` or
/// `(:error, reason)` as Python terms.
#[pyfunction]
#[pyo3(signature = (name, args, cancel = None, caller = None))]
pub fn call_native<'py>(
    py: Python<'py>,
    name: &str,
    args: &Bound<'py, PyTuple>,
    cancel: Option<&CancelToken>,
    caller: Option<&crate::types::Pid>,
) -> PyResult<Bound<'py, PyAny>> {
    let caller = caller.map(holder);
    let entry = registry::find(name.as_bytes(), args.len())
        .ok_or_else(|| pyo3::exceptions::PyLookupError::new_err(format!("no native {name}/{}", args.len())))?;
    let encoded = args
        .iter()
        .map(|a| crate::to_etf::encode_to_vec(&a, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from))
        .collect::<PyResult<Vec<Vec<u8>>>>()?;
    let flag = cancel.map(|c| c.flag.clone());
    let reply = py.detach(|| {
        let slices: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
        rustelixir_nif::resource::with_caller(caller.as_deref(), || {
            rustelixir_nif::call_entry(entry, &slices, flag.as_deref())
        })
        .0
    });
    crate::from_etf::term_to_py(py, &reply)
}

/// Resources: the node's name and creation (references to resources are made in them).
#[pyfunction]
pub fn set_node_identity(node: &str, creation: u32) {
    rustelixir_nif::resource::set_identity(node, creation);
}

fn holder(pid: &crate::types::Pid) -> Vec<u8> {
    rustelixir_nif::resource::holder_of(&pid.to_etf())
}

/// `{:release, ref}` from `pid`: it lets go (the object is dropped with its last holder).
/// False when `reference` is not a live resource `pid` holds.
#[pyfunction]
pub fn release_resource(reference: &crate::types::Reference, pid: &crate::types::Pid) -> bool {
    rustelixir_nif::resource::release(&reference.to_etf(), &holder(pid))
}

/// `{:share, ref, pid}`: "ok", "badresource" (not live) or "overloaded" (too many holders).
#[pyfunction]
pub fn share_resource(reference: &crate::types::Reference, pid: &crate::types::Pid) -> &'static str {
    match rustelixir_nif::resource::share(&reference.to_etf(), &holder(pid)) {
        Ok(()) => "ok",
        Err(true) => "badresource",
        Err(false) => "overloaded",
    }
}

/// (type, holders, size in bytes) of a live resource, or None.
#[pyfunction]
pub fn resource_info<'py>(
    py: Python<'py>,
    reference: &crate::types::Reference,
) -> PyResult<Option<(&'static str, Vec<Bound<'py, PyAny>>, usize)>> {
    let Some((kind, holders, size)) = rustelixir_nif::resource::info(&reference.to_etf()) else { return Ok(None) };
    let pids = holders.iter().map(|h| crate::from_etf::term_to_py(py, h)).collect::<PyResult<Vec<_>>>()?;
    Ok(Some((kind, pids, size)))
}

/// The type of a live resource, or None.
#[pyfunction]
pub fn resource_type(reference: &crate::types::Reference) -> Option<&'static str> {
    rustelixir_nif::resource::type_of(&reference.to_etf())
}

/// [(type, live, created, freed), ...]
#[pyfunction]
pub fn resource_counts() -> Vec<(&'static str, u64, u64, u64)> {
    rustelixir_nif::resource::counts()
}

/// How many holders the table tracks.
#[pyfunction]
pub fn resource_holder_count() -> usize {
    rustelixir_nif::resource::holder_count()
}

/// Limits of the resource table: live resources, holders per resource, and bytes held by
/// all buffers together; past them, `:overloaded`.
#[pyfunction]
#[pyo3(signature = (max_live, max_holders, max_buffer_bytes = None))]
pub fn set_resource_limits(max_live: usize, max_holders: usize, max_buffer_bytes: Option<u64>) {
    rustelixir_nif::resource::set_limits(max_live, max_holders);
    if let Some(bytes) = max_buffer_bytes {
        rustelixir_collections::set_max_total_buffer_bytes(bytes);
    }
}

/// The monitor reference to send a MONITOR_P with for `pid`, when it has just become a
/// holder and is not monitored yet; else None.
#[pyfunction]
pub fn take_resource_monitor<'py>(py: Python<'py>, pid: &crate::types::Pid) -> PyResult<Option<Bound<'py, PyAny>>> {
    rustelixir_nif::resource::take_monitor_for(&holder(pid)).map(|r| py_reference(py, &r)).transpose()
}

/// A MONITOR_P_EXIT to the server, naming `from_proc` as the process that exited, that came
/// over the connection to `peer_node`: "down" (a holder is gone), "forged" (a monitor of the
/// table, but not that process's or not from its node: ignored) or "unknown" (not a
/// monitor of the table).
#[pyfunction]
pub fn resource_monitor_down(
    reference: &crate::types::Reference,
    from_proc: &Bound<'_, PyAny>,
    peer_node: &str,
) -> &'static str {
    // FromProc may be a registered name (a monitor by name): never a holder.
    let from = from_proc.extract::<PyRef<'_, crate::types::Pid>>().map(|p| holder(&p)).unwrap_or_default();
    match rustelixir_nif::resource::monitor_down(&reference.to_etf(), &from, peer_node.as_bytes()) {
        rustelixir_nif::resource::MonitorExit::Down => "down",
        rustelixir_nif::resource::MonitorExit::Forged => "forged",
        rustelixir_nif::resource::MonitorExit::Unknown => "unknown",
    }
}

/// MONITOR_P_EXITs ignored as forged since the node started (on the fast path and here).
#[pyfunction]
pub fn resource_forged_exits() -> u64 {
    rustelixir_nif::resource::forged_exits()
}

/// The node `node` disconnected: its processes hold nothing any more.
#[pyfunction]
pub fn resources_node_down(node: &str) {
    rustelixir_nif::resource::node_down(node);
}

// --- Python objects as resources -----------------------------------------------------------

/// A Python object in the resource table. When the table lets go of it, it is queued for
/// Python to call its `close()` (the table may let go on a thread without the GIL).
struct PyObjectResource {
    object: Option<Py<PyAny>>,
}

impl rustelixir_nif::Resource for PyObjectResource {
    const TYPE_NAME: &'static str = "python";
}

fn closed_queue() -> &'static Mutex<Vec<Py<PyAny>>> {
    static QUEUE: std::sync::OnceLock<Mutex<Vec<Py<PyAny>>>> = std::sync::OnceLock::new();
    QUEUE.get_or_init(|| Mutex::new(Vec::new()))
}

impl Drop for PyObjectResource {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            closed_queue().lock().unwrap_or_else(|e| e.into_inner()).push(object);
        }
    }
}

fn py_reference<'py>(py: Python<'py>, r: &etf::Reference) -> PyResult<Bound<'py, PyAny>> {
    let mut bytes = Vec::new();
    etf::encode::put_reference(&mut bytes, r).map_err(|e| PyErr::from(crate::error::Error::from(e)))?;
    crate::from_etf::term_to_py(py, &bytes)
}

/// Puts a Python object in the resource table, held by `caller`; returns its reference.
#[pyfunction]
#[pyo3(signature = (object, caller = None))]
pub fn make_python_resource<'py>(
    py: Python<'py>,
    object: Bound<'py, PyAny>,
    caller: Option<&crate::types::Pid>,
) -> PyResult<Bound<'py, PyAny>> {
    let caller = caller.map(holder);
    let (made, _) = rustelixir_nif::resource::with_caller(caller.as_deref(), || {
        rustelixir_nif::ResourceArc::try_new(PyObjectResource { object: Some(object.unbind()) })
    });
    match made {
        Ok(arc) => py_reference(py, arc.reference()),
        Err(_) => Err(crate::error::Overloaded::new_err("the resource table is full")),
    }
}

/// The Python object behind `reference`, now also held by `caller`.
#[pyfunction]
#[pyo3(signature = (reference, caller = None))]
pub fn python_resource<'py>(
    py: Python<'py>,
    reference: Bound<'py, PyAny>,
    caller: Option<&crate::types::Pid>,
) -> PyResult<Bound<'py, PyAny>> {
    let Ok(r) = reference.cast::<crate::types::Reference>() else {
        return Err(crate::error::BadResource::new_err(reference.unbind()));
    };
    let term = etf::Term::from(r.get().to_etf());
    let caller = caller.map(holder);
    let (found, _) = rustelixir_nif::resource::with_caller(caller.as_deref(), || {
        <rustelixir_nif::ResourceArc<PyObjectResource> as rustelixir_nif::Decoder>::decode(&term)
    });
    match found {
        Ok(arc) => Ok(arc.object.as_ref().expect("live").clone_ref(py).into_bound(py)),
        Err(rustelixir_nif::ArgError::BadResource(_)) => Err(crate::error::BadResource::new_err(reference.unbind())),
        Err(rustelixir_nif::ArgError::BadArg(message)) => Err(pyo3::exceptions::PyTypeError::new_err(message)),
    }
}

/// Python objects the table has let go of since the last call: call their `close()`.
#[pyfunction]
pub fn take_released_python_objects(py: Python<'_>) -> Vec<Py<PyAny>> {
    let _ = py;
    std::mem::take(&mut *closed_queue().lock().unwrap_or_else(|e| e.into_inner()))
}
