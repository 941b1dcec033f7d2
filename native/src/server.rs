//! `NativeServer`: Python's handle on the node's server (`rustelixir_dist::server`), which
//! answers the call contract in Rust; Python takes the jobs of its Python natives from it
//! and gives their results back by ticket. Also the resource API of Python natives (on the
//! server's resource table) and the registry that a crate's own tests call its natives
//! through.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustelixir_dist::registry::{Native, Registry};
use rustelixir_dist::server::{Job, JobEvent};
use rustelixir_dist::{Server, ServerConfig};
use rustelixir_nif::reply::{self, Reason};
use rustelixir_nif::host::HOST_OK;
use rustelixir_nif::CallInfo;

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

#[pyclass(module = "rustelixir._native", frozen)]
pub struct NativeServer {
    pub inner: Arc<Server>,
}

fn value_error(e: String) -> PyErr {
    PyValueError::new_err(e)
}

#[pymethods]
impl NativeServer {
    /// The server of node `node` (with `creation`), whose pid is `pid`. `notify_fd`: the
    /// write end of a pipe Python watches; a byte arrives there when jobs wait in
    /// `take_jobs`. The node's built-in natives are registered at once.
    #[new]
    /// `max_resources` live resources and `max_holders` holders of one resource: past them,
    /// `:overloaded` (the server's own resource table).
    #[pyo3(signature = (*, node, creation, pid, notify_fd, workers = 32, max_in_flight = 10_000, max_resources = 1_000_000, max_holders = 10_000))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        node: String,
        creation: u32,
        pid: &crate::types::Pid,
        notify_fd: RawFd,
        workers: usize,
        max_in_flight: usize,
        max_resources: usize,
        max_holders: usize,
    ) -> PyResult<Self> {
        // SAFETY: the caller hands over the descriptor.
        let notify = Mutex::new(unsafe { File::from_raw_fd(notify_fd) });
        let mut pid_bytes = Vec::new();
        etf::encode::put_pid(&mut pid_bytes, &pid.to_etf()).map_err(|e| PyErr::from(crate::error::Error::from(e)))?;
        let config = ServerConfig { node, creation, pid: pid_bytes, max_in_flight, workers, max_resources, max_holders };
        let wake = Box::new(move || {
            let _ = notify.lock().unwrap_or_else(|e| e.into_inner()).write(&[1]);
        });
        let inner = Server::new(config, wake);
        for table in [&rustelixir_dist::builtins::BUILTINS, &rustelixir_dist::builtins::SLOW_BUILTINS, &rustelixir_collections::COLLECTIONS] {
            inner.add_table(table).map_err(value_error)?;
        }
        Ok(NativeServer { inner })
    }

    /// Serves the natives of module `name` in place of what it served before (at start-up,
    /// and when it is reloaded), all at once or not at all: `address` is its
    /// `__rustelixir_natives__` (a crate built as its own extension), `python` its Python
    /// natives as `(name, arity, index, slow)` (their jobs come back with `index`; a slow
    /// one's go to the runner, on the pool). Returns [(name, arity, slow)].
    #[pyo3(signature = (name, address, python))]
    fn set_module(&self, name: &str, address: Option<usize>, python: Vec<(String, u32, u32, bool)>) -> PyResult<Vec<(String, u32, bool)>> {
        let tables = address.map(table_at).transpose()?;
        self.inner.set_module(name, tables.as_slice(), &python).map_err(value_error)
    }

    /// The Python native (registered by `index`, run on the pool) that answers `{reload,
    /// Module}`.
    fn set_reloader(&self, index: u32) {
        self.inner.set_reloader(index);
    }

    /// Every native served, [(name, arity)], sorted.
    fn functions(&self) -> Vec<(String, u32)> {
        self.inner.listing()
    }

    /// What Python is to do, in order: `(ticket, index, args, caller, tag, token)` for a job
    /// to run (`caller` a Pid or None, `tag` the call's reply tag encoded, or None for a
    /// cast), `(ticket,)` for a job whose caller gave up.
    fn take_jobs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = self.inner.take_jobs();
        let list = PyList::empty(py);
        for event in events {
            match event {
                JobEvent::Run(job) => {
                    let args = job.args.iter().map(|a| crate::from_etf::term_to_py(py, a)).collect::<PyResult<Vec<_>>>()?;
                    let caller = job.caller.as_deref().map(|c| crate::from_etf::term_to_py(py, c)).transpose()?;
                    let tag = job.tag.as_deref().map(|t| PyBytes::new(py, t));
                    let token = CancelToken { flag: job.cancel };
                    list.append((job.ticket, job.index, PyTuple::new(py, args)?, caller, tag, token))?;
                }
                JobEvent::Cancel(ticket) => list.append((ticket,))?,
            }
        }
        Ok(list)
    }

    /// The job `ticket` ended with `outcome`: `(True, value)` (its caller gets `{ok, value}`),
    /// `(False, reason)` (`{error, Reason}`, the reason one of the contract's:
    /// `("badarg", index, message)`, `("exception", type, message)`, `("badresource",
    /// reference)`, `("overloaded",)`), or None (no reply: it was cancelled).
    fn answer(&self, ticket: u64, outcome: &Bound<'_, PyAny>) -> PyResult<()> {
        let reply = outcome_reply(outcome)?;
        self.inner.complete(ticket, reply);
        Ok(())
    }

    /// Runs slow Python natives on the server's worker pool, with the GIL:
    /// `runner(index, args, caller, tag, token)` returns an outcome as `answer` takes it.
    fn set_python_runner(&self, runner: Py<PyAny>) {
        let run = move |job: &Job| -> Option<Vec<u8>> {
            Python::attach(|py| {
                let outcome = (|| -> PyResult<Option<Vec<u8>>> {
                    let args = job.args.iter().map(|a| crate::from_etf::term_to_py(py, a)).collect::<PyResult<Vec<_>>>()?;
                    let caller = job.caller.as_deref().map(|c| crate::from_etf::term_to_py(py, c)).transpose()?;
                    let tag = job.tag.as_deref().map(|t| PyBytes::new(py, t));
                    let token = Py::new(py, CancelToken { flag: job.cancel.clone() })?;
                    let outcome = runner.call1(py, (job.index, PyTuple::new(py, args)?, caller, tag, token))?;
                    outcome_reply(outcome.bind(py))
                })();
                outcome.unwrap_or_else(|e| {
                    // A bug of the runner's: the caller still gets an answer.
                    let mut out = Vec::new();
                    let message = e.to_string();
                    reply::write_error(&mut out, Reason::Exception { kind: "RuntimeError", message: &message });
                    Some(out)
                })
            })
        };
        self.inner.set_python_runner(Arc::new(run));
    }

    /// A message to the server that Python decoded (it came to the server's pid, or in an
    /// encoding the link does not read in place), from `sender` over the connection to
    /// `peer_name`: answered as if the link had read it.
    #[pyo3(signature = (peer_name, message, sender = None))]
    fn deliver(&self, py: Python<'_>, peer_name: &str, message: &Bound<'_, PyAny>, sender: Option<&crate::types::Pid>) -> PyResult<()> {
        let message = crate::to_etf::encode_to_vec(message, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from)?;
        let sender = sender
            .map(|p| {
                let mut b = Vec::new();
                etf::encode::put_pid(&mut b, &p.to_etf()).map(|_| b)
            })
            .transpose()
            .map_err(|e| PyErr::from(crate::error::Error::from(e)))?;
        let inner = self.inner.clone();
        py.detach(|| inner.handle_bytes(peer_name.as_bytes(), sender.as_deref(), &message));
        Ok(())
    }

    /// A SPAWN_REQUEST that Python decoded (`control`, the control tuple; `args`, its
    /// payload), from over the connection to `peer_name`: answered as if the link had read it.
    /// False: it is malformed (the connection should close).
    fn spawn(&self, py: Python<'_>, peer_name: &str, control: &Bound<'_, PyAny>, args: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mut message = crate::to_etf::encode_to_vec(control, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from)?;
        message.extend(crate::to_etf::encode_to_vec(args, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from)?);
        let inner = self.inner.clone();
        Ok(py.detach(|| inner.spawn_bytes(peer_name.as_bytes(), &message)))
    }

    /// A link's exit signal (not `normal`) that Python decoded, from `from_pid` to
    /// `to_pid` over the connection to `peer_name`: a process spawned linked to its asker
    /// dies with it (its call is cancelled). False when `to_pid` is no such process.
    fn link_exit(&self, from_pid: &crate::types::Pid, to_pid: &crate::types::Pid, peer_name: &str) -> bool {
        self.inner.link_exit(&holder(from_pid), &holder(to_pid), peer_name.as_bytes())
    }

    /// A DEMONITOR_P that Python decoded, of monitor `reference`, from over the connection
    /// to `peer_name`: the caller of the call behind it gave up. False when no call in
    /// flight of that node has that monitor.
    fn demonitor(&self, reference: &crate::types::Reference, peer_name: &str) -> bool {
        let mut bytes = Vec::new();
        etf::encode::put_reference(&mut bytes, &reference.to_etf()).is_ok() && self.inner.demonitor(&bytes, peer_name.as_bytes())
    }

    /// A MONITOR_P_EXIT to the server that Python decoded, naming `from_proc` as the process
    /// that exited, over the connection to `peer_name`: "down" (a resource holder is gone),
    /// "forged" (a monitor of the table, but not that process's or not from its node:
    /// ignored, and counted) or "unknown" (no monitor of the table).
    fn monitor_exit(
        &self,
        py: Python<'_>,
        reference: &crate::types::Reference,
        from_proc: &Bound<'_, PyAny>,
        peer_name: &str,
    ) -> &'static str {
        // FromProc may be a registered name (a monitor by name): never a holder.
        let from = from_proc.extract::<PyRef<'_, crate::types::Pid>>().map(|p| holder(&p)).unwrap_or_default();
        let reference = reference.to_etf();
        // Without the GIL: a resource's `down` may run here.
        match py.detach(|| self.inner.resources.monitor_down(&reference, &from, peer_name.as_bytes())) {
            rustelixir_nif::resource::MonitorExit::Down => "down",
            rustelixir_nif::resource::MonitorExit::Forged => "forged",
            rustelixir_nif::resource::MonitorExit::Unknown => "unknown",
        }
    }

    #[getter]
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// (calls answered, of which errors, cancelled, messages discarded for their size, calls
    /// answered overloaded).
    #[getter]
    fn stats(&self) -> (u64, u64, u64, u64, u64) {
        let s = &self.inner.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        (load(&s.calls), load(&s.errors), load(&s.cancelled), load(&s.oversized), load(&s.overloaded))
    }

    /// Each native served: (name, arity, calls, errors, [(reason, errors)], [(calls, up to
    /// microseconds)] for every call since the start, the sum of their microseconds).
    #[allow(clippy::type_complexity)]
    fn native_stats(&self) -> Vec<(String, u32, u64, u64, Vec<(&'static str, u64)>, Vec<(u64, u64)>, u64)> {
        use rustelixir_dist::stats::OUTCOMES;
        self.inner
            .native_stats()
            .into_iter()
            .map(|(name, arity, stats)| {
                let summary = stats.summary();
                let outcomes = OUTCOMES.iter().copied().zip(stats.outcomes()).collect();
                let (bins, sum_us) = stats.histogram();
                (name, arity, summary.calls, summary.errors, outcomes, bins, sum_us)
            })
            .collect()
    }

    /// Cancels every call in flight and stops the worker pool.
    fn close(&self) {
        self.inner.close();
    }

    // --- The resource table ---------------------------------------------------------------

    /// [(type, live, created, freed), ...]
    fn resource_counts(&self) -> Vec<(&'static str, u64, u64, u64)> {
        self.inner.resources.counts()
    }

    /// How many holders the table tracks.
    fn resource_holder_count(&self) -> usize {
        self.inner.resources.holder_count()
    }

    /// Sends `message` (any term) to the process `to` from the server's pid, as a native's
    /// message. False when `to`'s node is not connected (the message is dropped); ValueError
    /// when `message` is no term.
    fn send(&self, to: &crate::types::Pid, message: &Bound<'_, PyAny>) -> PyResult<bool> {
        let message = crate::to_etf::encode_to_vec(message, crate::to_etf::DEFAULT_MAX_DEPTH)?;
        Ok(self.send_encoded(to, &message))
    }

    /// Streams `item` (any term) to the caller of a call with reply tag `tag` (as a job
    /// carries it): `{rustelixir_stream, Tag, Item}`. False when the caller's node is gone.
    fn emit(&self, caller: &crate::types::Pid, tag: &[u8], item: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mut message = Vec::with_capacity(64 + tag.len());
        reply::write_stream_head(&mut message, tag);
        message.extend_from_slice(&crate::to_etf::encode_to_vec(item, crate::to_etf::DEFAULT_MAX_DEPTH)?);
        Ok(self.send_encoded(caller, &message))
    }

    /// Puts a Python object in the resource table, held by `caller`; returns its reference.
    #[pyo3(signature = (object, caller = None))]
    fn make_python_resource<'py>(
        &self,
        py: Python<'py>,
        object: Bound<'py, PyAny>,
        caller: Option<&crate::types::Pid>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let made = self.as_call(caller, || {
            rustelixir_nif::ResourceArc::try_new(PyObjectResource { object: Some(object.unbind()) })
        });
        match made {
            Ok(arc) => py_reference(py, arc.reference()),
            Err(_) => Err(crate::error::Overloaded::new_err("the resource table is full")),
        }
    }

    /// The Python object behind `reference`, now also held by `caller`.
    #[pyo3(signature = (reference, caller = None))]
    fn python_resource<'py>(
        &self,
        py: Python<'py>,
        reference: Bound<'py, PyAny>,
        caller: Option<&crate::types::Pid>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Ok(r) = reference.cast::<crate::types::Reference>() else {
            return Err(crate::error::BadResource::new_err(reference.unbind()));
        };
        let term = etf::Term::from(r.get().to_etf());
        let found = self.as_call(caller, || {
            <rustelixir_nif::ResourceArc<PyObjectResource> as rustelixir_nif::Decoder>::decode(&term)
        });
        match found {
            Ok(arc) => Ok(arc.object.as_ref().expect("live").clone_ref(py).into_bound(py)),
            Err(rustelixir_nif::ArgError::BadResource(_)) => Err(crate::error::BadResource::new_err(reference.unbind())),
            Err(rustelixir_nif::ArgError::BadArg(message)) => Err(pyo3::exceptions::PyTypeError::new_err(message)),
        }
    }
}

impl NativeServer {
    fn send_encoded(&self, to: &crate::types::Pid, message: &[u8]) -> bool {
        let mut pid = Vec::with_capacity(32);
        etf::encode::put_pid(&mut pid, &to.to_etf()).is_ok() && self.inner.send_to(&pid, message) == HOST_OK
    }

    /// Runs `f` as a call from `caller` on the server's resource table: the node's own
    /// `ResourceArc`s (Python objects) go through the same host as the natives' do.
    fn as_call<R>(&self, caller: Option<&crate::types::Pid>, f: impl FnOnce() -> R) -> R {
        let caller = caller.map(holder);
        self.inner.resources.with_host(&CallInfo::from_caller(caller.as_deref()), |_| f()).0
    }
}

/// The reply for a Python native's outcome (see `NativeServer.answer`); a value that is no
/// term (or whose conversion raised) is answered as that exception.
fn outcome_reply(outcome: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if outcome.is_none() {
        return Ok(None);
    }
    let outcome = outcome.cast::<PyTuple>()?;
    let item = outcome.get_item(1)?;
    if !outcome.get_item(0)?.is_truthy()? {
        return error_reply(item.cast::<PyTuple>()?).map(Some);
    }
    let mut out = Vec::with_capacity(64);
    reply::write_ok_head(&mut out);
    match crate::to_etf::encode_to_vec(&item, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from) {
        Ok(value) => out.extend(value),
        Err(e) => {
            let py = outcome.py();
            let kind = e.get_type(py).name()?.to_string();
            let message = format!("the native's value is no term: {}", e.value(py));
            out.clear();
            reply::write_error(&mut out, Reason::Exception { kind: &kind, message: &message });
        }
    }
    Ok(Some(out))
}

/// `{error, Reason}` for a reason as Python names it: `("badarg", index, message)`,
/// `("exception", type, message)`, `("badresource", reference)`, `("overloaded",)`.
fn error_reply(reason: &Bound<'_, PyTuple>) -> PyResult<Vec<u8>> {
    let kind: String = reason.get_item(0)?.extract()?;
    let mut out = Vec::with_capacity(64);
    match kind.as_str() {
        "badarg" => {
            let (index, message): (usize, String) = (reason.get_item(1)?.extract()?, reason.get_item(2)?.extract()?);
            reply::write_error(&mut out, Reason::BadArg { index, message: &message });
        }
        "exception" => {
            let (kind, message): (String, String) = (reason.get_item(1)?.extract()?, reason.get_item(2)?.extract()?);
            reply::write_error(&mut out, Reason::Exception { kind: &kind, message: &message });
        }
        "badresource" => {
            let term = crate::to_etf::encode_to_vec(&reason.get_item(1)?, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from)?;
            reply::write_error(&mut out, Reason::BadResource(&term));
        }
        "overloaded" => reply::write_error(&mut out, Reason::Overloaded),
        other => return Err(PyValueError::new_err(format!("no such reason: {other:?}"))),
    }
    Ok(out)
}

fn table_at(address: usize) -> PyResult<&'static rustelixir_nif::NativeTable> {
    // SAFETY: the address comes from a module that declares it as its native table; the
    // magic number and ABI version are checked before anything else is read.
    unsafe { rustelixir_nif::NativeTable::from_address(address) }.map_err(value_error)
}

/// What each native of the table at `address` says of itself: `(name, arity, slow,
/// description)`, the description `(doc, returns, [(argument, type), ...])` with Rust types
/// as written, or None for a native not declared with `#[native]`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn describe_native_table(
    address: usize,
) -> PyResult<Vec<(String, u32, bool, Option<(String, String, Vec<(String, String)>)>)>> {
    Ok(table_at(address)?
        .entries()
        .iter()
        .map(|e| (e.name().to_string(), e.arity, e.is_slow(), e.describe().map(|d| (d.doc, d.returns, d.args))))
        .collect())
}

// --- A crate's natives without a node ------------------------------------------------------

/// The natives a crate's own tests call from Python (`register_native_table`,
/// `call_native`), with no node and no server, and the resource table they run on (of a
/// node that is not there, `nonode@nohost`): only for testing a crate.
struct TestRegistry {
    natives: Mutex<Registry>,
    resources: rustelixir_nif::ResourceTable,
}

fn test_registry() -> &'static TestRegistry {
    static REGISTRY: std::sync::OnceLock<TestRegistry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| TestRegistry {
        natives: Mutex::default(),
        resources: rustelixir_nif::ResourceTable::new("nonode@nohost", 0, Default::default()),
    })
}

/// Registers the natives of a crate built as its own extension, for `call_native`.
#[pyfunction]
pub fn register_native_table(address: usize) -> PyResult<Vec<(String, u32, bool)>> {
    test_registry().natives.lock().unwrap_or_else(|e| e.into_inner()).add_table(table_at(address)?).map_err(value_error)
}

/// Runs a native registered with `register_native_table` on Python arguments (encoded on
/// the way in, the reply decoded on the way out), with the GIL released. Returns
/// `(:ok, value)` or `(:error, reason)`.
#[pyfunction]
pub fn call_native<'py>(py: Python<'py>, name: &str, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let native = test_registry().natives.lock().unwrap_or_else(|e| e.into_inner()).find(name.as_bytes(), args.len());
    let entry = match native {
        Some(Native::Quick(e) | Native::Slow(e) | Native::Async(e)) => e,
        _ => return Err(PyKeyError::new_err(format!("no native {name}/{}", args.len()))),
    };
    let encoded = args
        .iter()
        .map(|a| crate::to_etf::encode_to_vec(&a, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from))
        .collect::<PyResult<Vec<Vec<u8>>>>()?;
    let reply = py.detach(|| {
        let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let resources = &test_registry().resources;
        // An async native's task is run to its end here, on this thread.
        let task = std::cell::RefCell::new(None);
        let spawn = |t: rustelixir_nif::AsyncTask| {
            *task.borrow_mut() = Some(t);
            HOST_OK
        };
        let info = CallInfo { spawn: Some(&spawn), ..CallInfo::default() };
        let reply = resources.with_host(&info, |host| rustelixir_nif::call_entry(entry, &slices, None, host)).0;
        match task.into_inner() {
            Some(task) => rustelixir_dist::runtime::block_on(task, resources),
            None => reply,
        }
    });
    crate::from_etf::term_to_py(py, &reply)
}

// --- The resource table -------------------------------------------------------------------

fn holder(pid: &crate::types::Pid) -> Vec<u8> {
    rustelixir_nif::resource::holder_of(&pid.to_etf())
}

/// The limit on bytes held by all buffers together (the built-in collections'); past it,
/// `:overloaded`.
#[pyfunction]
pub fn set_max_buffer_bytes(max_buffer_bytes: u64) {
    rustelixir_collections::set_max_total_buffer_bytes(max_buffer_bytes);
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

/// Python objects the table has let go of since the last call: call their `close()`.
#[pyfunction]
pub fn take_released_python_objects(py: Python<'_>) -> Vec<Py<PyAny>> {
    let _ = py;
    std::mem::take(&mut *closed_queue().lock().unwrap_or_else(|e| e.into_inner()))
}
