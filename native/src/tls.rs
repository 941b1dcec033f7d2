//! `TlsConfig` and `TlsSession`: Python's handles on the node's TLS configuration and on
//! one connection's session while the handshake runs (`rustelixir_dist::tls`); the link
//! takes the session over when the handshake is done.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use rustelixir_dist::tls;

use crate::error::Error;

/// The node's certificate, key and trusted CAs, loaded once (`rustelixir.errors.TlsConfigError`
/// names the file at fault).
#[pyclass(module = "rustelixir._native", frozen)]
pub struct TlsConfig {
    inner: Arc<tls::TlsConfig>,
}

#[pymethods]
impl TlsConfig {
    #[new]
    #[pyo3(signature = (*, cert, key, cacert))]
    fn new(py: Python<'_>, cert: PathBuf, key: PathBuf, cacert: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| tls::TlsConfig::from_pem_files(&cert, &key, &cacert))
            .map_err(Error::TlsConfig)?;
        Ok(TlsConfig { inner: Arc::new(inner) })
    }

    /// A session for a connection a peer made to us.
    fn accept(&self) -> PyResult<TlsSession> {
        Ok(TlsSession { inner: Some(self.inner.accept().map_err(Error::Tls)?) })
    }

    /// A session for a connection we make to `host`, whose certificate must name it.
    fn connect(&self, host: &str) -> PyResult<TlsSession> {
        Ok(TlsSession { inner: Some(self.inner.connect(host).map_err(Error::Tls)?) })
    }
}

/// One connection's TLS session, sans-IO, until the link takes it (`DistLink(tls=...)`).
#[pyclass(module = "rustelixir._native")]
pub struct TlsSession {
    inner: Option<tls::TlsSession>,
}

impl TlsSession {
    fn session(&mut self) -> PyResult<&mut tls::TlsSession> {
        self.inner.as_mut().ok_or_else(|| Error::Tls(tls::TlsError("the session belongs to a link now".into())).into())
    }

    /// The session, for the link that takes the connection over.
    pub fn take(&mut self) -> PyResult<tls::TlsSession> {
        self.session()?;
        Ok(self.inner.take().expect("checked above"))
    }
}

#[pymethods]
impl TlsSession {
    /// Bytes read from the socket: (the plaintext they carried, whether the peer ended the
    /// session). Raises `rustelixir.errors.TlsError` when the peer broke TLS or failed
    /// verification (`data_to_send` then has the alert that tells it why).
    fn receive<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<(Bound<'py, PyBytes>, bool)> {
        let mut plaintext = Vec::new();
        let received = self.session()?.receive(data, &mut plaintext).map_err(Error::Tls)?;
        Ok((PyBytes::new(py, &plaintext), received.closed))
    }

    /// Plaintext for the peer (kept until the TLS handshake is done, then encrypted).
    fn send(&mut self, data: &[u8]) -> PyResult<()> {
        self.session()?.send(data);
        Ok(())
    }

    /// The bytes to write to the socket.
    fn data_to_send<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.session()?.take_output(&mut out);
        Ok(PyBytes::new(py, &out))
    }

    /// The TLS handshake is not over yet.
    #[getter]
    fn handshaking(&mut self) -> PyResult<bool> {
        Ok(self.session()?.is_handshaking())
    }

    /// The TLS version and cipher suite agreed ("TLSv1_3 TLS13_AES_256_GCM_SHA384"), once
    /// the TLS handshake is over; else None.
    #[getter]
    fn agreed(&mut self) -> PyResult<Option<String>> {
        Ok(self.session()?.describe())
    }
}
