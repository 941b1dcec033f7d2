//! `DistLink`: Python's handle on a peer's connection after the handshake. The connection
//! itself (its threads, framing, the server's answers) is `rustelixir_dist::link`.

use pyo3::exceptions::PyConnectionError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::fs::File;
use std::net::TcpStream;
use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

use rustelixir_dist::frame::PeerConfig;
use rustelixir_dist::link::Link;

#[pyclass(module = "rustelixir._native")]
pub struct DistLink {
    link: Link,
}

#[pymethods]
impl DistLink {
    /// Takes over the connected socket `fd` (a duplicate the caller gives away) and starts
    /// the connection's threads; `notify_fd` is the write end of a pipe Python watches for
    /// the frames left to it. With `server`, the calls to it are answered by the link. With
    /// `tls`, the connection's session (taken from it): the link reads and writes through it.
    #[new]
    #[pyo3(signature = (fd, leftover, notify_fd, *, peer_name, alias, send_sender, header, max_message_size, fragment_size, ticktime_ms, server = None, tls = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        fd: RawFd,
        leftover: Vec<u8>,
        notify_fd: RawFd,
        peer_name: String,
        alias: bool,
        send_sender: bool,
        header: bool,
        max_message_size: usize,
        fragment_size: usize,
        ticktime_ms: u64,
        server: Option<&crate::server::NativeServer>,
        tls: Option<PyRefMut<'_, crate::tls::TlsSession>>,
    ) -> PyResult<Self> {
        // SAFETY: the caller hands over ownership of both descriptors.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let notify = unsafe { File::from_raw_fd(notify_fd) };
        let tls = tls.map(|mut session| session.take()).transpose()?;
        let config = PeerConfig {
            name: peer_name.into_bytes(),
            alias,
            send_sender,
            header,
            max_message_size,
            fragment_size: fragment_size.max(1),
            counters: Default::default(),
        };
        let link = Link::start(stream, leftover, notify, config, server.map(|s| s.inner.clone()), Duration::from_millis(ticktime_ms), tls)?;
        Ok(DistLink { link })
    }

    /// Queues one message (control and payload encoded without version bytes; no payload:
    /// None) for the peer; never blocks. Past the queue's bound (a peer that does not read)
    /// it raises ConnectionError: close the connection.
    #[pyo3(signature = (control, payload = None))]
    fn send_message(&self, control: &[u8], payload: Option<&[u8]>) -> PyResult<()> {
        self.link.send_message(control, payload.unwrap_or_default()).map_err(PyConnectionError::new_err)
    }

    /// A message Python could not decode within the node's limits (`body`, a frame body):
    /// when it is a call to the server its caller is answered `{error, overloaded}` and
    /// this returns True.
    fn refuse(&self, body: &[u8]) -> PyResult<bool> {
        self.link.refuse(body).map_err(PyConnectionError::new_err)
    }

    /// What the reader left to Python: (frame bodies, ticks seen, why it closed or None).
    fn take<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, usize, Option<String>)> {
        let (frames, ticks, closed) = self.link.take();
        let list = PyList::new(py, frames.iter().map(|f| PyBytes::new(py, f)))?;
        Ok((list, ticks, closed))
    }

    /// (bytes in, bytes out, messages in, messages out, frames waiting for Python): bytes on
    /// the wire, TLS records included; a fragmented message counted once; ticks not at all.
    fn traffic(&self) -> (u64, u64, u64, u64, usize) {
        self.link.traffic()
    }

    /// Python has handled the frames it took: the link reads on.
    fn handled(&self) {
        self.link.handled();
    }

    /// Closes the connection: stops both threads and lets go of every descriptor.
    fn close(&mut self, py: Python<'_>) {
        py.detach(|| self.link.close());
    }
}
