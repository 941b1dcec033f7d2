//! A connection to a peer node after the handshake, owned by a Rust thread: it reads the
//! socket, answers fast-path calls (`dist.rs`) and sends ticks without ever taking the GIL,
//! so neither a busy native nor the event loop can delay them. Frames for Python are queued,
//! and Python is woken by one byte on a pipe it watches (`loop.add_reader`).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::dist::{Config, FastPath, FrameError};

const TICK: [u8; 4] = [0, 0, 0, 0];

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Vec<u8>>,
    ticks: usize,
    closed: Option<String>,
    notified: bool,
}

struct Shared {
    writer: Mutex<TcpStream>,
    inbox: Mutex<Inbox>,
    notify: Mutex<File>,
    started: Instant,
    last_write_ms: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
    closing: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_all(data)?;
        self.last_write_ms.store(self.now_ms(), Ordering::Relaxed);
        Ok(())
    }

    fn push(&self, frames: Vec<Vec<u8>>, ticks: usize, closed: Option<String>) {
        let wake = {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.frames.extend(frames);
            inbox.ticks += ticks;
            if closed.is_some() && inbox.closed.is_none() {
                inbox.closed = closed;
            }
            let wake = !inbox.notified && (!inbox.frames.is_empty() || inbox.closed.is_some());
            if wake {
                inbox.notified = true;
            }
            wake
        };
        if wake {
            let _ = self.notify.lock().unwrap_or_else(|e| e.into_inner()).write(&[1]);
        }
    }
}

#[pyclass(module = "rustelixir._native")]
pub struct DistLink {
    watched: Arc<Mutex<HashSet<Vec<u8>>>>,
    shared: Arc<Shared>,
    stream: TcpStream,
    reader: Option<JoinHandle<()>>,
}

#[pymethods]
impl DistLink {
    /// Takes over the connected socket `fd` (a duplicate the caller gives away) and starts
    /// the reader thread. `leftover` is what arrived after the handshake; `notify_fd` the
    /// write end of a pipe Python watches. A peer silent for `ticktime_ms` is dropped; a
    /// tick is sent whenever nothing was written for a quarter of it.
    #[new]
    #[pyo3(signature = (fd, leftover, notify_fd, *, server_name, server_pid, alias, send_sender, header, max_message_size, fragment_size, ticktime_ms))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        fd: RawFd,
        leftover: Vec<u8>,
        notify_fd: RawFd,
        server_name: Option<String>,
        server_pid: Vec<u8>,
        alias: bool,
        send_sender: bool,
        header: bool,
        max_message_size: usize,
        fragment_size: usize,
        ticktime_ms: u64,
    ) -> PyResult<Self> {
        // SAFETY: the caller hands over ownership of both descriptors.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let notify = unsafe { File::from_raw_fd(notify_fd) };
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let interval = Duration::from_millis((ticktime_ms / 4).max(10));
        stream.set_read_timeout(Some(interval))?;
        let watched = Arc::new(Mutex::new(HashSet::new()));
        let shared = Arc::new(Shared {
            writer: Mutex::new(stream.try_clone()?),
            inbox: Mutex::new(Inbox::default()),
            notify: Mutex::new(notify),
            started: Instant::now(),
            last_write_ms: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        });
        let fast = FastPath::new(Config {
            server_name: server_name.map(String::into_bytes),
            server_pid,
            alias,
            send_sender,
            header,
            max_message_size,
            fragment_size: fragment_size.max(1),
            watched: watched.clone(),
        });
        let reader_stream = stream.try_clone()?;
        let thread_shared = shared.clone();
        let reader = std::thread::Builder::new()
            .name("rustelixir-dist".into())
            .spawn(move || read_loop(reader_stream, thread_shared, fast, leftover, ticktime_ms, interval))?;
        Ok(DistLink { shared, stream, reader: Some(reader), watched })
    }

    /// Lets the DEMONITOR_P of this monitor reference (encoded, no version byte) through to
    /// Python: the call it belongs to runs in Python and must hear its caller give up.
    fn watch(&self, reference: Vec<u8>) {
        self.watched.lock().unwrap().insert(reference);
    }

    fn unwatch(&self, reference: Vec<u8>) {
        self.watched.lock().unwrap().remove(&reference);
    }

    /// Writes bytes (whole frames) to the peer; the GIL is released while writing.
    fn send(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let shared = self.shared.clone();
        py.detach(|| shared.write(data)).map_err(PyErr::from)
    }

    /// What the reader thread queued: (frame bodies, ticks seen, why it closed or None).
    fn take<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, usize, Option<String>)> {
        let (frames, ticks, closed) = {
            let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.notified = false;
            let frames: Vec<Vec<u8>> = inbox.frames.drain(..).collect();
            let ticks = std::mem::take(&mut inbox.ticks);
            (frames, ticks, inbox.closed.clone())
        };
        let list = PyList::new(py, frames.iter().map(|f| PyBytes::new(py, f)))?;
        Ok((list, ticks, closed))
    }

    /// Shuts the socket down; the reader thread then reports the connection closed.
    fn close(&mut self, py: Python<'_>) {
        self.shared.closing.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            py.detach(|| {
                let _ = reader.join();
            });
        }
    }

    /// (calls answered on the fast path, of which errors).
    #[getter]
    fn stats(&self) -> (u64, u64) {
        (self.shared.calls.load(Ordering::Relaxed), self.shared.errors.load(Ordering::Relaxed))
    }
}

impl Drop for DistLink {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn read_loop(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut fast: FastPath,
    leftover: Vec<u8>,
    ticktime_ms: u64,
    interval: Duration,
) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    let mut last_read = Instant::now();
    let mut pending: Option<Vec<u8>> = (!leftover.is_empty()).then_some(leftover);
    let interval_ms = interval.as_millis() as u64;
    let reason = loop {
        let n = if let Some(data) = pending.take() {
            let n = data.len();
            if n > buf.len() {
                buf.resize(n, 0);
            }
            buf[..n].copy_from_slice(&data);
            n
        } else {
            match stream.read(&mut buf) {
                Ok(0) => break "connection closed by peer".to_string(),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => 0,
                Err(e) => break format!("connection error: {e}"),
            }
        };
        if shared.closing.load(Ordering::Relaxed) {
            break "closed".to_string();
        }
        if n > 0 {
            last_read = Instant::now();
            let calls_before = fast.stats.calls;
            let errors_before = fast.stats.errors;
            match fast.feed(&buf[..n], &mut out, &mut to_python) {
                Ok(ticks) => {
                    if !out.is_empty() {
                        if let Err(e) = shared.write(&out) {
                            break format!("write error: {e}");
                        }
                        out.clear();
                    }
                    shared.calls.fetch_add(fast.stats.calls - calls_before, Ordering::Relaxed);
                    shared.errors.fetch_add(fast.stats.errors - errors_before, Ordering::Relaxed);
                    if !to_python.is_empty() || ticks > 0 {
                        shared.push(std::mem::take(&mut to_python), ticks, None);
                    }
                }
                Err(FrameError::TooLarge(len)) => {
                    break format!("protocol error: frame of {len} bytes is over the limit of {}", fast.config.max_message_size)
                }
                Err(e) => break format!("protocol error: {e}"),
            }
            if buf.len() == n && n < 16 * 1024 * 1024 {
                buf.resize(n * 2, 0); // the peer sends faster than we read: read more at once
            }
        } else if last_read.elapsed() > Duration::from_millis(ticktime_ms) {
            break format!("no traffic for {} s (net_ticktime)", ticktime_ms / 1000);
        }
        if shared.now_ms().saturating_sub(shared.last_write_ms.load(Ordering::Relaxed)) >= interval_ms {
            if let Err(e) = shared.write(&TICK) {
                break format!("write error: {e}");
            }
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    shared.push(Vec::new(), 0, Some(reason));
}
